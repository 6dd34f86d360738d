//! The resolved tenant of a request: a request extension set by the tenancy middleware, read
//! by the [`CurrentTenant`] extractor, and also available through [`current`] to code on the
//! request's path that cannot take an extractor (a library callback, a log formatter).

use std::future::Future;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use tenantgate_policy::Principal;
use tenantgate_proxy::registry::Tenant;

use crate::problem::Problem;

/// Which input named the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResolvedBy {
    /// The JWT's `tenantId` claim.
    Jwt,
    /// The `X-Tenant-ID` header.
    Header,
    /// A subdomain of a base domain.
    Subdomain,
    /// A tenant's custom domain.
    Domain,
}

impl ResolvedBy {
    /// The name used in responses and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResolvedBy::Jwt => "jwt",
            ResolvedBy::Header => "header",
            ResolvedBy::Subdomain => "subdomain",
            ResolvedBy::Domain => "domain",
        }
    }
}

/// The tenant a request is tied to.
#[derive(Debug, Clone)]
pub struct CurrentTenant {
    /// The tenant, as the registry knows it (active).
    pub tenant: Arc<Tenant>,
    /// How it was named.
    pub resolved_by: ResolvedBy,
    /// The verified caller, if the request carried a token.
    pub caller: Option<Principal>,
}

impl CurrentTenant {
    /// The slug (the value of the tenant field).
    pub fn slug(&self) -> &str {
        &self.tenant.slug
    }

    /// Who acts, for the audit trail: the token's subject, or how the tenant was named.
    pub fn actor(&self) -> String {
        match &self.caller {
            Some(p) => p.name.clone(),
            None => format!("api:{}", self.resolved_by.as_str()),
        }
    }
}

tokio::task_local! {
    static CURRENT: CurrentTenant;
}

/// The current request's tenant, from inside the request's task.
pub fn current() -> Option<CurrentTenant> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Runs `f` with `tenant` as the task's current tenant.
pub(crate) async fn scope<F: Future>(tenant: CurrentTenant, f: F) -> F::Output {
    CURRENT.scope(tenant, f).await
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentTenant {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<CurrentTenant>().cloned().ok_or_else(|| {
            Problem::bad_request(
                "tenant_required",
                "this route needs a tenant: a JWT with tenantId, an X-Tenant-ID header, or a tenant host",
            )
        })
    }
}
