//! The tenantgate HTTP API (axum).
//!
//! Every tenant route runs behind two guards ([`guard::tenant`]):
//! [`extract::caller::authenticate`] verifies the bearer token, if any, and
//! [`tenancy::require_tenant`] ties the request to exactly one active tenant before the handler
//! runs. Handlers then reach data only through
//! [`extract::TenantDb`], which sends every command through the same policy engine as the
//! proxy. Admin routes need the `super_admin` role instead of a tenant. Health, readiness,
//! metrics and the OpenAPI document ([`openapi`], `GET /openapi.json`) need neither. Every error
//! is `application/problem+json` ([`problem`]).
#![forbid(unsafe_code)]

pub mod currency;
pub mod extract;
pub mod guard;
pub mod limits;
pub mod openapi;
pub mod paging;
pub mod payments;
pub mod problem;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod tenancy;
pub mod usage;

use axum::Router;
use axum::middleware::{from_fn, from_fn_with_state};

pub use routes::metrics::MetricsRenderer;
pub use state::ApiState;

/// The API's router; shared by the binary and tests.
pub fn app(state: ApiState) -> Router {
    app_with_tenant_routes(state, Router::new())
}

/// The API's router with `extra` mounted among the tenant routes (behind authentication and
/// tenant resolution). For embedding applications and tests. The guards wrap `extra` as a
/// whole, so a wrong method on one of its routes is checked for a tenant before the 405; use
/// [`guard::tenant`] per route to avoid that.
pub fn app_with_tenant_routes(state: ApiState, extra: Router<ApiState>) -> Router {
    let extra = if extra.has_routes() {
        extra
            .route_layer(from_fn_with_state(state.clone(), limits::limit))
            .route_layer(from_fn_with_state(state.clone(), tenancy::require_tenant))
            .route_layer(from_fn_with_state(
                state.clone(),
                extract::caller::authenticate,
            ))
    } else {
        extra
    };
    Router::new()
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(openapi::router())
        .merge(routes::tenant::router(&state))
        .merge(routes::admin::router(&state))
        .merge(routes::usage::router(&state))
        .merge(routes::payments::router(&state))
        .merge(routes::customers::router(&state))
        .merge(routes::audit::router(&state))
        .merge(if state.services().config.api.dev_mode {
            routes::dev::router()
        } else {
            // Not mounted at all: without dev mode the path is as unknown as any other.
            Router::new()
        })
        .merge(routes::console::router())
        .merge(extra)
        .fallback(not_found)
        .layer(from_fn(problem::finish))
        .layer(from_fn_with_state(state.clone(), limits::bill_responses))
        .layer(from_fn(request_id::assign))
        .with_state(state)
}

async fn not_found() -> problem::Problem {
    problem::Problem::not_found("route_not_found", "no route matches this path")
}
