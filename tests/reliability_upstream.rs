//! Reliability when the upstream fails: the promises of issue #10 that involve MongoDB itself.
//!
//! * **Restart under load.** 32 driver clients across 8 tenants read and write through the proxy
//!   while the test kills its own upstream process with SIGKILL and starts it again on the same
//!   port and data directory. While it is down every command must fail promptly with a
//!   retryable MongoDB error (never hang past the configured upstream timeout), no client may
//!   ever see another tenant's document, the pool must recover on its own within 5 s of the
//!   upstream answering again, and afterwards — checked over a direct connection — every
//!   acknowledged insert is present exactly once and every acknowledged `$inc` was applied
//!   (`acknowledged ≤ counter ≤ acknowledged + failed`: nothing lost, nothing invented).
//! * **A slow audit sink.** A fault-injecting relay between tenantgate and the upstream holds
//!   every message that touches the audit collection for a second. A tenant provoking thousands
//!   of rejections then fills the audit queue: the well-behaved tenant's latency must not move
//!   (within 2× of its own baseline), and the events that did not fit are dropped and counted in
//!   `tenantgate_audit_dropped_total`, never queued without bound.
//!
//! The restart test needs an upstream it may kill, so it starts its own: `mongod` when one is on
//! `PATH`, otherwise SecantusDB from the project virtualenv that `scripts/test` creates
//! (`TENANTGATE_VENV`, else `<repo>/.venv`), both with an on-disk data directory. Writes use
//! `{w: 1, j: true}`: only journaled writes survive a SIGKILL, on mongod as on SecantusDB (which
//! loses un-journaled `w: 1` writes on SIGKILL exactly as MongoDB documents for mongod).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::options::{Acknowledgment, WriteConcern};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const TENANTS: usize = 8;
const CLIENTS: usize = 32;
/// `[upstream] timeout_ms` in the restart test's configuration.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(2_000);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An upstream process this test owns (killed on drop).
struct OwnedUpstream {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl OwnedUpstream {
    fn start(port: u16, dir: &Path) -> OwnedUpstream {
        std::fs::create_dir_all(dir).expect("upstream data directory");
        let mut up = OwnedUpstream {
            child: None,
            port,
            dir: dir.to_owned(),
            log: dir.with_extension("log"),
        };
        up.spawn();
        up
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("upstream log");
        let err = log.try_clone().expect("upstream log");
        let port = self.port.to_string();
        let mut cmd = match which("mongod") {
            Some(mongod) => {
                let mut c = Command::new(mongod);
                c.args(["--bind_ip", "127.0.0.1", "--port", &port, "--dbpath"])
                    .arg(&self.dir);
                c
            }
            None => {
                let venv = std::env::var_os("TENANTGATE_VENV")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
                let bin = venv.join("bin").join("secantusd-py");
                assert!(
                    bin.exists(),
                    "\n\n*** no mongod on PATH and no {} ***\n*** run the tests through scripts/test, which creates the virtualenv ***\n\n",
                    bin.display()
                );
                let mut c = Command::new(bin);
                c.args(["--host", "127.0.0.1", "--port", &port, "--storage-path"])
                    .arg(&self.dir)
                    // Never pick up a ./secantusd.toml from the working directory.
                    .current_dir(self.dir.parent().unwrap_or(Path::new("/")));
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("the upstream starts");
        self.child = Some(child);
    }

    fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until a direct client gets an answer from storage (not only `ping`).
    async fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        let client = common::driver_client(&self.uri()).await;
        loop {
            let probe = client
                .database("admin")
                .run_command(doc! { "listDatabases": 1, "nameOnly": true })
                .await;
            if probe.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < within,
                "the upstream did not come up within {within:?}: {probe:?}\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for OwnedUpstream {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.log);
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn eight_tenant_config(uri: &str, db: &str) -> String {
    let mut config = format!(
        r#"
[upstream]
uri = "{uri}"
timeout_ms = {timeout}

[proxy]
listen = "127.0.0.1:0"

[api]
listen = "127.0.0.1:0"

[policy]
databases = ["{db}"]
"#,
        timeout = UPSTREAM_TIMEOUT.as_millis()
    );
    for t in 1..=TENANTS {
        config.push_str(&format!(
            "\n[[tenants]]\nslug = \"bank{t}\"\nname = \"Bank {t}\"\n\n[[principals]]\nusername = \"svc-bank{t}\"\npassword = \"secret-{t}\"\ntenant = \"bank{t}\"\n"
        ));
    }
    config
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    /// `op` values of inserts the driver reported as acknowledged.
    acked_inserts: Vec<String>,
    failed_inserts: usize,
    acked_incs: u64,
    failed_incs: u64,
    /// Slowest single operation.
    slowest: Duration,
    /// When each success happened.
    successes: Vec<Instant>,
    /// When each failure happened, with its code and labels.
    failures: Vec<(Instant, Option<i32>, Vec<String>, String)>,
    /// Documents of another tenant that a read returned (must stay empty).
    foreign: Vec<Document>,
}

fn error_facts(e: &mongodb::error::Error) -> (Option<i32>, Vec<String>) {
    // A connection the driver opens during the outage fails in its SCRAM handshake. The driver
    // reports an authentication error whose message is the proxy's reason: it must be the
    // retryable "registry unreachable" (`HostUnreachable`), never a credentials failure.
    if let mongodb::error::ErrorKind::Authentication { message, .. } = e.kind.as_ref() {
        let unavailable = message.contains("the tenant registry is unreachable");
        return (unavailable.then_some(6), vec![]);
    }
    let code = match e.kind.as_ref() {
        mongodb::error::ErrorKind::Command(c) => Some(c.code),
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            Some(w.code)
        }
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteConcernError(w)) => {
            Some(w.code)
        }
        _ => None,
    };
    let labels = e.labels().iter().cloned().collect();
    (code, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_survives_an_upstream_restart_under_load() {
    let root = std::env::temp_dir().join(format!("tenantgate-restart-{}", std::process::id()));
    let port = free_port();
    let mut upstream = OwnedUpstream::start(port, &root.join("data"));
    upstream.wait_ready(Duration::from_secs(60)).await;
    let db = common::fresh_db_name("restart");
    let proxy = common::TestProxy::start(&eight_tenant_config(&upstream.uri(), &db)).await;

    let journaled = WriteConcern::builder()
        .w(Acknowledgment::Nodes(1))
        .journal(true)
        .build();
    // Each client's counter document, created before the load.
    let mut colls: Vec<(String, usize, Collection<Document>)> = Vec::new();
    for i in 0..CLIENTS {
        let t = i % TENANTS + 1;
        let client = proxy
            .client(&format!("svc-bank{t}"), &format!("secret-{t}"))
            .await;
        let coll = client.database(&db).collection_with_options::<Document>(
            "payments",
            mongodb::options::CollectionOptions::builder()
                .write_concern(journaled.clone())
                .build(),
        );
        coll.insert_one(
            doc! { "_id": format!("ctr-{i}"), "n": 0_i64, "owner": format!("bank{t}") },
        )
        .await
        .expect("counter document");
        colls.push((format!("bank{t}"), i, coll));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let tallies: Arc<Mutex<BTreeMap<usize, Tally>>> = Arc::default();
    let mut tasks = Vec::new();
    for (tenant, i, coll) in colls {
        let (stop, tallies) = (stop.clone(), tallies.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let op = format!("c{i}-{seq}");
                // 1. An insert.
                let started = Instant::now();
                let r = coll
                    .insert_one(doc! { "op": &op, "owner": &tenant, "amount": seq as i64 })
                    .await;
                tally.slowest = tally.slowest.max(started.elapsed());
                match r {
                    Ok(_) => {
                        tally.acked_inserts.push(op.clone());
                        tally.successes.push(Instant::now());
                    }
                    Err(e) => {
                        let (code, labels) = error_facts(&e);
                        tally.failed_inserts += 1;
                        tally
                            .failures
                            .push((Instant::now(), code, labels, e.to_string()));
                    }
                }
                // 2. A non-idempotent update.
                let started = Instant::now();
                let r = coll
                    .update_one(
                        doc! { "_id": format!("ctr-{i}") },
                        doc! { "$inc": { "n": 1_i64 } },
                    )
                    .await;
                tally.slowest = tally.slowest.max(started.elapsed());
                match r {
                    Ok(u) if u.matched_count == 1 => {
                        tally.acked_incs += 1;
                        tally.successes.push(Instant::now());
                    }
                    Ok(u) => panic!("client {i}: the counter update matched {}", u.matched_count),
                    Err(e) => {
                        let (code, labels) = error_facts(&e);
                        tally.failed_incs += 1;
                        tally
                            .failures
                            .push((Instant::now(), code, labels, e.to_string()));
                    }
                }
                // 3. A read of whatever the tenant has: only its own documents may come back.
                let started = Instant::now();
                let r = async {
                    coll.find(doc! {})
                        .sort(doc! { "amount": -1 })
                        .limit(20)
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                }
                .await;
                tally.slowest = tally.slowest.max(started.elapsed());
                match r {
                    Ok(docs) => {
                        tally.foreign.extend(docs.into_iter().filter(|d| {
                            d.get_str("tenantId").ok() != Some(tenant.as_str())
                                || d.get_str("owner").ok() != Some(tenant.as_str())
                        }));
                        tally.successes.push(Instant::now());
                    }
                    Err(e) => {
                        let (code, labels) = error_facts(&e);
                        tally
                            .failures
                            .push((Instant::now(), code, labels, e.to_string()));
                    }
                }
            }
            tallies.lock().await.insert(i, tally);
        }));
    }

    // Load, kill, stay down, restart, load again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    upstream.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    upstream.spawn();
    upstream.wait_ready(Duration::from_secs(60)).await;
    let back_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("every client finishes its last operation")
            .expect("no client task panicked");
    }

    let tallies = std::mem::take(&mut *tallies.lock().await);
    assert_eq!(tallies.len(), CLIENTS);

    // Isolation held throughout.
    let foreign: Vec<&Document> = tallies.values().flat_map(|t| &t.foreign).collect();
    assert!(
        foreign.is_empty(),
        "reads returned another tenant's documents: {foreign:?}"
    );

    // While it was down: errors, promptly, and retryable ones.
    let failures: Vec<&(Instant, Option<i32>, Vec<String>, String)> =
        tallies.values().flat_map(|t| &t.failures).collect();
    assert!(
        !failures.is_empty(),
        "no command failed while the upstream was down: the kill did not take effect"
    );
    for (at, code, labels, message) in &failures {
        assert!(
            *at >= killed_at,
            "a command failed before the upstream was killed: {code:?} {labels:?}: {message}"
        );
        assert!(
            matches!(
                code,
                Some(6) | Some(89) | Some(91) | Some(189) | Some(11600) | Some(11602)
            ),
            "a failure during the outage is not a retryable network-class MongoDB error: code {code:?}, labels {labels:?}: {message}"
        );
    }
    let slowest = tallies
        .values()
        .map(|t| t.slowest)
        .max()
        .unwrap_or_default();
    assert!(
        slowest <= UPSTREAM_TIMEOUT + Duration::from_secs(3),
        "an operation took {slowest:?}, past the upstream timeout ({UPSTREAM_TIMEOUT:?}) plus slack"
    );

    // Recovery: every tenant succeeds again within 5 s of the upstream answering.
    let mut recovery = Duration::ZERO;
    for (i, t) in &tallies {
        let first = t
            .successes
            .iter()
            .find(|s| **s >= back_at)
            .unwrap_or_else(|| panic!("client {i} never succeeded after the upstream came back"));
        recovery = recovery.max(first.duration_since(back_at));
    }
    assert!(
        recovery <= Duration::from_secs(5),
        "the pool took {recovery:?} to recover (promise: 5 s)"
    );
    let late_failures = failures
        .iter()
        .filter(|(at, _, _, _)| *at > back_at + Duration::from_secs(5))
        .count();
    assert_eq!(
        late_failures, 0,
        "commands still failed more than 5 s after the upstream came back"
    );

    // Nothing lost, nothing invented — checked directly against the upstream.
    let direct = common::driver_client(&upstream.uri()).await;
    let stored: Vec<Document> = direct
        .database(&db)
        .collection::<Document>("payments")
        .find(doc! {})
        .await
        .expect("direct find")
        .try_collect()
        .await
        .expect("direct find completes");
    let mut by_op: HashMap<String, Vec<&Document>> = HashMap::new();
    let mut counters: HashMap<String, &Document> = HashMap::new();
    for d in &stored {
        if let Ok(op) = d.get_str("op") {
            by_op.entry(op.to_owned()).or_default().push(d);
        } else if let Ok(id) = d.get_str("_id") {
            counters.insert(id.to_owned(), d);
        }
    }
    let (mut acked, mut failed) = (0usize, 0usize);
    for (i, t) in &tallies {
        let tenant = format!("bank{}", i % TENANTS + 1);
        for op in &t.acked_inserts {
            let copies = by_op.get(op).map_or(0, Vec::len);
            assert_eq!(
                copies,
                1,
                "acknowledged insert {op} is present {copies} times: {:?}",
                by_op.get(op)
            );
            let d = by_op[op][0];
            assert_eq!(
                d.get_str("tenantId").ok(),
                Some(tenant.as_str()),
                "{op} stamped with the wrong tenant"
            );
        }
        acked += t.acked_inserts.len();
        failed += t.failed_inserts;
        let counter = counters
            .get(&format!("ctr-{i}"))
            .unwrap_or_else(|| panic!("counter ctr-{i} is gone"));
        let n = counter.get_i64("n").expect("counter n");
        assert!(
            n as u64 >= t.acked_incs && n as u64 <= t.acked_incs + t.failed_incs,
            "client {i}: counter is {n}, but {} increments were acknowledged and {} failed",
            t.acked_incs,
            t.failed_incs
        );
    }
    // No insert exists twice, acknowledged or not.
    let doubled: Vec<&String> = by_op
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    assert!(doubled.is_empty(), "inserts stored twice: {doubled:?}");
    println!(
        "restart under load: {acked} inserts acknowledged, {failed} failed; {} failures in all while down; \
         slowest operation {slowest:?}; recovered {recovery:?} after the upstream answered",
        failures.len()
    );
    proxy.stop().await;
    drop(upstream);
    let _ = std::fs::remove_dir_all(&root);
}

/// A relay to `upstream` that holds, for `delay_ms` (read per message, so the test can switch
/// it), every message whose bytes contain `needle`. MongoDB runs one command at a time per
/// connection, so holding one message delays only the connection that sent it.
async fn delaying_relay(
    upstream: String,
    needle: &'static [u8],
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let port = listener.local_addr().expect("relay address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, delay_ms) = (upstream.clone(), delay_ms.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let delay = delay_ms.load(Ordering::Relaxed);
                        if delay > 0 && buf[..n].windows(needle.len()).any(|w| w == needle) {
                            tokio::time::sleep(Duration::from_millis(delay)).await;
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    port
}

async fn median_find_latency(coll: &Collection<Document>, n: usize) -> Duration {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        coll.find_one(doc! { "_id": "p1" })
            .await
            .expect("a well-behaved tenant's read succeeds");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples[n / 2]
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(str::trim))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_audit_sink_costs_other_tenants_nothing_and_drops_are_counted() {
    let db = common::fresh_db_name("auditslow");
    let upstream = common::mongodb_uri();
    let host = upstream
        .trim_start_matches("mongodb://")
        .split(['/', '?'])
        .next()
        .expect("host in MONGODB_URI")
        .rsplit('@')
        .next()
        .expect("host")
        .to_owned();
    let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let relay = delaying_relay(host, b"tenantgate_audit", delay_ms.clone()).await;
    // A small audit queue, so the test fills it in seconds.
    let config = common::two_bank_config(&db)
        .replace(&upstream, &format!("mongodb://127.0.0.1:{relay}/"))
        .replace("[proxy]\n", "[audit]\nbuffer = 200\n\n[proxy]\n");
    assert!(
        config.contains(&format!("127.0.0.1:{relay}")),
        "config points at the relay"
    );
    let api = common::TestApi::start(&config).await;

    let bank2 = api.proxy_client("svc-bank2", "bank2-secret").await;
    let payments = bank2.database(&db).collection::<Document>("payments");
    payments
        .insert_one(doc! { "_id": "p1", "amount": 100_i64 })
        .await
        .expect("seed");
    median_find_latency(&payments, 50).await; // warm the pool

    // bank1 provokes rejections as fast as it can: each one is an audit event. The baseline is
    // taken under the same attack with a healthy sink, so the comparison isolates the sink (the
    // attack itself competes for the same two cores).
    let bank1 = api.proxy_client("svc-bank1", "bank1-secret").await;
    let attack = bank1.database(&db).collection::<Document>("payments");
    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for _ in 0..4 {
        let (attack, stop) = (attack.clone(), stop.clone());
        attackers.push(tokio::spawn(async move {
            let mut refused = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = attack.find_one(doc! { "tenantId": "bank2" }).await;
                assert!(r.is_err(), "a cross-tenant read was not refused: {r:?}");
                refused += 1;
            }
            refused
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = median_find_latency(&payments, 300).await;
    let dropped_before = metric(
        &reqwest::get(api.url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text"),
        "tenantgate_audit_dropped_total",
    );
    // Now every audit batch takes a second to reach the database.
    delay_ms.store(1_000, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = median_find_latency(&payments, 300).await;
    stop.store(true, Ordering::Relaxed);
    let mut refused = 0;
    for a in attackers {
        refused += a.await.expect("attacker task");
    }

    let text = reqwest::get(api.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let dropped = metric(&text, "tenantgate_audit_dropped_total") - dropped_before;
    println!(
        "slow audit sink: median read {baseline:?} with a healthy sink, {during:?} with a slow one; {refused} rejections, {dropped} audit events dropped while slow ({dropped_before} before)"
    );
    assert!(
        refused > 400,
        "the attack produced only {refused} rejections: the queue (200) was never under pressure"
    );
    assert!(
        dropped > 0,
        "{refused} events against a queue of 200 and a sink taking 1 s per batch, yet none dropped"
    );
    assert!(
        dropped <= refused,
        "more events dropped ({dropped}) than produced ({refused})"
    );
    let limit = (baseline * 2).max(baseline + Duration::from_millis(2));
    assert!(
        during <= limit,
        "the well-behaved tenant's median latency went from {baseline:?} to {during:?} (limit {limit:?}) while the audit sink was slow"
    );
}
