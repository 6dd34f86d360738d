//! Rate limiting of tenant routes: every request of a resolved tenant passes the shared
//! limiter (a sliding window per tenant per endpoint group, at most one Redis round trip that
//! also counts the call in the tenant's monthly usage) before its handler runs.
//!
//! The endpoint group is the first path segment after `/v1/` when `[limits.groups.<name>]` or
//! the tenant's `limits.groups` names it (`/v1/payments/...` → `payments`); every other route
//! shares the group `default`. Limits, highest precedence first: the tenant's
//! `limits.groups.<group>`, the config's `[limits.groups.<group>]` for the tenant's tier, the
//! tenant's `limits.requestsPerMinute`, the tier's `requests_per_minute` (60 / 600 / 6,000).
//! The tenant comes from the registry cache, so a tier change applies on the next request.
//!
//! Only requests from callers entitled to the tenant (a token naming it, or `super_admin`) use
//! the tenant's window and are billed (`api_calls`, `bandwidth_bytes`). A request that merely
//! names a tenant — anonymous `GET /v1/tenant` from the console's login page — is limited by a
//! window per tenant and client address and billed to no one.
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
use http_body::Body as _;
use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::Check;
use tenantgate_proxy::registry::Tenant;

use crate::extract::db::entitled;
use crate::extract::{ClientIp, CurrentTenant, peer};
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
    let config = &state.services().config.limits;
    if !config.enabled {
        return next.run(request).await;
    }
    let Some(current) = request.extensions().get::<CurrentTenant>().cloned() else {
        return next.run(request).await;
    };
    let tenant = current.tenant.clone();
    let group = group_of(request.uri().path(), config, &tenant).to_owned();
    let limit = requests_per_minute(config, &tenant, &group);
    // Only callers entitled to the tenant's data spend its budget and are billed to it. Anyone
    // can *name* a tenant (a header, a host): such requests get a window per client address,
    // so a stranger can neither exhaust a tenant's limit nor run up its bill.
    let billed = entitled(&current).is_ok();
    let window_group = if billed {
        group.clone()
    } else {
        let who = request
            .extensions()
            .get::<ClientIp>()
            .map(|c| c.0.to_string())
            .or_else(|| peer(request.extensions()).map(|p| p.to_string()))
            .unwrap_or_else(|| "unknown".into());
        format!("{group}~anonymous~{who}")
    };
    let usage: &[(&str, i64)] = if billed {
        &[(Field::ApiCalls.as_str(), 1)]
    } else {
        &[]
    };
    let verdict = state
        .services()
        .rate_limiter
        .check(Check {
            tenant: &tenant.slug,
            group: &window_group,
            limit,
            window: WINDOW,
            mode: config.failure_mode(&group),
            usage,
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
    if !billed {
        let mut response = next.run(request).await;
        headers::apply(response.headers_mut(), &verdict, &group);
        return response;
    }
    let meter = state.meter().clone();
    let period = verdict.period;
    if !verdict.usage_recorded {
        let uncertain = verdict.sent_unanswered.and_then(|seq| {
            state
                .services()
                .rate_limiter
                .uncertain_usage(&tenant.slug, &window_group, seq)
        });
        match uncertain {
            // The check reached Redis unanswered: its script may have counted this call late.
            Some(check) => meter.add_uncertain(&tenant.slug, period, check),
            None => meter.add(&tenant.slug, period, Field::ApiCalls, 1),
        }
    }
    let request = if request.body().size_hint().exact() == Some(0) {
        request
    } else {
        let (parts, body) = request.into_parts();
        let slug = tenant.slug.clone();
        let body = Counting::wrap(body, move |n| {
            meter.add(&slug, period, Field::BandwidthBytes, n as i64);
        });
        Request::from_parts(parts, body)
    };
    let mut response = next.run(request).await;
    headers::apply(response.headers_mut(), &verdict, &group);
    // The response body is counted by [`bill_responses`], outside the layer that completes
    // problem bodies, so what is billed is what is sent.
    response.extensions_mut().insert(Billing {
        tenant: tenant.slug.clone(),
        period,
    });
    response
}

/// Marks a response whose body is billed to a tenant's bandwidth.
#[derive(Debug, Clone)]
pub struct Billing {
    tenant: String,
    period: tenantgate_proxy::ratelimit::Period,
}

/// Outermost middleware: counts the body of every billed response as it is sent.
pub async fn bill_responses(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let Some(billing) = response.extensions().get::<Billing>().cloned() else {
        return response;
    };
    let meter = state.meter().clone();
    if let Some(n) = response.body().size_hint().exact() {
        // A body of known length (every JSON reply) is billed now, without a wrapper. A client
        // that disconnects mid-body is billed the whole body: it was written to the socket.
        meter.add(
            &billing.tenant,
            billing.period,
            Field::BandwidthBytes,
            n as i64,
        );
        return response;
    }
    let (parts, body) = response.into_parts();
    let body = Counting::wrap(body, move |n| {
        meter.add(
            &billing.tenant,
            billing.period,
            Field::BandwidthBytes,
            n as i64,
        );
    });
    Response::from_parts(parts, body)
}
