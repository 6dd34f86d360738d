//! The commands-per-second limit shared through Redis: two proxy instances (two limiters on the
//! same Redis) draw from one bucket per tenant, and tenants do not share buckets.

mod common;

use tenantgate_proxy::shared_rate::SharedRate;

#[tokio::test]
async fn instances_share_one_bucket_per_tenant() {
    let url = common::redis_url();
    let a = SharedRate::connect(&url)
        .await
        .expect("first instance connects");
    let b = SharedRate::connect(&url)
        .await
        .expect("second instance connects");
    let tenant = common::fresh_db_name("rate");
    let other = common::fresh_db_name("rate_other");

    let mut tasks = Vec::new();
    for i in 0..20 {
        let limiter = if i % 2 == 0 { &a } else { &b };
        tasks.push(limiter.admit(&tenant, 6));
    }
    let verdicts = futures::future::join_all(tasks).await;
    assert!(
        verdicts.iter().all(Option::is_some),
        "Redis answered every call: {verdicts:?}"
    );
    let admitted = verdicts.iter().filter(|v| **v == Some(true)).count();
    // A burst of one second's worth; allow one refilled token if the calls straddle a tick.
    assert!(
        (6..=7).contains(&admitted),
        "admitted {admitted} of 20 at 6/s"
    );

    assert_eq!(
        a.admit(&other, 6).await,
        Some(true),
        "another tenant has its own bucket"
    );
}

#[tokio::test]
async fn a_redis_that_is_down_fails_open_quickly() {
    // Port 1 on loopback: nothing listens there.
    let limiter = SharedRate::connect("redis://127.0.0.1:1/")
        .await
        .expect("a valid URL is accepted even if Redis is down");
    let started = std::time::Instant::now();
    assert_eq!(
        limiter.admit("t", 5).await,
        None,
        "no verdict: the in-process limiter decides"
    );
    assert_eq!(
        limiter.admit("t", 5).await,
        None,
        "and again, without re-dialling every call"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "failing open is prompt: {:?}",
        started.elapsed()
    );
}
