//! `super_admin` routes under `/v1/admin`. They need no tenant; each handler takes the
//! [`SuperAdmin`](crate::extract::SuperAdmin) extractor, so none can forget the role check.

pub mod tenant_input;
pub mod tenants;

use axum::Router;

use crate::state::ApiState;

/// The admin routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new().merge(tenants::router(state))
}
