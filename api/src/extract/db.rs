//! Database handles for handlers. [`TenantDb`] is the only handle a tenant route can get: it
//! is bound to the request's tenant and every command passes through the policy engine (the
//! same one the proxy runs), so a handler that forgets `tenantId` still reads and writes only
//! its tenant's documents. [`BypassDb`] exists for `super_admin` routes only, and every command
//! sent through it is audited as a bypass.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tenantgate_policy::Role;
use tenantgate_proxy::scoped::ScopedDb;

use super::caller::require_role;
use super::tenant::CurrentTenant;
use crate::problem::Problem;
use crate::state::ApiState;

/// The request tenant's database.
#[derive(Debug)]
pub struct TenantDb(pub ScopedDb);

impl std::ops::Deref for TenantDb {
    type Target = ScopedDb;
    fn deref(&self) -> &ScopedDb {
        &self.0
    }
}

impl FromRequestParts<ApiState> for TenantDb {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let current = CurrentTenant::from_request_parts(parts, state).await?;
        Ok(TenantDb(state.services().engine.for_tenant(
            current.slug(),
            &current.actor(),
            state.database(),
            super::origin(parts),
        )))
    }
}

/// An unscoped, audited handle for `super_admin` routes.
#[derive(Debug)]
pub struct BypassDb(pub ScopedDb);

impl std::ops::Deref for BypassDb {
    type Target = ScopedDb;
    fn deref(&self) -> &ScopedDb {
        &self.0
    }
}

impl FromRequestParts<ApiState> for BypassDb {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let admin = require_role(parts, &Role::SuperAdmin)?;
        Ok(BypassDb(state.services().engine.bypass(
            &admin.name,
            state.database(),
            super::origin(parts),
        )))
    }
}
