//! `POST /v1/dev/token`: mints a signed HS256 token for any tenant and role, so the console
//! (and a developer with `curl`) can sign in without an identity provider. It exists only
//! with `[api] dev_mode = true`; otherwise the route answers 404 like any unknown path, so a
//! production deployment does not even reveal it. Real deployments bring their own identity
//! provider and tokens carrying the same claims (`sub`, `tenantId`, `roles`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::extract::Json;
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;

/// How long a minted token lives.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Roles a dev token may carry (the roles the API knows).
const ROLES: [&str; 2] = ["super_admin", "security_auditor"];

/// The route.
pub fn router() -> Router<ApiState> {
    Router::new().route("/v1/dev/token", post(mint))
}

/// What the caller asks for.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The subject (user name); defaults to `dev-user`.
    #[schema(max_length = 64)]
    sub: Option<String>,
    /// The tenant the token is bound to (a tenant user's token; optional for admins).
    #[serde(rename = "tenantId")]
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    tenant_id: Option<String>,
    /// Roles (`super_admin`, `security_auditor`); empty for a tenant user.
    #[serde(default)]
    roles: Vec<String>,
}

/// A minted token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DevToken {
    /// The signed HS256 JWT, for `Authorization: Bearer`.
    pub token: String,
    /// When it expires (UTC, RFC 3339), 8 hours after it was minted.
    pub expires_at: String,
    /// Its claims: `sub`, `roles`, `iat`, `exp`, and `tenantId`, `iss`, `aud` when set.
    #[schema(value_type = Object)]
    pub claims: Value,
}

#[utoipa::path(
    post,
    path = "/v1/dev/token",
    operation_id = "mintDevToken",
    tag = "dev",
    summary = "Mint a token for any tenant and role (dev mode only)",
    description = "Exists only with `[api] dev_mode = true` (and `jwt.hs256_secret`); otherwise the path is unknown (404). Anyone who reaches it can act as anyone: never enable it where real data lives.",
    request_body = TokenRequest,
    responses(
        (status = 201, description = "A signed token, valid 8 hours.", body = DevToken),
        (status = 422, description = "- `validation_failed`: `sub`, `tenantId` or a role is invalid, or a token without a role names no tenant; `errors` names each one.", body = crate::openapi::schemas::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn mint(
    State(state): State<ApiState>,
    Json(req): Json<TokenRequest>,
) -> Result<(StatusCode, Json<DevToken>), Problem> {
    let config = &state.services().config;
    let secret = match (&config.jwt, config.api.dev_mode) {
        (Some(jwt), true) => jwt.hs256_secret.as_deref(),
        _ => None,
    };
    let Some(secret) = secret else {
        return Err(Problem::not_found(
            "route_not_found",
            "no route matches this path",
        ));
    };
    let mut errors = Vec::new();
    let sub = req.sub.unwrap_or_else(|| "dev-user".into());
    if sub.is_empty() || sub.len() > 64 || !sub.chars().all(|c| c.is_ascii_graphic()) {
        errors.push(FieldError::new(
            "sub",
            "must be 1 to 64 printable ASCII characters",
        ));
    }
    if let Some(t) = &req.tenant_id
        && !tenantgate_proxy::config::is_slug(t)
    {
        errors.push(FieldError::new("tenantId", "must be a tenant slug"));
    }
    for (i, r) in req.roles.iter().enumerate() {
        if !ROLES.contains(&r.as_str()) {
            errors.push(FieldError::new(
                format!("roles[{i}]"),
                format!("must be one of {}", ROLES.join(", ")),
            ));
        }
    }
    if req.tenant_id.is_none() && req.roles.is_empty() {
        errors.push(FieldError::new(
            "tenantId",
            "a token without a role must name a tenant",
        ));
    }
    if !errors.is_empty() {
        return Err(Problem::validation(errors));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| Problem::internal(&e))?;
    let exp = (now + TOKEN_LIFETIME).as_secs();
    let mut claims = json!({
        "sub": sub,
        "roles": req.roles,
        "iat": now.as_secs(),
        "exp": exp,
    });
    if let Some(t) = &req.tenant_id {
        claims["tenantId"] = json!(t);
    }
    if let Some(jwt) = &config.jwt {
        if let Some(iss) = &jwt.issuer {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = &jwt.audience {
            claims["aud"] = json!(aud);
        }
    }
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| Problem::internal(&e))?;
    tracing::warn!(sub = %claims["sub"], tenant = ?req.tenant_id, "dev mode: minted a token");
    let expires_at =
        bson::DateTime::from_millis(i64::try_from(exp.saturating_mul(1000)).unwrap_or(i64::MAX))
            .try_to_rfc3339_string()
            .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(DevToken {
            token,
            expires_at,
            claims,
        }),
    ))
}
