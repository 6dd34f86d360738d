//! `/v1/admin/tenants`: the tenant registry for `super_admin`. Reads bypass the caches (an
//! admin sees what is stored); every write goes through the registry, which invalidates the
//! caches of every API and proxy instance, and is audited.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Router, extract::FromRequestParts};
use serde_json::{Map, Value};
use tenantgate_proxy::audit::ApiEvent;
use tenantgate_proxy::registry::{RegistryError, Tenant};

use super::tenant_input;
use crate::extract::{Json, SuperAdmin, origin};
use crate::guard;
use crate::openapi::params::AdminPage;
use crate::openapi::schemas::{
    DomainAdded, DomainList, NewDomain, NewTenant, Problem as ProblemBody, TenantLimits,
    TenantList, TenantPatch, TenantRecord, TenantSettings,
};
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;

/// The routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    let guarded = |route| guard::signed_in(state, route);
    Router::new()
        .route("/v1/admin/tenants", guarded(get(list).post(create)))
        .route("/v1/admin/tenants/{slug}", guarded(get(read).patch(update)))
        .route(
            "/v1/admin/tenants/{slug}/domains",
            guarded(get(list_domains).post(add_domain)),
        )
        .route(
            "/v1/admin/tenants/{slug}/domains/{domain}",
            guarded(delete(remove_domain)),
        )
}

/// The admin view of a tenant.
pub fn view(t: &Tenant) -> TenantRecord {
    let time = |d: &Option<bson::DateTime>| d.and_then(|d| d.try_to_rfc3339_string().ok());
    TenantRecord {
        id: t.slug.clone(),
        slug: t.slug.clone(),
        name: t.name.clone(),
        tier: t.tier.into(),
        domains: t.domains.clone(),
        settings: TenantSettings::from(&t.settings),
        limits: TenantLimits::from(&t.limits),
        is_active: t.is_active,
        created_at: time(&t.created_at),
        updated_at: time(&t.updated_at),
    }
}

fn registry_problem(e: RegistryError) -> Problem {
    match e {
        RegistryError::Conflict(m) => Problem::conflict("conflict", m),
        RegistryError::Invalid(m) => Problem::validation(vec![FieldError::new("body", m)]),
        RegistryError::Unavailable(_) => Problem::unavailable(
            "registry_unavailable",
            "the tenant registry cannot be reached; retry shortly",
        ),
        e @ RegistryError::Corrupt { .. } => Problem::internal(&e),
    }
}

fn no_tenant(slug: &str) -> Problem {
    Problem::not_found("tenant_not_found", format!("no tenant is named {slug}"))
}

/// Records an admin change for the security team.
struct AdminAudit {
    origin: tenantgate_proxy::audit::Origin,
    target: String,
}

impl<S: Send + Sync> FromRequestParts<S> for AdminAudit {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        Ok(AdminAudit {
            origin: origin(parts),
            target: format!("{} {}", parts.method, parts.uri.path()),
        })
    }
}

impl AdminAudit {
    fn record(&self, state: &ApiState, admin: &SuperAdmin, tenant: &str, message: &str) {
        state.services().audit.api_event(
            &ApiEvent {
                kind: "admin",
                rule: "tenant_admin",
                principal: &admin.0.name,
                tenant: Some(tenant),
                request: &self.target,
                message,
            },
            &self.origin,
        );
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    operation_id = "createTenant",
    tag = "admin",
    summary = "Register a tenant",
    description = "Audited. Every API and proxy instance sees the tenant on its next lookup.",
    request_body(content = NewTenant, content_type = "application/json"),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 201, description = "The tenant.", body = TenantRecord,
            headers(("Location" = String, description = "`/v1/admin/tenants/{slug}`."))),
        (status = 409, description = "- `conflict`: the slug, or a domain, is taken.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: a field is invalid, missing or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn create(
    State(state): State<ApiState>,
    admin: SuperAdmin,
    audit: AdminAudit,
    Json(body): Json<Map<String, Value>>,
) -> Result<Response, Problem> {
    let tenant = tenant_input::create(&body, &state.hosts().base_domains)?;
    state
        .services()
        .registry
        .create(&tenant)
        .await
        .map_err(registry_problem)?;
    audit.record(&state, &admin, &tenant.slug, "tenant created");
    let location = HeaderValue::from_str(&format!("/v1/admin/tenants/{}", tenant.slug))
        .map_err(|e| Problem::internal(&e))?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(view(&tenant)),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    operation_id = "listTenants",
    tag = "admin",
    summary = "List tenants by slug",
    description = "Read from the registry's database, not the caches.",
    params(AdminPage),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "A page of tenants.", body = TenantList),
        (status = 422, description = "- `validation_failed`: `limit` is invalid.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn list(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<TenantList>, Problem> {
    let limit = match query.get("limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(Problem::validation(vec![FieldError::new(
                    "limit",
                    "must be a whole number from 1 to 100",
                )]));
            }
        },
    };
    let after = query.get("starting_after").map(String::as_str);
    let (tenants, has_more) = state
        .services()
        .registry
        .list(after, limit)
        .await
        .map_err(registry_problem)?;
    Ok(Json(TenantList {
        data: tenants.iter().map(view).collect(),
        has_more,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{slug}",
    operation_id = "getTenant",
    tag = "admin",
    summary = "Read a tenant",
    description = "Read from the registry's database, not the caches.",
    params(("slug" = String, Path, description = "The tenant's slug.")),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "The tenant.", body = TenantRecord),
        (status = 404, description = "- `tenant_not_found`: no tenant has this slug.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn read(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Path(slug): Path<String>,
) -> Result<Json<TenantRecord>, Problem> {
    match state
        .services()
        .registry
        .fresh(&slug)
        .await
        .map_err(registry_problem)?
    {
        Some(t) => Ok(Json(view(&t))),
        None => Err(no_tenant(&slug)),
    }
}

#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{slug}",
    operation_id = "updateTenant",
    tag = "admin",
    summary = "Change a tenant (JSON merge patch)",
    description = "Audited (a deactivation or reactivation is named). Every instance's caches are invalidated; a deactivated tenant is refused everywhere on its next request. A patch that changes nothing writes nothing.",
    params(("slug" = String, Path, description = "The tenant's slug.")),
    request_body(content = TenantPatch, content_type = "application/json"),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "The tenant as changed.", body = TenantRecord),
        (status = 404, description = "- `tenant_not_found`: no tenant has this slug.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "- `conflict`: a domain is taken by another tenant.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: a field is invalid, read-only or unknown; `errors` names each one.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn update(
    State(state): State<ApiState>,
    admin: SuperAdmin,
    audit: AdminAudit,
    Path(slug): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<TenantRecord>, Problem> {
    let patch = tenant_input::patch(&body, &state.hosts().base_domains)?;
    if patch.update.is_empty() {
        // A merge patch that changes nothing: no write, no audit entry.
        return read(State(state), admin, Path(slug)).await;
    }
    let changed: Vec<&str> = body.keys().map(String::as_str).collect();
    let updated = state
        .services()
        .registry
        .update(&slug, patch.update, &patch.claimed_domains)
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    let mut message = format!("tenant updated: {}", changed.join(", "));
    if let Some(active) = body.get("isActive").and_then(Value::as_bool) {
        message = format!(
            "{message} (tenant {})",
            if active { "reactivated" } else { "deactivated" }
        );
    }
    audit.record(&state, &admin, &slug, &message);
    Ok(Json(view(&updated)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{slug}/domains",
    operation_id = "listTenantDomains",
    tag = "admin",
    summary = "A tenant's custom domains",
    params(("slug" = String, Path, description = "The tenant's slug.")),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "Every custom domain.", body = DomainList),
        (status = 404, description = "- `tenant_not_found`: no tenant has this slug.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn list_domains(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Path(slug): Path<String>,
) -> Result<Json<DomainList>, Problem> {
    let t = state
        .services()
        .registry
        .fresh(&slug)
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    Ok(Json(DomainList {
        data: t.domains.clone(),
        has_more: false,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants/{slug}/domains",
    operation_id = "addTenantDomain",
    tag = "admin",
    summary = "Add a custom domain",
    description = "Audited. Adding a domain the tenant already has changes nothing and still answers 201.",
    params(("slug" = String, Path, description = "The tenant's slug.")),
    request_body(content = NewDomain, content_type = "application/json"),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 201, description = "The domain and every custom domain of the tenant now.", body = DomainAdded),
        (status = 404, description = "- `tenant_not_found`: no tenant has this slug.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "- `conflict`: another tenant has the domain.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: `domain` is missing, not a domain name, inside a base domain, or the tenant has 20 already.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn add_domain(
    State(state): State<ApiState>,
    admin: SuperAdmin,
    audit: AdminAudit,
    Path(slug): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Response, Problem> {
    let mut errors = tenant_input::Errors::default();
    let domain = tenant_input::domain(
        body.get("domain").unwrap_or(&Value::Null),
        "domain",
        &state.hosts().base_domains,
        &mut errors,
    );
    let domain = errors.finish(domain)?.unwrap_or_default();
    let current = state
        .services()
        .registry
        .fresh(&slug)
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    if !current.domains.contains(&domain) && current.domains.len() >= tenant_input::MAX_DOMAINS {
        return Err(Problem::validation(vec![FieldError::new(
            "domain",
            format!(
                "a tenant has at most {} custom domains",
                tenant_input::MAX_DOMAINS
            ),
        )]));
    }
    let updated = state
        .services()
        .registry
        .update(
            &slug,
            bson::doc! { "$addToSet": { "domains": domain.as_str() } },
            std::slice::from_ref(&domain),
        )
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    audit.record(
        &state,
        &admin,
        &slug,
        &format!("custom domain {domain} added"),
    );
    Ok((
        StatusCode::CREATED,
        Json(DomainAdded {
            domain,
            tenant_id: updated.slug,
            domains: updated.domains,
        }),
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{slug}/domains/{domain}",
    operation_id = "removeTenantDomain",
    tag = "admin",
    summary = "Remove a custom domain",
    description = "Audited.",
    params(("slug" = String, Path, description = "The tenant's slug."), ("domain" = String, Path, description = "The domain (any case, trailing dot allowed).")),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 204, description = "Removed."),
        (status = 404, description = "- `tenant_not_found`: no tenant has this slug.\n- `domain_not_found`: the tenant has no such domain.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "- `validation_failed`: `domain` is not a domain name.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `registry_unavailable`: the tenant registry cannot be reached; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn remove_domain(
    State(state): State<ApiState>,
    admin: SuperAdmin,
    audit: AdminAudit,
    Path((slug, domain)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let domain = tenantgate_proxy::registry::normalize_domain(&domain)
        .map_err(|e| Problem::validation(vec![FieldError::new("domain", e.reason)]))?;
    let registry = &state.services().registry;
    let current = registry
        .fresh(&slug)
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    if !current.domains.contains(&domain) {
        return Err(Problem::not_found(
            "domain_not_found",
            format!("tenant {slug} has no domain {domain}"),
        ));
    }
    registry
        .update(
            &slug,
            bson::doc! { "$pull": { "domains": domain.as_str() } },
            &[],
        )
        .await
        .map_err(registry_problem)?;
    audit.record(
        &state,
        &admin,
        &slug,
        &format!("custom domain {domain} removed"),
    );
    Ok(StatusCode::NO_CONTENT)
}
