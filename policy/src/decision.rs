//! What the engine answers: forward a (rewritten) command, reject it, or reply locally.

use bson::{RawDocumentBuf, rawdoc};
use tenantgate_wire::{DocumentSequence, RawDoc};

use crate::audit::AuditRecord;

/// The rule behind a rejection or an audit record. A closed set, so it can label metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A filter, pipeline or update names the tenant field with a value other than the
    /// caller's tenant.
    TenantOverride,
    /// A write would set, unset, rename or otherwise change the tenant field, or an inserted
    /// or replacement document carries another tenant's id.
    TenantFieldWrite,
    /// Server-side JavaScript (`$where`, `$function`, `$accumulator`, `mapReduce`, code values).
    Javascript,
    /// The same key twice in one document: the proxy and the server could read different values.
    DuplicateKey,
    /// A top-level field, statement field or operator the rule does not understand.
    UnknownField,
    /// The command is not well-formed (wrong types, missing fields).
    MalformedCommand,
    /// The command is not on the caller's allowlist.
    CommandNotAllowed,
    /// The database is not open to the caller.
    DatabaseNotAllowed,
    /// The collection (system collections, `admin` mode) is not open to the caller.
    CollectionNotAllowed,
    /// Writes to a `global` collection are for `super_admin` only.
    GlobalWrite,
    /// Tenants may not read views or create them.
    ViewNotAllowed,
    /// An aggregation stage that exposes other tenants or the server, or writes elsewhere.
    StageNotAllowed,
    /// An aggregation stage the engine does not know.
    UnknownStage,
    /// A stage or command that reaches another database.
    CrossDatabase,
    /// The principal has neither a tenant nor a role that grants access.
    NoTenant,
    /// Only `super_admin` may act as a named tenant.
    ActAsNotAllowed,
    /// `getMore` / `killCursors` on a cursor the principal does not own (enforced by the proxy).
    CursorNotOwned,
    /// A collation other than `simple`: it would loosen the tenant condition too.
    CollationNotAllowed,
    /// Not a rejection: a `super_admin` command that bypassed tenant scoping (or ran as a
    /// tenant through `actAs`).
    Bypass,
}

impl Rule {
    /// The rule's stable name, used in error messages, audit records and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::TenantOverride => "tenant_override",
            Rule::TenantFieldWrite => "tenant_field_write",
            Rule::Javascript => "javascript",
            Rule::DuplicateKey => "duplicate_key",
            Rule::UnknownField => "unknown_field",
            Rule::MalformedCommand => "malformed_command",
            Rule::CommandNotAllowed => "command_not_allowed",
            Rule::DatabaseNotAllowed => "database_not_allowed",
            Rule::CollectionNotAllowed => "collection_not_allowed",
            Rule::GlobalWrite => "global_write",
            Rule::ViewNotAllowed => "view_not_allowed",
            Rule::StageNotAllowed => "stage_not_allowed",
            Rule::UnknownStage => "unknown_stage",
            Rule::CrossDatabase => "cross_database",
            Rule::NoTenant => "no_tenant",
            Rule::ActAsNotAllowed => "act_as_not_allowed",
            Rule::CursorNotOwned => "cursor_not_owned",
            Rule::CollationNotAllowed => "collation_not_allowed",
            Rule::Bypass => "bypass",
        }
    }

    /// Every rule, for documentation and metric pre-registration.
    pub const ALL: [Rule; 19] = [
        Rule::TenantOverride,
        Rule::TenantFieldWrite,
        Rule::Javascript,
        Rule::DuplicateKey,
        Rule::UnknownField,
        Rule::MalformedCommand,
        Rule::CommandNotAllowed,
        Rule::DatabaseNotAllowed,
        Rule::CollectionNotAllowed,
        Rule::GlobalWrite,
        Rule::ViewNotAllowed,
        Rule::StageNotAllowed,
        Rule::UnknownStage,
        Rule::CrossDatabase,
        Rule::NoTenant,
        Rule::ActAsNotAllowed,
        Rule::CursorNotOwned,
        Rule::CollationNotAllowed,
        Rule::Bypass,
    ];
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// MongoDB's `Unauthorized` error code, used for every policy rejection.
pub const UNAUTHORIZED_CODE: i32 = 13;

const MAX_MESSAGE_CHARS: usize = 256;

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule that refused it.
    pub rule: Rule,
    /// A human explanation, safe to show the client (no document values).
    pub message: String,
}

impl Rejection {
    /// A rejection; the message is bounded (256 characters) because it quotes names the client
    /// chose, and it goes back to the client and into the audit trail.
    pub(crate) fn new(rule: Rule, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if let Some((at, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(at);
            message.push('…');
        }
        Rejection { rule, message }
    }

    /// The `errmsg` the client sees: names the rule so a developer can look it up.
    pub fn errmsg(&self) -> String {
        format!("tenantgate policy rule '{}': {}", self.rule, self.message)
    }

    /// The MongoDB error reply body: `{ ok: 0, errmsg, code: 13, codeName: "Unauthorized" }`.
    pub fn error_reply(&self) -> RawDocumentBuf {
        rawdoc! { "ok": 0.0, "errmsg": self.errmsg(), "code": UNAUTHORIZED_CODE, "codeName": "Unauthorized" }
    }
}

/// How the proxy must adjust the upstream's reply so the client sees the shape it expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// Pass the reply through.
    AsIs,
    /// A `delete` was sent as a soft-delete `update`: keep `n` (documents deleted), drop
    /// `nModified` and `upserted`.
    DeleteFromUpdate,
    /// A `findAndModify` with `remove: true` was sent as a soft-delete update: drop
    /// `lastErrorObject.updatedExisting` and `upserted`.
    RemoveFromFindAndModify,
}

/// A command to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The body to send (the original when nothing changed).
    pub body: RawDoc,
    /// Document sequences to send, in order.
    pub sequences: Vec<DocumentSequence>,
    /// How to adjust the reply.
    pub reply: ReplyShape,
}

/// The engine's answer for one command.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send this upstream.
    Forward(Forward),
    /// Refuse with a MongoDB error (`Rejection::error_reply`).
    Reject(Rejection),
    /// Answer locally with this body (e.g. `ping`, `listDatabases`).
    Reply(RawDocumentBuf),
}

/// A decision and, for rejections and `super_admin` bypasses, the audit record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What to do.
    pub decision: Decision,
    /// What the security team must see, if anything.
    pub audit: Option<AuditRecord>,
}
