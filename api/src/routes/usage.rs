//! `GET /v1/usage[?period=YYYY-MM]` (the tenant's monthly usage against its quota) and
//! `GET /v1/admin/usage?period=` (every tenant's, for `super_admin`).
//!
//! A month's figures come from the live counters while Redis holds them (90 days after the
//! month ends) and from the immutable month-end snapshot afterwards — or when Redis lost them.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use tenantgate_proxy::ratelimit::Period;
use tenantgate_proxy::registry::Tenant;

use crate::extract::db::entitled;
use crate::extract::{CurrentTenant, Json, SuperAdmin};
use crate::guard;
use crate::limits::{DEFAULT_GROUP, requests_per_minute, transactions_per_month};
use crate::openapi::params::{AdminPage, PeriodQuery, TenantSelector};
use crate::openapi::schemas::{
    Problem as ProblemBody, Usage, UsageFigures, UsageIntegrity, UsageLimits, UsageList,
    UsageSource,
};
use crate::problem::{FieldError, Problem};
use crate::state::ApiState;
use crate::usage::jobs::{Source, usage_of};
use crate::usage::meter::Totals;

/// The routes.
pub fn router(state: &ApiState) -> Router<ApiState> {
    Router::new()
        .route("/v1/usage", guard::tenant(state, get(tenant_usage)))
        .route("/v1/admin/usage", guard::signed_in(state, get(all_usage)))
}

fn period(query: &HashMap<String, String>, state: &ApiState) -> Result<Period, Problem> {
    let current = state.meter().current_period();
    match query.get("period") {
        None => Ok(current),
        Some(p) => match Period::parse(p) {
            Some(p) if p <= current => Ok(p),
            Some(_) => Err(Problem::validation(vec![FieldError::new(
                "period",
                "is in the future",
            )])),
            None => Err(Problem::validation(vec![FieldError::new(
                "period",
                "must be a month as YYYY-MM",
            )])),
        },
    }
}

fn body(
    state: &ApiState,
    tenant: &Tenant,
    period: Period,
    totals: &Totals,
    source: Source,
) -> Usage {
    let config = &state.services().config.limits;
    let quota = transactions_per_month(config, tenant);
    let percent = if quota == 0 {
        0.0
    } else {
        (totals.transactions as f64 / quota as f64 * 10_000.0).round() / 100.0
    };
    Usage {
        tenant_id: tenant.slug.clone(),
        period: period.to_string(),
        usage: UsageFigures {
            api_calls: totals.api_calls,
            transactions: totals.transactions,
            storage_bytes: totals.storage_bytes,
            bandwidth_bytes: totals.bandwidth_bytes,
            limits: UsageLimits {
                transactions: quota,
                percent_used: percent,
                requests_per_minute: requests_per_minute(config, tenant, DEFAULT_GROUP),
            },
        },
        source: match source {
            Source::Live => UsageSource::Live,
            Source::Snapshot { .. } => UsageSource::Snapshot,
            Source::None => UsageSource::None,
        },
        integrity: match source {
            Source::Snapshot { intact: false } => UsageIntegrity::ChecksumMismatch,
            _ => UsageIntegrity::Ok,
        },
    }
}

fn unavailable(e: String) -> Problem {
    tracing::warn!(target: "tenantgate::usage", error = %e, "usage unavailable");
    Problem::unavailable(
        "usage_unavailable",
        "usage cannot be read right now; retry shortly",
    )
}

#[utoipa::path(
    get,
    path = "/v1/usage",
    operation_id = "getUsage",
    tag = "usage",
    summary = "The tenant's usage in one month",
    description = "From Redis' live counters while it holds the month (90 days after it ends), else from the immutable month-end snapshot.",
    params(TenantSelector, PeriodQuery),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The month's usage against the quota.", body = Usage),
        (status = 422, description = "- `validation_failed`: `period` is not `YYYY-MM`, or is in the future.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `usage_unavailable`: usage cannot be read right now; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn tenant_usage(
    State(state): State<ApiState>,
    current: CurrentTenant,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Usage>, Problem> {
    entitled(&current)?;
    let period = period(&query, &state)?;
    let (totals, source) = usage_of(&state, state.meter(), current.slug(), period)
        .await
        .map_err(unavailable)?;
    Ok(Json(body(&state, &current.tenant, period, &totals, source)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/usage",
    operation_id = "listUsage",
    tag = "admin",
    summary = "Every tenant's usage in one month",
    params(PeriodQuery, AdminPage),
    security(("bearerAuth" = ["super_admin"])),
    responses(
        (status = 200, description = "A page of tenants' usage, ordered by slug.", body = UsageList),
        (status = 422, description = "- `validation_failed`: `period` or `limit` is invalid.", body = ProblemBody, content_type = "application/problem+json"),
        (status = 503, description = "- `usage_unavailable`: usage or the tenant registry cannot be read right now; retry.", body = ProblemBody, content_type = "application/problem+json"),
    )
)]
async fn all_usage(
    State(state): State<ApiState>,
    _admin: SuperAdmin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<UsageList>, Problem> {
    let period = period(&query, &state)?;
    let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        _ => {
            return Err(Problem::validation(vec![FieldError::new(
                "limit",
                "must be a whole number from 1 to 100",
            )]));
        }
    };
    let (tenants, has_more) = state
        .services()
        .registry
        .list(query.get("starting_after").map(String::as_str), limit)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let mut data = Vec::with_capacity(tenants.len());
    for t in &tenants {
        let (totals, source) = usage_of(&state, state.meter(), &t.slug, period)
            .await
            .map_err(unavailable)?;
        data.push(body(&state, t, period, &totals, source));
    }
    Ok(Json(UsageList {
        period: period.to_string(),
        data,
        has_more,
    }))
}
