//! The resolution rules, as one function from (caller, header, host) to a tenant or a refusal.

use std::sync::Arc;

use axum::http::HeaderValue;
use tenantgate_policy::Principal;
use tenantgate_proxy::registry::{Registry, RegistryError, Tenant, is_slug};

use super::host::HostName;
use crate::extract::{CurrentTenant, ResolvedBy};
use crate::problem::Problem;

/// Why a request got no tenant.
#[derive(Debug)]
pub enum Refusal {
    /// Answer with this problem.
    Problem(Problem),
    /// The token names one tenant and the header or host another (audited by the caller).
    Conflict {
        /// The token's tenant.
        claimed: String,
        /// The other tenant.
        other: String,
        /// `header` or `host`.
        via: &'static str,
    },
}

impl From<Problem> for Refusal {
    fn from(p: Problem) -> Self {
        Refusal::Problem(p)
    }
}

fn unavailable(e: RegistryError) -> Refusal {
    tracing::warn!(target: "tenantgate::api", error = %e, "tenant registry lookup failed");
    Refusal::Problem(Problem::unavailable(
        "registry_unavailable",
        "the tenant registry cannot be reached; retry shortly",
    ))
}

/// The `X-Tenant-ID` header's slug. Present but malformed is an error, never "absent".
fn header_slug(header: Option<&HeaderValue>) -> Result<Option<String>, Problem> {
    let Some(value) = header else {
        return Ok(None);
    };
    let text = value.to_str().map(str::trim).unwrap_or("");
    if is_slug(text) {
        Ok(Some(text.to_owned()))
    } else {
        Err(Problem::bad_request(
            "invalid_tenant_id",
            "X-Tenant-ID must be a tenant id: 1 to 63 lowercase letters, digits or hyphens",
        ))
    }
}

/// The tenant a host names, if that tenant exists.
async fn host_tenant(registry: &Registry, host: &HostName) -> Result<Option<Arc<Tenant>>, Refusal> {
    match host {
        HostName::Nothing => Ok(None),
        HostName::Subdomain(slug) => registry.tenant(slug).await.map_err(unavailable),
        HostName::Domain(domain) => registry.by_domain(domain).await.map_err(unavailable),
    }
}

/// An existing, active tenant, or 404 / 403.
fn admit(
    tenant: Option<Arc<Tenant>>,
    named: &str,
    resolved_by: ResolvedBy,
    caller: Option<&Principal>,
) -> Result<CurrentTenant, Refusal> {
    let Some(tenant) = tenant else {
        return Err(
            Problem::not_found("tenant_not_found", format!("no tenant is named {named}")).into(),
        );
    };
    if !tenant.is_active {
        return Err(Problem::forbidden(
            "tenant_inactive",
            format!("tenant {} is deactivated", tenant.slug),
        )
        .into());
    }
    Ok(CurrentTenant {
        tenant,
        resolved_by,
        caller: caller.cloned(),
    })
}

/// Resolves the request's tenant.
pub async fn resolve(
    registry: &Registry,
    caller: Option<&Principal>,
    header: Option<&HeaderValue>,
    host: &HostName,
) -> Result<CurrentTenant, Refusal> {
    let header = header_slug(header)?;
    let super_admin = caller.is_some_and(Principal::is_super_admin);
    let token_tenant = caller.and_then(|p| p.tenant.as_ref()).map(|t| t.as_str());

    if super_admin && let Some(target) = &header {
        let t = registry.tenant(target).await.map_err(unavailable)?;
        return admit(t, target, ResolvedBy::Header, caller);
    }
    if let Some(claimed) = token_tenant {
        if let Some(other) = header.as_deref().filter(|h| *h != claimed) {
            return Err(Refusal::Conflict {
                claimed: claimed.to_owned(),
                other: other.to_owned(),
                via: "header",
            });
        }
        if let Some(other) = host_tenant(registry, host).await?
            && other.slug != claimed
        {
            return Err(Refusal::Conflict {
                claimed: claimed.to_owned(),
                other: other.slug.clone(),
                via: "host",
            });
        }
        let t = registry.tenant(claimed).await.map_err(unavailable)?;
        return admit(t, claimed, ResolvedBy::Jwt, caller);
    }
    if let Some(target) = &header {
        let t = registry.tenant(target).await.map_err(unavailable)?;
        return admit(t, target, ResolvedBy::Header, caller);
    }
    match host {
        HostName::Subdomain(slug) => {
            let t = registry.tenant(slug).await.map_err(unavailable)?;
            admit(t, slug, ResolvedBy::Subdomain, caller)
        }
        HostName::Domain(domain) => {
            let t = registry.by_domain(domain).await.map_err(unavailable)?;
            match t {
                Some(t) => admit(Some(t), domain, ResolvedBy::Domain, caller),
                None => Err(Problem::not_found(
                    "tenant_not_found",
                    format!("no tenant has the domain {domain}"),
                )
                .into()),
            }
        }
        HostName::Nothing => Err(Problem::bad_request(
            "tenant_required",
            "this route needs a tenant: a JWT with tenantId, an X-Tenant-ID header, or a tenant host",
        )
        .into()),
    }
}
