//! The tenant registry's two-level cache, end to end: real API instances over the real upstream
//! and the real Redis.
//!
//! What it proves: a tenant is read from MongoDB once and then served from the in-process cache;
//! a second instance sharing the registry and Redis is served from Redis instead of MongoDB; a
//! burst of first lookups (known or unknown) makes one query; unknown names are remembered; a
//! write through one instance (deactivation, reactivation, a settings change, a creation, a new
//! domain) reaches the in-process caches of every instance — the HTTP API and the wire proxy
//! alike — through pub/sub within a couple of seconds, long before the one-hour local TTL these
//! tests configure; and deployments that share a Redis but not a registry database never see
//! each other's tenants or invalidations.
//!
//! Each test has its own registry database (so its own Redis namespace and channel), and the
//! tenants it creates have slugs no other test or run uses ([`unique_slug`]).

mod common;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bson::doc;
use common::{TestApi, api_config, fresh_db_name, jwt, redis_connection};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantgate_proxy::registry::shared::Key;
use tenantgate_proxy::registry::{LimitOverrides, Settings, Tenant, Tier};

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a change on one instance may take to reach another: one pub/sub message, with
/// room for a loaded test machine. Far below the one-hour local TTL, which is the point.
const PROPAGATION: Duration = Duration::from_secs(3);

/// Requests in a burst of concurrent first lookups.
const BURST: usize = 50;

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

/// A slug no other test, process or run uses (`c-<pid>-<n>-<stamp>`).
fn unique_slug() -> String {
    fresh_db_name("c").replace('_', "-")
}

/// [`api_config`] over a fresh database with a one-hour in-process TTL, so only an
/// invalidation — never an expiry — can make an instance forget a tenant during a test.
fn long_ttl_config(prefix: &str) -> String {
    format!(
        "{}\n[registry]\ncache_ttl_ms = 3600000\n",
        api_config(&fresh_db_name(prefix))
    )
}

fn admin_token() -> String {
    jwt(json!({ "sub": "root", "roles": ["super_admin"] }))
}

/// A snapshot of an instance's registry counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    local: u64,
    redis: u64,
    upstream: u64,
    invalidations: u64,
}

impl Counts {
    fn of(api: &TestApi) -> Counts {
        let s = api.services.registry.stats();
        Counts {
            local: s.local_hits.load(Ordering::SeqCst),
            redis: s.redis_hits.load(Ordering::SeqCst),
            upstream: s.upstream_lookups.load(Ordering::SeqCst),
            invalidations: s.invalidations_received.load(Ordering::SeqCst),
        }
    }

    /// What happened between `before` and `self`.
    fn since(self, before: Counts) -> Counts {
        Counts {
            local: self.local - before.local,
            redis: self.redis - before.redis,
            upstream: self.upstream - before.upstream,
            invalidations: self.invalidations - before.invalidations,
        }
    }
}

/// `GET /v1/tenant` naming `slug` in `X-Tenant-ID`: the status and the body.
async fn get_tenant(http: &reqwest::Client, api: &TestApi, slug: &str) -> (StatusCode, Value) {
    let r = http
        .get(api.url("/v1/tenant"))
        .header("x-tenant-id", slug)
        .send()
        .await
        .expect("GET /v1/tenant");
    let status = r.status();
    (status, r.json().await.expect("a JSON body"))
}

/// `GET /v1/tenant` on the custom domain `host`.
async fn get_by_host(http: &reqwest::Client, api: &TestApi, host: &str) -> (StatusCode, Value) {
    let r = http
        .get(api.url("/v1/tenant"))
        .header("host", host)
        .send()
        .await
        .expect("GET /v1/tenant");
    let status = r.status();
    (status, r.json().await.expect("a JSON body"))
}

/// An admin request with a `super_admin` token; returns the status and the body.
async fn admin(
    http: &reqwest::Client,
    api: &TestApi,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let r = http
        .request(method, api.url(path))
        .bearer_auth(admin_token())
        .json(&body)
        .send()
        .await
        .expect("admin request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Creates `slug` through `api`'s admin API.
async fn create_tenant(http: &reqwest::Client, api: &TestApi, slug: &str) {
    let (status, body) = admin(
        http,
        api,
        reqwest::Method::POST,
        "/v1/admin/tenants",
        json!({ "slug": slug, "name": "Cache Test Bank" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "create {slug}: {body}");
}

/// `PATCH /v1/admin/tenants/{slug}` through `api`, which must succeed.
async fn patch_tenant(http: &reqwest::Client, api: &TestApi, slug: &str, patch: Value) {
    let (status, body) = admin(
        http,
        api,
        reqwest::Method::PATCH,
        &format!("/v1/admin/tenants/{slug}"),
        patch.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "PATCH {slug} {patch}: {body}");
}

/// A tenant record for [`tenantgate_proxy::registry::Registry::create`].
fn tenant(slug: &str) -> Tenant {
    let now = bson::DateTime::now();
    Tenant {
        slug: slug.to_owned(),
        name: "Cache Test Bank".into(),
        tier: Tier::Starter,
        domains: Vec::new(),
        settings: Settings::default(),
        limits: LimitOverrides::default(),
        is_active: true,
        created_at: Some(now),
        updated_at: Some(now),
    }
}

/// Waits until `api`'s pub/sub listener is subscribed, by invalidating `slug` until the
/// instance hears an invalidation. The listener clears the in-process cache when it (re)subscribes;
/// a subscription landing in the middle of a measurement would look like a cache miss.
async fn wait_subscribed(api: &TestApi, slug: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = Counts::of(api).invalidations;
        api.services.registry.invalidate(slug, Vec::new()).await;
        let tick = Instant::now() + Duration::from_millis(500);
        while Instant::now() < tick {
            if Counts::of(api).invalidations > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            Instant::now() < deadline,
            "the instance never heard an invalidation: is its pub/sub listener subscribed?"
        );
    }
}

/// Polls `probe` until it returns `Some`, for at most `within`; panics with `what` otherwise.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `GET /v1/tenant` on `api` until it answers `status` (and, if given, `code`).
async fn until_status(
    http: &reqwest::Client,
    api: &TestApi,
    slug: &str,
    status: StatusCode,
    code: Option<&str>,
) -> Value {
    eventually(
        PROPAGATION,
        &format!("{slug} answering {status} {code:?}"),
        || async {
            let (s, body) = get_tenant(http, api, slug).await;
            (s == status && code.is_none_or(|c| body["code"] == c)).then_some(body)
        },
    )
    .await
}

/// `BURST` concurrent `GET /v1/tenant` for `slug`; their statuses.
async fn burst(http: &reqwest::Client, api: &TestApi, slug: &str) -> Vec<StatusCode> {
    let requests = (0..BURST).map(|_| async {
        http.get(api.url("/v1/tenant"))
            .header("x-tenant-id", slug)
            .send()
            .await
            .expect("GET /v1/tenant")
            .status()
    });
    futures::future::join_all(requests).await
}

/// Whether Redis holds `api`'s cached copy of the tenant `slug` (keys are namespaced by the
/// registry database).
async fn in_redis(api: &TestApi, slug: &str) -> bool {
    let (key, _) = Key::Slug(slug).names(&api.services.config.policy.internal_database);
    let mut redis = redis_connection().await;
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut redis)
        .await
        .expect("EXISTS");
    n == 1
}

#[tokio::test]
async fn repeated_lookups_are_served_from_the_local_cache() {
    bounded("repeated_lookups_are_served_from_the_local_cache", async {
        let api = TestApi::start(&long_ttl_config("reg_local")).await;
        let http = reqwest::Client::new();
        let slug = unique_slug();
        create_tenant(&http, &api, &slug).await;
        wait_subscribed(&api, &slug).await;

        let before = Counts::of(&api);
        let (status, body) = get_tenant(&http, &api, &slug).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["tenantId"], slug.as_str());
        let first = Counts::of(&api).since(before);
        assert_eq!(
            (first.upstream, first.redis, first.local),
            (1, 0, 0),
            "the first lookup goes to MongoDB (the creation emptied Redis): {first:?}"
        );

        let before = Counts::of(&api);
        for _ in 0..5 {
            let (status, body) = get_tenant(&http, &api, &slug).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["tenantId"], slug.as_str());
        }
        let repeats = Counts::of(&api).since(before);
        assert_eq!(
            (repeats.upstream, repeats.redis, repeats.local),
            (0, 0, 5),
            "repeated lookups are local hits: {repeats:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_second_instance_is_served_from_redis() {
    bounded("a_second_instance_is_served_from_redis", async {
        let config = long_ttl_config("reg_redis");
        let a = TestApi::start(&config).await;
        let b = TestApi::start(&config).await;
        let http = reqwest::Client::new();
        let slug = unique_slug();
        create_tenant(&http, &a, &slug).await;
        wait_subscribed(&a, &slug).await;
        wait_subscribed(&b, &slug).await;
        assert!(
            !in_redis(&a, &slug).await,
            "the creation left no copy in Redis"
        );

        let a_before = Counts::of(&a);
        let (status, _) = get_tenant(&http, &a, &slug).await;
        assert_eq!(status, StatusCode::OK);
        let a_delta = Counts::of(&a).since(a_before);
        assert_eq!(a_delta.upstream, 1, "A reads MongoDB: {a_delta:?}");
        assert!(in_redis(&a, &slug).await, "A's lookup filled Redis");

        let b_before = Counts::of(&b);
        let (status, body) = get_tenant(&http, &b, &slug).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["tenantId"], slug.as_str());
        assert_eq!(body["name"], "Cache Test Bank");
        let b_delta = Counts::of(&b).since(b_before);
        assert_eq!(
            (b_delta.redis, b_delta.upstream),
            (1, 0),
            "B's first lookup is a Redis hit, not a MongoDB query: {b_delta:?}"
        );

        let b_before = Counts::of(&b);
        let (status, _) = get_tenant(&http, &b, &slug).await;
        assert_eq!(status, StatusCode::OK);
        let b_delta = Counts::of(&b).since(b_before);
        assert_eq!(
            (b_delta.local, b_delta.redis, b_delta.upstream),
            (1, 0, 0),
            "then B answers from its own memory: {b_delta:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_deactivation_through_one_instance_reaches_the_other_at_once() {
    bounded(
        "a_deactivation_through_one_instance_reaches_the_other_at_once",
        async {
            let config = long_ttl_config("reg_deact");
            let a = TestApi::start(&config).await;
            let b = TestApi::start(&config).await;
            let http = reqwest::Client::new();
            let slug = unique_slug();
            create_tenant(&http, &a, &slug).await;
            wait_subscribed(&a, &slug).await;
            wait_subscribed(&b, &slug).await;
            for api in [&a, &b] {
                let (status, body) = get_tenant(&http, api, &slug).await;
                assert_eq!(status, StatusCode::OK, "warming: {body}");
            }
            // Both now hold the active tenant in memory for an hour.
            let before = Counts::of(&b);
            let (status, _) = get_tenant(&http, &b, &slug).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                Counts::of(&b).since(before).local,
                1,
                "B answers from memory, so only an invalidation can change its answer"
            );

            let b_before = Counts::of(&b);
            patch_tenant(&http, &a, &slug, json!({ "isActive": false })).await;
            let (status, body) = get_tenant(&http, &a, &slug).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("tenant_inactive")),
                "the writing instance sees its own change immediately: {body}"
            );
            until_status(
                &http,
                &b,
                &slug,
                StatusCode::FORBIDDEN,
                Some("tenant_inactive"),
            )
            .await;
            assert!(
                Counts::of(&b).since(b_before).invalidations >= 1,
                "B learnt of it through pub/sub"
            );

            patch_tenant(&http, &a, &slug, json!({ "isActive": true })).await;
            let (status, body) = get_tenant(&http, &a, &slug).await;
            assert_eq!(status, StatusCode::OK, "reactivated on A: {body}");
            until_status(&http, &b, &slug, StatusCode::OK, None).await;

            patch_tenant(
                &http,
                &a,
                &slug,
                json!({ "settings": { "brandColor": "#12AB34" } }),
            )
            .await;
            eventually(PROPAGATION, "the new brand colour on B", || async {
                let (s, body) = get_tenant(&http, &b, &slug).await;
                (s == StatusCode::OK && body["settings"]["brandColor"] == "#12ab34").then_some(())
            })
            .await;
        },
    )
    .await;
}

/// `find_one` on `<db>.payments` through `client`: `Ok` or the command error's code and message.
async fn proxy_read(client: &mongodb::Client, db: &str) -> Result<(), (Option<i32>, String)> {
    client
        .database(db)
        .collection::<bson::Document>("payments")
        .find_one(doc! {})
        .await
        .map(|_| ())
        .map_err(|e| {
            let code = match e.kind.as_ref() {
                mongodb::error::ErrorKind::Command(c) => Some(c.code),
                _ => None,
            };
            (code, e.to_string())
        })
}

/// A driver client to `api`'s proxy with one pooled connection and no retries, so every command
/// after a deactivation reuses the connection that authenticated while the tenant was active
/// (and a refusal is seen as it is).
async fn single_connection_client(api: &TestApi, user: &str, password: &str) -> mongodb::Client {
    common::driver_client(&format!(
        "mongodb://{user}:{password}@{}/?authSource=admin&maxPoolSize=1&retryReads=false&retryWrites=false",
        api.proxy_addr
    ))
    .await
}

#[tokio::test]
async fn a_deactivation_through_one_instance_reaches_the_proxy_of_the_other() {
    bounded(
        "a_deactivation_through_one_instance_reaches_the_proxy_of_the_other",
        async {
            let db = fresh_db_name("reg_proxy");
            let config = format!("{}\n[registry]\ncache_ttl_ms = 3600000\n", api_config(&db));
            let one = "bank1";
            let a = TestApi::start(&config).await;
            let b = TestApi::start(&config).await;
            let http = reqwest::Client::new();
            wait_subscribed(&a, one).await;
            wait_subscribed(&b, one).await;

            let bank_one = single_connection_client(&b, "svc-bank1", "bank1-secret").await;
            let bank_two = single_connection_client(&b, "svc-bank2", "bank2-secret").await;
            let payments = bank_one
                .database(&db)
                .collection::<bson::Document>("payments");
            payments
                .insert_one(doc! { "ref": "before" })
                .await
                .expect("an active tenant writes through B's proxy");
            let found = payments
                .find_one(doc! { "ref": "before" })
                .await
                .expect("an active tenant reads through B's proxy")
                .expect("the document it wrote");
            assert_eq!(found.get_str("tenantId").ok(), Some(one));
            proxy_read(&bank_two, &db)
                .await
                .expect("the other tenant reads");

            patch_tenant(&http, &a, one, json!({ "isActive": false })).await;
            let (code, message) = eventually(
                PROPAGATION,
                "B's proxy refusing the deactivated tenant",
                || async { proxy_read(&bank_one, &db).await.err() },
            )
            .await;
            assert_eq!(code, Some(13), "Unauthorized: {message}");
            assert!(message.contains("inactive"), "{message}");
            let refused = payments.insert_one(doc! { "ref": "while-inactive" }).await;
            assert!(refused.is_err(), "writes are refused too");
            proxy_read(&bank_two, &db)
                .await
                .expect("the other tenant is unaffected");

            patch_tenant(&http, &a, one, json!({ "isActive": true })).await;
            eventually(
                PROPAGATION,
                "B's proxy admitting the tenant again",
                || async { proxy_read(&bank_one, &db).await.ok() },
            )
            .await;
            let upstream = common::mongo_client()
                .await
                .database(&db)
                .collection::<bson::Document>("payments");
            let stored = upstream
                .count_documents(doc! { "ref": "while-inactive" })
                .await
                .expect("count upstream");
            assert_eq!(
                stored, 0,
                "nothing was written while the tenant was inactive"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn concurrent_first_lookups_share_one_upstream_query() {
    bounded("concurrent_first_lookups_share_one_upstream_query", async {
        let api = TestApi::start(&long_ttl_config("reg_flight")).await;
        let http = reqwest::Client::new();
        let registry = &api.services.registry;

        // Over HTTP, as clients would send them.
        let slug = unique_slug();
        registry.create(&tenant(&slug)).await.expect("create");
        wait_subscribed(&api, &slug).await;
        assert!(!in_redis(&api, &slug).await, "nothing cached in Redis yet");
        let before = Counts::of(&api);
        let statuses = burst(&http, &api, &slug).await;
        let d = Counts::of(&api).since(before);
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
        assert_eq!(
            (d.upstream, d.redis),
            (1, 0),
            "{BURST} concurrent first requests made one MongoDB query: {d:?}"
        );

        // Straight on the registry: all lookups are polled together, so they certainly overlap.
        let slug = unique_slug();
        registry.create(&tenant(&slug)).await.expect("create");
        wait_subscribed(&api, &slug).await;
        let before = Counts::of(&api);
        let found = futures::future::join_all((0..BURST).map(|_| registry.tenant(&slug))).await;
        let d = Counts::of(&api).since(before);
        for f in found {
            let t = f.expect("lookup").expect("the tenant exists");
            assert_eq!(t.slug, slug);
        }
        assert_eq!(
            (d.upstream, d.redis, d.local),
            (1, 0, 0),
            "one flight answered all {BURST}: {d:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn unknown_tenants_are_looked_up_once_and_remembered() {
    bounded("unknown_tenants_are_looked_up_once_and_remembered", async {
        let config = long_ttl_config("reg_unknown");
        let a = TestApi::start(&config).await;
        let b = TestApi::start(&config).await;
        let http = reqwest::Client::new();
        let ghost = unique_slug();
        wait_subscribed(&a, &ghost).await;
        wait_subscribed(&b, &ghost).await;

        let before = Counts::of(&a);
        let statuses = burst(&http, &a, &ghost).await;
        let d = Counts::of(&a).since(before);
        assert!(
            statuses.iter().all(|s| *s == StatusCode::NOT_FOUND),
            "{statuses:?}"
        );
        assert!(
            d.upstream <= 1 && d.redis == 0,
            "{BURST} concurrent lookups of an unknown tenant made at most one query: {d:?}"
        );

        let before = Counts::of(&a);
        for _ in 0..10 {
            let (status, body) = get_tenant(&http, &a, &ghost).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("tenant_not_found"))
            );
        }
        let d = Counts::of(&a).since(before);
        assert_eq!(
            (d.upstream, d.redis, d.local),
            (0, 0, 10),
            "the unknown name is remembered in memory: {d:?}"
        );

        let before = Counts::of(&b);
        let (status, _) = get_tenant(&http, &b, &ghost).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let d = Counts::of(&b).since(before);
        assert_eq!(
            (d.redis, d.upstream),
            (1, 0),
            "and in Redis, for the other instance: {d:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn creating_a_tenant_clears_its_negative_cache_entries() {
    bounded(
        "creating_a_tenant_clears_its_negative_cache_entries",
        async {
            let config = long_ttl_config("reg_negcreate");
            let a = TestApi::start(&config).await;
            let b = TestApi::start(&config).await;
            let http = reqwest::Client::new();
            let slug = unique_slug();
            wait_subscribed(&a, &slug).await;
            wait_subscribed(&b, &slug).await;

            for api in [&a, &b] {
                let (status, body) = get_tenant(&http, api, &slug).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
            }
            let (status, _) = get_tenant(&http, &b, &slug).await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "B remembers the unknown name"
            );

            create_tenant(&http, &a, &slug).await;
            let (status, body) = get_tenant(&http, &a, &slug).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "found immediately on the creating instance: {body}"
            );
            assert_eq!(body["tenantId"], slug.as_str());
            let body = until_status(&http, &b, &slug, StatusCode::OK, None).await;
            assert_eq!(body["tenantId"], slug.as_str());
        },
    )
    .await;
}

#[tokio::test]
async fn adding_a_domain_clears_its_negative_cache_entries() {
    bounded("adding_a_domain_clears_its_negative_cache_entries", async {
        let config = long_ttl_config("reg_negdomain");
        let a = TestApi::start(&config).await;
        let b = TestApi::start(&config).await;
        let http = reqwest::Client::new();
        let slug = unique_slug();
        let domain = format!("pay.{slug}.example");
        create_tenant(&http, &a, &slug).await;
        wait_subscribed(&a, &slug).await;
        wait_subscribed(&b, &slug).await;

        for api in [&a, &b] {
            let (status, body) = get_by_host(&http, api, &domain).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        }
        let (status, body) = admin(
            &http,
            &a,
            reqwest::Method::POST,
            &format!("/v1/admin/tenants/{slug}/domains"),
            json!({ "domain": domain }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        let (status, body) = get_by_host(&http, &a, &domain).await;
        assert_eq!(status, StatusCode::OK, "on the writing instance: {body}");
        assert_eq!(
            (body["tenantId"].as_str(), body["resolvedBy"].as_str()),
            (Some(slug.as_str()), Some("domain"))
        );
        eventually(PROPAGATION, "the new domain resolving on B", || async {
            let (s, body) = get_by_host(&http, &b, &domain).await;
            (s == StatusCode::OK && body["tenantId"] == slug.as_str()).then_some(())
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn deployments_sharing_redis_do_not_see_each_others_tenants() {
    bounded(
        "deployments_sharing_redis_do_not_see_each_others_tenants",
        async {
            // Two deployments: each its own registry database, one Redis.
            let p = TestApi::start(&long_ttl_config("reg_ns_p")).await;
            let q = TestApi::start(&long_ttl_config("reg_ns_q")).await;
            let http = reqwest::Client::new();
            let slug = unique_slug();
            create_tenant(&http, &p, &slug).await;
            wait_subscribed(&p, &slug).await;
            wait_subscribed(&q, &slug).await;

            let (status, _) = get_tenant(&http, &p, &slug).await;
            assert_eq!(status, StatusCode::OK, "P knows its own tenant");
            assert!(in_redis(&p, &slug).await, "and cached it in Redis");
            assert!(
                q.services
                    .registry
                    .fresh(&slug)
                    .await
                    .expect("Q's registry")
                    .is_none(),
                "Q's registry database has no such tenant"
            );
            let q_before = Counts::of(&q);
            let (status, body) = get_tenant(&http, &q, &slug).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("tenant_not_found")),
                "Q does not admit a tenant only P's registry holds: {body}"
            );
            let d = Counts::of(&q).since(q_before);
            assert_eq!(
                (d.redis, d.upstream),
                (0, 1),
                "Q asked its own database, not P's Redis entry: {d:?}"
            );

            // P's writes are not Q's business.
            patch_tenant(&http, &p, &slug, json!({ "isActive": false })).await;
            let (status, _) = get_tenant(&http, &p, &slug).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                Counts::of(&q).since(q_before).invalidations,
                0,
                "Q hears no invalidation for P's registry"
            );
        },
    )
    .await;
}
