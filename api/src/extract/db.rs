//! Database handles for handlers. [`TenantDb`] is the only handle a tenant route can get: it
//! needs a caller entitled to the tenant (a token naming it, or `super_admin`), is bound to the
//! request's tenant and every command passes through the policy engine (the
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

/// Tenant data is reached only by a caller whose token names the tenant, or by a
/// `super_admin` (acting as the tenant; the tenancy middleware audits that). Resolving a tenant
/// from a header or a host says *which* tenant, not that the caller may read its data.
pub fn entitled(current: &CurrentTenant) -> Result<(), Problem> {
    match &current.caller {
        None => Err(Problem::unauthorized(
            "authentication_required",
            "tenant data needs an `Authorization: Bearer <JWT>` whose tenantId names the tenant",
        )),
        Some(p) if p.tenant.as_ref().map(|t| t.as_str()) == Some(current.slug()) => Ok(()),
        Some(p) if p.is_super_admin() => Ok(()),
        Some(_) => Err(Problem::forbidden(
            "tenant_access_denied",
            "the token does not grant access to this tenant's data",
        )),
    }
}

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
        entitled(&current)?;
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
