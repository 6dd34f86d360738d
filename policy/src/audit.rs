//! Audit records: what the security team sees about a rejection or a privileged bypass.
//!
//! A record names who, which tenant, where and which rule, and carries the command's *shape*:
//! its keys and operators with every value replaced by its type (`"<string>"`, `"<long>"`…).
//! Payment data never reaches the audit trail unless `audit_values` is switched on for a
//! non-production deployment. Shapes are bounded (depth, keys per document, key length, array
//! length, sequence documents) so a hostile command cannot make its own audit record huge, and
//! duplicate keys stay visible. Field *names* are kept: they say what was queried. A schema that
//! uses data as keys (maps keyed by account number) exposes those keys to the audit trail.

use bson::{Bson, Document, RawBsonRef, RawDocument};
use tenantgate_wire::DocumentSequence;

use crate::decision::Rule;

/// Why a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    /// The command was refused.
    Rejection,
    /// A `super_admin` command bypassed tenant scoping and was forwarded.
    Bypass,
}

impl AuditKind {
    /// Stable name for logs and the audit collection.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuditKind::Rejection => "rejection",
            AuditKind::Bypass => "bypass",
        }
    }
}

/// One audit event produced by the engine. The proxy adds time, connection and source address.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Rejection or bypass.
    pub kind: AuditKind,
    /// The rule involved (`Rule::Bypass` for bypasses).
    pub rule: Rule,
    /// The principal's name.
    pub principal: String,
    /// The tenant the command ran as, if any.
    pub tenant: Option<String>,
    /// Target database, when the command names one.
    pub database: Option<String>,
    /// Target collection, when the command names one.
    pub collection: Option<String>,
    /// The command name.
    pub command: String,
    /// The explanation given to the client.
    pub message: String,
    /// The command with values redacted (or kept, with `audit_values`).
    pub shape: Document,
}

const MAX_DEPTH: usize = 12;
const MAX_ARRAY: usize = 8;
const MAX_SEQUENCE_DOCS: usize = 3;
const MAX_KEYS: usize = 48;
const MAX_KEY_CHARS: usize = 64;

/// A key or name as it may appear in messages and audit shapes: at most 64 characters, so a
/// hostile command cannot make its own error message or audit record large.
pub(crate) fn clip(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_KEY_CHARS) {
        None => std::borrow::Cow::Borrowed(s),
        Some((at, _)) => std::borrow::Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// The shape of a command body plus its document sequences.
pub(crate) fn command_shape(
    body: &RawDocument,
    sequences: &[DocumentSequence],
    keep_values: bool,
) -> Document {
    let mut shape = doc_shape(body, 0, keep_values);
    for seq in sequences {
        let docs: Vec<Bson> = seq
            .documents
            .iter()
            .take(MAX_SEQUENCE_DOCS)
            .map(|d| Bson::Document(doc_shape(d.as_raw(), 1, keep_values)))
            .collect();
        let mut entry = Document::new();
        entry.insert("count", seq.documents.len() as i64);
        entry.insert("first", docs);
        shape.insert(format!("<sequence {}>", clip(&seq.identifier)), entry);
    }
    shape
}

fn doc_shape(doc: &RawDocument, depth: usize, keep: bool) -> Document {
    let mut out = Document::new();
    if depth > MAX_DEPTH {
        out.insert("<truncated>", true);
        return out;
    }
    let mut total = 0usize;
    for (i, (key, value)) in doc.iter().flatten().enumerate() {
        total = i + 1;
        if i >= MAX_KEYS {
            continue;
        }
        let mut k = clip(key.as_str()).into_owned();
        if out.contains_key(&k) {
            // Keep duplicates visible: they are what a duplicate_key rejection is about.
            k = format!("{k} <duplicate #{i}>");
        }
        out.insert(k, value_shape(value, depth + 1, keep));
    }
    if total > MAX_KEYS {
        out.insert("<more keys>", (total - MAX_KEYS) as i64);
    }
    out
}

fn value_shape(value: RawBsonRef<'_>, depth: usize, keep: bool) -> Bson {
    match value {
        RawBsonRef::Document(d) => Bson::Document(doc_shape(d, depth, keep)),
        RawBsonRef::Array(a) => {
            let items: Vec<Bson> = a
                .into_iter()
                .flatten()
                .take(MAX_ARRAY)
                .map(|v| value_shape(v, depth + 1, keep))
                .collect();
            Bson::Array(items)
        }
        other if keep => Bson::try_from(other).unwrap_or(Bson::Null),
        other => Bson::String(format!("<{}>", type_name(other))),
    }
}

fn type_name(value: RawBsonRef<'_>) -> &'static str {
    match value {
        RawBsonRef::Double(_) => "double",
        RawBsonRef::String(_) => "string",
        RawBsonRef::Document(_) => "object",
        RawBsonRef::Array(_) => "array",
        RawBsonRef::Binary(_) => "binData",
        RawBsonRef::Undefined => "undefined",
        RawBsonRef::ObjectId(_) => "objectId",
        RawBsonRef::Boolean(_) => "bool",
        RawBsonRef::DateTime(_) => "date",
        RawBsonRef::Null => "null",
        RawBsonRef::RegularExpression(_) => "regex",
        RawBsonRef::JavaScriptCode(_) => "javascript",
        RawBsonRef::JavaScriptCodeWithScope(_) => "javascriptWithScope",
        RawBsonRef::Int32(_) => "int",
        RawBsonRef::Timestamp(_) => "timestamp",
        RawBsonRef::Int64(_) => "long",
        RawBsonRef::Decimal128(_) => "decimal",
        RawBsonRef::MaxKey => "maxKey",
        RawBsonRef::MinKey => "minKey",
        RawBsonRef::DbPointer(_) => "dbPointer",
        RawBsonRef::Symbol(_) => "symbol",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn values_are_redacted_keys_and_operators_kept() {
        let body = rawdoc! { "find": "payments", "filter": { "tenantId": { "$ne": "bank1" }, "amount": 1250_i64 }, "$db": "p" };
        let shape = command_shape(&body, &[], false);
        assert_eq!(
            shape,
            bson::doc! { "find": "<string>", "filter": { "tenantId": { "$ne": "<string>" }, "amount": "<long>" }, "$db": "<string>" }
        );
        let kept = command_shape(&body, &[], true);
        assert_eq!(
            kept.get_document("filter")
                .and_then(|f| f.get_i64("amount"))
                .ok(),
            Some(1250)
        );
    }
}
