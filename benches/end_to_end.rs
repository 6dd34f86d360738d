//! The proxy's cost as an application sees it: the official Rust driver, the real upstream,
//! the same workload direct and through tenantgate, in one run.
//!
//! Seeds `--documents` payments of tenant `bank1` into a fresh database, starts the release
//! `tenantgate serve` in front of the upstream, then runs closed loops of `find_one` by `_id`
//! (random ids from the seeded set) at each connection count, direct and through tenantgate,
//! alternating.
//!
//! ```text
//! MONGODB_URI=mongodb://127.0.0.1:27017/ cargo bench --bench end_to_end -- --connections 1,16 --seconds 10
//! ```
//!
//! Each connection count also runs the *scoped filter shape* directly: the filter tenantgate
//! forwards (`{tenantId, deletedAt: null, $and: [{_id}]}`), so an upstream whose planner
//! handles it worse than `{_id}` shows up as such rather than as proxy cost.
//!
//! A slow upstream hides the proxy's cost (a SecantusDB `find_one` takes hundreds of µs);
//! `benches/proxy_overhead.rs` is the benchmark that isolates it.

#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/process.rs"]
mod process;

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, doc};

struct Options {
    upstream: String,
    connections: Vec<usize>,
    seconds: u64,
    warmup: u64,
    rounds: usize,
    documents: usize,
}

fn options() -> Options {
    let mut o = Options {
        upstream: std::env::var("MONGODB_URI").unwrap_or_default(),
        connections: vec![1, 16],
        seconds: 10,
        warmup: 2,
        rounds: 1,
        documents: 1000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        let mut take = true;
        match args[i].as_str() {
            "--upstream" => o.upstream = value,
            "--connections" => {
                o.connections = value
                    .split(',')
                    .map(|c| c.trim().parse().expect("--connections: numbers"))
                    .collect();
            }
            "--seconds" => o.seconds = value.parse().expect("--seconds: a number"),
            "--warmup" => o.warmup = value.parse().expect("--warmup: a number"),
            "--rounds" => o.rounds = value.parse().expect("--rounds: a number"),
            "--documents" => o.documents = value.parse().expect("--documents: a number"),
            _ => take = false,
        }
        i += if take { 2 } else { 1 };
    }
    assert!(
        !o.upstream.is_empty(),
        "set MONGODB_URI or pass --upstream mongodb://HOST:PORT/"
    );
    // `cargo test --all-targets` (scripts/test) runs this binary without `--bench`: a smoke run
    // of a second per path then checks the benchmark still works without costing the suite
    // minutes. `cargo bench` passes `--bench` and gets the real run.
    if !args.iter().any(|a| a == "--bench") {
        o.connections = vec![1, 2];
        o.seconds = 1;
        o.warmup = 0;
        o.rounds = 1;
        o.documents = o.documents.min(100);
    }
    o
}

fn start_tenantgate(upstream: &str, database: &str, dir: &std::path::Path) -> (Child, u16) {
    let proxy_port = process::free_port();
    let api_port = process::free_port();
    let config = format!(
        r#"
[upstream]
uri = "{upstream}"
pool_size = 64

[proxy]
listen = "127.0.0.1:{proxy_port}"

[api]
listen = "127.0.0.1:{api_port}"

[policy]
databases = ["{database}"]
internal_database = "{database}_tg"

[[tenants]]
slug = "bank1"
name = "First National Bank"
tier = "enterprise"

[[principals]]
username = "svc-bank1"
password = "bank1-secret"
tenant = "bank1"
"#
    );
    (process::serve(dir, &config, proxy_port), proxy_port)
}

async fn client(uri: &str, pool: usize) -> mongodb::Client {
    let mut options = mongodb::options::ClientOptions::parse(uri)
        .await
        .expect("valid URI");
    options.max_pool_size = Some(pool as u32);
    options.min_pool_size = Some(pool as u32);
    options.app_name = Some("tenantgate-bench".into());
    mongodb::Client::with_options(options).expect("client")
}

/// The filter for document `n`: `{_id}` as the application sends it, or (`scoped`) the shape
/// tenantgate forwards, `{tenantId, deletedAt: null, _id}`, sent directly to show
/// what the upstream's planner makes of it.
fn filter(n: usize, scoped: bool) -> Document {
    let id = format!("pay_{n:06}");
    if scoped {
        doc! { "tenantId": "bank1", "deletedAt": bson::Bson::Null, "_id": id }
    } else {
        doc! { "_id": id }
    }
}

/// Closed loops of `find_one` by `_id` on `connections` tasks sharing one driver client.
#[allow(clippy::too_many_arguments)]
async fn run(
    client: &mongodb::Client,
    database: &str,
    scoped: bool,
    connections: usize,
    documents: usize,
    warmup: Duration,
    measure: Duration,
    window: impl FnMut(bool),
) -> loadgen::Sample {
    let coll = client.database(database).collection::<Document>("payments");
    // Every connection opened and authenticated before timing starts.
    let mut warm = Vec::new();
    for i in 0..connections {
        let coll = coll.clone();
        warm.push(tokio::spawn(async move {
            coll.find_one(filter(i, scoped)).await
        }));
    }
    for w in warm {
        w.await.expect("task").expect("find_one");
    }
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..connections {
        let coll = coll.clone();
        let (recording, stop) = (recording.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 14);
            let mut n = t * 7919;
            while !stop.load(Ordering::Relaxed) {
                n = (n + 7919) % documents;
                let started = Instant::now();
                let found = coll.find_one(filter(n, scoped)).await.expect("find_one");
                assert!(found.is_some(), "pay_{n:06} missing");
                if recording.load(Ordering::Relaxed) {
                    latencies.push(u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
            }
            Ok(latencies)
        }));
    }
    loadgen::measure_window(warmup, measure, &recording, &stop, window, tasks)
        .await
        .expect("load tasks")
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let database = format!("bench_e2e_{}", std::process::id());
    let dir = std::env::temp_dir().join(&database);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let max = o.connections.iter().copied().max().unwrap_or(1);
    let direct = rt.block_on(client(&o.upstream, max));
    rt.block_on(async {
        let docs: Vec<Document> = (0..o.documents)
            .map(|i| {
                doc! {
                    "_id": format!("pay_{i:06}"), "tenantId": "bank1", "amount": (i as i64) * 100,
                    "currency": "EUR", "status": "succeeded", "customerId": format!("cus_{:04}", i % 50),
                    "createdAt": bson::DateTime::now(), "deletedAt": bson::Bson::Null,
                }
            })
            .collect();
        direct
            .database(&database)
            .collection::<Document>("payments")
            .insert_many(docs)
            .await
            .expect("seed");
    });
    let (proxy, port) = start_tenantgate(&o.upstream, &database, &dir);
    let pid = proxy.id();
    let _guard = process::Guard(vec![proxy]);
    let through = rt.block_on(client(
        &format!(
            "mongodb://svc-bank1:bank1-secret@127.0.0.1:{port}/?authSource=admin&directConnection=true"
        ),
        max,
    ));
    let (warmup, measure) = (
        Duration::from_secs(o.warmup),
        Duration::from_secs(o.seconds),
    );
    println!(
        "\n| connections | path | find_one/s | p50 µs | p99 µs | p99.9 µs | added p50 µs | throughput vs direct | tenantgate CPU µs/command |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for &n in &o.connections {
        for _ in 0..o.rounds {
            let ds = rt.block_on(run(
                &direct,
                &database,
                true,
                n,
                o.documents,
                warmup,
                measure,
                |_| {},
            ));
            let d = rt.block_on(run(
                &direct,
                &database,
                false,
                n,
                o.documents,
                warmup,
                measure,
                |_| {},
            ));
            let mut cpu = ((0.0, 0.0), (0.0, 0.0));
            let p = rt.block_on(run(
                &through,
                &database,
                false,
                n,
                o.documents,
                warmup,
                measure,
                |s| {
                    if s {
                        cpu.0 = process::cpu_seconds(pid);
                    } else {
                        cpu.1 = process::cpu_seconds(pid);
                    }
                },
            ));
            assert!(
                d.commands > 0 && ds.commands > 0 && p.commands > 0,
                "no find_one completed: {} / {} / {}",
                d.commands,
                ds.commands,
                p.commands
            );
            println!(
                "| {n} | direct | {:.0} | {:.0} | {:.0} | {:.0} | | | |",
                d.throughput(),
                d.quantile_us(0.5),
                d.quantile_us(0.99),
                d.quantile_us(0.999)
            );
            println!(
                "| {n} | direct, scoped filter shape | {:.0} | {:.0} | {:.0} | {:.0} | | | |",
                ds.throughput(),
                ds.quantile_us(0.5),
                ds.quantile_us(0.99),
                ds.quantile_us(0.999)
            );
            println!(
                "| {n} | tenantgate | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} % | {:.1} |",
                p.throughput(),
                p.quantile_us(0.5),
                p.quantile_us(0.99),
                p.quantile_us(0.999),
                p.quantile_us(0.5) - d.quantile_us(0.5),
                100.0 * p.throughput() / d.throughput(),
                {
                    let (user, system) = process::per_command(cpu, p.commands);
                    user + system
                }
            );
        }
    }
    rt.block_on(async {
        let _ = direct.database(&database).drop().await;
        let _ = direct.database(&format!("{database}_tg")).drop().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}
