//! The middleware on every tenant route: resolve, refuse or admit, then run the handler with
//! the tenant in the request's extensions and the task-local.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantgate_proxy::audit::ApiEvent;

use super::host;
use super::resolve::{Refusal, resolve};
use crate::extract::{Caller, origin_of, peer, tenant};
use crate::problem::Problem;
use crate::state::ApiState;

/// The request header naming a tenant.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Middleware of the tenant routes that answer anonymous callers too (`GET /v1/tenant`): ties
/// the request to its tenant.
pub async fn require_tenant(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    tie(state, request, next, false).await
}

/// Middleware of the tenant routes that need a token (tenant data): ties the request to its
/// tenant. A request with no token that names no tenant is `401 authentication_required`, not
/// `400 tenant_required`: what it lacks first is a token, and a token whose `tenantId` names
/// the tenant would also name the tenant.
pub async fn require_tenant_signed_in(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    tie(state, request, next, true).await
}

async fn tie(state: ApiState, mut request: Request, next: Next, needs_token: bool) -> Response {
    let caller = request
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.0.clone());
    let host = host::effective(
        request.headers(),
        request.uri(),
        peer(request.extensions()),
        state.hosts(),
    );
    if request.headers().get_all(TENANT_HEADER).iter().count() > 1 {
        return Problem::bad_request(
            "invalid_tenant_id",
            "send one X-Tenant-ID header, not several",
        )
        .into_response();
    }
    let named = host::classify(host.as_deref(), state.hosts());
    let registry = &state.services().registry;
    let outcome = resolve(
        registry,
        caller.as_ref(),
        request.headers().get(TENANT_HEADER),
        &named,
    )
    .await;
    match outcome {
        Ok(current) => {
            tracing::Span::current().record("tenant", current.slug());
            if let Some(p) = &caller
                && p.is_super_admin()
                && p.tenant.as_ref().map(|t| t.as_str()) != Some(current.slug())
            {
                let target = format!("{} {}", request.method(), request.uri().path());
                state.services().audit.api_event(
                    &ApiEvent {
                        kind: "bypass",
                        rule: "act_as",
                        principal: &p.name,
                        tenant: Some(current.slug()),
                        request: &target,
                        message: "super_admin acting as the tenant",
                    },
                    &origin_of(request.extensions()),
                );
            }
            request.extensions_mut().insert(current.clone());
            tenant::scope(current, next.run(request)).await
        }
        Err(Refusal::Problem(p))
            if needs_token && caller.is_none() && p.code() == "tenant_required" =>
        {
            Problem::unauthorized(
                "authentication_required",
                "this route needs an `Authorization: Bearer <JWT>` whose tenantId names the tenant",
            )
            .into_response()
        }
        Err(Refusal::Problem(p)) => p.into_response(),
        Err(Refusal::Conflict {
            claimed,
            other,
            via,
        }) => {
            let message = format!("the token names tenant {claimed} but the {via} names {other}");
            let target = format!("{} {}", request.method(), request.uri().path());
            let principal = caller
                .as_ref()
                .map(|p| p.name.as_str())
                .unwrap_or("anonymous");
            state.services().audit.api_event(
                &ApiEvent {
                    kind: "rejection",
                    rule: "tenant_conflict",
                    principal,
                    tenant: Some(&claimed),
                    request: &target,
                    message: &message,
                },
                &origin_of(request.extensions()),
            );
            Problem::forbidden("tenant_conflict", message).into_response()
        }
    }
}
