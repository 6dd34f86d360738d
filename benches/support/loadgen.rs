//! A closed-loop load generator speaking raw OP_MSG, used by `benches/proxy_overhead.rs`.
//!
//! Each connection sends one pre-encoded `find` by `_id`, waits for the whole reply, records
//! the round trip and sends the next. No driver sits in the loop, so the only costs are the
//! kernel's, the server's and (through tenantgate) the proxy's. Latencies are kept exactly (one
//! `u32` of nanoseconds per command) and sorted once for percentiles.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bson::{Document, rawdoc};
use bytes::{Bytes, BytesMut};
use tenantgate_wire::{Limits, Message, OpMsg, Payload, RawDoc, split_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connected client.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    limits: Limits,
}

impl Conn {
    /// Connects with `TCP_NODELAY`, as drivers do.
    pub async fn connect(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            limits: Limits::default(),
        })
    }

    /// Sends `frame` and reads one whole reply frame.
    pub async fn round_trip(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        self.stream.write_all(frame).await?;
        loop {
            match split_frame(&mut self.buf, &self.limits) {
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

    /// Runs a command body and returns the reply body.
    pub async fn command(&mut self, body: bson::RawDocumentBuf) -> std::io::Result<Document> {
        let msg = Message::new(1, 0, Payload::Msg(OpMsg::new(RawDoc::from(body))));
        let bytes = msg
            .to_bytes()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let reply = self.round_trip(&bytes).await?;
        let reply = Message::decode(reply, &self.limits)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        match reply.payload {
            Payload::Msg(m) => m
                .body()
                .to_document()
                .map_err(|e| std::io::Error::other(e.to_string())),
            _ => Err(std::io::Error::other("not an OP_MSG reply")),
        }
    }

    /// `hello`, then SCRAM-SHA-256 as `user`/`password` when given.
    pub async fn handshake(&mut self, login: Option<(&str, &str)>) -> std::io::Result<()> {
        let hello = self
            .command(rawdoc! { "hello": 1, "$db": "admin", "client": { "driver": { "name": "tenantgate-loadgen", "version": "1" } } })
            .await?;
        if hello.get_f64("ok").unwrap_or(0.0) != 1.0 {
            return Err(std::io::Error::other(format!("hello failed: {hello}")));
        }
        let Some((user, password)) = login else {
            return Ok(());
        };
        let uri = format!("mongodb://{user}:{password}@x/?authSource=admin");
        let creds = tenantgate_proxy::upstream::auth::parse(&uri)
            .ok_or_else(|| std::io::Error::other("bad credentials"))?;
        let mut login = tenantgate_proxy::upstream::auth::Login::new(creds);
        let mut next = Some(login.first());
        while let Some(cmd) = next {
            let reply = self.command(cmd).await?;
            next = login.step(&reply).map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// The `find` by `_id` each connection sends, with its own session id, as a driver would.
pub fn find_frame(connection: usize, database: &str) -> Bytes {
    let mut lsid = vec![0u8; 16];
    lsid[..8].copy_from_slice(&(connection as u64).to_le_bytes());
    let body = rawdoc! {
        "find": "payments",
        "filter": { "_id": bson::oid::ObjectId::from_bytes([1; 12]) },
        "limit": 1_i64, "singleBatch": true,
        "lsid": { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: lsid } },
        "$db": database,
    };
    Message::new(7, 0, Payload::Msg(OpMsg::new(RawDoc::from(body))))
        .to_bytes()
        .expect("encodes")
}

/// What one measured phase produced.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Commands completed in the measured window.
    pub commands: u64,
    /// The window.
    pub elapsed: Duration,
    /// Every latency in nanoseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Sample {
    /// Commands per second.
    pub fn throughput(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q`-quantile latency in microseconds.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        f64::from(self.latencies[i]) / 1_000.0
    }
}

/// Runs `connections` closed loops against `addr` for `warmup` (discarded) plus `measure`;
/// `window(true)` is called when measuring starts and `window(false)` when it ends (to sample
/// the servers' CPU over exactly the measured window).
pub async fn run(
    addr: &str,
    connections: usize,
    login: Option<(&str, &str)>,
    database: &str,
    warmup: Duration,
    measure: Duration,
    window: impl FnMut(bool),
) -> std::io::Result<Sample> {
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut c = Conn::connect(addr).await?;
        c.handshake(login).await?;
        conns.push(c);
    }
    let recording = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(connections);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let frame = find_frame(i, database);
        let (recording, stop) = (recording.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            check_first(&mut conn, &frame).await?;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                conn.round_trip(&frame).await?;
                if recording.load(Ordering::Relaxed) {
                    latencies.push(u32::try_from(started.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
            }
            Ok::<_, std::io::Error>(latencies)
        }));
    }
    measure_window(warmup, measure, &recording, &stop, window, tasks).await
}

/// Sends `frame` once and fails unless the reply is `ok: 1`: a refusal would make every later
/// number meaningless.
async fn check_first(conn: &mut Conn, frame: &[u8]) -> std::io::Result<()> {
    let first = conn.round_trip(frame).await?;
    if let Ok(Message {
        payload: Payload::Msg(m),
        ..
    }) = Message::decode(first, &Limits::default())
    {
        let body = m
            .body()
            .to_document()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if body.get_f64("ok").unwrap_or(0.0) != 1.0 {
            return Err(std::io::Error::other(format!("find refused: {body}")));
        }
    }
    Ok(())
}

/// Runs exactly `count` commands against `addr`, shared as evenly as possible over
/// `connections` closed loops (each connection's first command is checked), timing nothing, then
/// closes every connection. Returns the number of commands that completed.
pub async fn exact(
    addr: &str,
    connections: usize,
    login: Option<(&str, &str)>,
    database: &str,
    count: u64,
) -> std::io::Result<u64> {
    let connections = connections.max(1);
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        let mut c = Conn::connect(addr).await?;
        c.handshake(login).await?;
        conns.push(c);
    }
    let per = count / connections as u64;
    let extra = count % connections as u64;
    let mut tasks = Vec::with_capacity(connections);
    for (i, mut conn) in conns.into_iter().enumerate() {
        let share = per + u64::from((i as u64) < extra);
        let frame = find_frame(i, database);
        tasks.push(tokio::spawn(async move {
            if share == 0 {
                return Ok(0);
            }
            check_first(&mut conn, &frame).await?;
            for _ in 1..share {
                conn.round_trip(&frame).await?;
            }
            Ok::<_, std::io::Error>(share)
        }));
    }
    let mut done = 0;
    for t in tasks {
        done += t
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
    }
    Ok(done)
}

/// The timing shared by every load loop: lets `tasks` warm up, records for `measure` (calling
/// `window` at both ends), stops them and merges their latencies.
pub async fn measure_window(
    warmup: Duration,
    measure: Duration,
    recording: &AtomicBool,
    stop: &AtomicBool,
    mut window: impl FnMut(bool),
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<Vec<u32>>>>,
) -> std::io::Result<Sample> {
    tokio::time::sleep(warmup).await;
    window(true);
    recording.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(measure).await;
    recording.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    window(false);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        let mut l = t
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        latencies.append(&mut l);
    }
    latencies.sort_unstable();
    Ok(Sample {
        commands: latencies.len() as u64,
        elapsed,
        latencies,
    })
}
