//! The MongoDB wire-protocol proxy server.
//!
//! Application services point their ordinary MongoDB connection string at it. Each connection
//! authenticates (SCRAM) to a principal bound to a tenant or holding roles; every command then
//! goes through `tenantgate-policy` and only what the policy forwards reaches the upstream, over a
//! pool of the proxy's own connections. The proxy answers the handshake itself and hides the
//! upstream topology, tracks which principal owns which cursor, and writes an audit event for
//! every rejection, authentication failure and privileged bypass.
//!
//! It is a library first: [`Proxy::bind`] from a [`config::Config`], then [`Proxy::run`] inside
//! any tokio runtime. The `tenantgate` binary is a thin wrapper.

pub mod audit;
pub mod auth;
pub mod config;
mod connection;
pub mod cursors;
pub mod error;
pub mod handshake;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod ratelimit;
pub mod redis_link;
pub mod registry;
pub mod reply;
pub mod scoped;
pub mod scoped_collection;
mod server;
pub mod sessions;
pub mod tls;
pub mod upstream;

pub use config::{Config, Env, ProcessEnv};
pub use error::ProxyError;
pub use server::{Proxy, Services};

/// At most 64 characters of a client-chosen name, for log lines and messages.
pub(crate) fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(64) {
        None => std::borrow::Cow::Borrowed(s),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..at])),
    }
}
