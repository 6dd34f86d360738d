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
use serde_json::{Map, Value, json};
use tenantgate_proxy::audit::ApiEvent;
use tenantgate_proxy::registry::{RegistryError, Tenant};

use super::tenant_input;
use crate::extract::{Json, SuperAdmin, origin};
use crate::guard;
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
pub fn view(t: &Tenant) -> Value {
    let time = |d: &Option<bson::DateTime>| {
        d.and_then(|d| d.try_to_rfc3339_string().ok())
            .map(Value::String)
            .unwrap_or(Value::Null)
    };
    json!({
        "id": t.slug,
        "slug": t.slug,
        "name": t.name,
        "tier": t.tier.as_str(),
        "domains": t.domains,
        "settings": t.settings,
        "limits": t.limits,
        "isActive": t.is_active,
        "createdAt": time(&t.created_at),
        "updatedAt": time(&t.updated_at),
    })
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

async fn list(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, Problem> {
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
    Ok(Json(json!({
        "data": tenants.iter().map(view).collect::<Vec<_>>(),
        "has_more": has_more,
    })))
}

async fn read(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Path(slug): Path<String>,
) -> Result<Json<Value>, Problem> {
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

async fn update(
    State(state): State<ApiState>,
    admin: SuperAdmin,
    audit: AdminAudit,
    Path(slug): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> Result<Json<Value>, Problem> {
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

async fn list_domains(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Path(slug): Path<String>,
) -> Result<Json<Value>, Problem> {
    let t = state
        .services()
        .registry
        .fresh(&slug)
        .await
        .map_err(registry_problem)?
        .ok_or_else(|| no_tenant(&slug))?;
    Ok(Json(json!({ "data": t.domains, "has_more": false })))
}

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
        Json(json!({ "domain": domain, "tenantId": updated.slug, "domains": updated.domains })),
    )
        .into_response())
}

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
