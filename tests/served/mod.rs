//! `tenantgate serve` as a child process, and raw wire clients to misbehave against it.
//!
//! Memory (VmRSS), open descriptors and signal handling belong to a process, so the reliability
//! tests (`proxy_misbehaviour.rs`, `proxy_shutdown.rs`) run the real binary rather than the
//! in-process `TestProxy`, and read `/proc/<pid>`. Raw clients speak OP_MSG over a plain socket
//! so they can do what no driver does: stop reading, trickle bytes, reset mid-command. Included
//! with `mod served;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bson::{Document, RawDocumentBuf, rawdoc};
use bytes::{Bytes, BytesMut};
use tenantgate_proxy::auth::scram::{Mechanism, ScramKeys, client_proof};
use tenantgate_wire::{Limits, Message, OpMsg, Payload, RawDoc, split_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A free loopback port (bound and released; the child binds it a moment later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running `tenantgate serve`, killed and reaped on drop. Its stderr goes to a file so a
/// test can count log lines (and a failure can be diagnosed).
pub struct Served {
    pub child: Child,
    pub addr: String,
    port: u16,
    pub log: PathBuf,
    dir: PathBuf,
}

impl Served {
    /// Writes `config` (whose `[proxy] listen` and `[api] listen` must be `127.0.0.1:0`, as in
    /// `common::two_bank_config`) with free ports, starts the debug binary with `extra` args
    /// and waits until the proxy accepts connections.
    pub fn start(config: &str, extra: &[&str]) -> Served {
        let port = free_port();
        let config = config
            .replacen(
                "[proxy]\nlisten = \"127.0.0.1:0\"",
                &format!("[proxy]\nlisten = \"127.0.0.1:{port}\""),
                1,
            )
            .replacen(
                "[api]\nlisten = \"127.0.0.1:0\"",
                &format!("[api]\nlisten = \"127.0.0.1:{}\"", free_port()),
                1,
            );
        assert!(
            config.contains(&format!("127.0.0.1:{port}")),
            "the config has a [proxy] listen line to replace"
        );
        let dir = std::env::temp_dir().join(crate::common::fresh_db_name("served"));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("tenantgate.toml");
        std::fs::write(&path, config).expect("config written");
        let log = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
            .args(["serve", "--config"])
            .arg(&path)
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("TENANTGATE_CONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("tenantgate starts");
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return Served {
                    child,
                    addr,
                    port,
                    log,
                    dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tenantgate exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("tenantgate did not listen on {addr} within 30 s");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `mongodb://user:password@addr/?authSource=admin&<options>`.
    pub fn uri(&self, user: &str, password: &str, options: &str) -> String {
        let mut uri = format!(
            "mongodb://{user}:{password}@{}/?authSource=admin",
            self.addr
        );
        if !options.is_empty() {
            uri.push('&');
            uri.push_str(options);
        }
        uri
    }

    /// Resident memory of the process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS of a live process")
    }

    /// Open file descriptors of the process (sockets included).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("/proc/<pid>/fd of a live process")
            .count()
    }

    /// Client connections the process holds open: its TCP sockets whose local port is the
    /// proxy's, other than the listener. Unlike [`Served::fds`] this does not count pooled
    /// upstream connections, which the pool legitimately keeps.
    pub fn client_sockets(&self) -> usize {
        let pid = self.pid();
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .expect("/proc/<pid>/fd of a live process")
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
                })
                .collect();
        let port = format!(":{:04X}", self.port);
        ["tcp", "tcp6"]
            .iter()
            .flat_map(|t| {
                std::fs::read_to_string(format!("/proc/{pid}/net/{t}"))
                    .unwrap_or_default()
                    .lines()
                    .skip(1)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // local_address, state (0A = LISTEN), inode
                f.len() > 9 && f[1].ends_with(&port) && f[3] != "0A" && inodes.contains(f[9])
            })
            .count()
    }

    /// Waits up to `within` for the proxy to hold `target` client connections or fewer;
    /// returns how many it still holds.
    pub async fn clients_settle(&self, target: usize, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            let n = self.client_sockets();
            if n <= target || started.elapsed() > within {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `within` for the descriptor count to fall to `target` or below; returns the
    /// last count seen.
    pub async fn fds_settle(&self, target: usize, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            let n = self.fds();
            if n <= target || started.elapsed() > within {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many lines of the log contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// The log, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- last lines of tenantgate's log ---\n{}",
                tail.join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SCRAM-SHA-256 keys by (user, salt, iterations). The proxy derives each principal's salt
/// once at start-up, so a thousand logins need one PBKDF2 on this side, not a thousand (which
/// would take minutes in a debug build).
static KEYS: Mutex<Option<KeyCache>> = Mutex::new(None);

/// (user, salt, iterations) → keys.
type KeyCache = HashMap<(String, Vec<u8>, u32), ScramKeys>;

fn keys(user: &str, password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
    let key = (user.to_owned(), salt.to_vec(), iterations);
    let mut cache = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| {
            ScramKeys::derive_with_salt(Mechanism::Sha256, user, password, salt, iterations)
        })
        .clone()
}

/// One raw wire connection.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    next_id: i32,
}

/// An encoded OP_MSG with `request_id`.
pub fn frame(request_id: i32, body: RawDocumentBuf) -> Bytes {
    Message::new(request_id, 0, Payload::Msg(OpMsg::new(RawDoc::from(body))))
        .to_bytes()
        .expect("the command encodes")
}

/// The body of an OP_MSG reply frame.
pub fn reply_body(frame: Bytes) -> Document {
    match Message::decode(frame, &Limits::default())
        .expect("the proxy's reply decodes")
        .payload
    {
        Payload::Msg(m) => m.body().to_document().expect("reply body"),
        other => panic!("expected an OP_MSG reply, got {other:?}"),
    }
}

impl Raw {
    /// Connects with `TCP_NODELAY`.
    pub async fn connect(addr: &str) -> std::io::Result<Raw> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Raw::from_stream(stream))
    }

    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw {
            stream,
            buf: BytesMut::new(),
            next_id: 1,
        }
    }

    /// Sends a command without waiting; returns its request id.
    pub async fn send(&mut self, body: RawDocumentBuf) -> std::io::Result<i32> {
        let id = self.next_id;
        self.next_id += 1;
        self.stream.write_all(&frame(id, body)).await?;
        Ok(id)
    }

    /// Reads one whole reply frame.
    pub async fn read_frame(&mut self) -> std::io::Result<Bytes> {
        loop {
            match split_frame(&mut self.buf, &Limits::default()) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
    }

    /// Sends a command and returns the reply body.
    pub async fn command(&mut self, body: RawDocumentBuf) -> std::io::Result<Document> {
        self.send(body).await?;
        Ok(reply_body(self.read_frame().await?))
    }

    /// `hello`, then SCRAM-SHA-256 as `user`; an error carries the refusal.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), String> {
        let io = |e: std::io::Error| e.to_string();
        let hello = self
            .command(rawdoc! { "hello": 1, "$db": "admin" })
            .await
            .map_err(io)?;
        if hello.get_f64("ok").ok() != Some(1.0) {
            return Err(format!("hello: {hello}"));
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64.encode(rand_bytes());
        let first_bare = format!("n={user},r={nonce}");
        let start = self
            .command(rawdoc! {
                "saslStart": 1, "mechanism": "SCRAM-SHA-256",
                "payload": binary(format!("n,,{first_bare}").as_bytes()),
                "options": { "skipEmptyExchange": true }, "$db": "admin",
            })
            .await
            .map_err(io)?;
        let server_first = payload_text(&start)?;
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|p| p.strip_prefix(k))
                .map(str::to_owned)
        };
        let server_nonce = attr("r=").ok_or("no nonce")?;
        let salt = b64
            .decode(attr("s=").ok_or("no salt")?)
            .map_err(|e| e.to_string())?;
        let iterations: u32 = attr("i=")
            .and_then(|i| i.parse().ok())
            .ok_or("no iteration count")?;
        let keys = keys(user, password, &salt, iterations);
        let (client_final, _) = client_proof(
            Mechanism::Sha256,
            &keys,
            &first_bare,
            &server_first,
            &server_nonce,
        );
        let fin = self
            .command(rawdoc! {
                "saslContinue": 1, "conversationId": 1,
                "payload": binary(client_final.as_bytes()), "$db": "admin",
            })
            .await
            .map_err(io)?;
        payload_text(&fin)?;
        if fin.get_bool("done").ok() != Some(true) {
            return Err(format!("SCRAM not done: {fin}"));
        }
        Ok(())
    }
}

fn rand_bytes() -> [u8; 18] {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut out = [0u8; 18];
    out[..8].copy_from_slice(&n.to_le_bytes());
    out[8..18].copy_from_slice(&t.to_le_bytes()[..10]);
    out
}

fn binary(bytes: &[u8]) -> bson::Binary {
    bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes: bytes.to_vec(),
    }
}

fn payload_text(reply: &Document) -> Result<String, String> {
    if reply.get_f64("ok").ok() != Some(1.0) {
        return Err(format!("refused: {reply}"));
    }
    let bytes = reply
        .get_binary_generic("payload")
        .map_err(|e| format!("no payload: {e}"))?;
    String::from_utf8(bytes.clone()).map_err(|e| e.to_string())
}

/// Median and 90th percentile of a set of latencies.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub median: Duration,
    pub p90: Duration,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "median {:.2} ms, p90 {:.2} ms",
            self.median.as_secs_f64() * 1e3,
            self.p90.as_secs_f64() * 1e3
        )
    }
}

/// `n` sequential `find_one`s by `_id` of `id` on `coll`, each checked, timed.
pub async fn measure(coll: &mongodb::Collection<Document>, id: &str, n: usize) -> Latency {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let found = tokio::time::timeout(
            Duration::from_secs(10),
            coll.find_one(bson::doc! { "_id": id }),
        )
        .await
        .expect("a well-behaved client's find_one answers within 10 s")
        .expect("a well-behaved client's find_one succeeds");
        samples.push(started.elapsed());
        assert_eq!(
            found.as_ref().and_then(|d| d.get_str("_id").ok()),
            Some(id),
            "the well-behaved client gets its own document"
        );
    }
    samples.sort();
    Latency {
        median: samples[n / 2],
        p90: samples[n * 9 / 10],
    }
}

/// The most the median may reach under misbehaviour: max(2× baseline, baseline + 2 ms).
pub fn bound(baseline: Latency) -> Duration {
    (baseline.median * 2).max(baseline.median + Duration::from_millis(2))
}

/// Up to three loaded windows, stopping at the first whose median keeps [`bound`] of
/// `baseline`; returns that one or the best seen. Other work on the machine comes in bursts, and
/// a proxy that really slows other tenants down breaks every window.
pub async fn loaded_windows<F, Fut>(baseline: Latency, mut window: F) -> Latency
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Latency>,
{
    let mut best: Option<Latency> = None;
    for _ in 0..3 {
        let loaded = window().await;
        if best.is_none_or(|b| loaded.median < b.median) {
            best = Some(loaded);
        }
        if loaded.median <= bound(baseline) {
            break;
        }
    }
    best.expect("at least one window")
}
