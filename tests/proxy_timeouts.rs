//! The proxy's timeouts, against a scripted upstream (the benchmark's responder, which never
//! answers a `find` on `stall`): an idle client is closed after `idle_timeout_secs` but a busy
//! one never is, and a hung upstream gets a retryable `NetworkTimeout` after
//! `upstream.timeout_ms` — on a pooled connection's first command and on its hundredth alike.
//! The timers behind them are re-armed lazily (see `connection.rs` and `upstream/mod.rs`), so
//! these pin the behaviour, not the mechanism.

#[path = "../benches/support/loadgen.rs"]
mod loadgen;
#[path = "../benches/support/responder.rs"]
mod responder;

use std::time::{Duration, Instant};

use bson::{Document, rawdoc};

/// Starts the responder and a proxy in front of it; returns the proxy's address.
async fn start(
    idle_secs: u64,
    upstream_timeout_ms: u64,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = listener.local_addr().expect("addr");
    tokio::spawn(responder::serve(listener));
    let config = format!(
        r#"
[upstream]
uri = "mongodb://{upstream}/"
timeout_ms = {upstream_timeout_ms}
pool_size = 4

[proxy]
listen = "127.0.0.1:0"
idle_timeout_secs = {idle_secs}

[api]
listen = "127.0.0.1:0"

[policy]
databases = ["payments"]

[[principals]]
username = "svc-bank1"
password = "bank1-secret"
tenant = "bank1"
"#
    );
    let config = tenantgate_proxy::Config::from_toml(&config, &tenantgate_proxy::ProcessEnv)
        .expect("config");
    let proxy = tenantgate_proxy::Proxy::bind(config, &tenantgate_proxy::ProcessEnv)
        .await
        .expect("proxy starts");
    let addr = proxy.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        proxy
            .run(
                async move {
                    let _ = stopped.await;
                },
                Duration::from_secs(1),
            )
            .await;
    });
    (addr, stop)
}

async fn client(addr: &str) -> loadgen::Conn {
    let mut c = loadgen::Conn::connect(addr).await.expect("connect");
    c.handshake(Some(("svc-bank1", "bank1-secret")))
        .await
        .expect("login");
    c
}

async fn find(c: &mut loadgen::Conn, collection: &str) -> Document {
    c.command(rawdoc! { "find": collection, "filter": {}, "$db": "payments" })
        .await
        .expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_closed_but_a_busy_one_is_not() {
    let (addr, _stop) = start(1, 5_000).await;
    // Busy: a command every 300 ms for 3 s (three idle timeouts) keeps the connection.
    let mut busy = client(&addr).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let reply = find(&mut busy, "payments").await;
        assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Idle: closed about a second after its last command, not before.
    let mut idle = client(&addr).await;
    let reply = find(&mut idle, "payments").await;
    assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply = find(&mut idle, "payments").await;
    assert_eq!(
        reply.get_f64("ok").ok(),
        Some(1.0),
        "still open at 0.6 s: {reply}"
    );
    let last_command = Instant::now();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = idle
        .command(rawdoc! { "find": "payments", "filter": {}, "$db": "payments" })
        .await;
    assert!(
        after.is_err(),
        "the connection should be closed {:?} after its last command: {after:?}",
        last_command.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_gets_network_timeout_after_the_configured_time() {
    let (addr, _stop) = start(60, 400).await;
    let mut c = client(&addr).await;
    // Warm the pool well past one timeout period, so the lazily re-armed timer is exercised.
    let warm_until = Instant::now() + Duration::from_millis(900);
    let mut commands = 0;
    while Instant::now() < warm_until {
        let reply = find(&mut c, "payments").await;
        assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
        commands += 1;
    }
    assert!(commands > 10, "{commands}");
    for attempt in 0..2 {
        let started = Instant::now();
        let reply = find(&mut c, "stall").await;
        let took = started.elapsed();
        assert_eq!(reply.get_f64("ok").ok(), Some(0.0), "{reply}");
        assert_eq!(
            reply.get_i32("code").ok(),
            Some(89),
            "NetworkTimeout: {reply}"
        );
        let labels = reply.get_array("errorLabels").expect("labels");
        assert!(
            labels
                .iter()
                .any(|l| l.as_str() == Some("RetryableWriteError")),
            "retryable: {reply}"
        );
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_millis(2_000),
            "attempt {attempt}: timed out after {took:?}, configured 400 ms"
        );
        // The proxy keeps serving after a timeout.
        let reply = find(&mut c, "payments").await;
        assert_eq!(reply.get_f64("ok").ok(), Some(1.0), "{reply}");
    }
}
