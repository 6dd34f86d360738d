//! The tenantgate HTTP API (axum).
//!
//! Tenant resolution, per-tenant rate limiting and usage metering, the payments API, audit
//! queries and the web console are built in the API issues. Today it serves what operations need
//! from the first release: `GET /health` and `GET /metrics`.
#![forbid(unsafe_code)]

pub mod routes;

use axum::Router;

pub use routes::metrics::MetricsRenderer;

/// The API's router; shared by the binary and tests.
pub fn app(metrics: MetricsRenderer) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::metrics::router(metrics))
}
