//! Typed extractors: a handler states what it needs in its signature (an authenticated caller,
//! a `super_admin`, the resolved tenant, a tenant-scoped database) and cannot run without it.

pub mod caller;
pub mod db;
pub mod json;
pub mod tenant;

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use tenantgate_proxy::audit::Origin;

use crate::request_id::RequestId;

pub use caller::{Authenticated, Caller, SuperAdmin};
pub use db::{BypassDb, TenantDb};
pub use json::Json;
pub use tenant::{CurrentTenant, ResolvedBy};

/// The TCP peer, when the server was started with connect info.
pub fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The audit origin of a request.
pub fn origin(parts: &Parts) -> Origin {
    origin_of(&parts.extensions)
}

/// The audit origin from request extensions.
pub fn origin_of(extensions: &axum::http::Extensions) -> Origin {
    Origin::Api {
        peer: peer(extensions),
        request_id: extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
    }
}
