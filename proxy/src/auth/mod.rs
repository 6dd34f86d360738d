//! Client authentication, terminated at the proxy: principals and their SCRAM credentials.
//!
//! Drivers authenticate with `saslStart` / `saslContinue` exactly as they would against MongoDB;
//! the proxy checks them against the principals of the configuration and binds the connection
//! to a [`Principal`] (a tenant, or roles). The upstream never sees client credentials.

pub mod jwt;
pub mod scram;

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tenantgate_policy::{Principal, Role, TenantId};

use crate::config::{ConfigError, Env, PrincipalConfig};
use scram::{Mechanism, ScramKeys};

/// PBKDF2 iterations for credentials derived from configured passwords (MongoDB's defaults).
const SHA256_ITERATIONS: u32 = 15_000;
const SHA1_ITERATIONS: u32 = 10_000;

#[derive(Debug, Clone)]
struct Entry {
    principal: Principal,
    sha256: ScramKeys,
    sha1: Option<ScramKeys>,
}

/// The principals that may authenticate.
#[derive(Debug, Clone, Default)]
pub struct PrincipalStore {
    entries: HashMap<String, Entry>,
}

impl PrincipalStore {
    /// Derives credentials for every configured principal.
    pub fn from_config(principals: &[PrincipalConfig], env: &dyn Env) -> Result<Self, ConfigError> {
        let mut entries = HashMap::new();
        for p in principals {
            let principal = Principal {
                name: p.username.clone(),
                tenant: p.tenant.as_ref().map(TenantId::new),
                roles: p.roles.iter().map(|r| Role::parse(r)).collect(),
            };
            let password = match (&p.password, &p.password_env) {
                (Some(pw), _) => Some(pw.clone()),
                (None, Some(var)) => Some(env.var(var).ok_or_else(|| ConfigError::Invalid {
                    key: format!("principals.{}", p.username),
                    reason: format!("environment variable {var} is not set"),
                })?),
                (None, None) => None,
            };
            let (sha256, sha1) = match (password, &p.scram_sha256) {
                (Some(pw), _) => (
                    ScramKeys::derive(Mechanism::Sha256, &p.username, &pw, SHA256_ITERATIONS),
                    Some(ScramKeys::derive(
                        Mechanism::Sha1,
                        &p.username,
                        &pw,
                        SHA1_ITERATIONS,
                    )),
                ),
                (None, Some(stored)) => {
                    let field = |name: &str, v: &str| {
                        B64.decode(v).map_err(|_| ConfigError::Invalid {
                            key: format!("principals.{}.scram_sha256.{name}", p.username),
                            reason: "must be base64".into(),
                        })
                    };
                    (
                        ScramKeys {
                            salt: field("salt", &stored.salt)?,
                            iterations: stored.iterations,
                            stored_key: field("stored_key", &stored.stored_key)?,
                            server_key: field("server_key", &stored.server_key)?,
                            client_key: Vec::new(),
                        },
                        None,
                    )
                }
                (None, None) => {
                    return Err(ConfigError::Invalid {
                        key: format!("principals.{}", p.username),
                        reason: "no credentials".into(),
                    });
                }
            };
            entries.insert(
                p.username.clone(),
                Entry {
                    principal,
                    sha256,
                    sha1,
                },
            );
        }
        Ok(PrincipalStore { entries })
    }

    /// The keys of `username` for `mechanism`.
    pub fn keys(&self, username: &str, mechanism: Mechanism) -> Option<ScramKeys> {
        let e = self.entries.get(username)?;
        match mechanism {
            Mechanism::Sha256 => Some(e.sha256.clone()),
            Mechanism::Sha1 => e.sha1.clone(),
        }
    }

    /// The principal `username` authenticates as.
    pub fn principal(&self, username: &str) -> Option<&Principal> {
        self.entries.get(username).map(|e| &e.principal)
    }

    /// Mechanisms `username` can use, for `saslSupportedMechs` (both for unknown users, so the
    /// answer reveals nothing).
    pub fn mechanisms(&self, username: &str) -> Vec<&'static str> {
        match self.entries.get(username) {
            Some(e) if e.sha1.is_none() => vec!["SCRAM-SHA-256"],
            _ => vec!["SCRAM-SHA-256", "SCRAM-SHA-1"],
        }
    }
}
