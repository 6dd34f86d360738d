//! Processes the load benchmarks start and watch: free ports, `tenantgate serve` from a config,
//! a guard that stops children, and CPU time read from `/proc`.
//!
//! `TENANTGATE_BENCH_WRAP` (e.g. `valgrind --tool=callgrind --callgrind-out-file=F`, split on
//! whitespace) starts the server under test through a wrapper, so `scripts/bench-proxy-instructions`
//! can count the instructions it executes; [`stop`] then ends it with SIGTERM so the wrapper
//! writes its output.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// (user, system) CPU of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`, which may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after `) state`.
    let hz = clock_ticks();
    (ticks(11) as f64 / hz, ticks(12) as f64 / hz)
}

/// (user, system) µs per command between two [`cpu_seconds`] samples.
pub fn per_command(cpu: ((f64, f64), (f64, f64)), commands: u64) -> (f64, f64) {
    let n = commands.max(1) as f64;
    (
        ((cpu.1).0 - (cpu.0).0) * 1e6 / n,
        ((cpu.1).1 - (cpu.0).1) * 1e6 / n,
    )
}

/// Kills and reaps its children when dropped.
pub struct Guard(pub Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The wrapper from `TENANTGATE_BENCH_WRAP`, split on whitespace; empty when unset.
pub fn wrapper() -> Vec<String> {
    std::env::var("TENANTGATE_BENCH_WRAP")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// A command running `program`, through the [`wrapper`] when one is set.
pub fn wrapped(program: &std::path::Path) -> Command {
    let wrap = wrapper();
    match wrap.split_first() {
        None => Command::new(program),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
    }
}

/// How long to wait for a server to listen: valgrind needs tens of seconds to start one (and
/// `tenantgate serve` derives its SCRAM keys at start-up, 15,000 PBKDF2-SHA-256 and 10,000
/// PBKDF2-SHA-1 rounds per principal, under it).
pub fn start_timeout() -> Duration {
    if wrapper().is_empty() {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(180)
    }
}

/// Asks `child` to exit with SIGTERM (`tenantgate serve` drains and exits; a wrapper such as
/// callgrind then writes its output) and waits up to `timeout` for it, killing it after that.
/// Returns whether it exited on its own.
pub fn stop(child: &mut Child, timeout: Duration) -> bool {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

/// Writes `config` to `dir/tenantgate.toml`, starts the release `tenantgate serve` on it (through
/// the [`wrapper`] when one is set) and waits until the proxy listens on `proxy_port`.
pub fn serve(dir: &std::path::Path, config: &str, proxy_port: u16) -> Child {
    let path = dir.join("tenantgate.toml");
    std::fs::write(&path, config).expect("config written");
    let mut child = wrapped(std::path::Path::new(env!("CARGO_BIN_EXE_tenantgate")))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("tenantgate starts");
    let started = std::time::Instant::now();
    while started.elapsed() < start_timeout() {
        if std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tenantgate did not listen on {proxy_port}");
}
