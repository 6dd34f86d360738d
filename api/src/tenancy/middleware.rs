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

/// Middleware: ties the request to its tenant.
pub async fn require_tenant(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
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
            request.extensions_mut().insert(current.clone());
            tenant::scope(current, next.run(request)).await
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
