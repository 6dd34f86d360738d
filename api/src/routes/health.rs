//! `GET /health` (liveness: the process answers) and `GET /ready` (readiness: the upstream
//! answers a ping, so traffic sent here can be served). Neither needs a tenant or a token.

use std::time::Duration;

use crate::extract::Json;
use crate::openapi::schemas::{
    Health, HealthStatus, Ready, ReadyChecks, ReadyStatus, RedisCheck, UpstreamCheck,
};
use crate::problem::Problem;
use crate::state::ApiState;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

/// The routes.
pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "getHealth",
    tag = "health",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "The process runs.", body = Health))
)]
async fn health() -> Json<Health> {
    Json(Health {
        status: HealthStatus::Ok,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[utoipa::path(
    get,
    path = "/ready",
    operation_id = "getReadiness",
    tag = "health",
    summary = "Readiness: the upstream answers a ping",
    description = "Redis is reported but never fails readiness: the limiter has failure modes for a Redis outage.",
    responses(
        (status = 200, description = "Traffic sent here can be served.", body = Ready),
        (status = 503, description = "- `upstream_unavailable`: the upstream MongoDB did not answer a ping within 2 s.", body = crate::openapi::schemas::Problem, content_type = "application/problem+json"),
    )
)]
async fn ready(State(state): State<ApiState>) -> Result<Json<Ready>, Problem> {
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
        None => RedisCheck::NotConfigured,
        Some(link) => {
            let pong = link
                .call(Duration::from_millis(200), |mut c| async move {
                    redis::cmd("PING").query_async::<String>(&mut c).await
                })
                .await;
            if pong.is_ok() {
                RedisCheck::Ok
            } else {
                RedisCheck::Degraded
            }
        }
    };
    Ok(Json(Ready {
        status: ReadyStatus::Ready,
        checks: ReadyChecks {
            upstream: UpstreamCheck::Ok,
            redis,
        },
    }))
}
