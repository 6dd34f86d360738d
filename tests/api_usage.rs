//! Usage metering end to end, against the real Redis and the real upstream.
//!
//! What this file proves: the limiter's script counts exactly the admitted API calls (never a
//! 429) in the tenant's month hash `usage:{tenant}:YYYY-MM`; `bandwidth_bytes` is the exact sum
//! of the request bodies handlers read and the response bodies sent, flushed within a second or
//! two; the month a call lands in follows the limiter's clock to the millisecond, including when
//! the caller's month and the script's disagree; every hash expires
//! `limits.usage_retention_days` after its month ends; a payment counts once per idempotency
//! key, even under concurrent retries; `storage_bytes` is a gauge, equal to the `$bsonSize` sum
//! of the tenant's documents; month-end snapshots are insert-only and serve reads once Redis
//! lost the month; increments buffered while Redis is down reach it exactly once when it
//! returns; and `GET /v1/usage` / `GET /v1/admin/usage` check who asks and which month.
//!
//! Redis is read directly (`HGETALL`, `TTL`) and snapshots straight from the upstream, never
//! only through the code under test. Every test has its own key prefix and databases.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use bson::{Bson, Document, doc};
use common::{TestApi, api_config, fresh_db_name, jwt, mongo_client, redis_connection};
use futures::TryStreamExt;
use redis::aio::MultiplexedConnection;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantgate_api::ApiState;
use tenantgate_api::usage::meter::{Field, Meter};
use tenantgate_api::usage::{jobs, snapshot};
use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::period::now_millis;
use tenantgate_proxy::ratelimit::{Check, Clock, FailureMode, Period, RateLimiter, script};
use tenantgate_proxy::redis_link::RedisLink;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long buffered increments may take to reach Redis (the flusher runs every second).
const FLUSH_WAIT: Duration = Duration::from_secs(6);

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

fn period(text: &str) -> Period {
    Period::parse(text).unwrap_or_else(|| panic!("{text} is a valid period"))
}

fn tenant_token(tenant: &str) -> String {
    jwt(json!({ "sub": format!("user-{tenant}"), "tenantId": tenant }))
}

fn admin_token() -> String {
    jwt(json!({ "sub": "root", "roles": ["super_admin"] }))
}

/// The usage hash of `tenant` for `period` under `prefix` (what [`api_config`] sets is `<db>:`).
fn usage_key(prefix: &str, tenant: &str, period: Period) -> String {
    format!("{prefix}{}", RateLimiter::usage_key(tenant, period))
}

async fn hash(conn: &mut MultiplexedConnection, key: &str) -> HashMap<String, i64> {
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("HGETALL answers")
}

async fn field(conn: &mut MultiplexedConnection, key: &str, name: &str) -> i64 {
    hash(conn, key).await.get(name).copied().unwrap_or(0)
}

/// Polls `name` of `key` until it equals `expected` or [`FLUSH_WAIT`] passes; the last value.
async fn settled(conn: &mut MultiplexedConnection, key: &str, name: &str, expected: i64) -> i64 {
    let deadline = Instant::now() + FLUSH_WAIT;
    loop {
        let value = field(conn, key, name).await;
        if value == expected || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ttl(conn: &mut MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(conn)
        .await
        .expect("TTL answers")
}

async fn exists(conn: &mut MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .expect("EXISTS answers")
        == 1
}

/// An [`ApiState`] over the test API's services (same Redis, upstream and registry), for the
/// jobs and the meter the router keeps to itself.
fn own_state(api: &TestApi) -> ApiState {
    let metrics: tenantgate_api::MetricsRenderer = Arc::new(String::new);
    ApiState::new(api.services.clone(), metrics)
}

/// Keeps the background runners (of the test API and of [`own_state`]) away from job `name`
/// (`storage`, `snapshot:2026-10`) while a test runs it by hand: takes the lock they take,
/// before they start.
async fn hold_job_lock(conn: &mut MultiplexedConnection, db: &str, name: &str) {
    let key = format!("{db}:{db}_tg:job_lock:{{{name}}}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("test")
        .arg("PX")
        .arg(600_000)
        .query_async(conn)
        .await
        .expect("SET the lock");
}

async fn get(url: &str, token: Option<&str>, tenant_header: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(h) = tenant_header {
        request = request.header("x-tenant-id", h);
    }
    request.send().await.expect("the API answers")
}

async fn get_json(url: &str, token: &str) -> (StatusCode, Value) {
    let response = get(url, Some(token), None).await;
    let status = response.status();
    let body = response.json::<Value>().await.expect("a JSON body");
    (status, body)
}

// ----- 1. api_calls ----------------------------------------------------------------------------

#[tokio::test]
async fn admitted_calls_are_counted_and_refused_ones_are_not() {
    bounded("admitted_calls_are_counted", async {
        let db = fresh_db_name("usage_calls");
        let config = format!(
            "{}\n[limits.tiers.starter]\nrequests_per_minute = 5\n",
            api_config(&db)
        );
        let api = TestApi::start(&config).await;
        let mut redis = redis_connection().await;
        let prefix = format!("{db}:");
        let now = Period::now();

        // bank2 (starter, 5 per minute): 8 calls, 5 admitted, 3 refused.
        let bank2 = tenant_token("bank2");
        let mut statuses = Vec::new();
        for _ in 0..8 {
            statuses.push(
                get(&api.url("/v1/tenant"), Some(&bank2), None)
                    .await
                    .status(),
            );
        }
        let admitted = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((admitted, refused), (5, 3), "{statuses:?}");
        let key2 = usage_key(&prefix, "bank2", now);
        assert_eq!(
            settled(&mut redis, &key2, "api_calls", 5).await,
            5,
            "exactly the admitted calls, not the 429s"
        );

        // A refused usage read is not counted either.
        let refused_read = get(&api.url("/v1/usage"), Some(&bank2), None).await;
        assert_eq!(refused_read.status(), StatusCode::TOO_MANY_REQUESTS);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(field(&mut redis, &key2, "api_calls").await, 5);

        // The admin listing (not a tenant route, not counted) reports the same.
        let (status, all) = get_json(&api.url("/v1/admin/usage"), &admin_token()).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        let bank2_row = all["data"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["tenantId"] == "bank2"))
            .cloned()
            .unwrap_or_else(|| panic!("bank2 is listed: {all}"));
        assert_eq!(bank2_row["usage"]["apiCalls"], 5, "{bank2_row}");
        assert_eq!(bank2_row["source"], "live");
        assert_eq!(bank2_row["usage"]["limits"]["requestsPerMinute"], 5);
        assert_eq!(
            field(&mut redis, &key2, "api_calls").await,
            5,
            "admin reads are free"
        );

        // bank1 (professional): 3 calls, then the usage read counts itself.
        let bank1 = tenant_token("bank1");
        for _ in 0..3 {
            assert_eq!(
                get(&api.url("/v1/tenant"), Some(&bank1), None)
                    .await
                    .status(),
                StatusCode::OK
            );
        }
        let (status, usage) = get_json(&api.url("/v1/usage"), &bank1).await;
        assert_eq!(status, StatusCode::OK, "{usage}");
        assert_eq!(usage["tenantId"], "bank1");
        assert_eq!(usage["period"], now.to_string());
        assert_eq!(usage["source"], "live");
        assert_eq!(
            usage["usage"]["apiCalls"], 4,
            "3 calls and this read: {usage}"
        );
        assert_eq!(usage["usage"]["transactions"], 0);
        assert_eq!(usage["usage"]["limits"]["transactions"], 50_000);
        assert_eq!(usage["usage"]["limits"]["requestsPerMinute"], 600);
        let key1 = usage_key(&prefix, "bank1", now);
        assert_eq!(settled(&mut redis, &key1, "api_calls", 4).await, 4);
        assert_eq!(
            field(&mut redis, &key2, "api_calls").await,
            5,
            "tenants do not share"
        );
    })
    .await;
}

// ----- 2. bandwidth_bytes ----------------------------------------------------------------------

/// Reads the whole request body and answers with `len / 2 + 7` bytes.
async fn echo(body: Bytes) -> Vec<u8> {
    vec![b'r'; body.len() / 2 + 7]
}

#[tokio::test]
async fn bandwidth_is_the_exact_sum_of_request_and_response_bodies() {
    bounded("bandwidth_exact", async {
        let db = fresh_db_name("usage_bw");
        let extra = Router::new().route("/v1/echo", post(echo));
        let api = TestApi::start_with(&api_config(&db), extra).await;
        let mut redis = redis_connection().await;
        let key = usage_key(&format!("{db}:"), "bank1", Period::now());
        let token = tenant_token("bank1");
        let client = reqwest::Client::new();

        let mut expected: i64 = 0;
        for size in [0usize, 1, 1_000, 100_000] {
            let response = client
                .post(api.url("/v1/echo"))
                .bearer_auth(&token)
                .body(vec![b'q'; size])
                .send()
                .await
                .expect("the API answers");
            assert_eq!(response.status(), StatusCode::OK);
            let received = response.bytes().await.expect("the body").len();
            assert_eq!(received, size / 2 + 7);
            expected += i64::try_from(size + received).expect("small");
        }
        for _ in 0..2 {
            let response = get(&api.url("/v1/tenant"), Some(&token), None).await;
            assert_eq!(response.status(), StatusCode::OK);
            let received = response.bytes().await.expect("the body").len();
            assert!(received > 50, "a JSON tenant document");
            expected += i64::try_from(received).expect("small");
        }

        assert_eq!(
            settled(&mut redis, &key, "bandwidth_bytes", expected).await,
            expected,
            "request bodies read plus response bodies sent"
        );
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(
            field(&mut redis, &key, "bandwidth_bytes").await,
            expected,
            "flushed once, not again"
        );
        assert_eq!(field(&mut redis, &key, "api_calls").await, 6);

        // Nothing is billed to a tenant that made no call.
        let other = usage_key(&format!("{db}:"), "bank2", Period::now());
        assert!(!exists(&mut redis, &other).await, "bank2 made no call");
    })
    .await;
}

#[tokio::test]
async fn error_responses_are_billed_as_sent() {
    bounded("error_bodies_billed_as_sent", async {
        let db = fresh_db_name("usage_bw_err");
        let api = TestApi::start(&api_config(&db)).await;
        let mut redis = redis_connection().await;
        let key = usage_key(&format!("{db}:"), "bank1", Period::now());
        let response = get(
            &api.url("/v1/usage?period=2099-01"),
            Some(&tenant_token("bank1")),
            None,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let received =
            i64::try_from(response.bytes().await.expect("the body").len()).expect("small");
        assert_eq!(
            settled(&mut redis, &key, "bandwidth_bytes", received).await,
            received,
            "the 422 body the client received"
        );
    })
    .await;
}

// ----- 3. month boundaries ---------------------------------------------------------------------

fn counted_check(tenant: &str) -> Check<'_> {
    Check {
        tenant,
        group: "default",
        limit: 1_000,
        window: Duration::from_secs(60),
        mode: FailureMode::Open,
        usage: &[("api_calls", 1)],
    }
}

#[tokio::test]
async fn the_month_follows_the_injected_clock_to_the_millisecond() {
    bounded("month_boundary", async {
        let prefix = format!("{}:", fresh_db_name("usage_month"));
        let url = common::redis_url();
        let link = Arc::new(
            RedisLink::open(&url)
                .expect("a valid URL")
                .with_prefix(&prefix),
        );
        let nov = period("2026-11");
        let dec = period("2026-12");
        let jan = period("2027-01");
        let ms = Arc::new(AtomicI64::new(dec.start_millis() - 1)); // 2026-11-30T23:59:59.999Z
        let limiter = RateLimiter::new(Some(link.clone()), &LimitsConfig::default())
            .with_clock(Clock::Fixed(ms.clone()));
        let meter = Meter::new(Some(link.clone()), 90, Clock::Fixed(ms.clone()));
        let mut redis = redis_connection().await;
        let t = "bankm";

        let v = limiter
            .check_shared(&counted_check(t))
            .await
            .expect("Redis");
        assert!(v.admitted && v.usage_recorded, "{v:?}");
        assert_eq!(v.period, nov);
        assert_eq!(meter.transaction(t, None).await, (true, nov));
        assert_eq!(meter.transaction(t, Some("edge")).await, (true, nov));

        ms.fetch_add(1, Ordering::SeqCst); // 2026-12-01T00:00:00.000Z
        let v = limiter
            .check_shared(&counted_check(t))
            .await
            .expect("Redis");
        assert!(v.admitted && v.usage_recorded, "{v:?}");
        assert_eq!(v.period, dec);
        assert_eq!(meter.transaction(t, None).await, (true, dec));
        assert_eq!(
            meter.transaction(t, Some("edge")).await,
            (false, nov),
            "a retry after midnight counts nothing and names the month the payment counted in"
        );

        let nov_hash = hash(&mut redis, &usage_key(&prefix, t, nov)).await;
        let dec_hash = hash(&mut redis, &usage_key(&prefix, t, dec)).await;
        assert_eq!(nov_hash.get("api_calls"), Some(&1), "{nov_hash:?}");
        assert_eq!(nov_hash.get("transactions"), Some(&2), "{nov_hash:?}");
        assert_eq!(dec_hash.get("api_calls"), Some(&1), "{dec_hash:?}");
        assert_eq!(dec_hash.get("transactions"), Some(&1), "{dec_hash:?}");

        // The year turns over the same way.
        ms.store(jan.start_millis() - 1, Ordering::SeqCst);
        assert_eq!(
            limiter
                .check_shared(&counted_check(t))
                .await
                .expect("Redis")
                .period,
            dec
        );
        ms.store(jan.start_millis(), Ordering::SeqCst);
        assert_eq!(
            limiter
                .check_shared(&counted_check(t))
                .await
                .expect("Redis")
                .period,
            jan
        );
        assert_eq!(meter.transaction(t, None).await, (true, jan));
        assert_eq!(
            field(&mut redis, &usage_key(&prefix, t, dec), "api_calls").await,
            2
        );
        let jan_hash = hash(&mut redis, &usage_key(&prefix, t, jan)).await;
        assert_eq!(jan_hash.get("api_calls"), Some(&1), "{jan_hash:?}");
        assert_eq!(jan_hash.get("transactions"), Some(&1), "{jan_hash:?}");
    })
    .await;
}

/// Runs the limiter's script as a caller whose own month is `local` while the script's clock
/// (injected) says `now_ms`: `(admitted, month)` and the three hashes it could write.
async fn run_script(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    tenant: &str,
    local: Period,
    now_ms: i64,
) -> (i64, String) {
    let source = redis::Script::new(&script::source());
    let entry = script::Entry {
        window_key: format!("{prefix}{}", RateLimiter::window_key(tenant, "default")),
        usage_base: Some(format!("{prefix}usage:{{{tenant}}}:")),
        limit: 1_000,
        window_ms: 60_000,
        member: format!("test:{now_ms}"),
        usage: vec![("api_calls".to_owned(), 1)],
    };
    let values: Vec<redis::Value> = script::invocation(&source, &[entry], local, Some(now_ms), 90)
        .invoke_async(conn)
        .await
        .expect("the script runs");
    let reply = script::parse(&values);
    assert_eq!(reply.now_ms, now_ms, "the script's now is the injected one");
    assert_eq!(reply.answers.len(), 1);
    (i64::from(reply.answers[0].admitted), reply.month)
}

#[tokio::test]
async fn the_script_picks_its_own_month_among_the_callers_three() {
    bounded("script_three_months", async {
        let prefix = format!("{}:", fresh_db_name("usage_script"));
        let mut redis = redis_connection().await;
        let (oct, nov, dec, jan) = (
            period("2026-10"),
            period("2026-11"),
            period("2026-12"),
            period("2027-01"),
        );

        // The caller thinks it is November; Redis says it is already 1 December.
        assert_eq!(
            run_script(&mut redis, &prefix, "ahead", nov, dec.start_millis()).await,
            (1, "2026-12".to_owned())
        );
        assert_eq!(
            field(&mut redis, &usage_key(&prefix, "ahead", dec), "api_calls").await,
            1
        );
        assert!(!exists(&mut redis, &usage_key(&prefix, "ahead", nov)).await);

        // The caller thinks it is December; Redis says it is still 30 November.
        assert_eq!(
            run_script(&mut redis, &prefix, "behind", dec, dec.start_millis() - 1).await,
            (1, "2026-11".to_owned())
        );
        assert_eq!(
            field(&mut redis, &usage_key(&prefix, "behind", nov), "api_calls").await,
            1
        );
        assert!(!exists(&mut redis, &usage_key(&prefix, "behind", dec)).await);

        // Two months apart: the script writes none of the three and names its month, so the
        // limiter reports `usage_recorded: false` and the caller counts through the meter.
        assert_eq!(
            run_script(&mut redis, &prefix, "far", oct, jan.start_millis()).await,
            (1, "2027-01".to_owned())
        );
        for m in [oct.prev(), oct, nov, jan] {
            assert!(
                !exists(&mut redis, &usage_key(&prefix, "far", m)).await,
                "{m}"
            );
        }
    })
    .await;
}

// ----- 4. retention ----------------------------------------------------------------------------

/// Makes one call as bank1 and checks the TTLs of its month hash and its window.
async fn check_ttls(retention_days: Option<u32>) {
    let db = fresh_db_name("usage_ttl");
    let mut config = api_config(&db);
    if let Some(days) = retention_days {
        config.push_str(&format!("\n[limits]\nusage_retention_days = {days}\n"));
    }
    let api = TestApi::start(&config).await;
    let mut redis = redis_connection().await;
    let days = retention_days.unwrap_or(90);
    let now = Period::now();
    let key = usage_key(&format!("{db}:"), "bank1", now);

    let response = get(&api.url("/v1/tenant"), Some(&tenant_token("bank1")), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(settled(&mut redis, &key, "api_calls", 1).await, 1);
    let expected = now.expire_at_secs(days) - now_millis() / 1000;
    let actual = ttl(&mut redis, &key).await;
    assert!(
        (actual - expected).abs() <= 5,
        "TTL {actual} s, expected about {expected} s (end of {now} + {days} days)"
    );

    // Flushed bandwidth renews the same deadline, never a later one.
    let _ = response.bytes().await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert!(field(&mut redis, &key, "bandwidth_bytes").await > 0);
    let expected = now.expire_at_secs(days) - now_millis() / 1000;
    let actual = ttl(&mut redis, &key).await;
    assert!((actual - expected).abs() <= 5, "{actual} vs {expected}");

    let window = format!("{db}:{}", RateLimiter::window_key("bank1", "default"));
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&window)
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(
        (50_000..=60_000).contains(&pttl),
        "the window lives one window: {pttl} ms"
    );
}

#[tokio::test]
async fn usage_expires_ninety_days_after_the_month_by_default() {
    bounded("ttl_default", check_ttls(None)).await;
}

#[tokio::test]
async fn usage_retention_days_shortens_the_expiry() {
    bounded("ttl_one_day", check_ttls(Some(1))).await;
}

#[tokio::test]
async fn meter_writes_carry_the_retention_of_their_own_month() {
    bounded("meter_ttls", async {
        let prefix = format!("{}:", fresh_db_name("usage_meter_ttl"));
        let link = Arc::new(
            RedisLink::open(&common::redis_url())
                .expect("a valid URL")
                .with_prefix(&prefix),
        );
        // 45 days: last month ended at most 31 days ago, so its hash is still kept.
        let meter = Meter::new(Some(link), 45, Clock::Redis);
        let mut redis = redis_connection().await;
        let now = Period::now();
        let last = now.prev();

        meter.add("bankt", last, Field::ApiCalls, 3);
        meter.flush().await.expect("flushed");
        meter
            .set_storage("bankt", now, 4_096)
            .await
            .expect("stored");
        let secs = now_millis() / 1000;
        let last_ttl = ttl(&mut redis, &usage_key(&prefix, "bankt", last)).await;
        let now_ttl = ttl(&mut redis, &usage_key(&prefix, "bankt", now)).await;
        assert!(
            (last_ttl - (last.expire_at_secs(45) - secs)).abs() <= 5,
            "last month's hash expires 45 days after it ended: {last_ttl}"
        );
        assert!(
            (now_ttl - (now.expire_at_secs(45) - secs)).abs() <= 5,
            "the gauge's hash expires 45 days after this month: {now_ttl}"
        );

        // A month whose retention already ended is not resurrected by a late increment.
        let gone = period("2020-01");
        meter.add("bankt", gone, Field::ApiCalls, 1);
        meter.flush().await.expect("flushed");
        assert!(!exists(&mut redis, &usage_key(&prefix, "bankt", gone)).await);
    })
    .await;
}

#[tokio::test]
async fn a_retention_shorter_than_the_snapshot_grace_loses_no_usage() {
    bounded("retention_vs_grace", async {
        let db = fresh_db_name("usage_ret0");
        let config = format!("{}\n[limits]\nusage_retention_days = 0\n", api_config(&db));
        let env = std::collections::BTreeMap::<String, String>::new();
        if tenantgate_proxy::Config::from_toml(&config, &env).is_err() {
            return; // Refusing the configuration is a fix too.
        }
        let closed = Period::now().prev();
        let mut redis = redis_connection().await;
        hold_job_lock(&mut redis, &db, &format!("snapshot:{closed}")).await;
        let api = TestApi::start(&config).await;
        let state = own_state(&api);
        // An increment of the closed month still in the buffer during the grace period.
        state.meter().add("bank1", closed, Field::ApiCalls, 5);
        state.meter().flush().await.expect("flushed");
        jobs::snapshot_month(&state, closed)
            .await
            .expect("snapshot taken");
        let stored = snapshot::read(&api.services.upstream, &format!("{db}_tg"), "bank1", closed)
            .await
            .expect("readable")
            .expect("present");
        assert_eq!(stored.totals.api_calls, 5, "the month's calls are billed");
    })
    .await;
}

// ----- 5. transactions -------------------------------------------------------------------------

#[tokio::test]
async fn a_payment_counts_once_per_idempotency_key() {
    bounded("idempotent_transactions", async {
        let prefix = format!("{}:", fresh_db_name("usage_txn"));
        let link = Arc::new(
            RedisLink::open(&common::redis_url())
                .expect("a valid URL")
                .with_prefix(&prefix),
        );
        let meter = Meter::new(Some(link), 90, Clock::Redis);
        let mut redis = redis_connection().await;
        let now = Period::now();
        let t = "bankx";
        let key = usage_key(&prefix, t, now);

        assert_eq!(meter.transaction(t, Some("key-1")).await, (true, now));
        assert_eq!(meter.transaction(t, Some("key-1")).await, (false, now));
        assert_eq!(field(&mut redis, &key, "transactions").await, 1);

        let retries =
            futures::future::join_all((0..20).map(|_| meter.transaction(t, Some("key-2")))).await;
        let counted = retries.iter().filter(|(c, _)| *c).count();
        assert_eq!(counted, 1, "20 concurrent retries count once: {retries:?}");
        assert!(retries.iter().all(|(_, p)| *p == now));
        assert_eq!(field(&mut redis, &key, "transactions").await, 2);

        for k in ["key-3", "key-4", "key-5"] {
            assert_eq!(meter.transaction(t, Some(k)).await, (true, now), "{k}");
        }
        for _ in 0..3 {
            assert_eq!(meter.transaction(t, None).await, (true, now));
        }
        assert_eq!(field(&mut redis, &key, "transactions").await, 8);

        // The same key of another tenant is another payment.
        assert_eq!(meter.transaction("banky", Some("key-1")).await, (true, now));
        assert_eq!(
            field(
                &mut redis,
                &usage_key(&prefix, "banky", now),
                "transactions"
            )
            .await,
            1
        );
        assert_eq!(field(&mut redis, &key, "transactions").await, 8);

        // Markers are kept 48 hours (as long as the payments API keeps a key), under the
        // tenant's hash tag; no marker without a key.
        let markers: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}usage_txn:{{{t}}}:*"))
            .query_async(&mut redis)
            .await
            .expect("KEYS");
        assert_eq!(markers.len(), 5, "one per key: {markers:?}");
        for m in &markers {
            let left = ttl(&mut redis, m).await;
            assert!(
                (48 * 3_600 - 10..=48 * 3_600).contains(&left),
                "{m}: {left}"
            );
        }
        assert_eq!(
            meter
                .read(t, now)
                .await
                .expect("readable")
                .map(|t| t.transactions),
            Some(8)
        );
    })
    .await;
}

// ----- 6. storage_bytes ------------------------------------------------------------------------

/// The `$bsonSize` sum of `tenant`'s documents in `<db>.payments`, computed by the upstream.
async fn bson_bytes(client: &mongodb::Client, db: &str, tenant: &str) -> i64 {
    let mut cursor = client
        .database(db)
        .collection::<Document>("payments")
        .aggregate(vec![
            doc! { "$match": { "tenantId": tenant } },
            doc! { "$group": { "_id": Bson::Null, "bytes": { "$sum": { "$bsonSize": "$$ROOT" } } } },
        ])
        .await
        .expect("aggregate");
    match cursor.try_next().await.expect("a batch") {
        None => 0,
        Some(d) => match d.get("bytes") {
            Some(Bson::Int32(n)) => i64::from(*n),
            Some(Bson::Int64(n)) => *n,
            Some(Bson::Double(n)) => *n as i64,
            other => panic!("bytes: {other:?}"),
        },
    }
}

fn payments(tenant: &str, n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| doc! { "tenantId": tenant, "ref": format!("{tenant}-{i}"), "memo": "x".repeat(10 * i) })
        .collect()
}

#[tokio::test]
async fn storage_bytes_is_a_gauge_of_the_tenants_documents() {
    bounded("storage_gauge", async {
        let db = fresh_db_name("usage_storage");
        let mut redis = redis_connection().await;
        hold_job_lock(&mut redis, &db, "storage").await;
        let api = TestApi::start(&api_config(&db)).await;
        let state = own_state(&api);
        let client = mongo_client().await;
        let coll = client.database(&db).collection::<Document>("payments");
        coll.insert_many(payments("bank1", 20))
            .await
            .expect("seed bank1");
        coll.insert_many(payments("bank2", 3))
            .await
            .expect("seed bank2");
        // A global collection is nobody's storage.
        client
            .database(&db)
            .collection::<Document>("currencies")
            .insert_one(doc! { "tenantId": "bank1", "code": "EUR", "pad": "y".repeat(5_000) })
            .await
            .expect("seed currencies");
        let now = Period::now();
        let key1 = usage_key(&format!("{db}:"), "bank1", now);
        let key2 = usage_key(&format!("{db}:"), "bank2", now);

        assert_eq!(jobs::refresh_storage(&state).await, Ok(2));
        let expected1 = bson_bytes(&client, &db, "bank1").await;
        let expected2 = bson_bytes(&client, &db, "bank2").await;
        assert!(expected1 > 20 * 40, "{expected1}");
        assert_eq!(field(&mut redis, &key1, "storage_bytes").await, expected1);
        assert_eq!(field(&mut redis, &key2, "storage_bytes").await, expected2);

        assert_eq!(jobs::refresh_storage(&state).await, Ok(2));
        assert_eq!(
            field(&mut redis, &key1, "storage_bytes").await,
            expected1,
            "a gauge, not a sum of measurements"
        );

        coll.delete_many(
            doc! { "tenantId": "bank1", "ref": { "$in": ["bank1-19", "bank1-18", "bank1-0"] } },
        )
        .await
        .expect("delete");
        jobs::refresh_storage(&state).await.expect("refreshed");
        let smaller = bson_bytes(&client, &db, "bank1").await;
        assert!(smaller < expected1);
        assert_eq!(field(&mut redis, &key1, "storage_bytes").await, smaller);
        assert_eq!(field(&mut redis, &key2, "storage_bytes").await, expected2);

        let (status, usage) = get_json(&api.url("/v1/usage"), &tenant_token("bank1")).await;
        assert_eq!(status, StatusCode::OK, "{usage}");
        assert_eq!(usage["usage"]["storageBytes"], smaller);
    })
    .await;
}

#[tokio::test]
async fn storage_bytes_drops_to_zero_when_a_tenant_deletes_everything() {
    bounded("storage_gauge_zero", async {
        let db = fresh_db_name("usage_storage0");
        let mut redis = redis_connection().await;
        hold_job_lock(&mut redis, &db, "storage").await;
        let api = TestApi::start(&api_config(&db)).await;
        let state = own_state(&api);
        let client = mongo_client().await;
        let coll = client.database(&db).collection::<Document>("payments");
        coll.insert_many(payments("bank2", 5)).await.expect("seed");
        let key = usage_key(&format!("{db}:"), "bank2", Period::now());

        jobs::refresh_storage(&state).await.expect("refreshed");
        assert!(field(&mut redis, &key, "storage_bytes").await > 0);

        coll.delete_many(doc! { "tenantId": "bank2" })
            .await
            .expect("delete");
        assert_eq!(bson_bytes(&client, &db, "bank2").await, 0);
        jobs::refresh_storage(&state).await.expect("refreshed");
        assert_eq!(
            field(&mut redis, &key, "storage_bytes").await,
            0,
            "bank2 holds no bytes any more"
        );
    })
    .await;
}

// ----- 7. snapshots ----------------------------------------------------------------------------

async fn snapshot_doc(client: &mongodb::Client, db: &str, id: &str) -> Option<Document> {
    client
        .database(&format!("{db}_tg"))
        .collection::<Document>(snapshot::COLLECTION)
        .find_one(doc! { "_id": id })
        .await
        .expect("find_one")
}

fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        other => panic!("{key}: {other:?} in {d}"),
    }
}

#[tokio::test]
async fn month_end_snapshots_are_written_once_and_serve_lost_months() {
    bounded("snapshots", async {
        let db = fresh_db_name("usage_snap");
        let api = TestApi::start(&api_config(&db)).await;
        let state = own_state(&api);
        let mut redis = redis_connection().await;
        let client = mongo_client().await;
        // Not the month the background runner snapshots (the previous one).
        let closed = Period::now().prev().prev().prev();
        let key1 = usage_key(&format!("{db}:"), "bank1", closed);
        let _: () = redis::pipe()
            .hincr(&key1, "api_calls", 7)
            .hincr(&key1, "transactions", 3)
            .hincr(&key1, "storage_bytes", 999)
            .hincr(&key1, "bandwidth_bytes", 1_234)
            .query_async(&mut redis)
            .await
            .expect("seed the month");
        // bank2's only usage is still in the meter's buffer: the job flushes first.
        state.meter().add("bank2", closed, Field::ApiCalls, 5);

        assert_eq!(jobs::snapshot_month(&state, closed).await, Ok(2));
        let first = snapshot_doc(&client, &db, &format!("bank1:{closed}"))
            .await
            .expect("bank1's snapshot");
        assert_eq!(first.get_str("tenantId").ok(), Some("bank1"));
        assert_eq!(
            first.get_str("period").ok(),
            Some(closed.to_string().as_str())
        );
        assert_eq!(
            [
                int(&first, "apiCalls"),
                int(&first, "transactions"),
                int(&first, "storageBytes"),
                int(&first, "bandwidthBytes")
            ],
            [7, 3, 999, 1_234]
        );
        let checksum = first.get_str("checksum").expect("a checksum");
        assert_eq!(checksum.len(), 64, "hex SHA-256");
        assert!(first.get_datetime("closedAt").is_ok());
        let second = snapshot_doc(&client, &db, &format!("bank2:{closed}"))
            .await
            .expect("bank2's snapshot");
        assert_eq!(
            int(&second, "apiCalls"),
            5,
            "buffered usage flushed before the snapshot"
        );
        let marker = snapshot_doc(&client, &db, &format!("*:{closed}"))
            .await
            .expect("the completion marker");
        assert_eq!(int(&marker, "tenants"), 2);
        let db_tg = format!("{db}_tg");
        let stored = snapshot::read(&api.services.upstream, &db_tg, "bank1", closed)
            .await
            .expect("readable")
            .expect("present");
        assert!(stored.intact);
        assert_eq!(stored.totals.api_calls, 7);
        assert!(
            snapshot::done(&api.services.upstream, &db_tg, closed)
                .await
                .expect("readable")
        );

        // Counters move; a second run changes nothing.
        let _: () = redis::cmd("HINCRBY")
            .arg(&key1)
            .arg("api_calls")
            .arg(100)
            .query_async(&mut redis)
            .await
            .expect("HINCRBY");
        jobs::snapshot_month(&state, closed)
            .await
            .expect("a re-run is harmless");
        let again = snapshot_doc(&client, &db, &format!("bank1:{closed}"))
            .await
            .expect("still there");
        assert_eq!(again, first, "snapshots are insert-only");

        // While Redis holds the month, reads are live; once it lost it, the snapshot.
        let url = api.url(&format!("/v1/usage?period={closed}"));
        let bank1 = tenant_token("bank1");
        let (status, live) = get_json(&url, &bank1).await;
        assert_eq!(status, StatusCode::OK, "{live}");
        assert_eq!(live["source"], "live");
        assert_eq!(live["usage"]["apiCalls"], 107);
        let _: () = redis::cmd("DEL")
            .arg(&key1)
            .query_async(&mut redis)
            .await
            .expect("DEL");
        let (status, snap) = get_json(&url, &bank1).await;
        assert_eq!(status, StatusCode::OK, "{snap}");
        assert_eq!(snap["source"], "snapshot", "{snap}");
        assert_eq!(snap["period"], closed.to_string());
        assert_eq!(snap["usage"]["apiCalls"], 7);
        assert_eq!(snap["usage"]["transactions"], 3);
        assert_eq!(snap["usage"]["storageBytes"], 999);
        assert_eq!(snap["usage"]["bandwidthBytes"], 1_234);
        assert_eq!(
            snap["usage"]["limits"]["percentUsed"], 0.01,
            "3 of 50,000, to two decimals"
        );

        // A month nobody recorded and nobody snapshotted.
        let empty = closed.prev();
        let (status, none) = get_json(&api.url(&format!("/v1/usage?period={empty}")), &bank1).await;
        assert_eq!(status, StatusCode::OK, "{none}");
        assert_eq!(none["source"], "none");
        assert_eq!(none["usage"]["apiCalls"], 0);

        // A snapshot edited behind tenantgate's back no longer matches its checksum.
        client
            .database(&db_tg)
            .collection::<Document>(snapshot::COLLECTION)
            .update_one(
                doc! { "_id": format!("bank1:{closed}") },
                doc! { "$set": { "apiCalls": 1_i64 } },
            )
            .await
            .expect("tamper");
        let tampered = snapshot::read(&api.services.upstream, &db_tg, "bank1", closed)
            .await
            .expect("readable")
            .expect("present");
        assert!(!tampered.intact, "the checksum exposes the edit");
    })
    .await;
}

#[tokio::test]
async fn the_runner_snapshots_the_closed_month_at_start() {
    bounded("runner_snapshot", async {
        let closed = Period::now().prev();
        let grace_over = now_millis() >= closed.end_millis() + 3_600_000;
        if !grace_over {
            // Within the first hour of a month the runner rightly waits; nothing to check.
            return;
        }
        let db = fresh_db_name("usage_runner");
        let _api = TestApi::start(&api_config(&db)).await;
        let client = mongo_client().await;
        let deadline = Instant::now() + Duration::from_secs(15);
        let marker = loop {
            if let Some(m) = snapshot_doc(&client, &db, &format!("*:{closed}")).await {
                break m;
            }
            assert!(
                Instant::now() < deadline,
                "no snapshot of {closed} after start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(int(&marker, "tenants"), 2);
        for t in ["bank1", "bank2"] {
            assert!(
                snapshot_doc(&client, &db, &format!("{t}:{closed}"))
                    .await
                    .is_some(),
                "{t}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_tampered_snapshot_is_not_served_as_valid() {
    bounded("tampered_snapshot", async {
        let db = fresh_db_name("usage_tamper");
        let api = TestApi::start(&api_config(&db)).await;
        let state = own_state(&api);
        let client = mongo_client().await;
        let closed = Period::now().prev().prev().prev();
        state.meter().add("bank1", closed, Field::ApiCalls, 7);
        assert_eq!(jobs::snapshot_month(&state, closed).await, Ok(2));
        let mut redis = redis_connection().await;
        let _: () = redis::cmd("DEL")
            .arg(usage_key(&format!("{db}:"), "bank1", closed))
            .query_async(&mut redis)
            .await
            .expect("DEL");
        client
            .database(&format!("{db}_tg"))
            .collection::<Document>(snapshot::COLLECTION)
            .update_one(
                doc! { "_id": format!("bank1:{closed}") },
                doc! { "$set": { "apiCalls": 1_i64 } },
            )
            .await
            .expect("tamper");
        let response = get(
            &api.url(&format!("/v1/usage?period={closed}")),
            Some(&tenant_token("bank1")),
            None,
        )
        .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["source"], "snapshot", "{body}");
        assert_eq!(
            body["integrity"], "checksum_mismatch",
            "edited figures are flagged, not served as billing truth: {body}"
        );
    })
    .await;
}

// ----- 8. reconciliation after a Redis outage --------------------------------------------------

/// A `redis-server` of this test's own on a fixed port, killed when dropped.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    async fn start(port: u16, dir: PathBuf) -> OwnRedis {
        std::fs::create_dir_all(&dir).expect("a data dir");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(["--dbfilename", "usage.rdb"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (is it installed?)");
        let own = OwnRedis {
            port,
            dir,
            child: Some(child),
        };
        let client = redis::Client::open(own.url()).expect("a valid URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return own;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("a valid URL")
            .get_multiplexed_async_connection()
            .await
            .expect("connects")
    }

    /// SIGKILL: no shutdown save, no goodbye to clients.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn increments_buffered_during_an_outage_reach_redis_exactly_once() {
    bounded("outage_reconciliation", async {
        let port = OwnRedis::free_port();
        let dir = std::env::temp_dir().join(format!("tenantgate-{}", fresh_db_name("usage_redis")));
        let mut server = OwnRedis::start(port, dir.clone()).await;
        let meter = Meter::new(
            Some(Arc::new(
                RedisLink::open(&server.url()).expect("a valid URL"),
            )),
            90,
            Clock::Redis,
        );
        let t = "bankr";
        let now = Period::now();
        let key = usage_key("", t, now);

        meter.add(t, now, Field::ApiCalls, 3);
        meter.add(t, now, Field::BandwidthBytes, 100);
        meter.flush().await.expect("Redis is up");
        assert_eq!(meter.pending_keys(), 0);
        let mut direct = server.connection().await;
        assert_eq!(field(&mut direct, &key, "api_calls").await, 3);
        // Persist what was flushed, so the restarted server starts from it.
        let _: () = redis::cmd("SAVE")
            .query_async(&mut direct)
            .await
            .expect("SAVE");
        drop(direct);

        meter.add(t, now, Field::ApiCalls, 2);
        meter.add(t, now, Field::BandwidthBytes, 50);
        server.kill();
        assert!(meter.flush().await.is_err(), "Redis is gone");
        assert_eq!(meter.pending_keys(), 1, "kept, not dropped");
        let failures = meter.stats().flush_failures.load(Ordering::Relaxed);
        assert!(failures >= 1);
        meter.add(t, now, Field::ApiCalls, 4);
        assert!(meter.flush().await.is_err());
        assert!(meter.stats().flush_failures.load(Ordering::Relaxed) > failures);
        assert_eq!(
            meter.pending_keys(),
            2,
            "the failed batch keeps its id (a late write of it must not count twice); the new increments wait beside it"
        );
        assert!(meter.read(t, now).await.is_err(), "no live read while down");

        let _server = OwnRedis::start(port, dir).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while meter.flush().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "the meter reconnects and flushes"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert_eq!(meter.pending_keys(), 0);
        let mut direct = _server.connection().await;
        let stored = hash(&mut direct, &key).await;
        assert_eq!(stored.get("api_calls"), Some(&9), "3 + 2 + 4: {stored:?}");
        assert_eq!(stored.get("bandwidth_bytes"), Some(&150), "{stored:?}");
        meter.flush().await.expect("nothing left to write");
        assert_eq!(
            hash(&mut direct, &key).await,
            stored,
            "nothing written twice"
        );
        assert_eq!(
            meter
                .read(t, now)
                .await
                .expect("readable")
                .map(|t| t.api_calls),
            Some(9)
        );
        assert_eq!(meter.stats().dropped.load(Ordering::Relaxed), 0);
    })
    .await;
}

// ----- 9. who may read which month -------------------------------------------------------------

#[tokio::test]
async fn usage_reads_check_the_caller_and_the_period() {
    bounded("usage_auth", async {
        let db = fresh_db_name("usage_auth");
        let api = TestApi::start(&api_config(&db)).await;
        let url = api.url("/v1/usage");
        let bank1 = tenant_token("bank1");
        let bank2 = tenant_token("bank2");

        // No token and nothing naming a tenant: the token is what is missing first.
        let r = get(&url, None, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("www-authenticate"));
        assert_eq!(
            r.json::<Value>().await.expect("JSON")["code"],
            "authentication_required"
        );
        // A tenant named by header, but no token: 401.
        let r = get(&url, None, Some("bank1")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(r.headers().contains_key("www-authenticate"));
        assert_eq!(
            r.json::<Value>().await.expect("JSON")["code"],
            "authentication_required"
        );
        // bank2's token naming bank1 by header: refused before anything is read.
        let r = get(&url, Some(&bank2), Some("bank1")).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            r.json::<Value>().await.expect("JSON")["code"],
            "tenant_conflict"
        );
        // A super_admin may act as a tenant.
        let r = get(&url, Some(&admin_token()), Some("bank2")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<Value>().await.expect("JSON")["tenantId"], "bank2");

        for bad in ["2026-13", "2026-1", "26-11", "1969-12", "next"] {
            let (status, body) =
                get_json(&api.url(&format!("/v1/usage?period={bad}")), &bank1).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
            assert_eq!(body["errors"][0]["field"], "period", "{body}");
        }
        let future = Period::now().next();
        let (status, body) =
            get_json(&api.url(&format!("/v1/usage?period={future}")), &bank1).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = get_json(
            &api.url(&format!("/v1/usage?period={}", Period::now())),
            &bank1,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // The admin listing: super_admin only, paged by slug.
        let admin = admin_token();
        assert_eq!(
            get(&api.url("/v1/admin/usage"), None, None).await.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            get(&api.url("/v1/admin/usage"), Some(&bank1), None)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        let (status, all) = get_json(&api.url("/v1/admin/usage"), &admin).await;
        assert_eq!(status, StatusCode::OK, "{all}");
        assert_eq!(all["period"], Period::now().to_string());
        assert_eq!(all["has_more"], false);
        let slugs: Vec<&str> = all["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|r| r["tenantId"].as_str())
            .collect();
        assert_eq!(slugs, ["bank1", "bank2"]);
        assert_eq!(all["data"][1]["usage"]["limits"]["transactions"], 1_000);

        let (_, page1) = get_json(&api.url("/v1/admin/usage?limit=1"), &admin).await;
        assert_eq!(page1["data"].as_array().map(Vec::len), Some(1), "{page1}");
        assert_eq!(page1["data"][0]["tenantId"], "bank1");
        assert_eq!(page1["has_more"], true);
        let (_, page2) = get_json(
            &api.url("/v1/admin/usage?limit=1&starting_after=bank1"),
            &admin,
        )
        .await;
        assert_eq!(page2["data"].as_array().map(Vec::len), Some(1), "{page2}");
        assert_eq!(page2["data"][0]["tenantId"], "bank2");
        assert_eq!(page2["has_more"], false);
        for bad in ["limit=0", "limit=101", "limit=x", "period=2026-13"] {
            let (status, body) =
                get_json(&api.url(&format!("/v1/admin/usage?{bad}")), &admin).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        }
        let (status, body) = get_json(
            &api.url(&format!("/v1/admin/usage?period={future}")),
            &admin,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    })
    .await;
}

#[tokio::test]
async fn a_refused_anonymous_read_is_not_billed_to_the_named_tenant() {
    bounded("anonymous_not_billed", async {
        let db = fresh_db_name("usage_anon");
        let config = format!(
            "{}\n[limits.tiers.starter]\nrequests_per_minute = 3\n",
            api_config(&db)
        );
        let api = TestApi::start(&config).await;
        let mut redis = redis_connection().await;
        let key = usage_key(&format!("{db}:"), "bank2", Period::now());
        for _ in 0..3 {
            let r = get(&api.url("/v1/usage"), None, Some("bank2")).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert_eq!(
            hash(&mut redis, &key).await,
            HashMap::new(),
            "nothing billed to bank2 for calls it never made"
        );
        let r = get(&api.url("/v1/tenant"), Some(&tenant_token("bank2")), None).await;
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "bank2's own window is untouched by strangers"
        );
    })
    .await;
}
