//! Route guards, applied per route and per method.
//!
//! Guards wrap a route's method handlers with `MethodRouter::route_layer`, not the whole router:
//! a request with a method the route does not serve is answered 405 by the route's own
//! fallback before any guard runs, instead of being asked for a token or a tenant first.

use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;

use crate::extract::caller::authenticate;
use crate::state::ApiState;
use crate::tenancy::require_tenant;

/// A tenant route: the bearer token (if any) is verified, the request is tied to one active
/// tenant, then rate limited and metered, before the handler runs.
pub fn tenant(state: &ApiState, route: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
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
