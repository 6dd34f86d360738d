//! One client connection: framing, handshake, authentication, and every command through the
//! policy engine to the upstream.
//!
//! The loop owns its read buffer (inside `Framed`), so nothing read is lost when a `select!`
//! branch wins. A framing or protocol error closes this connection only, with a log line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::sessions::Claim;
use bson::{RawDocumentBuf, rawdoc};
use bytes::BytesMut;
use futures::FutureExt;
use tenantgate_policy::{AuditKind, AuditRecord, Context, Decision, Principal, Rule, decide};
use tenantgate_wire::element::{Value, elements, get};
use tenantgate_wire::{
    Compressor, Message, MsgFlags, OpMsg, OpQuery, Payload, RawDoc, split_frame,
};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::auth::scram::{self, Conversation, Mechanism};
use crate::handshake::{HelloParams, hello_reply, negotiate};
use crate::limits::ConnectionSlot;
use crate::metrics::CommandOutcome;
use crate::reply::{code, error_body, op_msg, op_reply, overloaded_body, retryable_error_body};
use crate::server::Shared;
use crate::upstream::UpstreamError;

mod write;
use write::write_reply;

/// A SCRAM exchange in progress.
#[derive(Debug)]
enum Sasl {
    /// Waiting for the client-final message.
    Started {
        conv: Conversation,
        skip_empty: bool,
    },
    /// Proof verified; waiting for the client's empty last message.
    Verified { principal: Principal },
}

struct Client {
    id: i64,
    peer: SocketAddr,
    shared: Arc<Shared>,
    /// Shared with each command in flight (an `Arc`, so a command holds it without copying the
    /// name, tenant and roles).
    principal: Option<Arc<Principal>>,
    /// [`owner_key`] of `principal`, made once at login: the owner of the cursors and sessions
    /// this connection opens (checked on every command carrying an `lsid`).
    owner: String,
    sasl: Option<Sasl>,
    compression: Vec<Compressor>,
    /// Cursors this connection opened and their namespace (`db.coll`), killed on close.
    opened: HashMap<i64, String>,
    /// The tenant connection slot held while authenticated as a tenant.
    slot: Option<ConnectionSlot>,
    /// The connection is TLS (PLAIN is only accepted then).
    tls: bool,
}

/// The rate-limit group of proxy commands (`rate_limit:{<tenant>}:proxy_commands`).
const PROXY_COMMANDS: &str = "proxy_commands";

fn raw(doc: RawDocumentBuf) -> RawDoc {
    RawDoc::from(doc)
}

/// Serves one client until it disconnects, misbehaves, idles out, or the proxy shuts down.
pub(crate) async fn run<S>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let idle = Duration::from_secs(shared.config.proxy.idle_timeout_secs.max(1));
    let frame_timeout = Duration::from_secs(shared.config.proxy.frame_timeout_secs.max(1));
    let write_timeout = Duration::from_secs(shared.config.proxy.write_timeout_secs.max(1));
    // One task reads, handles and writes in turn, so the stream is never split. The idle and
    // frame timeouts share one timer that is re-armed only when a deadline must come *earlier*
    // than the armed one: one that fires early is re-armed to the real deadline. Re-registering
    // a timer for every read showed up in the per-command profile (benches/proxy_overhead.rs).
    let mut stream = stream;
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let mut armed = tokio::time::Instant::now() + idle;
    // The read buffer belongs to this loop, not to a future: a `select!` branch that wins never
    // loses bytes already read.
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut frame_deadline: Option<tokio::time::Instant> = None;
    let mut idle_deadline: Option<tokio::time::Instant> = None;
    let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let mut client = Client {
        id,
        peer,
        shared,
        principal: None,
        owner: String::new(),
        sasl: None,
        compression: Vec::new(),
        opened: HashMap::new(),
        slot: None,
        tls,
    };
    tracing::debug!(target: "tenantgate::proxy", connection = id, peer = %peer, "client connected");
    client
        .shared
        .metrics
        .connections_active
        .fetch_add(1, Ordering::Relaxed);
    client
        .shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    // Set when shutdown is signalled while waiting for a command: what the client already sent
    // is answered with `ShutdownInProgress`, nothing more is read, and the connection closes.
    // A command being handled when the signal comes is finished and answered first.
    let mut draining = false;
    loop {
        let frame = match split_frame(&mut buf, &limits) {
            Ok(Some(frame)) => frame,
            Ok(None) if draining => break,
            Ok(None) => {
                // Idle between frames; once a frame has started, the rest of it must arrive
                // within the frame timeout, however slowly it trickles in (slowloris).
                let now = tokio::time::Instant::now();
                let deadline = if buf.is_empty() {
                    frame_deadline = None;
                    // From the end of the last read, not from now: a timer that fired early
                    // loops back here and must not push the deadline out.
                    *idle_deadline.get_or_insert(now + idle)
                } else {
                    *frame_deadline.get_or_insert(now + frame_timeout)
                };
                if deadline < armed {
                    timer.as_mut().reset(deadline);
                    armed = deadline;
                }
                let read = tokio::select! {
                    // Shutdown first: a client that keeps sending must not keep a draining
                    // proxy busy.
                    biased;
                    _ = shutdown.changed() => {
                        draining = true;
                        // A command racing the signal may already be in the socket: take what
                        // is there without waiting, so it gets an answer instead of a reset.
                        if let Some(Ok(0) | Err(_)) = stream.read_buf(&mut buf).now_or_never() {
                            break;
                        }
                        continue;
                    }
                    read = stream.read_buf(&mut buf) => Some(read),
                    () = &mut timer => None,
                };
                match read {
                    None if tokio::time::Instant::now() < deadline => {
                        // Armed for an earlier deadline that no longer applies.
                        timer.as_mut().reset(deadline);
                        armed = deadline;
                        continue;
                    }
                    None => {
                        tracing::info!(target: "tenantgate::proxy", connection = id, peer = %peer, partial = !buf.is_empty(), "closing: timed out waiting for a frame");
                        break;
                    }
                    Some(Ok(0)) | Some(Err(_)) => break,
                    Some(Ok(_)) => {
                        idle_deadline = None;
                        continue;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(target: "tenantgate::proxy", connection = id, peer = %peer, error = %e, "closing: protocol error");
                break;
            }
        };
        frame_deadline = None;
        let decoded = Message::decode(frame, &limits).and_then(|m| m.decompressed(&limits));
        let (msg, used) = match decoded {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "tenantgate::proxy", connection = id, peer = %peer, error = %e, "closing: invalid message");
                break;
            }
        };
        // A frame read after the signal (or pipelined behind the last command) is refused
        // rather than started: the drain only finishes what is in flight.
        let handled = if draining || *shutdown.borrow() {
            draining = true;
            client.shutting_down(&msg).map(|m| (m, true))
        } else {
            client.handle(msg).await
        };
        let Some((reply, compressible)) = handled else {
            continue;
        };
        let reply = match used {
            Some(c) if compressible && client.compression.contains(&c) => {
                reply.compressed(c).unwrap_or(reply)
            }
            _ => reply,
        };
        let bytes = match reply.to_bytes() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(target: "tenantgate::proxy", connection = id, error = %e, "cannot encode a reply");
                break;
            }
        };
        // Only the encoded copy is needed now; a client slow to read must not pin two.
        drop(reply);
        if let Err(e) = write_reply(&mut stream, &bytes, write_timeout).await {
            if e.kind() == std::io::ErrorKind::TimedOut {
                tracing::info!(target: "tenantgate::proxy", connection = id, peer = %peer, bytes = bytes.len(), "closing: the client accepted none of a reply for the write timeout");
            }
            break;
        }
    }
    client.close().await;
    client.release_slot();
    client
        .shared
        .metrics
        .connections_active
        .fetch_sub(1, Ordering::Relaxed);
    tracing::debug!(target: "tenantgate::proxy", connection = id, peer = %peer, "client disconnected");
}

impl Client {
    fn reply_id(&self) -> i32 {
        self.shared.next_reply_id.fetch_add(1, Ordering::Relaxed) & i32::MAX
    }

    /// The answer to a message that arrives after shutdown began: MongoDB's own
    /// `ShutdownInProgress`, labelled retryable (nothing of it ran), as mongod answers while it
    /// stops. Drivers then mark the server unknown and fail over or report the error.
    fn shutting_down(&self, msg: &Message) -> Option<Message> {
        let body = retryable_error_body(
            code::SHUTDOWN_IN_PROGRESS,
            "ShutdownInProgress",
            "tenantgate is shutting down",
        );
        match &msg.payload {
            Payload::Msg(op) if op.flags().more_to_come() => None,
            Payload::Query(_) => Some(op_reply(self.reply_id(), msg.request_id, raw(body), true)),
            _ => Some(op_msg(self.reply_id(), msg.request_id, raw(body))),
        }
    }

    /// One message in, at most one reply out (with whether it may be compressed).
    async fn handle(&mut self, msg: Message) -> Option<(Message, bool)> {
        let request_id = msg.request_id;
        match msg.payload {
            Payload::Query(q) => Some((self.legacy_query(request_id, &q).await, false)),
            Payload::Msg(op) => self.command(request_id, op).await,
            _ => {
                let body = error_body(
                    code::BAD_VALUE,
                    "BadValue",
                    "only OP_MSG (and OP_QUERY for the handshake) are accepted",
                );
                Some((op_msg(self.reply_id(), request_id, raw(body)), false))
            }
        }
    }

    async fn legacy_query(&mut self, request_id: i32, q: &OpQuery) -> Message {
        let name = q.command_name().unwrap_or("");
        if q.full_collection_name.ends_with(".$cmd")
            && matches!(name, "isMaster" | "ismaster" | "hello")
        {
            let query = match get(q.query.as_raw(), "$query") {
                Ok(Some(e)) => e.as_document().unwrap_or(q.query.as_raw()),
                _ => q.query.as_raw(),
            };
            let body = self.hello(query, name != "hello").await;
            return op_reply(self.reply_id(), request_id, raw(body), false);
        }
        let body = error_body(
            code::UNSUPPORTED_OP_QUERY,
            "UnsupportedOpQueryCommand",
            "OP_QUERY is only supported for the isMaster/hello handshake; use OP_MSG",
        );
        op_reply(self.reply_id(), request_id, raw(body), true)
    }

    async fn command(&mut self, request_id: i32, op: OpMsg) -> Option<(Message, bool)> {
        let more_to_come = op.flags().more_to_come();
        let name = op.command_name().unwrap_or("");
        let body = match name {
            "hello" | "isMaster" | "ismaster" => {
                Some((self.hello(op.body().as_raw(), name != "hello").await, false))
            }
            "saslStart" => Some((self.sasl_start(op.body().as_raw(), false).await, false)),
            "saslContinue" => Some((self.sasl_continue(op.body().as_raw()).await, false)),
            // MongoDB answers ping before authentication; health checks rely on it.
            "ping" if self.principal.is_none() => Some((rawdoc! { "ok": 1.0 }, true)),
            "logout" => {
                self.release_slot();
                self.principal = None;
                self.owner.clear();
                Some((rawdoc! { "ok": 1.0 }, true))
            }
            "authenticate" => Some((
                error_body(
                    code::MECHANISM_UNAVAILABLE,
                    "MechanismUnavailable",
                    "use SCRAM-SHA-256 or SCRAM-SHA-1",
                ),
                false,
            )),
            _ if self.principal.is_none() => Some((
                error_body(
                    code::UNAUTHORIZED,
                    "Unauthorized",
                    &format!("command {} requires authentication", crate::clip(name)),
                ),
                true,
            )),
            _ => None,
        };
        let (body, compressible) = match body {
            Some(b) => b,
            None => return self.forward(request_id, &op, name).await.map(|m| (m, true)),
        };
        if more_to_come {
            return None;
        }
        Some((op_msg(self.reply_id(), request_id, raw(body)), compressible))
    }

    async fn hello(&mut self, body: &bson::RawDocument, legacy: bool) -> RawDocumentBuf {
        if let Ok(Some(list)) = get(body, "compression")
            && let Some(arr) = list.as_array()
        {
            let names =
                elements(arr).filter_map(|e| e.ok().and_then(|e| e.as_str().map(str::to_owned)));
            self.compression = negotiate(names);
        }
        let sasl_mechs = match get(body, "saslSupportedMechs") {
            Ok(Some(e)) => e.as_str().map(|s| {
                let user = s.split_once('.').map_or(s, |(_, u)| u);
                self.shared.principals.mechanisms(user)
            }),
            _ => None,
        };
        // The first SCRAM step, carried in the handshake (saves a round trip).
        let speculative = match get(body, "speculativeAuthenticate") {
            Ok(Some(e)) => match e.as_document() {
                Some(spec) => Some(self.sasl_start(spec, true).await),
                None => None,
            },
            _ => None,
        };
        let speculative = speculative.filter(|d: &RawDocumentBuf| {
            matches!(get(d, "ok"), Ok(Some(e)) if matches!(e.value(), Value::Double(v) if v == 1.0))
        });
        let speculative = speculative.map(|d| {
            let mut out = RawDocumentBuf::new();
            for e in d.iter().flatten() {
                if e.0.as_str() != "ok" {
                    out.append(e.0, e.1);
                }
            }
            out
        });
        hello_reply(&HelloParams {
            legacy,
            connection_id: self.id,
            compression: &self.compression,
            sasl_mechs,
            speculative,
            upstream: &self.shared.upstream.info,
        })
    }

    async fn auth_failed(
        &mut self,
        username: &str,
        mechanism: &str,
        reason: &str,
    ) -> RawDocumentBuf {
        self.shared
            .audit
            .auth_failure(username, mechanism, reason, self.peer, self.id);
        self.shared
            .metrics
            .auth_failures
            .fetch_add(1, Ordering::Relaxed);
        let delay = self.shared.failures.record(self.peer.ip());
        tokio::time::sleep(delay).await;
        self.sasl = None;
        error_body(
            code::AUTHENTICATION_FAILED,
            "AuthenticationFailed",
            "Authentication failed.",
        )
    }

    async fn sasl_start(&mut self, body: &bson::RawDocument, speculative: bool) -> RawDocumentBuf {
        let name = get(body, "mechanism")
            .ok()
            .flatten()
            .and_then(|e| e.as_str())
            .unwrap_or("");
        if matches!(name, "PLAIN" | "MONGODB-OIDC") {
            return self.token_login(body, name).await;
        }
        let mechanism = Mechanism::from_name(name);
        let Some(mechanism) = mechanism else {
            return error_body(
                code::MECHANISM_UNAVAILABLE,
                "MechanismUnavailable",
                "supported mechanisms: SCRAM-SHA-256, SCRAM-SHA-1, and with [jwt] MONGODB-OIDC, PLAIN",
            );
        };
        let payload = match get(body, "payload") {
            Ok(Some(e)) if e.element_type() == 0x05 => binary_payload(e.value_bytes()),
            _ => None,
        };
        let Some(payload) = payload else {
            return self
                .auth_failed("", mechanism.name(), "saslStart without a binary payload")
                .await;
        };
        let skip_empty = match get(body, "options") {
            Ok(Some(e)) => e
                .as_document()
                .and_then(|o| get(o, "skipEmptyExchange").ok().flatten())
                .is_some_and(|v| matches!(v.value(), Value::Bool(true))),
            _ => false,
        } || speculative;
        let principals = &self.shared.principals;
        match scram::start(mechanism, &payload, |user| principals.keys(user, mechanism)) {
            Ok((conv, server_first)) => {
                self.sasl = Some(Sasl::Started { conv, skip_empty });
                sasl_reply(false, &server_first)
            }
            Err(e) => self.auth_failed("", mechanism.name(), &e.to_string()).await,
        }
    }

    /// One-step JWT logins on `$external`: `MONGODB-OIDC` (payload `{jwt: <token>}`) or `PLAIN`
    /// (`\0_\0<token>`).
    async fn token_login(&mut self, body: &bson::RawDocument, mechanism: &str) -> RawDocumentBuf {
        let Some(verifier) = self.shared.jwt.as_ref() else {
            return error_body(
                code::MECHANISM_UNAVAILABLE,
                "MechanismUnavailable",
                "JWT authentication is not configured ([jwt])",
            );
        };
        // `$db` on saslStart; `db` inside a speculativeAuthenticate in the handshake.
        let db = get(body, "$db")
            .ok()
            .flatten()
            .or_else(|| get(body, "db").ok().flatten());
        if db.and_then(|e| e.as_str()) != Some("$external") {
            return self
                .auth_failed("", mechanism, "token mechanisms need authSource=$external")
                .await;
        }
        if mechanism == "PLAIN" && !self.tls && !self.shared.config.proxy.allow_plain_without_tls {
            return self
                .auth_failed("", mechanism, "PLAIN is only accepted over TLS")
                .await;
        }
        let payload = match get(body, "payload") {
            Ok(Some(e)) if e.element_type() == 0x05 => binary_payload(e.value_bytes()),
            _ => None,
        }
        .unwrap_or_default();
        let token = match mechanism {
            "PLAIN" => {
                let mut parts = payload.split(|b| *b == 0);
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(_authzid), Some(b"_"), Some(token), None) => {
                        String::from_utf8(token.to_vec()).ok()
                    }
                    _ => None,
                }
            }
            _ => bson::RawDocument::from_bytes(&payload).ok().and_then(|d| {
                get(d, "jwt")
                    .ok()
                    .flatten()
                    .and_then(|e| e.as_str().map(str::to_owned))
            }),
        };
        let Some(token) = token else {
            return self
                .auth_failed(
                    "",
                    mechanism,
                    "no token in the payload (PLAIN needs username \"_\")",
                )
                .await;
        };
        let principal = match verifier.verify(&token) {
            Ok(p) => p,
            Err(e) => return self.auth_failed("", mechanism, &e.to_string()).await,
        };
        if let Err(body) = self.admit(&principal, mechanism).await {
            return body;
        }
        self.authenticated(principal);
        sasl_reply(true, b"")
    }

    /// Checks the principal's tenant (active, under its connection limit) and takes its slot.
    async fn admit(
        &mut self,
        principal: &Principal,
        mechanism: &str,
    ) -> Result<(), RawDocumentBuf> {
        if let Some(tenant) = &principal.tenant {
            let status = self.shared.registry.status(tenant.as_str()).await;
            if status.unavailable {
                // The database is down, not the credentials wrong: a retryable error, and no
                // failed-login penalty for the client.
                return Err(registry_unavailable_body());
            }
            if !status.active {
                let name = principal.name.clone();
                return Err(self
                    .auth_failed(&name, mechanism, "tenant unknown or inactive")
                    .await);
            }
            match self.shared.limiter.connect(tenant.as_str(), status.limits) {
                Ok(slot) => {
                    self.release_slot();
                    self.shared.metrics.tenant_connections(tenant.as_str(), 1);
                    self.slot = Some(slot);
                }
                Err(e) => return Err(overloaded_body(e.as_str())),
            }
        }
        Ok(())
    }

    async fn sasl_continue(&mut self, body: &bson::RawDocument) -> RawDocumentBuf {
        let payload = match get(body, "payload") {
            Ok(Some(e)) if e.element_type() == 0x05 => binary_payload(e.value_bytes()),
            _ => None,
        }
        .unwrap_or_default();
        match self.sasl.take() {
            Some(Sasl::Started { conv, skip_empty }) => match scram::finish(&conv, &payload) {
                Ok(server_final) => {
                    let Some(principal) = self.shared.principals.principal(&conv.username).cloned()
                    else {
                        return self
                            .auth_failed(&conv.username, conv.mechanism.name(), "unknown principal")
                            .await;
                    };
                    if let Err(body) = self.admit(&principal, conv.mechanism.name()).await {
                        return body;
                    }
                    if skip_empty {
                        self.authenticated(principal);
                        sasl_reply(true, &server_final)
                    } else {
                        self.sasl = Some(Sasl::Verified { principal });
                        sasl_reply(false, &server_final)
                    }
                }
                Err(e) => {
                    self.auth_failed(&conv.username, conv.mechanism.name(), &e.to_string())
                        .await
                }
            },
            Some(Sasl::Verified { principal }) => {
                self.authenticated(principal);
                sasl_reply(true, b"")
            }
            None => {
                self.auth_failed("", "", "saslContinue without saslStart")
                    .await
            }
        }
    }

    /// Gives back the tenant connection slot (logout, close).
    fn release_slot(&mut self) {
        if self.slot.take().is_some()
            && let Some(t) = self.principal.as_ref().and_then(|p| p.tenant.as_ref())
        {
            self.shared.metrics.tenant_connections(t.as_str(), -1);
        }
    }

    fn authenticated(&mut self, principal: Principal) {
        tracing::info!(
            target: "tenantgate::proxy",
            connection = self.id,
            peer = %self.peer,
            principal = %principal.name,
            tenant = principal.tenant.as_ref().map(|t| t.as_str()).unwrap_or(""),
            "authenticated"
        );
        self.shared.failures.clear(self.peer.ip());
        self.owner = owner_key(&principal);
        self.principal = Some(Arc::new(principal));
    }

    fn audit_cursor(&self, principal: &Principal, db: &str, command: &str, id: i64) {
        let record = AuditRecord {
            kind: AuditKind::Rejection,
            rule: Rule::CursorNotOwned,
            principal: principal.name.clone(),
            tenant: principal.tenant.as_ref().map(|t| t.as_str().to_owned()),
            database: Some(db.to_owned()),
            collection: None,
            command: command.to_owned(),
            message: format!("cursor {id} is not owned by the principal"),
            shape: bson::doc! { command: "<long>" },
        };
        self.shared.audit.record(&record, self.peer, self.id);
    }

    async fn forward(&mut self, request_id: i32, op: &OpMsg, name: &str) -> Option<Message> {
        let principal = self.principal.clone()?;
        let more_to_come = op.flags().more_to_come();
        let mut _permit = None;
        if let Some(tenant) = &principal.tenant {
            let status = self.shared.registry.status(tenant.as_str()).await;
            let refused = if status.unavailable {
                Some(registry_unavailable_body())
            } else if !status.active {
                Some(error_body(
                    code::UNAUTHORIZED,
                    "Unauthorized",
                    "the principal's tenant is inactive",
                ))
            } else {
                let limits = status.limits;
                let shared_verdict = self
                    .shared
                    .rate_limiter
                    .check_shared(&crate::ratelimit::Check {
                        tenant: tenant.as_str(),
                        group: PROXY_COMMANDS,
                        limit: u64::from(limits.commands_per_second),
                        window: std::time::Duration::from_secs(1),
                        mode: crate::ratelimit::FailureMode::Open,
                        usage: &[],
                    })
                    .await
                    .map(|v| v.admitted);
                let admitted = match shared_verdict {
                    Some(false) => Err(crate::limits::Exceeded::Rate),
                    Some(true) => self
                        .shared
                        .limiter
                        .command_rate_checked(tenant.as_str(), limits),
                    None => self.shared.limiter.command(tenant.as_str(), limits),
                };
                match admitted {
                    Ok(p) => {
                        _permit = Some(p);
                        None
                    }
                    Err(e) => Some(overloaded_body(e.as_str())),
                }
            };
            if let Some(body) = refused {
                if more_to_come {
                    return None;
                }
                return Some(op_msg(self.reply_id(), request_id, raw(body)));
            }
        }
        let ctx = Context {
            principal: &principal,
            config: &self.shared.config.policy,
            now: bson::DateTime::now(),
        };
        let started = std::time::Instant::now();
        let outcome = decide(op, &ctx);
        self.shared
            .metrics
            .rewrite_latency
            .observe(started.elapsed());
        match &outcome.decision {
            Decision::Reject(r) => {
                self.shared.metrics.command(name, CommandOutcome::Rejected);
                self.shared.metrics.rejection(r.rule);
            }
            Decision::Reply(_) => self.shared.metrics.command(name, CommandOutcome::Local),
            Decision::Forward(_) => self.shared.metrics.command(name, CommandOutcome::Forwarded),
        }
        if let Some(record) = &outcome.audit {
            self.shared.audit.record(record, self.peer, self.id);
        }
        let reply_body = match outcome.decision {
            Decision::Reject(r) => r.error_reply(),
            Decision::Reply(body) => body,
            Decision::Forward(_)
                if let Some(refusal) = self.claim_sessions(op.body().as_raw(), name) =>
            {
                let db = op.database().unwrap_or("").to_owned();
                let (message, code, code_name) = match refusal {
                    Claim::Full => (
                        "too many live sessions: end unused sessions and retry",
                        code::TOO_MANY_LOGICAL_SESSIONS,
                        "TooManyLogicalSessions",
                    ),
                    _ => (
                        "the session id belongs to another principal",
                        code::UNAUTHORIZED,
                        "Unauthorized",
                    ),
                };
                let record = AuditRecord {
                    kind: AuditKind::Rejection,
                    rule: Rule::CommandNotAllowed,
                    principal: principal.name.clone(),
                    tenant: principal.tenant.as_ref().map(|t| t.as_str().to_owned()),
                    database: Some(db),
                    collection: None,
                    command: name.to_owned(),
                    message: message.into(),
                    shape: bson::doc! { name: "<redacted>", "lsid": { "id": "<binData>" } },
                };
                self.shared.audit.record(&record, self.peer, self.id);
                error_body(code, code_name, &format!("tenantgate: {message}"))
            }
            Decision::Forward(fwd) => {
                // All `track_cursors` needs from the request: the id a getMore continues.
                let continued = if name == "getMore" {
                    match get(fwd.body.as_raw(), "getMore") {
                        Ok(Some(e)) => match e.value() {
                            Value::Int64(id) => Some(id),
                            _ => None,
                        },
                        _ => None,
                    }
                } else {
                    None
                };
                if let Some(refused) = self.check_cursors(&principal, fwd.body.as_raw(), name, op) {
                    refused
                } else {
                    let flags = op
                        .flags()
                        .known()
                        .with(MsgFlags::EXHAUST_ALLOWED, false)
                        .with(MsgFlags::CHECKSUM_PRESENT, false);
                    let msg = match OpMsg::from_parts(flags, fwd.body, fwd.sequences) {
                        Ok(m) => Message::new(0, 0, Payload::Msg(m)),
                        Err(e) => {
                            tracing::error!(target: "tenantgate::proxy", error = %e, "rewritten command is not a valid OP_MSG");
                            return Some(op_msg(
                                self.reply_id(),
                                request_id,
                                raw(error_body(code::BAD_VALUE, "BadValue", "internal error")),
                            ));
                        }
                    };
                    if msg.encoded_len() > self.shared.limits.max_message_size {
                        // The tenant stamps made the command larger than the wire allows.
                        if more_to_come {
                            return None;
                        }
                        let body = error_body(
                            10334,
                            "BSONObjectTooLarge",
                            "the rewritten command exceeds maxMessageSizeBytes; send smaller batches",
                        );
                        return Some(op_msg(self.reply_id(), request_id, raw(body)));
                    }
                    if more_to_come {
                        if let Err(e) = self.shared.upstream.send_only(msg).await {
                            tracing::warn!(target: "tenantgate::proxy", connection = self.id, error = %e, "unacknowledged write not delivered");
                        }
                        return None;
                    }
                    let started = std::time::Instant::now();
                    let result = self.shared.upstream.round_trip(msg).await;
                    self.shared
                        .metrics
                        .upstream_latency
                        .observe(started.elapsed());
                    if result.is_err() {
                        self.shared
                            .metrics
                            .upstream_errors
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    match result {
                        Ok(reply) => match reply.payload {
                            Payload::Msg(m) => {
                                let body = m.body().as_raw();
                                self.track_cursors(continued, body, name);
                                match tenantgate_policy::reply::reshape(fwd.reply, body) {
                                    Some(shaped) => shaped,
                                    None => {
                                        return Some(op_msg(
                                            self.reply_id(),
                                            request_id,
                                            m.body().clone(),
                                        ));
                                    }
                                }
                            }
                            _ => error_body(
                                code::BAD_VALUE,
                                "BadValue",
                                "upstream replied with an unexpected opcode",
                            ),
                        },
                        Err(e) => {
                            tracing::warn!(target: "tenantgate::proxy", connection = self.id, error = %e, "upstream round trip failed");
                            match e {
                                UpstreamError::Timeout => retryable_error_body(
                                    code::NETWORK_TIMEOUT,
                                    "NetworkTimeout",
                                    "upstream timed out",
                                ),
                                _ => retryable_error_body(
                                    code::HOST_UNREACHABLE,
                                    "HostUnreachable",
                                    "upstream unavailable",
                                ),
                            }
                        }
                    }
                }
            }
        };
        if more_to_come {
            return None;
        }
        Some(op_msg(self.reply_id(), request_id, raw(reply_body)))
    }

    /// Claims the command's `lsid` for this connection's owner (and, for `endSessions`, releases
    /// the listed ones); `Some` says why the session cannot be used.
    fn claim_sessions(&self, body: &bson::RawDocument, name: &str) -> Option<Claim> {
        if name == "endSessions" {
            if let Ok(Some(list)) = get(body, "endSessions")
                && let Some(list) = list.as_array()
            {
                for item in elements(list).flatten() {
                    if let Some(id) = item.as_document().and_then(session_id) {
                        self.shared.sessions.end(id, &self.owner);
                    }
                }
            }
            return None;
        }
        let id = get(body, "lsid")
            .ok()
            .flatten()
            .and_then(|e| e.as_document().and_then(session_id))?;
        match self.shared.sessions.claim(id, &self.owner) {
            Claim::Owned => None,
            refused => Some(refused),
        }
    }

    /// `getMore` / `killCursors` may only name cursors the principal opened. `request` is the
    /// client's command, read for its `$db` only when a refusal is audited: finding `$db` walks
    /// the whole body, 7 % of a proxied `find`'s instructions when it was done for every command
    /// (scripts/bench-proxy-instructions).
    fn check_cursors(
        &self,
        principal: &Principal,
        body: &bson::RawDocument,
        name: &str,
        request: &OpMsg,
    ) -> Option<RawDocumentBuf> {
        let ids: Vec<i64> = match name {
            "getMore" => match get(body, "getMore") {
                Ok(Some(e)) => match e.value() {
                    Value::Int64(id) => vec![id],
                    _ => vec![],
                },
                _ => vec![],
            },
            "killCursors" => {
                let mut ids = Vec::new();
                let list = get(body, "cursors")
                    .ok()
                    .flatten()
                    .and_then(|e| e.as_array());
                for item in list.map(elements).into_iter().flatten() {
                    match item.map(|x| x.value()) {
                        Ok(Value::Int64(id)) => ids.push(id),
                        // Decided here, not left to the upstream: only 64-bit ids are cursor ids.
                        _ => {
                            return Some(error_body(
                                code::BAD_VALUE,
                                "BadValue",
                                "killCursors takes an array of 64-bit cursor ids",
                            ));
                        }
                    }
                }
                ids
            }
            _ => return None,
        };
        for id in ids {
            if !self.shared.cursors.owns(id, &self.owner) {
                self.audit_cursor(principal, request.database().unwrap_or(""), name, id);
                return Some(error_body(
                    code::CURSOR_NOT_FOUND,
                    "CursorNotFound",
                    &format!("cursor id {id} not found"),
                ));
            }
        }
        None
    }

    fn track_cursors(&mut self, continued: Option<i64>, reply: &bson::RawDocument, name: &str) {
        let int64 = |e: Option<tenantgate_wire::element::Element<'_>>| match e.map(|e| e.value()) {
            Some(Value::Int64(id)) => Some(id),
            _ => None,
        };
        let cursor = get(reply, "cursor")
            .ok()
            .flatten()
            .and_then(|c| c.as_document());
        let reply_id = cursor.and_then(|c| int64(get(c, "id").ok().flatten()));
        match name {
            "getMore" => {
                // An exhausted cursor (id 0 in the reply) is forgotten.
                if reply_id == Some(0)
                    && let Some(id) = continued
                {
                    self.shared.cursors.close(id);
                    self.opened.remove(&id);
                }
            }
            "killCursors" => {
                for key in [
                    "cursorsKilled",
                    "cursorsNotFound",
                    "cursorsUnknown",
                    "cursorsAlive",
                ] {
                    let Some(list) = get(reply, key).ok().flatten().and_then(|e| e.as_array())
                    else {
                        continue;
                    };
                    for id in elements(list).filter_map(|x| int64(x.ok())) {
                        self.shared.cursors.close(id);
                        self.opened.remove(&id);
                    }
                }
            }
            _ => {
                if let (Some(id), Some(c)) = (reply_id, cursor)
                    && id != 0
                {
                    let ns = get(c, "ns")
                        .ok()
                        .flatten()
                        .and_then(|e| e.as_str())
                        .unwrap_or("")
                        .to_owned();
                    self.shared.cursors.open(id, &self.owner);
                    self.opened.insert(id, ns);
                }
            }
        }
    }

    /// Kills the live cursors this connection opened.
    async fn close(&mut self) {
        if self.principal.is_none() {
            return;
        }
        for (id, ns) in std::mem::take(&mut self.opened) {
            if !self.shared.cursors.owns(id, &self.owner) {
                continue;
            }
            self.shared.cursors.close(id);
            let Some((db, coll)) = ns.split_once('.') else {
                continue;
            };
            let kill = rawdoc! { "killCursors": coll, "cursors": [id], "$db": db };
            if let Err(e) = self.shared.upstream.command(kill).await {
                tracing::debug!(target: "tenantgate::proxy", cursor = id, error = %e, "could not kill a cursor on close");
            }
        }
    }
}

/// The tenant's status could not be read (the registry lives in the upstream, which is down):
/// retryable, like the upstream's own network errors, and distinct from "inactive".
fn registry_unavailable_body() -> RawDocumentBuf {
    retryable_error_body(
        code::HOST_UNREACHABLE,
        "HostUnreachable",
        "tenantgate: the tenant registry is unreachable (upstream unavailable); retry",
    )
}

fn binary_payload(value: &[u8]) -> Option<Vec<u8>> {
    binary_bytes(value).map(<[u8]>::to_vec)
}

/// The id of a session document (`{id: <binary>}`), borrowed from the command.
fn session_id(doc: &bson::RawDocument) -> Option<&[u8]> {
    match get(doc, "id") {
        Ok(Some(e)) if e.element_type() == 0x05 => binary_bytes(e.value_bytes()),
        _ => None,
    }
}

/// The bytes of a BSON binary value (i32 length, subtype byte, bytes), borrowed.
fn binary_bytes(value: &[u8]) -> Option<&[u8]> {
    let len = usize::try_from(i32::from_le_bytes(value.get(..4)?.try_into().ok()?)).ok()?;
    value.get(5..5usize.checked_add(len)?)
}

fn sasl_reply(done: bool, payload: &[u8]) -> RawDocumentBuf {
    rawdoc! {
        "conversationId": 1,
        "done": done,
        "payload": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: payload.to_vec() },
        "ok": 1.0,
    }
}

/// Who owns a cursor or a session: the principal's name *and* its tenant. A name alone is not
/// unique across tenants — JWT principals are named `jwt:<sub>`, and two identity providers'
/// tokens (or two tokens without `sub`) can share one — so two tenants must never be able to
/// pass as the same owner.
fn owner_key(principal: &Principal) -> String {
    format!(
        "{}\u{0}{}",
        principal.tenant.as_ref().map_or("", |t| t.as_str()),
        principal.name
    )
}
