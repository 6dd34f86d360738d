//! The tenant-isolation rewrite and decision engine.
//!
//! Given one parsed command (from `tenantgate-wire`) and the context of the principal that sent
//! it, this crate decides exactly what may reach MongoDB: forward a rewritten command, reject it,
//! or answer it locally. It performs no I/O and has no tokio dependency, so both the proxy and the
//! HTTP API share one engine and one set of rules. The engine itself is built in the policy issue;
//! this crate exists now so the workspace shows the architecture from the first commit.
#![forbid(unsafe_code)]
