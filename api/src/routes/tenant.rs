//! `GET /v1/tenant`: the tenant the request resolved to, with what the console needs to theme
//! itself, and how it was resolved.

use crate::extract::{CurrentTenant, Json};
use crate::guard;
use crate::openapi::params::TenantSelector;
use crate::openapi::schemas::{CurrentTenantView, TenantSettings};
use crate::state::ApiState;
use axum::Router;
use axum::routing::get;

/// The route (a tenant route).
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new().route(
        "/v1/tenant",
        guard::tenant_or_anonymous(state, get(current)),
    )
}

#[utoipa::path(
    get,
    path = "/v1/tenant",
    operation_id = "getCurrentTenant",
    tag = "tenant",
    summary = "The tenant this request resolved to",
    description = "Answers anonymous requests too (the console's login page themes itself with it): the header or host alone selects the tenant. Anonymous requests are rate limited per tenant and client address and billed to no one.",
    params(TenantSelector),
    security((), ("bearerAuth" = [])),
    responses((status = 200, description = "The tenant and how it was resolved.", body = CurrentTenantView))
)]
async fn current(tenant: CurrentTenant) -> Json<CurrentTenantView> {
    let t = &tenant.tenant;
    Json(CurrentTenantView {
        tenant_id: t.slug.clone(),
        name: t.name.clone(),
        tier: t.tier.into(),
        settings: TenantSettings::from(&t.settings),
        resolved_by: tenant.resolved_by,
    })
}
