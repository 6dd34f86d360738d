//! What tenantgate adds to one command, isolated from the database.
//!
//! One run starts a minimal MongoDB-wire responder (`support/responder.rs`, in a child process
//! of this binary) and the release `tenantgate serve` in front of it, then drives closed loops
//! of `find` by `_id` over raw OP_MSG (`support/loadgen.rs`) at each connection count, **direct
//! to the responder** and **through tenantgate**, alternating, and prints throughput, latency
//! percentiles, the added latency and tenantgate's CPU time per proxied command (from
//! `/proc/<pid>/stat` over exactly the measured window). A third path goes **through a byte
//! relay** (`support/relay.rs`: `copy_bidirectional`, no parsing): the floor any TCP proxy pays
//! on this machine, so tenantgate's own share of the overhead can be read off.
//!
//! ```text
//! cargo bench --bench proxy_overhead                               # 1 and 64 connections, 10 s
//! cargo bench --bench proxy_overhead -- --connections 1,16,64 --seconds 10 --rounds 3
//! cargo bench --bench proxy_overhead -- --connections "" --idle 1000 --soak 600   # memory
//! ```
//!
//! Everything shares the machine's cores (load generator, responder, proxy); the figures to
//! compare are the ratios within one run.
//!
//! **Count mode** runs exactly N commands over C connections through one path (`tenantgate` or
//! `relay`), times nothing, then stops the server with SIGTERM. With `TENANTGATE_BENCH_WRAP`
//! set (`support/process.rs`) the server runs under a wrapper such as callgrind, which is how
//! `scripts/bench-proxy-instructions` counts instructions per proxied command, a figure that
//! the machine's load cannot move:
//!
//! ```text
//! proxy_overhead --count 2000 --connections 1 --path tenantgate     # the bench binary itself
//! ```

#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/process.rs"]
mod process;
#[path = "support/relay.rs"]
mod relay;
#[path = "support/responder.rs"]
mod responder;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Options from the command line.
struct Options {
    connections: Vec<usize>,
    seconds: u64,
    warmup: u64,
    rounds: usize,
    idle: usize,
    soak: u64,
    /// Count mode: exactly this many commands, nothing timed.
    count: Option<u64>,
    /// Count mode: `tenantgate` or `relay`.
    path: String,
}

fn options() -> Options {
    let mut o = Options {
        connections: vec![1, 64],
        seconds: 10,
        warmup: 2,
        rounds: 1,
        idle: 0,
        soak: 0,
        count: None,
        path: "tenantgate".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--connections" => {
                o.connections = value
                    .split(',')
                    .filter(|c| !c.trim().is_empty())
                    .map(|c| c.trim().parse().expect("--connections: numbers"))
                    .collect();
                i += 1;
            }
            "--seconds" => {
                o.seconds = value.parse().expect("--seconds: a number");
                i += 1;
            }
            "--warmup" => {
                o.warmup = value.parse().expect("--warmup: a number");
                i += 1;
            }
            "--rounds" => {
                o.rounds = value.parse().expect("--rounds: a number");
                i += 1;
            }
            "--idle" => {
                o.idle = value.parse().expect("--idle: a number");
                i += 1;
            }
            "--soak" => {
                o.soak = value.parse().expect("--soak: seconds");
                i += 1;
            }
            "--count" => {
                o.count = Some(value.parse().expect("--count: a number"));
                i += 1;
            }
            "--path" => {
                assert!(
                    value == "tenantgate" || value == "relay",
                    "--path: tenantgate or relay"
                );
                o.path = value;
                i += 1;
            }
            // `cargo bench` passes `--bench`; filters are meaningless here.
            _ => {}
        }
        i += 1;
    }
    // `cargo test --all-targets` (scripts/test) runs this binary without `--bench`: a smoke run
    // of a second per path then checks the benchmark still works without costing the suite
    // minutes. `cargo bench` passes `--bench` and gets the real run.
    if o.count.is_none() && !args.iter().any(|a| a == "--bench") {
        o.connections = vec![1, 4];
        o.seconds = 1;
        o.warmup = 0;
        o.rounds = 1;
        o.idle = o.idle.min(20);
        o.soak = 0;
    }
    o
}

/// Resident set size of `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Opens `n` authenticated idle connections and reports tenantgate's RSS before and after.
async fn idle(through: &str, n: usize, pid: u32) {
    let before = rss_mib(pid);
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = loadgen::Conn::connect(through).await.expect("connect");
        c.handshake(Some(("svc-bank1", "bank1-secret")))
            .await
            .expect("login");
        // One command each, so every connection has run the whole path once.
        c.round_trip(&loadgen::find_frame(conns.len(), "payments"))
            .await
            .expect("find");
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_mib(pid);
    println!(
        "\nidle connections: {n}; tenantgate RSS {before:.1} MiB before, {after:.1} MiB with them open \
         ({:.1} KiB per connection)",
        (after - before) * 1024.0 / n as f64
    );
    drop(conns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("after closing them: {:.1} MiB", rss_mib(pid));
}

/// Load for `seconds` at 64 connections in 30-second runs (new connections each run), printing
/// tenantgate's RSS after each.
async fn soak(through: &str, seconds: u64, pid: u32) {
    println!("\n| minute | commands/s | p99 µs | tenantgate RSS MiB |");
    println!("|---:|---:|---:|---:|");
    println!("| 0 | | | {:.1} |", rss_mib(pid));
    let started = std::time::Instant::now();
    while started.elapsed().as_secs() < seconds {
        let s = loadgen::run(
            through,
            64,
            Some(("svc-bank1", "bank1-secret")),
            "payments",
            Duration::from_secs(1),
            Duration::from_secs(29),
            |_| {},
        )
        .await
        .expect("soak run");
        println!(
            "| {:.1} | {:.0} | {:.1} | {:.1} |",
            started.elapsed().as_secs_f64() / 60.0,
            s.throughput(),
            s.quantile_us(0.99),
            rss_mib(pid)
        );
    }
}

/// Starts this binary again with `args` (the responder or the relay), through the
/// `TENANTGATE_BENCH_WRAP` wrapper when `wrap`, and reads the port it prints
/// (`listening <port>`).
fn start_self(args: &[&str], what: &str, wrap: bool) -> (Child, u16) {
    let exe = std::env::current_exe().expect("own path");
    let mut command = if wrap {
        process::wrapped(&exe)
    } else {
        Command::new(&exe)
    };
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the {what} starts: {e}"));
    let stdout = child.stdout.take().expect("child stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("the {what} prints its port: {e}"));
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the {what} printed no port: {line:?}"));
    (child, port)
}

fn start_responder() -> (Child, u16) {
    start_self(&["--responder"], "responder", false)
}

fn start_relay(upstream_port: u16, wrap: bool) -> (Child, u16) {
    start_self(&["--relay", &upstream_port.to_string()], "relay", wrap)
}

fn start_tenantgate(upstream_port: u16, dir: &std::path::Path) -> (Child, u16) {
    let proxy_port = process::free_port();
    let api_port = process::free_port();
    let config = format!(
        r#"
[upstream]
uri = "mongodb://127.0.0.1:{upstream_port}/"
pool_size = 128

[proxy]
listen = "127.0.0.1:{proxy_port}"
max_connections = 10000

[api]
listen = "127.0.0.1:{api_port}"

[policy]
databases = ["payments"]

[[principals]]
username = "svc-bank1"
password = "bank1-secret"
tenant = "bank1"
"#
    );
    (process::serve(dir, &config, proxy_port), proxy_port)
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| connections | path | commands/s | p50 µs | p99 µs | p99.9 µs | added p50 µs | throughput vs direct | server CPU µs/command: user + system |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | direct | {:.0} | {:.1} | {:.1} | {:.1} | | | responder {:.1} + {:.1} |",
            r.connections,
            r.direct.throughput(),
            r.direct.quantile_us(0.5),
            r.direct.quantile_us(0.99),
            r.direct.quantile_us(0.999),
            r.responder_cpu_us.0,
            r.responder_cpu_us.1,
        );
        println!(
            "| {} | byte relay | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} % | relay {:.1} + {:.1} |",
            r.connections,
            r.relayed.throughput(),
            r.relayed.quantile_us(0.5),
            r.relayed.quantile_us(0.99),
            r.relayed.quantile_us(0.999),
            r.relayed.quantile_us(0.5) - r.direct.quantile_us(0.5),
            100.0 * r.relayed.throughput() / r.direct.throughput(),
            r.relay_cpu_us.0,
            r.relay_cpu_us.1,
        );
        println!(
            "| {} | tenantgate | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} % | tenantgate {:.1} + {:.1} |",
            r.connections,
            r.proxied.throughput(),
            r.proxied.quantile_us(0.5),
            r.proxied.quantile_us(0.99),
            r.proxied.quantile_us(0.999),
            r.proxied.quantile_us(0.5) - r.direct.quantile_us(0.5),
            100.0 * r.proxied.throughput() / r.direct.throughput(),
            r.proxy_cpu_us.0,
            r.proxy_cpu_us.1,
        );
    }
}

struct Row {
    connections: usize,
    direct: loadgen::Sample,
    relayed: loadgen::Sample,
    proxied: loadgen::Sample,
    relay_cpu_us: (f64, f64),
    proxy_cpu_us: (f64, f64),
    responder_cpu_us: (f64, f64),
}

/// Runs exactly `count` commands over the first of `--connections` through `--path`, timing
/// nothing, then stops that server with SIGTERM and waits for it to exit (a wrapper such as
/// callgrind writes its output then). Only the server on the path is wrapped; the responder
/// and this load generator never are.
fn count_mode(o: &Options, count: u64) {
    let connections = o.connections.first().copied().unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("tenantgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (responder, upstream_port) = start_responder();
    let _responder = process::Guard(vec![responder]);
    let (mut server, port, login) = if o.path == "relay" {
        let (relay, port) = start_relay(upstream_port, true);
        (relay, port, None)
    } else {
        let (proxy, port) = start_tenantgate(upstream_port, &dir);
        (proxy, port, Some(("svc-bank1", "bank1-secret")))
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let done = rt.block_on(loadgen::exact(
        &format!("127.0.0.1:{port}"),
        connections,
        login,
        "payments",
        count,
    ));
    // Stopped whatever happened, so a failed run does not leave a valgrind behind.
    let exited = process::stop(&mut server, Duration::from_secs(600));
    let _ = std::fs::remove_dir_all(&dir);
    let done = done.unwrap_or_else(|e| panic!("{} run: {e}", o.path));
    assert_eq!(done, count, "every command completed");
    assert!(exited, "the {} exited on SIGTERM", o.path);
    println!(
        "{count} commands over {connections} connections through {}; it exited on SIGTERM",
        o.path
    );
}

fn main() {
    if std::env::args().any(|a| a == "--responder") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            println!("listening {}", listener.local_addr().expect("addr").port());
            responder::serve(listener).await;
        });
        return;
    }
    if let Some(i) = std::env::args().position(|a| a == "--relay") {
        let upstream_port = std::env::args().nth(i + 1).expect("--relay PORT");
        // The same runtime shape as `tenantgate serve` (one worker per core).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            println!("listening {}", listener.local_addr().expect("addr").port());
            // SIGTERM ends it normally, so a wrapper (callgrind) writes its output.
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                () = relay::serve(listener, format!("127.0.0.1:{upstream_port}")) => {}
                _ = term.recv() => {}
            }
        });
        return;
    }
    let o = options();
    if let Some(count) = o.count {
        count_mode(&o, count);
        return;
    }
    let dir = std::env::temp_dir().join(format!("tenantgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (responder, upstream_port) = start_responder();
    let responder_pid = responder.id();
    let (proxy, proxy_port) = start_tenantgate(upstream_port, &dir);
    let proxy_pid = proxy.id();
    let (relay, relay_port) = start_relay(upstream_port, false);
    let relay_pid = relay.id();
    let _guard = process::Guard(vec![proxy, relay, responder]);
    let direct = format!("127.0.0.1:{upstream_port}");
    let relayed_addr = format!("127.0.0.1:{relay_port}");
    let through = format!("127.0.0.1:{proxy_port}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (warmup, measure) = (
        Duration::from_secs(o.warmup),
        Duration::from_secs(o.seconds),
    );
    let mut rows = Vec::new();
    for &n in &o.connections {
        for round in 0..o.rounds {
            // One measured phase against `addr`, with `pid`'s CPU over exactly its window.
            let phase = |addr: &str, login: Option<(&str, &str)>, pid: u32, what: &str| {
                let mut cpu = ((0.0, 0.0), (0.0, 0.0));
                let sample = rt
                    .block_on(loadgen::run(
                        addr,
                        n,
                        login,
                        "payments",
                        warmup,
                        measure,
                        |start| {
                            if start {
                                cpu.0 = process::cpu_seconds(pid);
                            } else {
                                cpu.1 = process::cpu_seconds(pid);
                            }
                        },
                    ))
                    .unwrap_or_else(|e| panic!("{what} run: {e}"));
                let per_command = process::per_command(cpu, sample.commands);
                (sample, per_command)
            };
            let (d, responder_cpu_us) = phase(&direct, None, responder_pid, "direct");
            let (r, relay_cpu_us) = phase(&relayed_addr, None, relay_pid, "relayed");
            let (p, proxy_cpu_us) = phase(
                &through,
                Some(("svc-bank1", "bank1-secret")),
                proxy_pid,
                "proxied",
            );
            assert!(
                d.commands > 0 && r.commands > 0 && p.commands > 0,
                "no command completed: direct {}, relayed {}, through tenantgate {}",
                d.commands,
                r.commands,
                p.commands
            );
            eprintln!(
                "connections {n} round {}: direct {:.0}/s, byte relay {:.0}/s, through tenantgate {:.0}/s",
                round + 1,
                d.throughput(),
                r.throughput(),
                p.throughput()
            );
            rows.push(Row {
                connections: n,
                direct: d,
                relayed: r,
                proxied: p,
                relay_cpu_us,
                proxy_cpu_us,
                responder_cpu_us,
            });
        }
    }
    if rows.is_empty() {
        println!();
    } else {
        print_table(&rows);
    }
    if o.idle > 0 {
        rt.block_on(idle(&through, o.idle, proxy_pid));
    }
    if o.soak > 0 {
        rt.block_on(soak(&through, o.soak, proxy_pid));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
