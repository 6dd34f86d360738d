//! The upstream MongoDB: a pool of connections the proxy opens with its own identity and
//! multiplexes every client over.
//!
//! A pooled connection carries one request at a time (MongoDB answers in order on a
//! connection), so a checked-out connection is exclusively the caller's until the reply
//! arrives. Connections that fail or time out are dropped, never returned; the pool re-opens
//! them on demand, which is also how it recovers after an upstream restart.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bson::{RawDocumentBuf, rawdoc};
use bytes::Bytes;

/// Replies above this size release the connection's read buffer afterwards (see
/// `send_and_receive`); smaller ones reuse it, which is the common, fast case.
const LARGE_FRAME: usize = 1 << 20;
use futures::{SinkExt, StreamExt};
use std::sync::Mutex;
use tenantgate_wire::codec::FrameCodec;
use tenantgate_wire::{Limits, Message, OpMsg, Payload, RawDoc};
use tokio::net::TcpStream;

use tokio::sync::Semaphore;
use tokio_util::codec::Framed;

use crate::config::UpstreamConfig;
use crate::error::ProxyError;

pub mod auth;

/// What the upstream said about itself at start-up.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    /// Its `maxWireVersion`.
    pub max_wire_version: i32,
    /// Its `minWireVersion`.
    pub min_wire_version: i32,
    /// A replica set member or mongos: sessions, retryable writes and transactions work.
    pub supports_transactions: bool,
    /// Its `logicalSessionTimeoutMinutes`, if it has sessions.
    pub session_timeout_minutes: Option<i32>,
}

/// Why one upstream round trip failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connecting, writing or reading failed.
    #[error("upstream i/o: {0}")]
    Io(String),
    /// No reply within the configured timeout.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream sent something that is not a valid reply.
    #[error("upstream protocol: {0}")]
    Protocol(String),
}

/// A byte stream to the upstream: plain TCP or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// A pooled connection and its timeout timer.
struct Conn {
    io: Framed<Box<dyn Io>, FrameCodec>,
    deadline: Deadline,
}

/// A per-connection timeout that does not re-register a timer for every command: the timer is
/// re-armed only when a deadline must come earlier than the armed one, and one that fires
/// early is re-armed to the real deadline. (A fresh `tokio::time::timeout` per round trip was
/// measurable per command in benches/proxy_overhead.rs.)
struct Deadline {
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    armed: tokio::time::Instant,
}

impl Deadline {
    fn new(timeout: Duration) -> Deadline {
        let armed = tokio::time::Instant::now() + timeout;
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }

    /// `fut`'s output, or `None` when `timeout` passes first.
    async fn run<F: std::future::Future>(
        &mut self,
        timeout: Duration,
        fut: F,
    ) -> Option<F::Output> {
        let deadline = tokio::time::Instant::now() + timeout;
        if deadline < self.armed {
            self.timer.as_mut().reset(deadline);
            self.armed = deadline;
        }
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    self.timer.as_mut().reset(deadline);
                    self.armed = deadline;
                }
            }
        }
    }
}

/// The pool.
pub struct Upstream {
    addr: String,
    /// Idle connections. A plain mutex: it is held for a push or a pop, never across an await.
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    pool_size: usize,
    timeout: Duration,
    next_id: AtomicI32,
    limits: Limits,
    credentials: Option<auth::UpstreamCredentials>,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    /// What the upstream reported at start-up.
    pub info: UpstreamInfo,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The first `host:port` of a `mongodb://` URI (credentials and options removed).
pub fn first_host(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("mongodb://")?;
    let hosts = rest.split(['/', '?']).next()?;
    let hosts = hosts.rsplit_once('@').map_or(hosts, |(_, h)| h);
    let host = hosts.split(',').next()?.trim();
    if host.is_empty() {
        return None;
    }
    Some(if host.contains(':') && !host.ends_with(']') {
        host.to_owned()
    } else {
        format!("{host}:27017")
    })
}

impl Upstream {
    /// Connects, asks the upstream `hello`, and keeps that connection in the pool.
    pub async fn connect(config: &UpstreamConfig) -> Result<Arc<Upstream>, ProxyError> {
        let addr = first_host(&config.uri).ok_or_else(|| ProxyError::Upstream {
            addr: config.uri.clone(),
            reason: "no host in the URI".into(),
        })?;
        let err = |reason: String| ProxyError::Upstream {
            addr: addr.clone(),
            reason,
        };
        let mut up = Upstream {
            addr: addr.clone(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(config.pool_size),
            pool_size: config.pool_size,
            timeout: Duration::from_millis(config.timeout_ms),
            next_id: AtomicI32::new(1),
            // Replies come from the database this proxy was configured with; their elements
            // are read through bounds-checked accessors and passed on to the client's driver,
            // which validates them. Walking every element of every reply was the largest single
            // cost of a proxied command (docs/benchmarks.md).
            limits: Limits {
                validate_documents: false,
                ..Limits::default()
            },
            credentials: auth::parse(&config.uri),
            tls: tls_connector(&config.uri, &addr).map_err(err)?,
            info: UpstreamInfo {
                max_wire_version: 0,
                min_wire_version: 0,
                supports_transactions: false,
                session_timeout_minutes: None,
            },
        };
        let hello = up
            .command(rawdoc! { "hello": 1, "$db": "admin" })
            .await
            .map_err(|e| err(format!("unreachable or not MongoDB: {e}")))?;
        let get_i32 = |k: &str| hello.get_i32(k).ok();
        up.info = UpstreamInfo {
            max_wire_version: get_i32("maxWireVersion").unwrap_or(0),
            min_wire_version: get_i32("minWireVersion").unwrap_or(0),
            supports_transactions: hello.get_str("setName").is_ok()
                || hello.get_str("msg").ok() == Some("isdbgrid"),
            session_timeout_minutes: get_i32("logicalSessionTimeoutMinutes"),
        };
        if up.info.max_wire_version < 13 {
            return Err(err(format!(
                "maxWireVersion {} is older than MongoDB 5.0 (13)",
                up.info.max_wire_version
            )));
        }
        Ok(Arc::new(up))
    }

    /// `(idle, busy)` pooled connections, for metrics.
    pub fn pool_state(&self) -> (usize, usize) {
        let idle = self.idle.try_lock().map(|v| v.len()).unwrap_or(0);
        (
            idle,
            self.pool_size
                .saturating_sub(self.permits.available_permits()),
        )
    }

    /// The upstream's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn idle_conns(&self) -> std::sync::MutexGuard<'_, Vec<Conn>> {
        // A panic while holding it cannot leave the Vec inconsistent: keep using it.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_request_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    async fn checkout(&self) -> Result<Conn, UpstreamError> {
        if let Some(c) = self.idle_conns().pop() {
            return Ok(c);
        }
        let stream = tokio::time::timeout(self.timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::Io(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Io> = match &self.tls {
            None => Box::new(stream),
            Some((connector, name)) => Box::new(
                tokio::time::timeout(self.timeout, connector.connect(name.clone(), stream))
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
                    .map_err(|e| UpstreamError::Io(format!("TLS: {e}")))?,
            ),
        };
        let mut conn = Conn {
            io: Framed::new(stream, FrameCodec::new(self.limits)),
            deadline: Deadline::new(self.timeout),
        };
        if let Some(creds) = &self.credentials {
            let mut login = auth::Login::new(creds.clone());
            let mut next = Some(login.first());
            while let Some(cmd) = next {
                let reply = tokio::time::timeout(self.timeout, self.exchange(&mut conn, cmd))
                    .await
                    .map_err(|_| UpstreamError::Timeout)??;
                next = login.step(&reply).map_err(UpstreamError::Protocol)?;
            }
        }
        Ok(conn)
    }

    /// One command on a connection that is not yet in the pool (the login).
    async fn exchange(
        &self,
        conn: &mut Conn,
        body: RawDocumentBuf,
    ) -> Result<bson::Document, UpstreamError> {
        let msg = Message::new(
            self.next_request_id(),
            0,
            Payload::Msg(OpMsg::new(RawDoc::from(body))),
        );
        reply_document(self.send_and_receive(conn, msg).await?)
    }

    /// Writes `msg` and reads the reply to it, within the timeout.
    async fn send_and_receive(
        &self,
        conn: &mut Conn,
        msg: Message,
    ) -> Result<Message, UpstreamError> {
        let id = msg.request_id;
        let bytes = msg
            .to_bytes()
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let Conn { io, deadline } = conn;
        let exchange = async {
            io.send(bytes)
                .await
                .map_err(|e| UpstreamError::Io(e.to_string()))?;
            io.next()
                .await
                .ok_or_else(|| UpstreamError::Io("connection closed".into()))?
                .map_err(|e| UpstreamError::Protocol(e.to_string()))
        };
        let frame: Bytes = deadline
            .run(self.timeout, exchange)
            .await
            .ok_or(UpstreamError::Timeout)??;
        // The frame was split off the connection's read buffer and shares its allocation: left
        // alone, a pooled connection that once carried a large reply would pin that much memory
        // (up to maxMessageSizeBytes each) for as long as it stays in the pool.
        if frame.len() > LARGE_FRAME && io.read_buffer().is_empty() {
            *io.read_buffer_mut() = bytes::BytesMut::new();
        }
        let reply = Message::decode(frame, &self.limits)
            .and_then(|m| m.decompressed(&self.limits))
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?
            .0;
        if reply.response_to != id {
            return Err(UpstreamError::Protocol(format!(
                "reply to {} where {id} was expected",
                reply.response_to
            )));
        }
        Ok(reply)
    }

    /// Sends `msg` (its request id replaced) and returns the reply. The message must expect a
    /// reply (no `moreToCome`).
    pub async fn round_trip(&self, mut msg: Message) -> Result<Message, UpstreamError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| UpstreamError::Io("pool closed".into()))?;
        let mut conn = self.checkout().await?;
        msg.request_id = self.next_request_id();
        msg.response_to = 0;
        match self.send_and_receive(&mut conn, msg).await {
            Ok(reply) => {
                self.idle_conns().push(conn);
                Ok(reply)
            }
            Err(e) => {
                // A failed connection usually means the upstream restarted or the network
                // broke: the idle ones are as dead, so drop them all and reconnect on demand
                // instead of failing one request per stale connection.
                if matches!(e, UpstreamError::Io(_) | UpstreamError::Timeout) {
                    self.idle_conns().clear();
                }
                Err(e)
            }
        }
    }

    /// Sends a `moreToCome` message, which gets no reply.
    pub async fn send_only(&self, mut msg: Message) -> Result<(), UpstreamError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| UpstreamError::Io("pool closed".into()))?;
        let mut conn = self.checkout().await?;
        msg.request_id = self.next_request_id();
        let bytes = msg
            .to_bytes()
            .map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let Conn { io, deadline } = &mut conn;
        deadline
            .run(self.timeout, io.send(bytes))
            .await
            .ok_or(UpstreamError::Timeout)?
            .map_err(|e| UpstreamError::Io(e.to_string()))?;
        self.idle_conns().push(conn);
        Ok(())
    }

    /// Runs one command body (with `$db`) and returns the reply body.
    pub async fn command(&self, body: RawDocumentBuf) -> Result<bson::Document, UpstreamError> {
        let body = RawDoc::from_buf(body)
            .map_err(|_| UpstreamError::Protocol("invalid command".into()))?;
        reply_document(
            self.round_trip(Message::new(0, 0, Payload::Msg(OpMsg::new(body))))
                .await?,
        )
    }
}

/// The body of an OP_MSG reply, decoded.
fn reply_document(reply: Message) -> Result<bson::Document, UpstreamError> {
    match reply.payload {
        Payload::Msg(m) => m
            .body()
            .to_document()
            .map_err(|e| UpstreamError::Protocol(e.to_string())),
        _ => Err(UpstreamError::Protocol("expected OP_MSG".into())),
    }
}

/// A URI option (`name=value` in the query string), case-insensitively.
fn uri_option(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.eq_ignore_ascii_case(name).then(|| v.to_owned())
    })
}

/// TLS to the upstream when the URI asks for it (`tls=true` or `ssl=true`), verifying the
/// server against `tlsCAFile` or the public web roots; `tlsAllowInvalidCertificates` is not
/// supported (it would disable verification).
fn tls_connector(
    uri: &str,
    addr: &str,
) -> Result<
    Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    String,
> {
    let on = ["tls", "ssl"]
        .iter()
        .any(|k| uri_option(uri, k).is_some_and(|v| v == "true"));
    if !on {
        return Ok(None);
    }
    if uri_option(uri, "tlsAllowInvalidCertificates").is_some_and(|v| v == "true") {
        return Err(
            "tlsAllowInvalidCertificates=true is refused: the proxy always verifies the upstream"
                .into(),
        );
    }
    let mut roots = rustls::RootCertStore::empty();
    match uri_option(uri, "tlsCAFile") {
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
                .map_err(|e| format!("tlsCAFile {path}: {e}"))?;
            for cert in certs {
                roots
                    .add(cert.map_err(|e| format!("tlsCAFile {path}: {e}"))?)
                    .map_err(|e| format!("tlsCAFile {path}: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("server name {host}: {e}"))?;
    Ok(Some((
        tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        name,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_options_come_from_the_uri() {
        assert!(
            tls_connector("mongodb://h:1/", "h:1")
                .expect("ok")
                .is_none()
        );
        assert!(
            tls_connector("mongodb://h:1/?tls=true", "h:1")
                .expect("ok")
                .is_some()
        );
        assert!(
            tls_connector(
                "mongodb://h:1/?ssl=true&tlsAllowInvalidCertificates=true",
                "h:1"
            )
            .is_err()
        );
        assert!(
            tls_connector("mongodb://h:1/?tls=true&tlsCAFile=/nonexistent.pem", "h:1").is_err()
        );
    }

    #[test]
    fn first_host_of_uris() {
        assert_eq!(
            first_host("mongodb://127.0.0.1:27017/").as_deref(),
            Some("127.0.0.1:27017")
        );
        assert_eq!(
            first_host("mongodb://db.example").as_deref(),
            Some("db.example:27017")
        );
        assert_eq!(
            first_host("mongodb://u:p@h1:1,h2:2/x?replicaSet=rs").as_deref(),
            Some("h1:1")
        );
        assert_eq!(first_host("postgres://x"), None);
        assert_eq!(first_host("mongodb:///"), None);
    }
}
