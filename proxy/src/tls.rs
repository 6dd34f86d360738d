//! TLS for client connections (rustls), from PEM files named in `[proxy]`.
//!
//! With `tls_cert_file` and `tls_key_file` set, every client must speak TLS (drivers:
//! `tls=true`); the handshake has the frame timeout to finish, so a client cannot hold a
//! connection slot by stalling it.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ConfigError;

fn invalid(key: &str, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason,
    }
}

/// Builds the acceptor from a PEM certificate chain and a PEM private key.
pub fn acceptor(cert_file: &str, key_file: &str) -> Result<TlsAcceptor, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| invalid("proxy.tls_cert_file", format!("{cert_file}: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("proxy.tls_cert_file", format!("{cert_file}: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "proxy.tls_cert_file",
            format!("{cert_file}: no certificate found"),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| invalid("proxy.tls_key_file", format!("{key_file}: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("proxy.tls_cert_file", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                "proxy.tls_key_file",
                format!("certificate and key do not match: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
