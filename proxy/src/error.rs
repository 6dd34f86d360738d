//! Errors of the proxy, classified by who caused them.

/// Why the proxy could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The upstream is unreachable or misbehaves.
    #[error("upstream {addr}: {reason}")]
    Upstream {
        /// The upstream address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
}
