//! Route guards, applied per route and per method.
//!
//! Guards wrap a route's method handlers with `MethodRouter::route_layer`, not the whole router:
//! a request with a method the route does not serve is answered 405 by the route's own
//! fallback before any guard runs, instead of being asked for a token or a tenant first.

use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;

use crate::extract::caller::authenticate;
use crate::state::ApiState;
use crate::tenancy::{require_tenant, require_tenant_signed_in};

/// A tenant route for tenant data: the bearer token (if any) is verified, the request is tied
/// to one active tenant, then rate limited and metered, before the handler runs. The handler's
/// `TenantDb` requires the token; a request with neither token nor tenant is `401`.
pub fn tenant(state: &ApiState, route: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
    route
        .route_layer(from_fn_with_state(state.clone(), crate::limits::limit))
        .route_layer(from_fn_with_state(state.clone(), require_tenant_signed_in))
        .route_layer(from_fn_with_state(state.clone(), authenticate))
}

/// A tenant route that also answers anonymous callers (`GET /v1/tenant`, which the console's
/// sign-in page reads to theme itself): as [`tenant`], but a request naming no tenant is
/// `400 tenant_required` with or without a token.
pub fn tenant_or_anonymous(
    state: &ApiState,
    route: MethodRouter<ApiState>,
) -> MethodRouter<ApiState> {
    route
        .route_layer(from_fn_with_state(state.clone(), crate::limits::limit))
        .route_layer(from_fn_with_state(state.clone(), require_tenant))
        .route_layer(from_fn_with_state(state.clone(), authenticate))
}

/// A route that needs no tenant but reads the caller's token (admin routes check roles in
/// their extractors).
pub fn signed_in(state: &ApiState, route: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
    route.route_layer(from_fn_with_state(state.clone(), authenticate))
}
