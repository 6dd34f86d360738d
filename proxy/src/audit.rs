//! The audit trail: rejections, authentication failures and `super_admin` bypasses.
//!
//! Every event goes two ways. It is a structured `tracing` event on the target
//! `tenantgate::audit` (JSON lines when the binary logs JSON), and a document in the
//! `tenantgate_audit` collection of tenantgate's own database, written by a background task in
//! batches — never on the client's path. The queue to that task is bounded: when the database
//! falls behind, events are dropped from the database copy (never from the log), counted, and the
//! count is logged. A TTL index on `at` keeps `retention_days`. Values inside commands never
//! appear: the policy engine redacts them into the command's shape before an event exists.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bson::{Document, RawArrayBuf, RawDocumentBuf, doc, rawdoc};
use tenantgate_policy::AuditRecord;
use tokio::sync::mpsc;

use crate::upstream::Upstream;

/// The audit collection.
pub const COLLECTION: &str = "tenantgate_audit";
const BATCH: usize = 256;
const FLUSH_EVERY: Duration = Duration::from_millis(200);

/// Where an audited command or request came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A client connection of the wire-protocol proxy.
    Proxy {
        /// The client's address.
        peer: SocketAddr,
        /// The proxy's connection number.
        connection: i64,
    },
    /// A request to the HTTP API.
    Api {
        /// The client's address, when known.
        peer: Option<IpAddr>,
        /// The request id (`X-Request-Id`).
        request_id: String,
    },
}

impl Origin {
    fn source(&self) -> &'static str {
        match self {
            Origin::Proxy { .. } => "proxy",
            Origin::Api { .. } => "api",
        }
    }

    fn peer(&self) -> String {
        match self {
            Origin::Proxy { peer, .. } => peer.to_string(),
            Origin::Api { peer, .. } => peer.map(|p| p.to_string()).unwrap_or_default(),
        }
    }

    fn stamp(&self, event: &mut Document) {
        event.insert("source", self.source());
        event.insert("peer", self.peer());
        match self {
            Origin::Proxy { connection, .. } => {
                event.insert("connection", *connection);
            }
            Origin::Api { request_id, .. } => {
                event.insert("requestId", request_id.as_str());
            }
        }
    }
}

/// An event of the HTTP API that is not a policy decision: a refused tenant conflict, a bad
/// token, a privileged action.
#[derive(Debug, Clone)]
pub struct ApiEvent<'a> {
    /// `rejection`, `auth_failure` or `bypass`.
    pub kind: &'a str,
    /// The rule, e.g. `tenant_conflict`.
    pub rule: &'a str,
    /// Who (a JWT subject, or `anonymous`).
    pub principal: &'a str,
    /// The tenant involved, if any.
    pub tenant: Option<&'a str>,
    /// `METHOD /path`.
    pub request: &'a str,
    /// What happened, without secrets or document values.
    pub message: &'a str,
}

/// Where audit documents go.
#[derive(Debug)]
pub struct AuditSink {
    tx: mpsc::Sender<Document>,
    dropped: AtomicU64,
}

impl AuditSink {
    /// Starts the writer task (inside the current tokio runtime).
    pub fn start(
        upstream: Arc<Upstream>,
        database: &str,
        retention_days: u32,
        buffer: usize,
    ) -> Arc<AuditSink> {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let sink = Arc::new(AuditSink {
            tx,
            dropped: AtomicU64::new(0),
        });
        tokio::spawn(writer(upstream, database.to_owned(), retention_days, rx));
        sink
    }

    /// Events dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn submit(&self, event: Document) {
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(target: "tenantgate::audit", dropped = n, "audit database writer is behind; events dropped from the database copy");
            }
        }
    }

    /// Emits a policy audit record for a proxy connection.
    pub fn record(&self, r: &AuditRecord, peer: SocketAddr, connection: i64) {
        self.record_from(r, &Origin::Proxy { peer, connection });
    }

    /// Emits a policy audit record.
    pub fn record_from(&self, r: &AuditRecord, origin: &Origin) {
        let shape =
            serde_json::to_string(&bson::Bson::Document(r.shape.clone()).into_relaxed_extjson())
                .unwrap_or_default();
        tracing::warn!(
            target: "tenantgate::audit",
            kind = r.kind.as_str(),
            rule = r.rule.as_str(),
            principal = %r.principal,
            tenant = r.tenant.as_deref().unwrap_or(""),
            database = r.database.as_deref().unwrap_or(""),
            collection = r.collection.as_deref().unwrap_or(""),
            command = %r.command,
            message = %r.message,
            shape = %shape,
            source = origin.source(),
            peer = %origin.peer(),
            "audit"
        );
        let mut event = doc! {
            "at": bson::DateTime::now(),
            "kind": r.kind.as_str(),
            "rule": r.rule.as_str(),
            "principal": &r.principal,
            "tenant": r.tenant.as_deref(),
            "database": r.database.as_deref(),
            "collection": r.collection.as_deref(),
            "command": &r.command,
            "message": &r.message,
            "shape": r.shape.clone(),
        };
        origin.stamp(&mut event);
        self.submit(event);
    }

    /// Emits an HTTP API event.
    pub fn api_event(&self, e: &ApiEvent<'_>, origin: &Origin) {
        let principal = crate::clip(e.principal);
        tracing::warn!(
            target: "tenantgate::audit",
            kind = e.kind,
            rule = e.rule,
            principal = %principal,
            tenant = e.tenant.unwrap_or(""),
            request = e.request,
            message = e.message,
            source = origin.source(),
            peer = %origin.peer(),
            "audit"
        );
        let mut event = doc! {
            "at": bson::DateTime::now(),
            "kind": e.kind,
            "rule": e.rule,
            "principal": principal.as_ref(),
            "tenant": e.tenant,
            "command": e.request,
            "message": e.message,
        };
        origin.stamp(&mut event);
        self.submit(event);
    }

    /// Emits an authentication failure.
    pub fn auth_failure(
        &self,
        username: &str,
        mechanism: &str,
        reason: &str,
        peer: SocketAddr,
        connection: i64,
    ) {
        let username = crate::clip(username);
        tracing::warn!(
            target: "tenantgate::audit",
            kind = "auth_failure",
            rule = "authentication",
            principal = %username,
            mechanism,
            message = reason,
            peer = %peer,
            connection,
            "audit"
        );
        self.submit(doc! {
            "at": bson::DateTime::now(),
            "source": "proxy",
            "kind": "auth_failure",
            "rule": "authentication",
            "principal": username.as_ref(),
            "mechanism": mechanism,
            "message": reason,
            "peer": peer.to_string(),
            "connection": connection,
        });
    }
}

async fn writer(
    upstream: Arc<Upstream>,
    database: String,
    retention_days: u32,
    mut rx: mpsc::Receiver<Document>,
) {
    let ttl = rawdoc! {
        "createIndexes": COLLECTION,
        "indexes": [
            { "key": { "at": 1 }, "name": "at_ttl", "expireAfterSeconds": i64::from(retention_days) * 86_400 },
            { "key": { "tenant": 1, "at": -1 }, "name": "tenant_at" },
            { "key": { "rule": 1, "at": -1 }, "name": "rule_at" },
        ],
        "$db": database.as_str(),
    };
    match upstream.command(ttl).await {
        Err(e) => {
            tracing::warn!(target: "tenantgate::audit", error = %e, "could not create the audit indexes");
        }
        Ok(reply) if reply.get_f64("ok").unwrap_or(0.0) != 1.0 => {
            // 85 IndexOptionsConflict / 86 IndexKeySpecsConflict: the TTL index exists with
            // another retention (the setting changed): change it in place.
            let code = reply.get_i32("code").unwrap_or(0);
            let retention = i64::from(retention_days) * 86_400;
            let fixed = if code == 85 || code == 86 {
                let coll_mod = rawdoc! {
                    "collMod": COLLECTION,
                    "index": { "name": "at_ttl", "expireAfterSeconds": retention },
                    "$db": database.as_str(),
                };
                matches!(upstream.command(coll_mod).await, Ok(r) if r.get_f64("ok").unwrap_or(0.0) == 1.0)
            } else {
                false
            };
            if !fixed {
                tracing::warn!(
                    target: "tenantgate::audit",
                    reply = %reply,
                    "the audit indexes were refused; retention may not be {retention_days} days"
                );
            }
        }
        Ok(_) => {}
    }
    let mut batch: Vec<Document> = Vec::with_capacity(BATCH);
    loop {
        let first = match rx.recv().await {
            Some(d) => d,
            None => return,
        };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(d)) => batch.push(d),
                Ok(None) | Err(_) => break,
            }
        }
        let mut docs = RawArrayBuf::new();
        for d in batch.drain(..) {
            if let Ok(raw) = RawDocumentBuf::try_from(&d) {
                docs.push(raw);
            }
        }
        let insert = rawdoc! { "insert": COLLECTION, "documents": docs, "ordered": false, "$db": database.as_str() };
        match upstream.command(insert).await {
            Err(e) => {
                tracing::warn!(target: "tenantgate::audit", error = %e, "audit batch not written to the database");
            }
            Ok(reply) => {
                let refused = reply.get_f64("ok").unwrap_or(0.0) != 1.0;
                let write_errors = reply.get_array("writeErrors").map_or(0, |a| a.len());
                if refused || write_errors > 0 {
                    tracing::warn!(
                        target: "tenantgate::audit",
                        reply = %reply,
                        write_errors,
                        "the database refused audit events"
                    );
                }
            }
        }
    }
}
