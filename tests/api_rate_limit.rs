//! The per-tenant rate limiter end to end, against the real Redis and the real upstream.
//!
//! What this file proves: at limit N exactly N of many concurrent requests are admitted, over
//! HTTP and across two limiter instances sharing Redis; the window slides and refused requests
//! are never recorded (so retrying does not push the reset away); tiers, a tier change and the
//! registry's per-tenant overrides set the limit on the very next request; every limited
//! response carries the `X-RateLimit-*` and IETF `RateLimit*` fields, a 429 says when to retry,
//! the probes are never limited, and anonymous requests refused 401 spend none of the tenant's
//! budget; a flushed script cache is reloaded transparently; when
//! Redis dies or hangs the limiter answers promptly — locally in failure mode `open`, 503 in
//! `closed` — and goes back to Redis once it returns (or first comes up); and the proxy's
//! commands-per-second limit draws from the same windows.
//!
//!
//! HTTP requests carry a token naming their tenant: that caller spends the tenant's window.
//! Tests that stop or flush Redis start their own `redis-server` (see `redis_server`); the
//! others use `REDIS_URL` with a key prefix of their own, so no test sees another's windows.
//! Where exact counts matter the Redis timeout is raised from 50 ms to 2 s, so a loaded test
//! machine cannot turn a slow answer into a local decision.

mod common;
mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::breaker::State as BreakerState;
use tenantgate_proxy::ratelimit::{Check, Clock, FailureMode, Period, RateLimiter, Source};
use tenantgate_proxy::redis_link::RedisLink;

use common::{TestApi, api_config, fresh_db_name, jwt};
use redis_server::RedisServer;

/// A limited request must be answered well within this, whatever Redis is doing.
const PROMPT: Duration = Duration::from_secs(1);

/// `[limits]` that tolerate a loaded machine: exact counts need every decision from Redis.
const PATIENT: &str = "[limits]\nredis_timeout_ms = 2000\n";

// ---------------------------------------------------------------------------------------------
// Helpers

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    elapsed: Duration,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        let value = self.headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("")
    }

    fn number(&self, name: &str) -> u64 {
        let value = self.header(name);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}: {value:?} is not a number ({:?})", self.headers))
    }

    /// The `code` of a problem body.
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// Sends `method path` with `headers` and, unless `body` is null, `body` as JSON.
async fn send(
    api: &TestApi,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Reply {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = reqwest::Client::new().request(method, api.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    let started = Instant::now();
    let response = request.send().await.expect("the API answers");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
        elapsed: started.elapsed(),
    }
}

/// `GET path` as a user of `tenant` (a token whose `tenantId` names it): the caller whose
/// requests spend the tenant's window and are billed to it.
async fn get_as(api: &TestApi, tenant: &str, path: &str) -> Reply {
    let auth = format!(
        "Bearer {}",
        jwt(json!({ "sub": "alice", "tenantId": tenant }))
    );
    send(api, "GET", path, &[("authorization", &auth)], Value::Null).await
}

/// `GET path` naming `tenant` by `X-Tenant-ID` only, without a token.
async fn get_anonymous(api: &TestApi, tenant: &str, path: &str) -> Reply {
    send(api, "GET", path, &[("x-tenant-id", tenant)], Value::Null).await
}

/// `PATCH /v1/admin/tenants/<slug>` as `super_admin`; asserts success.
async fn patch_tenant(api: &TestApi, slug: &str, patch: Value) {
    let auth = format!(
        "Bearer {}",
        jwt(json!({ "sub": "root", "roles": ["super_admin"] }))
    );
    let path = format!("/v1/admin/tenants/{slug}");
    let r = send(api, "PATCH", &path, &[("authorization", &auth)], patch).await;
    assert_eq!(r.status, StatusCode::OK, "PATCH {path}: {}", r.body);
}

/// [`api_config`] with `extra` TOML appended (after its `[redis]` section).
fn config(db: &str, extra: &str) -> String {
    format!("{}\n{extra}\n", api_config(db))
}

/// [`config`] with the limiter's Redis at `url` instead of `REDIS_URL`.
fn config_on(db: &str, url: &str, extra: &str) -> String {
    let shared = format!("url = \"{}\"", common::redis_url());
    let text = config(db, extra);
    assert!(text.contains(&shared), "api_config has a [redis] url line");
    text.replace(&shared, &format!("url = \"{url}\""))
}

/// A connection to the Redis at `url`.
async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"))
}

async fn zcard(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(conn)
        .await
        .expect("ZCARD")
}

/// `[limits]` with the given Redis timeout, breaker threshold and cooldown.
fn limits(timeout_ms: u64, failures: u32, cooldown_ms: u64) -> LimitsConfig {
    LimitsConfig {
        redis_timeout_ms: timeout_ms,
        breaker_failures: failures,
        breaker_cooldown_ms: cooldown_ms,
        ..LimitsConfig::default()
    }
}

/// A limiter over the Redis at `url` whose keys start with `prefix`.
fn limiter(url: &str, prefix: &str, config: &LimitsConfig) -> RateLimiter {
    let link = RedisLink::open(url).expect("a valid Redis URL");
    RateLimiter::new(Some(Arc::new(link.with_prefix(prefix))), config)
}

/// A prefix no other test uses.
fn prefix(name: &str) -> String {
    format!("{}:", fresh_db_name(name))
}

/// `limit` per `window` for `tenant` in `group`, failing open, without usage.
fn check<'a>(tenant: &'a str, group: &'a str, limit: u64, window: Duration) -> Check<'a> {
    Check {
        tenant,
        group,
        limit,
        window,
        mode: FailureMode::Open,
        usage: &[],
    }
}

/// Checks (a window no test looks at) until Redis decides, so the link is dialled and the
/// breaker's failure count is back at zero; panics after 5 s.
async fn warm_up(limiter: &RateLimiter) {
    let c = check("warmup", "warmup", 1_000_000, Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(5);
    while limiter.check(c).await.source != Source::Redis {
        assert!(Instant::now() < deadline, "Redis never decided");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// 1. Exactly N of M concurrent requests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_the_limit_of_forty_concurrent_http_requests_is_admitted() {
    let db = fresh_db_name("rl_exact");
    let extra = format!("{PATIENT}\n[limits.tiers.starter]\nrequests_per_minute = 10\n");
    let api = Arc::new(TestApi::start(&config(&db, &extra)).await);

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let burst = (0..5).map(|_| get_as(&api, "bank2", "/v1/tenant"));
            futures::future::join_all(burst).await
        }));
    }
    let mut replies = Vec::new();
    for task in tasks {
        replies.extend(task.await.expect("a request task"));
    }

    let ok: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    let limited = replies
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok.len(), limited), (10, 30), "200s and 429s of 40");
    let mut remaining: Vec<u64> = ok
        .iter()
        .map(|r| r.number("x-ratelimit-remaining"))
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..10).collect::<Vec<_>>(),
        "each admitted request saw its own place in the window"
    );

    let mut redis = common::redis_connection().await;
    let key = format!("{db}:rate_limit:{{bank2}}:default");
    assert_eq!(
        zcard(&mut redis, &key).await,
        10,
        "only admitted requests are logged"
    );
    let stats = api.services.rate_limiter.stats();
    assert_eq!(
        load(&stats.local_decisions),
        0,
        "Redis decided every request"
    );
    assert!(load(&stats.redis_decisions) >= 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_redis_admit_exactly_the_limit_and_meter_only_admitted() {
    let url = common::redis_url();
    let prefix = prefix("rl_two");
    let config = limits(2_000, 3, 5_000);
    let a = Arc::new(limiter(&url, &prefix, &config));
    let b = Arc::new(limiter(&url, &prefix, &config));

    let mut tasks = Vec::new();
    for i in 0..40 {
        let limiter = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            limiter
                .check(Check {
                    usage: &[("api_calls", 1)],
                    ..check("bank2", "payments", 10, Duration::from_secs(60))
                })
                .await
        }));
    }
    let mut verdicts = Vec::new();
    for task in tasks {
        verdicts.push(task.await.expect("a check task"));
    }

    assert!(
        verdicts.iter().all(|v| v.source == Source::Redis),
        "{verdicts:?}"
    );
    let admitted: Vec<_> = verdicts.iter().filter(|v| v.admitted).collect();
    assert_eq!(
        admitted.len(),
        10,
        "exactly the limit of 40 across two instances"
    );
    assert!(admitted.iter().all(|v| v.usage_recorded));
    assert!(
        verdicts
            .iter()
            .filter(|v| !v.admitted)
            .all(|v| !v.usage_recorded)
    );
    let decided = load(&a.stats().redis_decisions) + load(&b.stats().redis_decisions);
    assert_eq!(decided, 40);
    assert!(
        load(&a.stats().redis_decisions) > 0 && load(&b.stats().redis_decisions) > 0,
        "both instances took part"
    );

    let mut redis = common::redis_connection().await;
    let window = format!("{prefix}rate_limit:{{bank2}}:payments");
    assert_eq!(zcard(&mut redis, &window).await, 10);
    let usage = format!("{prefix}usage:{{bank2}}:{}", admitted[0].period);
    let calls: Option<i64> = redis::cmd("HGET")
        .arg(&usage)
        .arg("api_calls")
        .query_async(&mut redis)
        .await
        .expect("HGET");
    assert_eq!(calls, Some(10), "usage counts admitted requests only");
}

// ---------------------------------------------------------------------------------------------
// 2. The window slides; refused requests are not recorded

#[tokio::test]
async fn the_window_slides_by_the_injected_clock_and_refusals_do_not_extend_it() {
    let prefix = prefix("rl_clock");
    let start: i64 = 1_780_000_000_000;
    let now = Arc::new(AtomicI64::new(start));
    let limiter = limiter(&common::redis_url(), &prefix, &limits(2_000, 3, 5_000))
        .with_clock(Clock::Fixed(now.clone()));
    let key = format!("{prefix}rate_limit:{{bank1}}:default");
    let mut redis = common::redis_connection().await;
    let c = check("bank1", "default", 3, Duration::from_secs(2));
    let at = |ms: i64| now.store(start + ms, Ordering::Relaxed);

    // (time offset ms, admitted, remaining, reset ms)
    let steps = [
        (0, true, 2, 2_000),
        (100, true, 1, 1_900),
        (200, true, 0, 1_800),
        (300, false, 0, 1_700),
        // Retrying while full: still refused, and the reset only comes closer.
        (1_500, false, 0, 500),
        (1_999, false, 0, 1),
        // The first request (at 0) leaves the window at 2000: one slot frees.
        (2_000, true, 0, 100),
        (2_099, false, 0, 1),
        // Everything aged out.
        (4_300, true, 2, 2_000),
    ];
    for (offset, admitted, remaining, reset) in steps {
        at(offset);
        let v = limiter.check(c).await;
        assert_eq!(v.source, Source::Redis, "+{offset} ms");
        assert_eq!(
            (v.admitted, v.remaining, v.reset),
            (admitted, remaining, Duration::from_millis(reset)),
            "+{offset} ms"
        );
        assert_eq!(
            v.period,
            Period::of_millis(start + offset),
            "the injected month"
        );
        let logged = zcard(&mut redis, &key).await;
        assert!(logged <= 3, "+{offset} ms: {logged} logged, limit 3");
    }
}

#[tokio::test]
async fn the_window_slides_in_real_time_and_a_full_window_stays_at_the_limit() {
    let prefix = prefix("rl_slide");
    let limiter = limiter(&common::redis_url(), &prefix, &limits(2_000, 3, 5_000));
    let key = format!("{prefix}rate_limit:{{bank1}}:default");
    let mut redis = common::redis_connection().await;
    let c = check("bank1", "default", 3, Duration::from_secs(2));

    for left in [2, 1, 0] {
        let v = limiter.check(c).await;
        assert!(v.admitted && v.source == Source::Redis, "{v:?}");
        assert_eq!(v.remaining, left);
    }
    let first = limiter.check(c).await;
    assert!(!first.admitted, "the 4th request in 2 s");
    assert!(first.reset > Duration::ZERO && first.reset <= Duration::from_secs(2));
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(
        (1..=2_000).contains(&ttl),
        "the window key expires: PTTL {ttl}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let retry = limiter.check(c).await;
    assert!(!retry.admitted);
    assert!(
        retry.reset + Duration::from_millis(400) <= first.reset,
        "retrying does not push the reset away: {:?} then {:?}",
        first.reset,
        retry.reset
    );
    assert_eq!(zcard(&mut redis, &key).await, 3, "refusals are not logged");

    tokio::time::sleep(retry.reset + Duration::from_millis(100)).await;
    let again = limiter.check(c).await;
    assert!(again.admitted, "a slot freed after the reset: {again:?}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let fresh = limiter.check(c).await;
    assert!(
        fresh.admitted && fresh.remaining == 2,
        "the window emptied: {fresh:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Tiers and per-tenant overrides

#[tokio::test]
async fn tiers_set_the_limit_and_a_tier_change_applies_on_the_next_request() {
    let db = fresh_db_name("rl_tier");
    let api = TestApi::start(&config(&db, PATIENT)).await;

    let bank1 = get_as(&api, "bank1", "/v1/tenant").await;
    let bank2 = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(bank1.status, StatusCode::OK, "{}", bank1.body);
    assert_eq!(bank1.header("x-ratelimit-limit"), "600", "professional");
    assert_eq!(bank1.header("ratelimit-policy"), "\"default\";q=600;w=60");
    assert_eq!(bank2.header("x-ratelimit-limit"), "60", "starter");
    assert_eq!(bank2.header("ratelimit-policy"), "\"default\";q=60;w=60");

    patch_tenant(&api, "bank2", json!({ "tier": "enterprise" })).await;
    let upgraded = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(upgraded.status, StatusCode::OK);
    assert_eq!(
        upgraded.header("x-ratelimit-limit"),
        "6000",
        "enterprise at once"
    );
    assert_eq!(
        upgraded.number("x-ratelimit-remaining"),
        6_000 - 2,
        "the window is kept across the change"
    );
    assert_eq!(
        get_as(&api, "bank1", "/v1/tenant")
            .await
            .header("x-ratelimit-limit"),
        "600"
    );
}

#[tokio::test]
async fn group_limits_and_registry_overrides_follow_their_precedence() {
    let db = fresh_db_name("rl_override");
    let extra = format!("{PATIENT}\n[limits.groups.tenant]\nstarter = 3\n");
    let api = TestApi::start(&config(&db, &extra)).await;

    // A configured group is its own window; other routes share `default`.
    let r = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(
        r.header("ratelimit-policy"),
        "\"tenant\";q=3;w=60",
        "config group"
    );
    assert_eq!(r.header("x-ratelimit-remaining"), "2");
    let usage = get_as(&api, "bank2", "/v1/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.header("ratelimit-policy"), "\"default\";q=60;w=60");
    // A tier the group does not list falls through to the tier's default.
    let bank1 = get_as(&api, "bank1", "/v1/tenant").await;
    assert_eq!(bank1.header("ratelimit-policy"), "\"tenant\";q=600;w=60");

    // The tenant's requestsPerMinute replaces the tier default, not the config group.
    patch_tenant(
        &api,
        "bank2",
        json!({ "limits": { "requestsPerMinute": 5 } }),
    )
    .await;
    let usage = get_as(&api, "bank2", "/v1/usage").await;
    assert_eq!(usage.header("ratelimit-policy"), "\"default\";q=5;w=60");
    assert_eq!(usage.header("x-ratelimit-remaining"), "3", "2 of 5 used");
    let r = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(
        r.header("x-ratelimit-limit"),
        "3",
        "config group beats requestsPerMinute"
    );
    assert_eq!(r.header("x-ratelimit-remaining"), "1");

    // The tenant's group limit beats everything, and applies to a full window at once.
    patch_tenant(
        &api,
        "bank2",
        json!({ "limits": { "groups": { "tenant": 2 } } }),
    )
    .await;
    let r = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "2 used of the new 2"
    );
    assert_eq!(r.header("ratelimit-policy"), "\"tenant\";q=2;w=60");

    // A group only the registry names is a group for that tenant alone.
    patch_tenant(
        &api,
        "bank2",
        json!({ "limits": { "groups": { "usage": 4 } } }),
    )
    .await;
    let usage = get_as(&api, "bank2", "/v1/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    assert_eq!(usage.header("ratelimit-policy"), "\"usage\";q=4;w=60");
    assert_eq!(usage.header("x-ratelimit-remaining"), "3", "a fresh window");
    let other = get_as(&api, "bank1", "/v1/usage").await;
    assert_eq!(other.header("ratelimit-policy"), "\"default\";q=600;w=60");
}

// ---------------------------------------------------------------------------------------------
// 4. Response headers

#[tokio::test]
async fn every_limited_response_carries_the_headers_and_a_429_says_when_to_retry() {
    let db = fresh_db_name("rl_headers");
    let extra = format!("{PATIENT}\n[limits.tiers.starter]\nrequests_per_minute = 3\n");
    let api = TestApi::start(&config(&db, &extra)).await;

    for left in [2u64, 1, 0] {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.header("x-ratelimit-limit"), "3");
        assert_eq!(r.number("x-ratelimit-remaining"), left);
        let reset = r.number("x-ratelimit-reset");
        assert!(
            (1..=60).contains(&reset),
            "delta seconds, not a date: {reset}"
        );
        assert_eq!(r.header("ratelimit-policy"), "\"default\";q=3;w=60");
        assert_eq!(
            r.header("ratelimit"),
            format!("\"default\";r={left};t={reset}")
        );
        assert!(
            r.headers.get("retry-after").is_none(),
            "only a 429 has Retry-After"
        );
    }

    let r = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        r.header("content-type")
            .starts_with("application/problem+json")
    );
    assert_eq!(r.code(), "rate_limit_exceeded", "{}", r.body);
    assert_eq!(r.body["status"], 429);
    assert_eq!(r.header("x-ratelimit-limit"), "3");
    assert_eq!(r.header("x-ratelimit-remaining"), "0");
    let retry_after = r.number("retry-after");
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(retry_after, r.number("x-ratelimit-reset"), "the same wait");
    assert_eq!(r.header("ratelimit-policy"), "\"default\";q=3;w=60");
    assert_eq!(
        r.header("ratelimit"),
        format!("\"default\";r=0;t={retry_after}")
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let again = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        again.number("retry-after") < retry_after,
        "retrying does not extend the wait: {retry_after} then {}",
        again.header("retry-after")
    );
    // bank1 has its own window.
    assert_eq!(
        get_as(&api, "bank1", "/v1/tenant").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn health_ready_and_metrics_are_never_limited_and_carry_no_limit_headers() {
    let db = fresh_db_name("rl_probes");
    let extra = format!("{PATIENT}\n[limits.tiers.starter]\nrequests_per_minute = 1\n");
    let api = TestApi::start(&config(&db, &extra)).await;
    assert_eq!(
        get_as(&api, "bank2", "/v1/tenant").await.status,
        StatusCode::OK
    );
    let full = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(
        full.status,
        StatusCode::TOO_MANY_REQUESTS,
        "bank2's window is full"
    );

    for path in ["/health", "/ready", "/metrics"] {
        for _ in 0..5 {
            let signed = get_as(&api, "bank2", path).await;
            let anonymous = get_anonymous(&api, "bank2", path).await;
            for r in [signed, anonymous] {
                assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
                let limit_headers: Vec<&str> = r
                    .headers
                    .keys()
                    .map(|k| k.as_str())
                    .filter(|k| k.contains("ratelimit") || *k == "retry-after")
                    .collect();
                assert!(limit_headers.is_empty(), "{path}: {limit_headers:?}");
            }
        }
    }
}

#[tokio::test]
async fn requests_refused_for_lack_of_a_token_do_not_spend_the_tenants_budget() {
    let db = fresh_db_name("rl_anon");
    let extra = format!("{PATIENT}\n[limits.tiers.starter]\nrequests_per_minute = 3\n");
    let api = TestApi::start(&config(&db, &extra)).await;
    for _ in 0..3 {
        let anonymous = get_anonymous(&api, "bank2", "/v1/usage").await;
        assert_eq!(
            anonymous.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            anonymous.body
        );
    }
    let own = get_as(&api, "bank2", "/v1/usage").await;
    assert_eq!(
        own.status,
        StatusCode::OK,
        "bank2's own signed request after three anonymous 401s: {}",
        own.body
    );
    assert_eq!(own.body["usage"]["apiCalls"], 1, "{}", own.body);
}

// ---------------------------------------------------------------------------------------------
// 5. NOSCRIPT

#[tokio::test]
async fn a_flushed_script_cache_is_reloaded_and_redis_keeps_deciding() {
    let server = RedisServer::start();
    let limiter = limiter(&server.url(), "", &limits(2_000, 3, 5_000));
    let c = check("bank1", "default", 10, Duration::from_secs(60));
    let source = tenantgate_proxy::ratelimit::script::source();
    let sha = redis::Script::new(&source).get_hash().to_owned();

    let v = limiter.check(c).await;
    assert_eq!((v.source, v.remaining), (Source::Redis, 9));
    assert_eq!(server.cli(&["SCRIPT", "EXISTS", &sha]).trim(), "1");
    let mut redis = redis_at(&server.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("SCRIPT FLUSH");
    assert_eq!(
        server.cli(&["SCRIPT", "EXISTS", &sha]).trim(),
        "0",
        "flushed"
    );

    let v = limiter.check(c).await;
    assert_eq!(
        v.source,
        Source::Redis,
        "NOSCRIPT is handled by reloading: {v:?}"
    );
    assert_eq!(v.remaining, 8, "the same window, one more request");
    assert_eq!(load(&limiter.stats().redis_failures), 0);
    assert_eq!(load(&limiter.stats().local_decisions), 0);
    assert_eq!(
        server.cli(&["SCRIPT", "EXISTS", &sha]).trim(),
        "1",
        "reloaded"
    );
}

#[tokio::test]
async fn a_flushed_script_cache_does_not_disturb_the_api() {
    let server = RedisServer::start();
    let db = fresh_db_name("rl_noscript");
    let api = TestApi::start(&config_on(&db, &server.url(), PATIENT)).await;
    let first = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(first.header("x-ratelimit-remaining"), "59");

    let mut redis = redis_at(&server.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut redis)
        .await
        .expect("SCRIPT FLUSH");
    let r = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.header("x-ratelimit-remaining"),
        "58",
        "decided by the same window"
    );
    let stats = api.services.rate_limiter.stats();
    assert_eq!(load(&stats.local_decisions), 0);
    assert_eq!(load(&stats.redis_failures), 0);
}

// ---------------------------------------------------------------------------------------------
// 6. Redis stops and comes back

#[tokio::test]
async fn with_redis_gone_open_mode_decides_locally_promptly_and_the_breaker_opens() {
    let mut server = RedisServer::start();
    let config = limits(50, 3, 60_000);
    let limiter = limiter(&server.url(), "", &config);
    let c = check("bank1", "default", 5, Duration::from_secs(60));
    warm_up(&limiter).await;
    let failures_before = load(&limiter.stats().redis_failures);
    let local_before = load(&limiter.stats().local_decisions);

    server.kill();
    for n in 1..=3u64 {
        let started = Instant::now();
        let v = limiter.check(c).await;
        assert!(
            started.elapsed() < PROMPT,
            "call {n}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            (v.source, v.admitted, v.unavailable),
            (Source::Local, true, false)
        );
        assert_eq!(load(&limiter.stats().redis_failures) - failures_before, n);
        let expected = if n < 3 {
            BreakerState::Closed
        } else {
            BreakerState::Open
        };
        assert_eq!(limiter.breaker_state(), expected, "after {n} failures");
    }
    assert_eq!(limiter.breaker_trips(), 1);

    // Open: Redis is skipped; the local window (3 of 5 used) decides.
    let mut admitted = 0;
    for _ in 0..10 {
        let started = Instant::now();
        let v = limiter.check(c).await;
        assert!(started.elapsed() < PROMPT);
        assert_eq!(v.source, Source::Local);
        admitted += usize::from(v.admitted);
    }
    assert_eq!(
        admitted, 2,
        "the local window enforces the limit per instance"
    );
    assert_eq!(load(&limiter.stats().redis_failures) - failures_before, 3);
    assert_eq!(load(&limiter.stats().local_decisions) - local_before, 13);
}

#[tokio::test]
async fn with_redis_gone_the_api_answers_promptly_from_the_local_window() {
    let mut server = RedisServer::start();
    let db = fresh_db_name("rl_down_open");
    let extra = "[limits]\nbreaker_cooldown_ms = 60000\n\n[limits.tiers.starter]\nrequests_per_minute = 4\n";
    let api = TestApi::start(&config_on(&db, &server.url(), extra)).await;
    warm_up(&api.services.rate_limiter).await;
    let first = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header("x-ratelimit-remaining"), "3");
    let limiter = &api.services.rate_limiter;
    let local_before = load(&limiter.stats().local_decisions);

    server.kill();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert!(r.elapsed < PROMPT, "answered in {:?}", r.elapsed);
        assert_eq!(
            r.header("x-ratelimit-limit"),
            "4",
            "headers without Redis too"
        );
        statuses.push(r.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429, 429],
        "the local window admits the limit (it never saw the Redis-decided request)"
    );
    assert_eq!(limiter.breaker_state(), BreakerState::Open);
    assert_eq!(load(&limiter.stats().local_decisions) - local_before, 6);
    let metrics = get_as(&api, "bank2", "/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(
        text.contains("tenantgate_ratelimit_breaker_open 1"),
        "{text}"
    );
}

#[tokio::test]
async fn with_redis_gone_closed_mode_refuses_with_503_promptly() {
    let mut server = RedisServer::start();
    let db = fresh_db_name("rl_down_closed");
    let extra = "[limits]\nbreaker_cooldown_ms = 60000\n\n[limits.groups.tenant]\nfailure_mode = \"closed\"\n";
    let api = TestApi::start(&config_on(&db, &server.url(), extra)).await;
    warm_up(&api.services.rate_limiter).await;
    assert_eq!(
        get_as(&api, "bank2", "/v1/tenant").await.status,
        StatusCode::OK
    );

    server.kill();
    for _ in 0..5 {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert!(r.elapsed < PROMPT, "refused in {:?}", r.elapsed);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert_eq!(r.code(), "rate_limiter_unavailable");
        assert!(
            r.header("content-type")
                .starts_with("application/problem+json")
        );
    }
    // The default group fails open: the limiter admits (the usage handler itself then needs
    // Redis for the live counters, which is its own business).
    let open_group = get_as(&api, "bank2", "/v1/usage").await;
    assert!(open_group.elapsed < PROMPT);
    assert_ne!(
        open_group.code(),
        "rate_limiter_unavailable",
        "{}",
        open_group.body
    );
    assert_ne!(open_group.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(open_group.header("ratelimit"), "\"default\";r=59;t=60");
    let stats = api.services.rate_limiter.stats();
    assert_eq!(load(&stats.refused_unavailable), 5);

    // The same, directly: `Closed` refuses, `Open` admits, from one limiter.
    let limiter = limiter(&server.url(), "", &limits(50, 3, 60_000));
    let closed = Check {
        mode: FailureMode::Closed,
        ..check("bank1", "payments", 5, Duration::from_secs(60))
    };
    let started = Instant::now();
    let v = limiter.check(closed).await;
    assert!(started.elapsed() < PROMPT);
    assert!(
        !v.admitted && v.unavailable && v.source == Source::Local,
        "{v:?}"
    );
    assert_eq!(load(&limiter.stats().refused_unavailable), 1);
    let v = limiter
        .check(check("bank1", "payments", 5, Duration::from_secs(60)))
        .await;
    assert!(
        v.admitted && !v.unavailable && v.source == Source::Local,
        "{v:?}"
    );
}

#[tokio::test]
async fn after_redis_returns_the_limiter_decides_from_redis_again() {
    let mut server = RedisServer::start();
    let limiter = limiter(&server.url(), "", &limits(50, 3, 200));
    let c = check("bank1", "default", 100, Duration::from_secs(60));
    warm_up(&limiter).await;

    server.kill();
    // Traffic while Redis is down for about 2 s: the breaker opens, half-opens, opens again.
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(2) {
        let started = Instant::now();
        let v = limiter.check(c).await;
        assert!(started.elapsed() < PROMPT);
        assert_eq!(v.source, Source::Local);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(limiter.breaker_trips() >= 1);

    server.restart();
    let back = Instant::now();
    loop {
        let v = limiter.check(c).await;
        if v.source == Source::Redis {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "Redis has been back for 10 s and the limiter still decides locally"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the limiter used Redis again {:?} after it restarted",
        back.elapsed()
    );
    assert_eq!(limiter.breaker_state(), BreakerState::Closed);
    let mut redis = redis_at(&server.url()).await;
    let logged = zcard(&mut redis, "rate_limit:{bank1}:default").await;
    assert!(
        logged >= 1,
        "the decision went to the restarted (empty) Redis"
    );
}

#[tokio::test]
async fn after_redis_returns_the_api_decides_from_redis_again() {
    let mut server = RedisServer::start();
    let db = fresh_db_name("rl_back");
    // A limit the polling below cannot reach.
    let extra = "[limits]\nbreaker_cooldown_ms = 200\n\n[limits.tiers.starter]\nrequests_per_minute = 100000\n";
    let api = TestApi::start(&config_on(&db, &server.url(), extra)).await;
    warm_up(&api.services.rate_limiter).await;
    assert_eq!(
        get_as(&api, "bank2", "/v1/tenant").await.status,
        StatusCode::OK
    );
    let stats = api.services.rate_limiter.stats();

    server.kill();
    for _ in 0..5 {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.elapsed < PROMPT);
    }
    server.restart();
    let key = format!("{db}:rate_limit:{{bank2}}:default");
    let mut redis = redis_at(&server.url()).await;
    let back = Instant::now();
    loop {
        let redis_before = load(&stats.redis_decisions);
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert_eq!(r.status, StatusCode::OK);
        if load(&stats.redis_decisions) > redis_before && zcard(&mut redis, &key).await > 0 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "Redis has been back for 10 s and the API still decides locally"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the API used Redis again {:?} after it restarted",
        back.elapsed()
    );
}

#[tokio::test]
async fn a_hung_redis_costs_each_request_at_most_one_timeout_until_the_breaker_opens() {
    let server = RedisServer::start();
    let limiter = limiter(&server.url(), "", &limits(100, 3, 60_000));
    warm_up(&limiter).await;
    let c = check("bank1", "default", 100, Duration::from_secs(60));

    // SIGSTOP: the TCP connection stays up, nothing answers.
    server.pause();
    for n in 1..=3 {
        let started = Instant::now();
        let v = limiter.check(c).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_millis(600),
            "call {n} waited for one timeout (100 ms), not more: {took:?}"
        );
        assert_eq!((v.source, v.admitted), (Source::Local, true));
    }
    assert_eq!(limiter.breaker_state(), BreakerState::Open);
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(limiter.check(c).await.source, Source::Local);
    }
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "an open breaker does not wait for Redis: 20 checks took {:?}",
        started.elapsed()
    );
    server.resume();
}

#[tokio::test]
async fn a_redis_that_is_down_at_start_up_is_used_once_it_comes_up() {
    let mut server = RedisServer::start();
    server.kill();
    let limiter = limiter(&server.url(), "", &limits(50, 3, 200));
    let c = check("bank1", "default", 100, Duration::from_secs(60));
    for _ in 0..5 {
        let started = Instant::now();
        let v = limiter.check(c).await;
        assert!(started.elapsed() < PROMPT);
        assert_eq!((v.source, v.admitted), (Source::Local, true));
    }

    server.restart();
    let up = Instant::now();
    while limiter.check(c).await.source != Source::Redis {
        // The link dials a lost Redis at most every 5 s, then the breaker's cooldown.
        assert!(
            up.elapsed() < Duration::from_secs(10),
            "Redis has been up for 10 s and the limiter still decides locally"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "a Redis started late was used {:?} after it came up",
        up.elapsed()
    );
}

#[tokio::test]
async fn a_trial_call_abandoned_by_its_caller_does_not_wedge_the_breaker() {
    let server = RedisServer::start();
    let limiter = limiter(&server.url(), "", &limits(500, 1, 100));
    warm_up(&limiter).await;
    let c = check("bank1", "default", 100, Duration::from_secs(60));

    server.pause();
    assert_eq!(limiter.check(c).await.source, Source::Local, "one timeout");
    assert_eq!(limiter.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The first check after the cooldown is the trial call; its caller gives up before the
    // (hung) Redis answers, as an HTTP handler does when the client disconnects.
    let abandoned = tokio::time::timeout(Duration::from_millis(50), limiter.check(c)).await;
    assert!(
        abandoned.is_err(),
        "the trial call was waiting on the hung Redis"
    );
    server.resume();

    let back = Instant::now();
    while limiter.check(c).await.source != Source::Redis {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "Redis answers again, but the breaker is {:?} and never lets a call through",
            limiter.breaker_state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_client_giving_up_during_the_trial_call_does_not_wedge_the_api_limiter() {
    let server = RedisServer::start();
    let db = fresh_db_name("rl_wedge");
    let extra =
        "[limits]\nredis_timeout_ms = 1000\nbreaker_failures = 1\nbreaker_cooldown_ms = 100\n";
    let api = TestApi::start(&config_on(&db, &server.url(), extra)).await;
    let limiter = api.services.rate_limiter.clone();
    warm_up(&limiter).await;
    assert_eq!(
        get_as(&api, "bank2", "/v1/tenant").await.status,
        StatusCode::OK
    );

    server.pause();
    assert_eq!(
        get_as(&api, "bank2", "/v1/tenant").await.status,
        StatusCode::OK
    );
    assert_eq!(limiter.breaker_state(), BreakerState::Open);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a client");
    let gave_up = impatient
        .get(api.url("/v1/tenant"))
        .header("x-tenant-id", "bank2")
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the client timed out during the trial call"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.resume();

    let back = Instant::now();
    loop {
        let before = load(&limiter.stats().redis_decisions);
        assert_eq!(
            get_as(&api, "bank2", "/v1/tenant").await.status,
            StatusCode::OK
        );
        if load(&limiter.stats().redis_decisions) > before {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "Redis answers again, but the breaker is {:?}",
            limiter.breaker_state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 7. The proxy's commands per second

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxy_commands_draw_from_the_shared_per_tenant_window() {
    let db = fresh_db_name("rl_proxy");
    let api = TestApi::start(&config(&db, PATIENT)).await;
    let bank1 = api.proxy_client("svc-bank1", "bank1-secret").await;
    let bank2 = api.proxy_client("svc-bank2", "bank2-secret").await;
    let (db1, db2) = (bank1.database(&db), bank2.database(&db));
    let mut redis = common::redis_connection().await;
    let key = |tenant: &str| format!("{db}:rate_limit:{{{tenant}}}:proxy_commands");

    db1.collection::<Document>("payments")
        .insert_one(doc! { "amount": 1 })
        .await
        .expect("bank1 inserts through the proxy");
    // The window is one second long: look at once.
    assert!(
        zcard(&mut redis, &key("bank1")).await >= 1,
        "{} exists",
        key("bank1")
    );
    db2.run_command(doc! { "count": "payments" })
        .await
        .expect("bank2 counts");
    assert!(
        zcard(&mut redis, &key("bank2")).await >= 1,
        "bank2 has its own window"
    );

    patch_tenant(
        &api,
        "bank1",
        json!({ "limits": { "commandsPerSecond": 5 } }),
    )
    .await;
    let count = doc! { "count": "payments" };
    let burst1 =
        futures::future::join_all((0..30).map(|_| db1.run_command(count.clone()).into_future()));
    let burst2 =
        futures::future::join_all((0..30).map(|_| db2.run_command(count.clone()).into_future()));
    let started = Instant::now();
    let (r1, r2) = tokio::join!(burst1, burst2);
    let took = started.elapsed();
    let logged = zcard(&mut redis, &key("bank1")).await;

    let ok = r1.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = r1.iter().filter_map(|r| r.as_ref().err()).collect();
    // The refusals come from the shared window: with a Redis verdict the proxy's own bucket
    // only counts commands in flight.
    let windows = took.as_secs() + 1;
    assert!(ok >= 1, "some of the burst is admitted");
    assert!(
        ok as u64 <= 5 * windows,
        "a burst of 30 at 5/s over {took:?}: {ok} admitted"
    );
    for e in &refused {
        match &*e.kind {
            mongodb::error::ErrorKind::Command(c) => {
                assert_eq!(c.code, 462, "{c:?}");
                assert_eq!(c.code_name, "IngressRequestRateLimitExceeded");
                assert!(c.message.contains("commands_per_second"), "{}", c.message);
            }
            other => panic!("not a command error: {other:?}"),
        }
        assert!(e.contains_label("RetryableError"), "{e}");
    }
    assert!(logged <= 5, "the shared window holds at most 5: {logged}");
    assert!(
        r2.iter().all(Result::is_ok),
        "bank2 is unaffected: {:?}",
        r2.iter().find(|r| r.is_err())
    );
}

/// Issue #10's "slow Redis": `DEBUG SLEEP` blocks the whole server (every connection stays up,
/// nothing answers) for three seconds. The API keeps answering promptly from the local window,
/// the breaker opens, and once Redis answers again every admitted request's `api_calls`
/// increment reaches the usage hash exactly once (buffered, then reconciled — not dropped, not
/// doubled) and decisions come from Redis again.
#[tokio::test]
async fn a_redis_slowed_by_debug_sleep_costs_no_answers_and_no_usage() {
    let server = RedisServer::start_on(
        redis_server::free_port(),
        &["--enable-debug-command".to_owned(), "yes".to_owned()],
    );
    let db = fresh_db_name("rl_debug_sleep");
    let extra = "[limits]\nbreaker_cooldown_ms = 500\n\n[limits.tiers.starter]\nrequests_per_minute = 100\n";
    let api = TestApi::start(&config_on(&db, &server.url(), extra)).await;
    warm_up(&api.services.rate_limiter).await;
    let limiter = &api.services.rate_limiter;
    let mut admitted = 0i64;
    let first = get_as(&api, "bank2", "/v1/tenant").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    admitted += 1;

    let port = server.url();
    let sleeper = std::thread::spawn(move || {
        // Blocks this thread (and the server) for 3 s.
        let port = port
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok())
            .expect("port in the URL");
        redis_server::cli(port, &["DEBUG", "SLEEP", "3"])
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let local_before = load(&limiter.stats().local_decisions);
    let slow_started = Instant::now();
    for _ in 0..8 {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert!(
            r.elapsed < PROMPT,
            "answered in {:?} while Redis sleeps",
            r.elapsed
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        admitted += 1;
    }
    assert!(
        slow_started.elapsed() < Duration::from_millis(2_500),
        "all eight answered while Redis was still asleep ({:?})",
        slow_started.elapsed()
    );
    assert!(
        load(&limiter.stats().local_decisions) > local_before,
        "decided locally while Redis slept"
    );
    assert_eq!(limiter.breaker_state(), BreakerState::Open);
    let reply = sleeper.join().expect("redis-cli thread");
    assert!(reply.contains("OK"), "DEBUG SLEEP ran: {reply:?}");

    // Redis answers again: after the cool-down the breaker closes and the buffered usage lands.
    let mut redis = redis_at(&server.url()).await;
    let key = format!("{db}:{}", RateLimiter::usage_key("bank2", Period::now()));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = get_as(&api, "bank2", "/v1/tenant").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        admitted += 1;
        let calls: Option<i64> = redis::cmd("HGET")
            .arg(&key)
            .arg("api_calls")
            .query_async(&mut redis)
            .await
            .expect("HGET");
        if limiter.breaker_state() == BreakerState::Closed && calls == Some(admitted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "usage did not reconcile: Redis has {calls:?} api_calls, {admitted} were admitted; breaker {:?}",
            limiter.breaker_state()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Settled: nothing written twice after a quiet second.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let calls: Option<i64> = redis::cmd("HGET")
        .arg(&key)
        .arg("api_calls")
        .query_async(&mut redis)
        .await
        .expect("HGET");
    assert_eq!(calls, Some(admitted), "each admitted request counted once");
}
