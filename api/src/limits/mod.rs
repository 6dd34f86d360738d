//! Rate limiting of tenant routes: every request of a resolved tenant passes the shared
//! limiter (a sliding window per tenant per endpoint group, one Redis round trip that also
//! counts the call in the tenant's monthly usage) before its handler runs.
//!
//! The endpoint group is the first path segment after `/v1/` when `[limits.groups.<name>]` or
//! the tenant's `limits.groups` names it (`/v1/payments/...` → `payments`); every other route
//! shares the group `default`. Limits, highest precedence first: the tenant's
//! `limits.groups.<group>`, the config's `[limits.groups.<group>]` for the tenant's tier, the
//! tenant's `limits.requestsPerMinute`, the tier's `requests_per_minute` (60 / 600 / 6,000).
//! The tenant comes from the registry cache, so a tier change applies on the next request.
//!
//! Every limited response carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//! `X-RateLimit-Reset`, and the IETF `RateLimit-Policy` / `RateLimit` fields. All reset values
//! are **seconds to wait** (delta seconds, never an epoch time): until the oldest admitted
//! request leaves the window and a slot frees. A refused request gets 429 with `Retry-After` (the
//! same number) and a problem body; nothing about a refused request is recorded, so retrying
//! does not push the reset further away.

pub mod headers;

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::Check;
use tenantgate_proxy::registry::Tenant;

use crate::extract::CurrentTenant;
use crate::problem::Problem;
use crate::state::ApiState;
use crate::usage::body::Counting;
use crate::usage::meter::Field;

/// The group of routes without their own limits.
pub const DEFAULT_GROUP: &str = "default";
/// The window of API limits.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The endpoint group of `path` for `tenant`.
pub fn group_of<'a>(path: &'a str, config: &LimitsConfig, tenant: &Tenant) -> &'a str {
    let segment = path
        .strip_prefix("/v1/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("");
    if !segment.is_empty()
        && (config.groups.contains_key(segment) || tenant.limits.groups.contains_key(segment))
    {
        segment
    } else {
        DEFAULT_GROUP
    }
}

/// Requests per minute of `group` for `tenant`.
pub fn requests_per_minute(config: &LimitsConfig, tenant: &Tenant, group: &str) -> u64 {
    let tier = tenant.tier.as_str();
    tenant
        .limits
        .groups
        .get(group)
        .copied()
        .or_else(|| config.group_limit(group, tier))
        .or(tenant.limits.requests_per_minute)
        .unwrap_or_else(|| config.requests_per_minute(tier))
}

/// Payments per UTC month for `tenant`.
pub fn transactions_per_month(config: &LimitsConfig, tenant: &Tenant) -> u64 {
    tenant
        .limits
        .transactions_per_month
        .unwrap_or_else(|| config.transactions_per_month(tenant.tier.as_str()))
}

/// Middleware (inside tenant resolution): limits and meters one request.
pub async fn limit(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(current) = request.extensions().get::<CurrentTenant>().cloned() else {
        return next.run(request).await;
    };
    let config = &state.services().config.limits;
    let tenant = current.tenant.clone();
    let group = group_of(request.uri().path(), config, &tenant).to_owned();
    let limit = requests_per_minute(config, &tenant, &group);
    let verdict = state
        .services()
        .rate_limiter
        .check(Check {
            tenant: &tenant.slug,
            group: &group,
            limit,
            window: WINDOW,
            mode: config.failure_mode(&group),
            usage: &[(Field::ApiCalls.as_str(), 1)],
        })
        .await;
    if verdict.unavailable {
        let mut response = Problem::unavailable(
            "rate_limiter_unavailable",
            "the rate limiter cannot reach Redis and this endpoint does not run without it; retry shortly",
        )
        .into_response();
        headers::apply(response.headers_mut(), &verdict, &group);
        return response;
    }
    if !verdict.admitted {
        let wait = headers::seconds(verdict.reset).max(1);
        let mut response = Problem::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Too many requests",
            format!(
                "tenant {} may make {limit} requests per minute to {group} endpoints; retry in {wait} s",
                tenant.slug
            ),
        )
        .into_response();
        headers::apply(response.headers_mut(), &verdict, &group);
        if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let meter = state.meter().clone();
    let period = verdict.period;
    if !verdict.usage_recorded {
        meter.add(&tenant.slug, period, Field::ApiCalls, 1);
    }
    let (parts, body) = request.into_parts();
    let slug = tenant.slug.clone();
    let request_meter = meter.clone();
    let body = Counting::wrap(body, move |n| {
        request_meter.add(&slug, period, Field::BandwidthBytes, n as i64);
    });
    let mut response = next.run(Request::from_parts(parts, body)).await;
    headers::apply(response.headers_mut(), &verdict, &group);
    let (parts, body) = response.into_parts();
    let slug = tenant.slug.clone();
    let body = Counting::wrap(body, move |n| {
        meter.add(&slug, period, Field::BandwidthBytes, n as i64);
    });
    Response::from_parts(parts, body)
}
