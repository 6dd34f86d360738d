//! `GET /health` (liveness: the process answers) and `GET /ready` (readiness: the upstream
//! answers a ping, so traffic sent here can be served). Neither needs a tenant or a token.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::extract::Json;
use crate::problem::Problem;
use crate::state::ApiState;

/// The routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn ready(State(state): State<ApiState>) -> Result<Json<Value>, Problem> {
    let services = state.services();
    let ping =
        bson::rawdoc! { "ping": 1, "$db": services.config.policy.internal_database.as_str() };
    let upstream =
        tokio::time::timeout(Duration::from_secs(2), services.upstream.command(ping)).await;
    if !matches!(upstream, Ok(Ok(_))) {
        return Err(Problem::unavailable(
            "upstream_unavailable",
            "the upstream MongoDB does not answer",
        ));
    }
    let redis = match &services.redis {
        None => "not_configured",
        Some(link) => {
            let pong = link
                .call(Duration::from_millis(200), |mut c| async move {
                    redis::cmd("PING").query_async::<String>(&mut c).await
                })
                .await;
            if pong.is_ok() { "ok" } else { "degraded" }
        }
    };
    Ok(Json(json!({
        "status": "ready",
        "checks": { "upstream": "ok", "redis": redis },
    })))
}
