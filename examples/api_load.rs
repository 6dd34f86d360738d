//! A small HTTP load generator for the API: N concurrent keep-alive connections send one
//! request each in a loop for a fixed time; prints throughput, latency percentiles and the
//! status codes seen.
//!
//! ```text
//! cargo run --release --example api_load -- \
//!     --url http://127.0.0.1:8080/v1/tenant --connections 32 --seconds 10 \
//!     --header 'X-Tenant-ID: bank1'
//! ```
//!
//! `scripts/bench-api` runs it against tenantgate with limiting and metering on and off.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

struct Args {
    url: String,
    connections: usize,
    seconds: u64,
    warmup: u64,
    headers: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        connections: 32,
        seconds: 10,
        warmup: 2,
        headers: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--url" => args.url = value()?,
            "--connections" | "-c" => {
                args.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--seconds" | "-d" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--warmup" => args.warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--header" | "-H" => {
                let h = value()?;
                let (k, v) = h.split_once(':').ok_or("--header needs 'Name: value'")?;
                args.headers
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(args)
}

async fn worker(
    client: reqwest::Client,
    args: std::sync::Arc<Args>,
    until: Instant,
    record_after: Instant,
) -> (Vec<u32>, BTreeMap<u16, u64>) {
    let mut latencies = Vec::with_capacity(100_000);
    let mut statuses = BTreeMap::new();
    while Instant::now() < until {
        let mut request = client.get(&args.url);
        for (k, v) in &args.headers {
            request = request.header(k, v);
        }
        let started = Instant::now();
        let status = match request.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        };
        if started >= record_after {
            latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            *statuses.entry(status).or_default() += 1;
        }
    }
    (latencies, statuses)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            eprintln!("api_load: {e}");
            std::process::exit(2);
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| {
            eprintln!("api_load: {e}");
            std::process::exit(2)
        });
    let start = Instant::now();
    let record_after = start + Duration::from_secs(args.warmup);
    let until = record_after + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(worker(client.clone(), args.clone(), until, record_after)))
        .collect();
    let mut all = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for t in tasks {
        if let Ok((l, s)) = t.await {
            all.extend(l);
            for (k, v) in s {
                *statuses.entry(k).or_default() += v;
            }
        }
    }
    all.sort_unstable();
    let n = all.len();
    println!(
        "requests={n} rps={:.0} p50_us={} p99_us={} p999_us={} statuses={statuses:?}",
        n as f64 / args.seconds as f64,
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        percentile(&all, 99.9),
    );
}
