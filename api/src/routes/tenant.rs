//! `GET /v1/tenant`: the tenant the request resolved to, with what the console needs to theme
//! itself, and how it was resolved.

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

use crate::extract::{CurrentTenant, Json};
use crate::guard;
use crate::state::ApiState;

/// The route (a tenant route).
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new().route("/v1/tenant", guard::tenant(state, get(current)))
}

async fn current(tenant: CurrentTenant) -> Json<Value> {
    let t = &tenant.tenant;
    Json(json!({
        "tenantId": t.slug,
        "name": t.name,
        "tier": t.tier.as_str(),
        "settings": t.settings,
        "resolvedBy": tenant.resolved_by.as_str(),
    }))
}
