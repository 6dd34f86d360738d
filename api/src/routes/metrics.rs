//! `GET /metrics`: Prometheus text exposition of the proxy's metrics. Serve the API listener on
//! a network the public cannot reach.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Produces the metrics text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// The metrics route.
pub fn router(render: MetricsRenderer) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    render(),
                )
                    .into_response()
            }
        }),
    )
}
