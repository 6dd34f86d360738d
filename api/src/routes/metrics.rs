//! `GET /metrics`: Prometheus text exposition of the proxy's and the API's metrics. Serve the
//! API listener on a network the public cannot reach.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::state::ApiState;

/// Produces the metrics text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics route.
pub fn router() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let mut text = (state.metrics())();
    let stats = state.services().registry.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    text.push_str(&format!(
        "# HELP tenantgate_registry_lookups_total Tenant lookups by where the answer came from.\n\
         # TYPE tenantgate_registry_lookups_total counter\n\
         tenantgate_registry_lookups_total{{source=\"local\"}} {}\n\
         tenantgate_registry_lookups_total{{source=\"redis\"}} {}\n\
         tenantgate_registry_lookups_total{{source=\"mongodb\"}} {}\n\
         # HELP tenantgate_registry_invalidations_received_total Invalidations received over Redis pub/sub.\n\
         # TYPE tenantgate_registry_invalidations_received_total counter\n\
         tenantgate_registry_invalidations_received_total {}\n",
        load(&stats.local_hits),
        load(&stats.redis_hits),
        load(&stats.upstream_lookups),
        load(&stats.invalidations_received),
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
