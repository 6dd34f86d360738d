//! Processes the load benchmarks start and watch: free ports, `tenantgate serve` from a config,
//! a guard that stops children, and CPU time read from `/proc`.
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

/// Writes `config` to `dir/tenantgate.toml`, starts the release `tenantgate serve` on it and
/// waits until the proxy listens on `proxy_port`.
pub fn serve(dir: &std::path::Path, config: &str, proxy_port: u16) -> Child {
    let path = dir.join("tenantgate.toml");
    std::fs::write(&path, config).expect("config written");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("tenantgate starts");
    for _ in 0..400 {
        if std::net::TcpStream::connect(("127.0.0.1", proxy_port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("tenantgate did not listen on {proxy_port}");
}
