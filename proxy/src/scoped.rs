//! Tenant-scoped database access inside the process: the handle the HTTP API's handlers get.
//!
//! A [`ScopedDb`] is bound to one principal when it is made, and every command it sends goes
//! through the same `tenantgate-policy` decision as a command arriving on the proxy's listener:
//! the tenant filter and soft-delete filter are added, writes are stamped, deletes become soft
//! deletes, overrides are refused and audited. A handler that forgets `tenantId` in its filter
//! still sees only its tenant; one that names another tenant gets [`DbError::Rejected`]. There is
//! no method that sends a command around the engine. Privileged code gets an explicitly named
//! bypass handle ([`Engine::bypass`]) whose every command is audited as a bypass.
//!
//! Cursors a handle opens are remembered by that handle; `getMore` on any other id is refused,
//! as the proxy refuses cursors owned by another connection's principal.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bson::{Bson, Document, RawDocumentBuf};
use tenantgate_policy::{
    AuditKind, AuditRecord, Context, Decision, PolicyConfig, Principal, Rule, TenantId, decide,
};
use tenantgate_wire::{Message, MsgFlags, OpMsg, Payload, RawDoc, Section};

use crate::audit::{AuditSink, Origin};
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::upstream::{Upstream, UpstreamError};

/// Most documents one `find` / `aggregate` call of a handle collects across batches.
pub const MAX_DOCUMENTS: usize = 10_000;

/// Why a scoped command failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The policy engine refused the command (and audited it).
    #[error("refused by tenantgate rule {}: {message}", rule.as_str())]
    Rejected {
        /// The rule.
        rule: Rule,
        /// Why.
        message: String,
    },
    /// The handle's tenant is unknown or deactivated.
    #[error("tenant {0} is unknown or inactive")]
    TenantInactive(String),
    /// MongoDB answered with an error.
    #[error("database error {code} ({code_name}): {message}")]
    Command {
        /// MongoDB's error code.
        code: i32,
        /// Its name.
        code_name: String,
        /// Its message.
        message: String,
    },
    /// The upstream could not be reached.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The command could not be built or the reply read.
    #[error("invalid command or reply: {0}")]
    Invalid(String),
}

impl DbError {
    /// MongoDB's duplicate key error.
    pub fn is_duplicate_key(&self) -> bool {
        matches!(self, DbError::Command { code: 11000, .. })
    }

    /// Worth retrying later (the database, not the request, is the problem).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Upstream(_))
    }
}

/// The shared in-process command path.
#[derive(Debug)]
pub struct Engine {
    upstream: Arc<Upstream>,
    policy: PolicyConfig,
    audit: Arc<AuditSink>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl Engine {
    /// The engine over the proxy's shared parts.
    pub fn new(
        upstream: Arc<Upstream>,
        policy: PolicyConfig,
        audit: Arc<AuditSink>,
        registry: Arc<Registry>,
        metrics: Arc<Metrics>,
    ) -> Engine {
        Engine {
            upstream,
            policy,
            audit,
            registry,
            metrics,
        }
    }

    /// The policy configuration in force.
    pub fn policy(&self) -> &PolicyConfig {
        &self.policy
    }

    /// A handle on `database` that can only reach `tenant`'s documents. `actor` names who acts
    /// (a JWT subject, an integration) for the audit trail.
    pub fn for_tenant(
        self: &Arc<Self>,
        tenant: &str,
        actor: &str,
        database: &str,
        origin: Origin,
    ) -> ScopedDb {
        ScopedDb {
            engine: self.clone(),
            principal: Principal::tenant(actor, TenantId::new(tenant)),
            database: database.to_owned(),
            origin,
            cursors: Mutex::new(HashSet::new()),
        }
    }

    /// A `super_admin` handle: commands are not scoped and every one is audited as a bypass.
    /// Only for routes that have checked the caller holds `super_admin`.
    pub fn bypass(self: &Arc<Self>, actor: &str, database: &str, origin: Origin) -> ScopedDb {
        ScopedDb {
            engine: self.clone(),
            principal: Principal::super_admin(actor),
            database: database.to_owned(),
            origin,
            cursors: Mutex::new(HashSet::new()),
        }
    }
}

/// A database handle bound to one principal.
#[derive(Debug)]
pub struct ScopedDb {
    engine: Arc<Engine>,
    principal: Principal,
    database: String,
    origin: Origin,
    /// Cursor ids this handle opened.
    cursors: Mutex<HashSet<i64>>,
}

fn reply_error(reply: &Document) -> Option<DbError> {
    let ok = match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        Some(Bson::Boolean(v)) => *v,
        _ => false,
    };
    let write_error = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|a| a.first())
        .and_then(Bson::as_document);
    let source = match (ok, write_error) {
        (true, None) => return None,
        (_, Some(w)) => w,
        (false, None) => reply,
    };
    Some(DbError::Command {
        code: source.get_i32("code").unwrap_or(0),
        code_name: source.get_str("codeName").unwrap_or("").to_owned(),
        message: source.get_str("errmsg").unwrap_or("").to_owned(),
    })
}

impl ScopedDb {
    /// The principal the handle acts as.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The tenant it is bound to (`None` for a bypass handle).
    pub fn tenant(&self) -> Option<&str> {
        self.principal.tenant.as_ref().map(TenantId::as_str)
    }

    /// The policy the handle's commands go through (tenant and soft-delete field names).
    pub fn policy(&self) -> &PolicyConfig {
        self.engine.policy()
    }

    /// A collection of the handle's database.
    pub fn collection(&self, name: &str) -> crate::scoped_collection::Collection<'_> {
        crate::scoped_collection::Collection::new(self, name)
    }

    /// Runs one command (its `$db` is the handle's) through the policy engine and returns the
    /// reply; an `ok: 0` reply or a write error is an `Err`.
    pub async fn run(&self, mut command: Document) -> Result<Document, DbError> {
        command.insert("$db", self.database.as_str());
        let name = command.keys().next().cloned().unwrap_or_default();
        if let Some(tenant) = &self.principal.tenant
            && !self.engine.registry.is_active(tenant.as_str()).await
        {
            return Err(DbError::TenantInactive(tenant.as_str().to_owned()));
        }
        if let Some(foreign) = self.foreign_cursor(&name, &command) {
            let message = format!("cursor {foreign} was not opened by this handle");
            self.engine.audit.record_from(
                &AuditRecord {
                    kind: AuditKind::Rejection,
                    rule: Rule::CursorNotOwned,
                    principal: self.principal.name.clone(),
                    tenant: self.tenant().map(str::to_owned),
                    database: Some(self.database.clone()),
                    collection: None,
                    command: name.clone(),
                    message: message.clone(),
                    shape: bson::doc! { name.as_str(): "<long>" },
                },
                &self.origin,
            );
            self.engine.metrics.rejection(Rule::CursorNotOwned);
            return Err(DbError::Rejected {
                rule: Rule::CursorNotOwned,
                message,
            });
        }
        let raw =
            RawDocumentBuf::try_from(&command).map_err(|e| DbError::Invalid(e.to_string()))?;
        let op = OpMsg::new(
            RawDoc::from_buf(raw).map_err(|(at, e)| DbError::Invalid(format!("{e:?} at {at}")))?,
        );
        let ctx = Context {
            principal: &self.principal,
            config: &self.engine.policy,
            now: bson::DateTime::now(),
        };
        let started = std::time::Instant::now();
        let outcome = decide(&op, &ctx);
        self.engine
            .metrics
            .rewrite_latency
            .observe(started.elapsed());
        if let Some(record) = &outcome.audit {
            self.engine.audit.record_from(record, &self.origin);
        }
        let body = match outcome.decision {
            Decision::Reject(r) => {
                self.engine.metrics.rejection(r.rule);
                return Err(DbError::Rejected {
                    rule: r.rule,
                    message: r.message,
                });
            }
            Decision::Reply(body) => body,
            Decision::Forward(fwd) => {
                let mut sections = vec![Section::Body(fwd.body)];
                sections.extend(fwd.sequences.into_iter().map(Section::Sequence));
                let msg = OpMsg::from_sections(MsgFlags::default(), sections)
                    .map_err(|e| DbError::Invalid(e.to_string()))?;
                let reply = self
                    .engine
                    .upstream
                    .round_trip(Message::new(0, 0, Payload::Msg(msg)))
                    .await?;
                let Payload::Msg(m) = reply.payload else {
                    return Err(DbError::Invalid(
                        "upstream replied with another opcode".into(),
                    ));
                };
                match tenantgate_policy::reply::reshape(fwd.reply, m.body().as_raw()) {
                    Some(shaped) => shaped,
                    None => m.body().as_raw().to_owned(),
                }
            }
        };
        let reply = Document::try_from(body).map_err(|e| DbError::Invalid(e.to_string()))?;
        if let Some(e) = reply_error(&reply) {
            return Err(e);
        }
        self.track(&name, &command, &reply);
        Ok(reply)
    }

    /// A cursor id `getMore` / `killCursors` names that this handle did not open.
    fn foreign_cursor(&self, name: &str, command: &Document) -> Option<i64> {
        let ids: Vec<i64> = match name {
            "getMore" => vec![command.get_i64("getMore").unwrap_or(0)],
            "killCursors" => command
                .get_array("cursors")
                .map(|a| a.iter().map(|b| b.as_i64().unwrap_or(0)).collect())
                .unwrap_or_default(),
            _ => return None,
        };
        let owned = self.cursors.lock().ok()?;
        ids.into_iter().find(|id| !owned.contains(id))
    }

    fn track(&self, name: &str, command: &Document, reply: &Document) {
        let Ok(mut cursors) = self.cursors.lock() else {
            return;
        };
        match name {
            "killCursors" => {
                if let Ok(ids) = command.get_array("cursors") {
                    for id in ids.iter().filter_map(Bson::as_i64) {
                        cursors.remove(&id);
                    }
                }
            }
            _ => {
                if let Ok(c) = reply.get_document("cursor") {
                    let id = c.get_i64("id").unwrap_or(0);
                    if name == "getMore" && id == 0 {
                        cursors.remove(&command.get_i64("getMore").unwrap_or(0));
                    } else if id != 0 {
                        cursors.insert(id);
                    }
                }
            }
        }
    }
}
