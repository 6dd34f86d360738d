//! The proxy's commands-per-second limit goes through the same shared limiter as the API: two
//! instances (two limiters on one Redis) draw from one window per tenant, tenants do not share
//! windows, and a Redis that is down yields no shared verdict, promptly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use tenantgate_proxy::config::LimitsConfig;
use tenantgate_proxy::ratelimit::{Check, FailureMode, RateLimiter};
use tenantgate_proxy::redis_link::RedisLink;

fn limiter(url: &str) -> RateLimiter {
    let link = RedisLink::open(url).expect("a valid URL");
    RateLimiter::new(Some(Arc::new(link)), &LimitsConfig::default())
}

fn per_second(tenant: &str, limit: u64) -> Check<'_> {
    Check {
        tenant,
        group: "proxy_commands",
        limit,
        window: Duration::from_secs(1),
        mode: FailureMode::Open,
        usage: &[],
    }
}

#[tokio::test]
async fn instances_share_one_window_per_tenant() {
    let url = common::redis_url();
    let (a, b) = (limiter(&url), limiter(&url));
    let tenant = common::fresh_db_name("rate");
    let other = common::fresh_db_name("rate_other");

    let check = per_second(&tenant, 6);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        tasks.push(limiter.check_shared(&check));
    }
    let verdicts = futures::future::join_all(tasks).await;
    assert!(
        verdicts.iter().all(Option::is_some),
        "Redis answered every call: {verdicts:?}"
    );
    let admitted = verdicts
        .iter()
        .filter(|v| v.is_some_and(|v| v.admitted))
        .count();
    assert_eq!(
        admitted, 6,
        "exactly the limit of 20 concurrent calls at 6/s"
    );

    let fresh = a
        .check_shared(&per_second(&other, 6))
        .await
        .expect("Redis answers");
    assert!(fresh.admitted, "another tenant has its own window");
}

#[tokio::test]
async fn a_redis_that_is_down_yields_no_shared_verdict_quickly() {
    // Port 1 on loopback: nothing listens there.
    let limiter = limiter("redis://127.0.0.1:1/");
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert!(
            limiter.check_shared(&per_second("t", 5)).await.is_none(),
            "no shared verdict: the in-process limiter decides"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "failing open is prompt: {:?}",
        started.elapsed()
    );
    let local = limiter.check(per_second("t", 5)).await;
    assert!(local.admitted, "open mode: the local window admits");
}
