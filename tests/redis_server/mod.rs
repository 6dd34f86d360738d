//! A `redis-server` process owned by one test: started on a free loopback port without
//! persistence, killed (and restarted on the same port) when the test says so, and always
//! killed when dropped, so a failing test leaves no server behind.
//!
//! Include with `mod redis_server;`. Tests that stop Redis use their own server, never the
//! shared one of `REDIS_URL`, so they cannot disturb other tests.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer `PING` after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A free loopback port (bound and released; good enough for a test that binds it at once).
#[allow(dead_code)]
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a bound address").port()
}

/// A free port whose cluster bus port (`port + 10000`) is free too.
#[allow(dead_code)]
pub fn free_cluster_port() -> u16 {
    for _ in 0..200 {
        let port = free_port();
        if port <= 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair (port, port + 10000) on 127.0.0.1");
}

/// Whether `port` answers `PING` with `+PONG`.
fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisServer {
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// Arguments after `--port`, kept for [`RedisServer::restart`].
    args: Vec<String>,
    child: Option<Child>,
}

#[allow(dead_code)]
impl RedisServer {
    /// A standalone server without persistence on a free port.
    pub fn start() -> RedisServer {
        Self::start_on(free_port(), &[])
    }

    /// A server on `port` with `extra` arguments (after `--save '' --appendonly no`).
    pub fn start_on(port: u16, extra: &[String]) -> RedisServer {
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().cloned());
        let mut server = RedisServer {
            port,
            args,
            child: None,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt install redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        while !answers_ping(self.port) {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "redis-server on port {} does not answer PING",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but nothing is
    /// answered — a Redis that hangs rather than one that is gone.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`RedisServer::pause`]d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .expect("kill(1) is installed");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts the server again on the same port with the same arguments (empty: no persistence).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli -p <port> <args>` and returns its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL works on a stopped process too.
        self.kill();
    }
}

/// Runs `redis-cli -p <port> <args>` and returns its standard output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
