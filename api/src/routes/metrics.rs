//! `GET /metrics`: Prometheus text exposition of the proxy's and the API's metrics. Serve the
//! API listener on a network the public cannot reach.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use tenantgate_proxy::ratelimit::breaker::State as BreakerState;

use crate::state::ApiState;

/// Produces the metrics text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics route.
pub fn router() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "health",
    summary = "Prometheus metrics",
    description = "The proxy's and the API's metrics in the Prometheus text exposition format 0.0.4. Public: serve the API listener on a network the public cannot reach.",
    responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4"))
)]
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
    let limiter = &state.services().rate_limiter;
    let ls = limiter.stats();
    let breaker_open = i32::from(limiter.breaker_state() != BreakerState::Closed);
    let meter = state.meter().stats();
    text.push_str(&format!(
        "# HELP tenantgate_ratelimit_decisions_total Rate-limit decisions by who made them.\n\
         # TYPE tenantgate_ratelimit_decisions_total counter\n\
         tenantgate_ratelimit_decisions_total{{source=\"redis\"}} {}\n\
         tenantgate_ratelimit_decisions_total{{source=\"local\"}} {}\n\
         # HELP tenantgate_ratelimit_refused_unavailable_total Requests refused because Redis was down in failure mode closed.\n\
         # TYPE tenantgate_ratelimit_refused_unavailable_total counter\n\
         tenantgate_ratelimit_refused_unavailable_total {}\n\
         # HELP tenantgate_ratelimit_redis_failures_total Limiter calls to Redis that failed or timed out.\n\
         # TYPE tenantgate_ratelimit_redis_failures_total counter\n\
         tenantgate_ratelimit_redis_failures_total {}\n\
         # HELP tenantgate_ratelimit_breaker_open Whether the Redis circuit breaker is open (1) or closed (0).\n\
         # TYPE tenantgate_ratelimit_breaker_open gauge\n\
         tenantgate_ratelimit_breaker_open {breaker_open}\n\
         # HELP tenantgate_ratelimit_breaker_trips_total Times the breaker opened.\n\
         # TYPE tenantgate_ratelimit_breaker_trips_total counter\n\
         tenantgate_ratelimit_breaker_trips_total {}\n\
         # HELP tenantgate_usage_pending_keys Tenant-months with usage not yet written to Redis.\n\
         # TYPE tenantgate_usage_pending_keys gauge\n\
         tenantgate_usage_pending_keys {}\n\
         # HELP tenantgate_usage_flushed_total Usage increments written to Redis by the buffer.\n\
         # TYPE tenantgate_usage_flushed_total counter\n\
         tenantgate_usage_flushed_total {}\n\
         # HELP tenantgate_usage_flush_failures_total Buffer flushes that failed (increments kept).\n\
         # TYPE tenantgate_usage_flush_failures_total counter\n\
         tenantgate_usage_flush_failures_total {}\n\
         # HELP tenantgate_usage_dropped_total Usage increments dropped because the buffer was full.\n\
         # TYPE tenantgate_usage_dropped_total counter\n\
         tenantgate_usage_dropped_total {}\n",
        load(&ls.redis_decisions),
        load(&ls.local_decisions),
        load(&ls.refused_unavailable),
        load(&ls.redis_failures),
        limiter.breaker_trips(),
        state.meter().pending_keys(),
        load(&meter.flushed),
        load(&meter.flush_failures),
        load(&meter.dropped),
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
