//! The MongoDB wire-protocol proxy server.
//!
//! Sockets, client authentication, the upstream connection pool, cursor and session ownership and
//! the audit sink live here; every command is decided by `tenantgate-policy` and framed by
//! `tenantgate-wire`. The server is built in the proxy issue; the crate exists now so the
//! workspace shows the architecture from the first commit.
