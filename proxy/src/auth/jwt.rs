//! JWT authentication: a token from the platform's identity provider, verified with
//! `jsonwebtoken` against the `[jwt]` configuration (HS256 secret or RS256 public key; `exp`,
//! `nbf`, and optionally `iss` / `aud`). The claims `tenantId` and `roles` bind the connection.
//!
//! Drivers present it two ways on `authSource=$external`: as `MONGODB-OIDC` (machine workflow:
//! the token in the first message), or as `PLAIN` with username `_` and the token as the
//! password — the convention of MongoDB's App Services wire endpoint. PLAIN sends the token in
//! the clear, so it is only accepted over TLS unless `proxy.allow_plain_without_tls` is set for
//! development.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tenantgate_policy::{Principal, Role, TenantId};

use crate::config::{ConfigError, JwtConfig};

/// Why a token was refused (logged and audited, never sent to the client).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Signature, expiry, not-before, issuer or audience check failed, or the token is malformed.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The token has expired (`exp` is past, beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// The token names neither a tenant nor a role that grants access.
    #[error("the token carries no tenantId and no role")]
    NoAccess,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(rename = "tenantId")]
    tenant_id: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// Verifies tokens.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// From `[jwt]`.
    pub fn from_config(config: &JwtConfig) -> Result<JwtVerifier, ConfigError> {
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: format!("jwt.{key}"),
            reason,
        };
        let (key, algorithm) = match (&config.hs256_secret, &config.rs256_public_key_file) {
            (Some(secret), None) => {
                if secret.len() < 8 {
                    return Err(invalid("hs256_secret", "must be at least 8 bytes".into()));
                }
                (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| invalid("rs256_public_key_file", format!("{path}: {e}")))?;
                let key = DecodingKey::from_rsa_pem(&pem)
                    .map_err(|e| invalid("rs256_public_key_file", e.to_string()))?;
                (key, Algorithm::RS256)
            }
            _ => {
                return Err(invalid(
                    "hs256_secret",
                    "set exactly one of hs256_secret and rs256_public_key_file".into(),
                ));
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.leeway = 30;
        // A configured issuer or audience must be *present*, not only right when present.
        let mut required = vec!["exp"];
        if let Some(iss) = &config.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtVerifier { key, validation })
    }

    /// Verifies `token` and returns the principal it names, for the proxy: it must carry a
    /// tenant or `super_admin` (other roles grant no database access).
    pub fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        let principal = self.verify_claims(token)?;
        if principal.tenant.is_none() && !principal.is_super_admin() {
            return Err(JwtError::NoAccess);
        }
        Ok(principal)
    }

    /// Verifies `token` (signature, `exp`, `nbf`, `iss`, `aud`, a well-formed `tenantId`) and
    /// returns what it claims, whatever that grants. The HTTP API decides per route.
    pub fn verify_claims(&self, token: &str) -> Result<Principal, JwtError> {
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &self.key, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let roles: Vec<Role> = claims.roles.iter().map(|r| Role::parse(r)).collect();
        if claims
            .tenant_id
            .as_deref()
            .is_some_and(|t| !crate::config::is_slug(t))
        {
            return Err(JwtError::Invalid("tenantId is not a tenant slug".into()));
        }
        Ok(Principal {
            name: format!("jwt:{}", claims.sub.unwrap_or_else(|| "anonymous".into())),
            tenant: claims.tenant_id.map(TenantId::new),
            roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encodes")
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::from_config(&JwtConfig {
            hs256_secret: Some("change-me-please".into()),
            rs256_public_key_file: None,
            issuer: Some("https://idp.example".into()),
            audience: None,
        })
        .expect("valid")
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    #[test]
    fn a_valid_token_binds_its_tenant() {
        let t = token(
            serde_json::json!({ "sub": "svc", "tenantId": "bank1", "iss": "https://idp.example", "exp": now() + 600 }),
            "change-me-please",
        );
        let p = verifier().verify(&t).expect("valid");
        assert_eq!(p.tenant.as_ref().map(|t| t.as_str()), Some("bank1"));
        assert_eq!(p.name, "jwt:svc");
    }

    #[test]
    fn bad_tokens_are_refused() {
        let v = verifier();
        let good = serde_json::json!({ "sub": "s", "tenantId": "bank1", "iss": "https://idp.example", "exp": now() + 600 });
        assert!(
            v.verify(&token(good.clone(), "wrong-secret!!")).is_err(),
            "signature"
        );
        let mut expired = good.clone();
        expired["exp"] = serde_json::json!(now() - 3600);
        assert!(
            v.verify(&token(expired, "change-me-please")).is_err(),
            "expired"
        );
        let mut early = good.clone();
        early["nbf"] = serde_json::json!(now() + 3600);
        assert!(
            v.verify(&token(early, "change-me-please")).is_err(),
            "not yet valid"
        );
        let mut other_issuer = good.clone();
        other_issuer["iss"] = serde_json::json!("https://evil.example");
        assert!(
            v.verify(&token(other_issuer, "change-me-please")).is_err(),
            "issuer"
        );
        let mut no_issuer = good.clone();
        no_issuer
            .as_object_mut()
            .map(|o| o.remove("iss"))
            .expect("an object");
        assert!(
            v.verify(&token(no_issuer, "change-me-please")).is_err(),
            "a configured issuer is required"
        );
        let no_access =
            serde_json::json!({ "sub": "s", "iss": "https://idp.example", "exp": now() + 600 });
        assert!(matches!(
            v.verify(&token(no_access, "change-me-please")),
            Err(JwtError::NoAccess)
        ));
        assert!(v.verify("not.a.token").is_err());
    }
}
