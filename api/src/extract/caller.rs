//! Who is calling: the `Authorization: Bearer` JWT, verified once per request by
//! [`authenticate`] (signature, `exp`, `nbf`, optional `iss` / `aud`, the shared `[jwt]`
//! section), then read by the extractors.
//!
//! A request without a token is anonymous — tenant resolution may still use the header or the
//! host. A request *with* a token that does not verify is refused outright (401, audited):
//! falling back to anonymous would let a forged token quietly become a header-based request.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantgate_policy::{Principal, Role};
use tenantgate_proxy::audit::ApiEvent;
use tenantgate_proxy::auth::jwt::JwtError;

use crate::problem::Problem;
use crate::state::ApiState;

/// The verified caller, or `None` for an anonymous request (a request extension).
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Principal>);

fn bearer(request: &Request) -> Option<Result<&str, ()>> {
    let value = request.headers().get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err(()));
    };
    let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Some(Err(()));
    }
    Some(Ok(token.trim()))
}

/// Middleware: verifies the bearer token, if any, and stores the [`Caller`].
pub async fn authenticate(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ip) = super::client_ip(
        super::peer(request.extensions()),
        request.headers(),
        state.hosts(),
    ) {
        request.extensions_mut().insert(super::ClientIp(ip));
    }
    // (code, what the client is told, what the audit trail records)
    let verdict: Result<Option<Principal>, (&str, &str, String)> = match bearer(&request) {
        None => Ok(None),
        Some(Err(())) => Err((
            "invalid_token",
            "the Authorization header must be `Bearer <JWT>`",
            "malformed Authorization header".to_owned(),
        )),
        Some(Ok(token)) => match &state.services().jwt {
            None => Err((
                "invalid_token",
                "bearer tokens are not accepted: no [jwt] section is configured",
                "bearer token without [jwt] configuration".to_owned(),
            )),
            Some(verifier) => match verifier.verify_claims(token) {
                Ok(p) => Ok(Some(p)),
                Err(JwtError::Expired) => Err((
                    "token_expired",
                    "the bearer token has expired",
                    "expired token".to_owned(),
                )),
                // The precise reason (bad signature, wrong issuer…) helps an attacker more
                // than a client: it goes to the audit trail only.
                Err(e) => Err((
                    "invalid_token",
                    "the bearer token is invalid",
                    e.to_string(),
                )),
            },
        },
    };
    match verdict {
        Ok(principal) => {
            request.extensions_mut().insert(Caller(principal));
            next.run(request).await
        }
        Err((code, detail, reason)) => {
            let target = format!("{} {}", request.method(), request.uri().path());
            state.services().audit.api_event(
                &ApiEvent {
                    kind: "auth_failure",
                    rule: "authentication",
                    principal: "anonymous",
                    tenant: None,
                    request: &target,
                    message: &reason,
                },
                &super::origin_of(request.extensions()),
            );
            Problem::unauthorized(code, detail).into_response()
        }
    }
}

/// An authenticated caller (401 without a token).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(Caller(Some(p))) => Ok(Authenticated(p.clone())),
            _ => Err(Problem::unauthorized(
                "authentication_required",
                "this route needs an `Authorization: Bearer <JWT>` header",
            )),
        }
    }
}

/// A caller holding `role` (401 without a token, 403 without the role).
pub(crate) fn require_role(parts: &Parts, role: &Role) -> Result<Principal, Problem> {
    match parts.extensions.get::<Caller>() {
        Some(Caller(Some(p))) if p.roles.contains(role) => Ok(p.clone()),
        Some(Caller(Some(_))) => Err(Problem::forbidden(
            "role_required",
            format!("this route needs the {} role", role.name()),
        )),
        _ => Err(Problem::unauthorized(
            "authentication_required",
            "this route needs an `Authorization: Bearer <JWT>` header",
        )),
    }
}

/// A caller holding `super_admin`.
#[derive(Debug, Clone)]
pub struct SuperAdmin(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for SuperAdmin {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        require_role(parts, &Role::SuperAdmin).map(SuperAdmin)
    }
}
