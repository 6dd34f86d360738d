//! The tenant rules, command by command and stage by stage, as tables: each row is a command a
//! principal sends and either the exact command forwarded upstream (a `doc!` literal, compared
//! byte for byte so key order and value types count) or the rule that refuses it.
//!
//! The configuration is the issue's (`databases = ["payments"]`, `currencies` global) plus one
//! collection per remaining mode and option: `tenantgate_secrets` (admin), `payment_summary`
//! (view), `ledger` (no soft delete) and `invoices` (timestamps). Any other collection, such as
//! `payments` or `customers`, is tenant-scoped with soft delete. The clock is fixed at [`NOW`].
//!
//! Every refusal is also checked for its audit record (kind, rule, principal, tenant, a shape
//! with every value redacted) and its MongoDB error reply.

mod common;

use bson::{Bson, Document, RawBson, RawDocument, RawDocumentBuf, doc, rawdoc};
use tenantgate_policy::{
    AuditKind, Decision, Forward, Outcome, ReplyShape, Rule, UNAUTHORIZED_CODE,
};
use tenantgate_wire::DocumentSequence;

use Who::{Admin, AdminAs, Bank1, Bank2, Nobody};
use common::{NOW, Who, decode, raw, run, seq};

// ---------------------------------------------------------------------------------------------
// Table runners
// ---------------------------------------------------------------------------------------------

/// Compares a document the engine produced with the expected literal: same keys, same order,
/// same types, same values.
fn same(what: &str, actual: &RawDocument, expected: &Document) -> Result<(), String> {
    let expected_raw = RawDocumentBuf::try_from(expected).expect("expected literal encodes");
    if actual.as_bytes() == expected_raw.as_bytes() {
        Ok(())
    } else {
        Err(format!(
            "{what}:\n      got {:?}\n expected {expected:?}",
            decode(actual)
        ))
    }
}

fn forward(outcome: &Outcome) -> Result<&Forward, String> {
    match &outcome.decision {
        Decision::Forward(f) => Ok(f),
        other => Err(format!("expected a forward, got {other:?}")),
    }
}

/// One rewrite: body, sequences and reply shape as expected; tenant commands are not audited.
fn check_rewrite(
    who: Who,
    body: RawDocumentBuf,
    sequences: &[DocumentSequence],
    expected: &Document,
    expected_sequences: &[(&str, Vec<Document>)],
    shape: ReplyShape,
) -> Result<(), String> {
    let outcome = run(who, body, sequences);
    let f = forward(&outcome)?;
    same("body", f.body.as_raw(), expected)?;
    if f.reply != shape {
        return Err(format!("reply shape {:?}, expected {shape:?}", f.reply));
    }
    if f.sequences.len() != expected_sequences.len() {
        return Err(format!(
            "{} sequences forwarded, expected {}",
            f.sequences.len(),
            expected_sequences.len()
        ));
    }
    for (got, (id, docs)) in f.sequences.iter().zip(expected_sequences) {
        if got.identifier != *id {
            return Err(format!("sequence '{}', expected '{id}'", got.identifier));
        }
        if got.documents.len() != docs.len() {
            return Err(format!(
                "sequence '{id}' has {} documents",
                got.documents.len()
            ));
        }
        for (i, (g, e)) in got.documents.iter().zip(docs).enumerate() {
            same(&format!("sequence '{id}' document {i}"), g.as_raw(), e)?;
        }
    }
    if who.is_tenant() && !matches!(who, AdminAs(_)) && outcome.audit.is_some() {
        return Err(format!("unexpected audit record {:?}", outcome.audit));
    }
    Ok(())
}

/// Every string leaf of an audit shape must be a redaction marker such as `"<int>"`.
fn check_redacted(shape: &Document) -> Result<(), String> {
    fn walk(path: &str, v: &Bson) -> Result<(), String> {
        match v {
            Bson::Document(d) => {
                for (k, v) in d {
                    if k == "<truncated>" {
                        continue;
                    }
                    walk(&format!("{path}.{k}"), v)?;
                }
                Ok(())
            }
            Bson::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(&format!("{path}.{i}"), v)?;
                }
                Ok(())
            }
            Bson::String(s) if s.starts_with('<') && s.ends_with('>') => Ok(()),
            other => Err(format!("audit shape keeps a value at {path}: {other:?}")),
        }
    }
    for (k, v) in shape {
        if k.starts_with("<sequence ") {
            let first = v
                .as_document()
                .and_then(|d| d.get("first"))
                .ok_or_else(|| format!("sequence shape {k} has no 'first'"))?;
            walk(k, first)?;
        } else {
            walk(k, v)?;
        }
    }
    Ok(())
}

/// One refusal: the rule, the audit record, the error reply.
fn check_reject(
    who: Who,
    body: RawDocumentBuf,
    sequences: &[DocumentSequence],
    rule: Rule,
) -> Result<(), String> {
    let command = body
        .iter()
        .next()
        .and_then(Result::ok)
        .map(|(k, _)| k.as_str().to_owned())
        .unwrap_or_default();
    let outcome = run(who, body, sequences);
    let Decision::Reject(r) = &outcome.decision else {
        return Err(format!("expected {rule}, got {:?}", outcome.decision));
    };
    if r.rule != rule {
        return Err(format!("rule {}, expected {rule} ({})", r.rule, r.message));
    }
    let reply = decode(&r.error_reply());
    let errmsg = reply.get_str("errmsg").unwrap_or_default();
    if reply.get_f64("ok").ok() != Some(0.0)
        || reply.get_i32("code").ok() != Some(UNAUTHORIZED_CODE)
        || reply.get_str("codeName").ok() != Some("Unauthorized")
        || !errmsg.contains(&format!("'{}'", rule.as_str()))
    {
        return Err(format!("bad error reply {reply:?}"));
    }
    let Some(a) = &outcome.audit else {
        return Err("a rejection without an audit record".into());
    };
    if a.kind != AuditKind::Rejection
        || a.rule != rule
        || a.principal != who.name()
        || a.tenant.as_deref() != who.tenant()
        || a.command != command
        || a.message != r.message
    {
        return Err(format!("bad audit record {a:?}"));
    }
    check_redacted(&a.shape)
}

fn report(kind: &str, failures: Vec<String>, total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} {kind} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Rows of (case, principal, command body, exact forwarded body); reply as is, no sequences.
fn rewrites(cases: Vec<(&str, Who, RawDocumentBuf, Document)>) {
    let total = cases.len();
    let failures = cases
        .into_iter()
        .filter_map(|(name, who, body, expected)| {
            check_rewrite(who, body, &[], &expected, &[], ReplyShape::AsIs)
                .err()
                .map(|e| format!("[{name}] {e}"))
        })
        .collect();
    report("rewrite", failures, total);
}

/// Rows of (case, principal, command body, exact forwarded body, reply shape).
fn rewrites_shaped(cases: Vec<(&str, Who, RawDocumentBuf, Document, ReplyShape)>) {
    let total = cases.len();
    let failures = cases
        .into_iter()
        .filter_map(|(name, who, body, expected, shape)| {
            check_rewrite(who, body, &[], &expected, &[], shape)
                .err()
                .map(|e| format!("[{name}] {e}"))
        })
        .collect();
    report("rewrite", failures, total);
}

/// Rows of (case, principal, command body, rule that refuses it).
fn rejects(cases: Vec<(&str, Who, RawDocumentBuf, Rule)>) {
    let total = cases.len();
    let failures = cases
        .into_iter()
        .filter_map(|(name, who, body, rule)| {
            check_reject(who, body, &[], rule)
                .err()
                .map(|e| format!("[{name}] {e}"))
        })
        .collect();
    report("rejection", failures, total);
}

/// Rows of (case, principal, command body, document sequences, rule that refuses it).
fn rejects_with_sequences(cases: Vec<(&str, Who, RawDocumentBuf, Vec<DocumentSequence>, Rule)>) {
    let total = cases.len();
    let failures = cases
        .into_iter()
        .filter_map(|(name, who, body, seqs, rule)| {
            check_reject(who, body, &seqs, rule)
                .err()
                .map(|e| format!("[{name}] {e}"))
        })
        .collect();
    report("rejection", failures, total);
}

/// A `find` on `payments` with this filter.
fn find(filter: RawDocumentBuf) -> RawDocumentBuf {
    rawdoc! { "find": "payments", "filter": filter, "$db": "payments" }
}

/// An `aggregate` on `payments` with this pipeline.
fn agg(pipeline: Vec<RawDocumentBuf>) -> RawDocumentBuf {
    let mut stages = bson::RawArrayBuf::new();
    for s in pipeline {
        stages.push(s);
    }
    rawdoc! { "aggregate": "payments", "pipeline": stages, "cursor": {}, "$db": "payments" }
}

/// `doc` with `key` appended a second time (`rawdoc!` cannot express a duplicate).
fn with_dup(mut doc: RawDocumentBuf, key: &str, value: impl Into<RawBson>) -> RawDocumentBuf {
    let k = <&bson::raw::CStr>::try_from(key).expect("valid key");
    doc.append(k, value.into());
    doc
}

fn regex(pattern: &str) -> bson::Regex {
    bson::Regex {
        pattern: pattern.to_owned().try_into().expect("valid pattern"),
        options: String::new().try_into().expect("valid options"),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

#[test]
fn reads_get_the_tenant_conjunction_at_the_top() {
    rewrites(vec![
        (
            // More top-level fields than the engine keeps on the stack (24): the rest spill to
            // the heap, and every field still comes out once, in order.
            "find with 29 top-level fields",
            Bank1,
            rawdoc! {
                "find": "payments", "filter": { "_id": 7 }, "sort": { "at": -1 }, "projection": { "a": 1 },
                "hint": { "_id": 1 }, "skip": 1, "limit": 10, "batchSize": 5, "singleBatch": false,
                "returnKey": false, "showRecordId": false, "noCursorTimeout": false,
                "allowPartialResults": false, "allowDiskUse": false, "readOnce": false,
                "collation": { "locale": "simple" }, "let": { "x": 1 }, "max": { "_id": 100 },
                "min": { "_id": 0 }, "lsid": { "id": 1 }, "txnNumber": 1_i64, "autocommit": false,
                "$readPreference": { "mode": "primary" }, "readConcern": { "level": "local" },
                "maxTimeMS": 100, "apiVersion": "1", "apiStrict": false, "apiDeprecationErrors": false,
                "$db": "payments",
            },
            doc! {
                "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "_id": 7 }, "sort": { "at": -1 }, "projection": { "a": 1 },
                "hint": { "_id": 1 }, "skip": 1, "limit": 10, "batchSize": 5, "singleBatch": false,
                "returnKey": false, "showRecordId": false, "noCursorTimeout": false,
                "allowPartialResults": false, "allowDiskUse": false, "readOnce": false,
                "collation": { "locale": "simple" }, "let": { "x": 1 }, "max": { "_id": 100 },
                "min": { "_id": 0 }, "lsid": { "id": 1 }, "txnNumber": 1_i64, "autocommit": false,
                "$readPreference": { "mode": "primary" }, "readConcern": { "level": "local" },
                "maxTimeMS": 100, "apiVersion": "1", "apiStrict": false, "apiDeprecationErrors": false,
                "$db": "payments",
            },
        ),
        (
            "find with a filter",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "status": "paid" }, "sort": { "at": -1 }, "limit": 10, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "status": "paid" }, "sort": { "at": -1 }, "limit": 10, "$db": "payments" },
        ),
        (
            "a user condition on the soft-delete field keeps the user's filter under $and",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "deletedAt": { "$exists": true }, "_id": 7 }, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$and": [ { "deletedAt": { "$exists": true }, "_id": 7 } ] }, "$db": "payments" },
        ),
        (
            "a user $and joins the top level as one more condition",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "$and": [ { "a": 1 }, { "b": 2 } ] }, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$and": [ { "a": 1 }, { "b": 2 } ] }, "$db": "payments" },
        ),
        (
            "find without a filter",
            Bank1,
            rawdoc! { "find": "payments", "$db": "payments" },
            doc! { "find": "payments", "$db": "payments", "filter": { "tenantId": "bank1", "deletedAt": null } },
        ),
        (
            "find with a null filter",
            Bank1,
            rawdoc! { "find": "payments", "filter": null, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null }, "$db": "payments" },
        ),
        (
            "find with an empty filter",
            Bank1,
            rawdoc! { "find": "payments", "filter": {}, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null }, "$db": "payments" },
        ),
        (
            "find by _id",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "_id": 7 }, "limit": 1, "singleBatch": true, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "_id": 7 }, "limit": 1, "singleBatch": true, "$db": "payments" },
        ),
        (
            "find as bank2",
            Bank2,
            rawdoc! { "find": "payments", "filter": { "_id": 7 }, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank2", "deletedAt": null, "_id": 7 }, "$db": "payments" },
        ),
        (
            "find keeps generic fields (session, read concern, plain comment)",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "a": 1 }, "lsid": { "id": 1 }, "readConcern": { "level": "majority" }, "comment": "dashboard", "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "a": 1 }, "lsid": { "id": 1 }, "readConcern": { "level": "majority" }, "comment": "dashboard", "$db": "payments" },
        ),
        (
            "find on a collection without soft delete",
            Bank1,
            rawdoc! { "find": "ledger", "filter": { "a": 1 }, "$db": "payments" },
            doc! { "find": "ledger", "filter": { "tenantId": "bank1", "a": 1 }, "$db": "payments" },
        ),
        (
            "count with a query",
            Bank1,
            rawdoc! { "count": "payments", "query": { "status": "paid" }, "$db": "payments" },
            doc! { "count": "payments", "query": { "tenantId": "bank1", "deletedAt": null, "status": "paid" }, "$db": "payments" },
        ),
        (
            "count without a query (estimatedDocumentCount)",
            Bank1,
            rawdoc! { "count": "payments", "$db": "payments" },
            doc! { "count": "payments", "$db": "payments", "query": { "tenantId": "bank1", "deletedAt": null } },
        ),
        (
            "count with a null query",
            Bank1,
            rawdoc! { "count": "payments", "query": null, "$db": "payments" },
            doc! { "count": "payments", "query": { "tenantId": "bank1", "deletedAt": null }, "$db": "payments" },
        ),
        (
            "distinct with a query",
            Bank1,
            rawdoc! { "distinct": "payments", "key": "status", "query": { "amount": { "$gt": 100 } }, "$db": "payments" },
            doc! { "distinct": "payments", "key": "status", "query": { "tenantId": "bank1", "deletedAt": null, "amount": { "$gt": 100 } }, "$db": "payments" },
        ),
        (
            "distinct without a query",
            Bank1,
            rawdoc! { "distinct": "payments", "key": "status", "$db": "payments" },
            doc! { "distinct": "payments", "key": "status", "$db": "payments", "query": { "tenantId": "bank1", "deletedAt": null } },
        ),
        (
            "distinct on the tenant field itself reads only the caller's value",
            Bank1,
            rawdoc! { "distinct": "payments", "key": "tenantId", "$db": "payments" },
            doc! { "distinct": "payments", "key": "tenantId", "$db": "payments", "query": { "tenantId": "bank1", "deletedAt": null } },
        ),
    ]);
}

#[test]
fn explain_shows_the_command_that_would_run() {
    rewrites(vec![
        (
            "explain find",
            Bank1,
            rawdoc! { "explain": { "find": "payments", "filter": { "status": "paid" } }, "verbosity": "queryPlanner", "$db": "payments" },
            doc! { "explain": { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "status": "paid" } }, "verbosity": "queryPlanner", "$db": "payments" },
        ),
        (
            "explain aggregate",
            Bank1,
            rawdoc! { "explain": { "aggregate": "payments", "pipeline": [ { "$match": { "status": "paid" } } ], "cursor": {} }, "verbosity": "executionStats", "$db": "payments" },
            doc! { "explain": { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$match": { "status": "paid" } } ], "cursor": {} }, "verbosity": "executionStats", "$db": "payments" },
        ),
        (
            "explain delete explains the soft-delete update",
            Bank1,
            rawdoc! { "explain": { "delete": "payments", "deletes": [ { "q": { "status": "void" }, "limit": 1 } ] }, "$db": "payments" },
            doc! { "explain": { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "status": "void" }, "u": { "$set": { "deletedAt": NOW } }, "multi": false } ] }, "$db": "payments" },
        ),
        (
            "explain as bank2, the inner command agreeing",
            AdminAs("bank2"),
            rawdoc! { "explain": { "find": "payments", "comment": "tenantgate:actAs=bank2" }, "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            doc! { "explain": { "find": "payments", "filter": { "tenantId": "bank2", "deletedAt": null } }, "$db": "payments" },
        ),
        (
            "explain count with includeDeleted on the outer command",
            Bank1,
            rawdoc! { "explain": { "count": "payments" }, "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "explain": { "count": "payments", "query": { "tenantId": "bank1" } }, "$db": "payments" },
        ),
    ]);
    rejects(vec![
        (
            "explain of an escape",
            Bank1,
            rawdoc! { "explain": { "find": "payments", "filter": { "tenantId": "bank2" } }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "explain of insert",
            Bank1,
            rawdoc! { "explain": { "insert": "payments", "documents": [ {} ] }, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "explain naming another database",
            Bank1,
            rawdoc! { "explain": { "find": "payments", "$db": "other" }, "$db": "payments" },
            Rule::CrossDatabase,
        ),
        (
            "explain of an admin collection",
            Bank1,
            rawdoc! { "explain": { "find": "tenantgate_secrets" }, "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "explain whose inner command acts as another tenant",
            Bank1,
            rawdoc! { "explain": { "find": "payments", "comment": "tenantgate:actAs=bank2" }, "$db": "payments" },
            Rule::ActAsNotAllowed,
        ),
        (
            "super_admin acting as bank2 whose inner command names bank1",
            AdminAs("bank2"),
            rawdoc! { "explain": { "find": "payments", "comment": "tenantgate:actAs=bank1" }, "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::ActAsNotAllowed,
        ),
        (
            "explain of a denied stage",
            Bank1,
            rawdoc! { "explain": { "aggregate": "payments", "pipeline": [ { "$out": "x" } ], "cursor": {} }, "$db": "payments" },
            Rule::StageNotAllowed,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Tenant override attempts
// ---------------------------------------------------------------------------------------------

#[test]
fn every_escape_in_a_filter_is_a_tenant_override() {
    rejects(vec![
        (
            "another tenant",
            Bank1,
            find(rawdoc! { "tenantId": "bank2" }),
            Rule::TenantOverride,
        ),
        (
            "the caller's tenant as bank2",
            Bank2,
            find(rawdoc! { "tenantId": "bank1" }),
            Rule::TenantOverride,
        ),
        (
            "$or",
            Bank1,
            find(rawdoc! { "$or": [ { "tenantId": "bank2" }, { "status": "paid" } ] }),
            Rule::TenantOverride,
        ),
        (
            "$or with own tenant in one branch",
            Bank1,
            find(rawdoc! { "$or": [ { "tenantId": "bank1" }, { "tenantId": "bank2" } ] }),
            Rule::TenantOverride,
        ),
        (
            "$and",
            Bank1,
            find(rawdoc! { "$and": [ { "status": "paid" }, { "tenantId": "bank2" } ] }),
            Rule::TenantOverride,
        ),
        (
            "$nor of own tenant",
            Bank1,
            find(rawdoc! { "$nor": [ { "tenantId": "bank1" } ] }),
            Rule::TenantOverride,
        ),
        (
            "$nor nested in $and",
            Bank1,
            find(
                rawdoc! { "$and": [ { "$nor": [ { "$or": [ { "tenantId": { "$eq": "bank1" } } ] } ] } ] },
            ),
            Rule::TenantOverride,
        ),
        (
            "$not",
            Bank1,
            find(rawdoc! { "tenantId": { "$not": { "$eq": "bank1" } } }),
            Rule::TenantOverride,
        ),
        (
            "$not around $elemMatch",
            Bank1,
            find(rawdoc! { "items": { "$not": { "$elemMatch": { "tenantId": "bank2" } } } }),
            Rule::TenantOverride,
        ),
        (
            "$elemMatch",
            Bank1,
            find(rawdoc! { "items": { "$elemMatch": { "tenantId": "bank2" } } }),
            Rule::TenantOverride,
        ),
        (
            "$elemMatch with $or inside",
            Bank1,
            find(rawdoc! { "items": { "$elemMatch": { "$or": [ { "tenantId": "bank2" } ] } } }),
            Rule::TenantOverride,
        ),
        (
            "$all of $elemMatch",
            Bank1,
            find(rawdoc! { "items": { "$all": [ { "$elemMatch": { "tenantId": "bank2" } } ] } }),
            Rule::TenantOverride,
        ),
        (
            "dotted tenantId.x",
            Bank1,
            find(rawdoc! { "tenantId.x": 1 }),
            Rule::TenantOverride,
        ),
        (
            "dotted tenantId.x with another tenant",
            Bank1,
            find(rawdoc! { "tenantId.0": "bank2" }),
            Rule::TenantOverride,
        ),
        (
            "embedded document naming the field",
            Bank1,
            find(rawdoc! { "meta": { "tenantId": "bank2" } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with $tenantId",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ "$tenantId", "bank2" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr $ne own tenant",
            Bank1,
            find(rawdoc! { "$expr": { "$ne": [ "$tenantId", "bank1" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with $$ROOT.tenantId",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ "$$ROOT.tenantId", "bank2" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with $$CURRENT.tenantId",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ "$$CURRENT.tenantId", "bank2" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with a dotted $tenantId.x",
            Bank1,
            find(rawdoc! { "$expr": { "$gt": [ "$tenantId.x", 0 ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with $getField string",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ { "$getField": "tenantId" }, "bank2" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr with $getField document",
            Bank1,
            find(
                rawdoc! { "$expr": { "$eq": [ { "$getField": { "field": "tenantId", "input": "$$ROOT" } }, "bank2" ] } },
            ),
            Rule::TenantOverride,
        ),
        (
            "$expr deep inside $and/$cond",
            Bank1,
            find(
                rawdoc! { "$expr": { "$and": [ { "$cond": [ { "$eq": [ "$tenantId", "bank2" ] }, true, false ] } ] } },
            ),
            Rule::TenantOverride,
        ),
        (
            "$expr $in",
            Bank1,
            find(rawdoc! { "$expr": { "$in": [ "$tenantId", [ "bank1", "bank2" ] ] } }),
            Rule::TenantOverride,
        ),
        (
            "$in with another tenant",
            Bank1,
            find(rawdoc! { "tenantId": { "$in": [ "bank1", "bank2" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$in of a regex",
            Bank1,
            find(rawdoc! { "tenantId": { "$in": [ regex("bank") ] } }),
            Rule::TenantOverride,
        ),
        (
            "$nin",
            Bank1,
            find(rawdoc! { "tenantId": { "$nin": [ "bank1" ] } }),
            Rule::TenantOverride,
        ),
        (
            "$ne",
            Bank1,
            find(rawdoc! { "tenantId": { "$ne": "bank1" } }),
            Rule::TenantOverride,
        ),
        (
            "$regex operator",
            Bank1,
            find(rawdoc! { "tenantId": { "$regex": "^bank" } }),
            Rule::TenantOverride,
        ),
        (
            "regex literal",
            Bank1,
            find(rawdoc! { "tenantId": regex("^bank") }),
            Rule::TenantOverride,
        ),
        (
            "$exists true",
            Bank1,
            find(rawdoc! { "tenantId": { "$exists": true } }),
            Rule::TenantOverride,
        ),
        (
            "$exists false",
            Bank1,
            find(rawdoc! { "tenantId": { "$exists": false } }),
            Rule::TenantOverride,
        ),
        (
            "$gte range",
            Bank1,
            find(rawdoc! { "tenantId": { "$gte": "bank1" } }),
            Rule::TenantOverride,
        ),
        (
            "$type",
            Bank1,
            find(rawdoc! { "tenantId": { "$type": "string" } }),
            Rule::TenantOverride,
        ),
        (
            "$eq plus another operator",
            Bank1,
            find(rawdoc! { "tenantId": { "$eq": "bank1", "$ne": "x" } }),
            Rule::TenantOverride,
        ),
        (
            "null",
            Bank1,
            find(rawdoc! { "tenantId": null }),
            Rule::TenantOverride,
        ),
        (
            "$jsonSchema properties",
            Bank1,
            find(
                rawdoc! { "$jsonSchema": { "properties": { "tenantId": { "enum": [ "bank2" ] } } } },
            ),
            Rule::TenantOverride,
        ),
        (
            "$jsonSchema required",
            Bank1,
            find(rawdoc! { "$jsonSchema": { "required": [ "tenantId" ] } }),
            Rule::TenantOverride,
        ),
        (
            "count query",
            Bank1,
            rawdoc! { "count": "payments", "query": { "tenantId": { "$ne": "bank1" } }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "distinct query",
            Bank1,
            rawdoc! { "distinct": "payments", "key": "a", "query": { "$or": [ { "tenantId": "bank2" } ] }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "find let",
            Bank1,
            rawdoc! { "find": "payments", "filter": {}, "let": { "t": "$tenantId" }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "global collection filter",
            Bank1,
            rawdoc! { "find": "currencies", "filter": { "tenantId": "bank2" }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "update q",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank2" }, "u": { "$set": { "a": 1 } } } ], "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "delete q",
            Bank1,
            rawdoc! { "delete": "payments", "deletes": [ { "q": { "tenantId": { "$exists": true } }, "limit": 0 } ], "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "findAndModify query",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": { "$nor": [ { "tenantId": "bank1" } ] }, "update": { "$set": { "a": 1 } }, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "$match",
            Bank1,
            agg(vec![rawdoc! { "$match": { "tenantId": "bank2" } }]),
            Rule::TenantOverride,
        ),
        (
            "$match after other stages",
            Bank1,
            agg(vec![
                rawdoc! { "$sort": { "a": 1 } },
                rawdoc! { "$match": { "$expr": { "$eq": [ "$tenantId", "bank2" ] } } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$lookup sub-pipeline $match",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "pipeline": [ { "$match": { "tenantId": "bank2" } } ], "as": "c" } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$lookup let",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "let": { "t": "$tenantId" }, "pipeline": [], "as": "c" } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$graphLookup restrictSearchWithMatch",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "accounts", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain", "restrictSearchWithMatch": { "tenantId": "bank2" } } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$graphLookup startWith",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "accounts", "startWith": "$tenantId", "connectFromField": "parent", "connectToField": "_id", "as": "chain" } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$geoNear query",
            Bank1,
            agg(vec![
                rawdoc! { "$geoNear": { "near": [ 0.0, 0.0 ], "distanceField": "d", "query": { "tenantId": "bank2" } } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$unionWith pipeline",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": "refunds", "pipeline": [ { "$match": { "tenantId": { "$in": [ "bank2" ] } } } ] } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "$facet branch",
            Bank1,
            agg(vec![
                rawdoc! { "$facet": { "a": [ { "$match": { "tenantId": "bank2" } } ] } },
            ]),
            Rule::TenantOverride,
        ),
        (
            "aggregate let",
            Bank1,
            rawdoc! { "aggregate": "payments", "pipeline": [], "let": { "t": "$$ROOT.tenantId" }, "cursor": {}, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "$nor of an own-tenant $expr",
            Bank1,
            find(rawdoc! { "$nor": [ { "$expr": { "$eq": [ "$tenantId", "bank1" ] } } ] }),
            Rule::TenantOverride,
        ),
        (
            "$expr $not of the own-tenant equality",
            Bank1,
            find(rawdoc! { "$expr": { "$not": [ { "$eq": [ "$tenantId", "bank1" ] } ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr comparing the own-tenant equality with false",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ { "$eq": [ "$tenantId", "bank1" ] }, false ] } }),
            Rule::TenantOverride,
        ),
        (
            "$expr $cond on the own-tenant equality",
            Bank1,
            find(
                rawdoc! { "$expr": { "$cond": [ { "$eq": [ "$tenantId", "bank1" ] }, false, true ] } },
            ),
            Rule::TenantOverride,
        ),
        (
            "$getField with a $literal field name",
            Bank1,
            find(
                rawdoc! { "$expr": { "$eq": [ { "$getField": { "field": { "$literal": "tenantId" }, "input": "$$ROOT" } }, "bank2" ] } },
            ),
            Rule::TenantOverride,
        ),
        (
            "super_admin acting as bank2 asking for bank1",
            AdminAs("bank2"),
            rawdoc! { "find": "payments", "filter": { "tenantId": "bank1" }, "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::TenantOverride,
        ),
    ]);
}

#[test]
fn own_tenant_mentions_are_allowed_and_still_scoped() {
    rewrites(vec![
        (
            "equality (a top-level repeat of the scope is dropped: upserts refuse a path matched twice)",
            Bank1,
            find(rawdoc! { "tenantId": "bank1" }),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null }, "$db": "payments" },
        ),
        (
            "$eq",
            Bank1,
            find(rawdoc! { "tenantId": { "$eq": "bank1" }, "status": "x" }),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "status": "x" }, "$db": "payments" },
        ),
        (
            "$in of own tenant only",
            Bank1,
            find(rawdoc! { "tenantId": { "$in": [ "bank1" ] }, "deletedAt": null }),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null }, "$db": "payments" },
        ),
        (
            "inside $or and $and",
            Bank1,
            find(
                rawdoc! { "$or": [ { "tenantId": "bank1", "a": 1 }, { "$and": [ { "tenantId": "bank1" }, { "b": 2 } ] } ] },
            ),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$or": [ { "tenantId": "bank1", "a": 1 }, { "$and": [ { "tenantId": "bank1" }, { "b": 2 } ] } ] }, "$db": "payments" },
        ),
        (
            "$expr own equality",
            Bank1,
            find(rawdoc! { "$expr": { "$eq": [ "$tenantId", "bank1" ] } }),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$expr": { "$eq": [ "$tenantId", "bank1" ] } }, "$db": "payments" },
        ),
        (
            "$expr own equality, reversed",
            Bank2,
            find(rawdoc! { "$expr": { "$eq": [ "bank2", "$tenantId" ] } }),
            doc! { "find": "payments", "filter": { "tenantId": "bank2", "deletedAt": null, "$expr": { "$eq": [ "bank2", "$tenantId" ] } }, "$db": "payments" },
        ),
        (
            "$expr own equality under $and and $or",
            Bank1,
            find(
                rawdoc! { "$expr": { "$and": [ { "$or": [ { "$eq": [ "$tenantId", "bank1" ] }, { "$gt": [ "$amount", 5 ] } ] } ] } },
            ),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$expr": { "$and": [ { "$or": [ { "$eq": [ "$tenantId", "bank1" ] }, { "$gt": [ "$amount", 5 ] } ] } ] } }, "$db": "payments" },
        ),
        (
            "fields that merely start like the tenant field",
            Bank1,
            find(rawdoc! { "tenantIdentity": "bank2", "owner.tenantId": "x" }),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "tenantIdentity": "bank2", "owner.tenantId": "x" }, "$db": "payments" },
        ),
        (
            "the string bank2 as ordinary data",
            Bank1,
            find(
                rawdoc! { "counterparty": "bank2", "items": { "$elemMatch": { "qty": { "$gt": 1 } } } },
            ),
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "counterparty": "bank2", "items": { "$elemMatch": { "qty": { "$gt": 1 } } } }, "$db": "payments" },
        ),
        (
            "$match with own tenant in a pipeline",
            Bank1,
            agg(vec![rawdoc! { "$match": { "tenantId": "bank1" } }]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$match": { "tenantId": "bank1" } } ], "cursor": {}, "$db": "payments" },
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Hygiene: JavaScript, duplicate keys, unknown fields
// ---------------------------------------------------------------------------------------------

#[test]
fn server_side_javascript_is_refused() {
    rejects(vec![
        (
            "$where",
            Bank1,
            find(rawdoc! { "$where": "this.tenantId == 'bank2'" }),
            Rule::Javascript,
        ),
        (
            "$where nested in $or",
            Bank1,
            find(rawdoc! { "$or": [ { "$where": "true" } ] }),
            Rule::Javascript,
        ),
        (
            "$function in $expr",
            Bank1,
            find(
                rawdoc! { "$expr": { "$function": { "body": "function() { return true }", "args": [], "lang": "js" } } },
            ),
            Rule::Javascript,
        ),
        (
            "$function in $project",
            Bank1,
            agg(vec![
                rawdoc! { "$project": { "x": { "$function": { "body": "f", "args": [], "lang": "js" } } } },
            ]),
            Rule::Javascript,
        ),
        (
            "$accumulator in $group",
            Bank1,
            agg(vec![
                rawdoc! { "$group": { "_id": null, "x": { "$accumulator": { "init": "f", "accumulate": "g", "accumulateArgs": [], "merge": "h", "lang": "js" } } } },
            ]),
            Rule::Javascript,
        ),
        (
            "$where in an update filter",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": { "$where": "true" }, "u": { "$set": { "a": 1 } } } ], "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "code value in a filter",
            Bank1,
            find(rawdoc! { "a": RawBson::JavaScriptCode("1".into()) }),
            Rule::Javascript,
        ),
        (
            "code with scope in an inserted document",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "f": RawBson::JavaScriptCodeWithScope(bson::RawJavaScriptCodeWithScope { code: "x".into(), scope: rawdoc! {} }) } ], "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "mapReduce",
            Bank1,
            rawdoc! { "mapReduce": "payments", "map": "function() {}", "reduce": "function() {}", "out": { "inline": 1 }, "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "eval",
            Bank1,
            rawdoc! { "eval": "db.payments.find()", "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "$eval",
            Bank1,
            rawdoc! { "$eval": "1", "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "$where for super_admin too",
            Admin,
            find(rawdoc! { "$where": "true" }),
            Rule::Javascript,
        ),
        (
            "mapReduce for super_admin: not on its allowlist",
            Admin,
            rawdoc! { "mapReduce": "payments", "map": "m", "reduce": "r", "out": { "inline": 1 }, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
    ]);
    rejects_with_sequences(vec![(
        "code value in a sequence document",
        Bank1,
        rawdoc! { "insert": "payments", "$db": "payments" },
        vec![seq(
            "documents",
            vec![rawdoc! { "f": RawBson::JavaScriptCode("x".into()) }],
        )],
        Rule::Javascript,
    )]);
}

#[test]
fn duplicate_keys_and_shadowing_sequences_are_refused() {
    let dup_filter_key = with_dup(rawdoc! { "tenantId": "bank1" }, "tenantId", "bank2");
    rejects(vec![
        (
            "a second tenantId in the filter",
            Bank1,
            find(dup_filter_key.clone()),
            Rule::DuplicateKey,
        ),
        (
            "a second tenantId deep in $or",
            Bank1,
            find(rawdoc! { "$or": [ dup_filter_key.clone() ] }),
            Rule::DuplicateKey,
        ),
        (
            "a second filter",
            Bank1,
            with_dup(
                rawdoc! { "find": "payments", "filter": { "a": 1 }, "$db": "payments" },
                "filter",
                rawdoc! { "tenantId": "bank2" },
            ),
            Rule::DuplicateKey,
        ),
        (
            "a second $db",
            Bank1,
            with_dup(
                rawdoc! { "find": "payments", "filter": {}, "$db": "payments" },
                "$db",
                "admin",
            ),
            Rule::DuplicateKey,
        ),
        (
            "a second command name",
            Bank1,
            with_dup(
                rawdoc! { "find": "payments", "$db": "payments" },
                "find",
                "tenantgate_secrets",
            ),
            Rule::DuplicateKey,
        ),
        (
            "a duplicate inside an inserted document",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ dup_filter_key.clone() ], "$db": "payments" },
            Rule::DuplicateKey,
        ),
        (
            "a duplicate for super_admin too",
            Admin,
            with_dup(
                rawdoc! { "find": "payments", "$db": "payments" },
                "$db",
                "admin",
            ),
            Rule::DuplicateKey,
        ),
    ]);
    rejects_with_sequences(vec![
        (
            "a sequence shadowing a body field",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "a": 1 } ], "$db": "payments" },
            vec![seq("documents", vec![rawdoc! { "tenantId": "bank2" }])],
            Rule::DuplicateKey,
        ),
        (
            "a sequence identifier twice",
            Bank1,
            rawdoc! { "insert": "payments", "$db": "payments" },
            vec![
                seq("documents", vec![rawdoc! { "a": 1 }]),
                seq("documents", vec![rawdoc! { "a": 2 }]),
            ],
            Rule::DuplicateKey,
        ),
        (
            "a sequence shadowing $db",
            Bank1,
            rawdoc! { "insert": "payments", "$db": "payments" },
            vec![seq("$db", vec![rawdoc! { "a": 1 }])],
            Rule::DuplicateKey,
        ),
        (
            "a duplicate key inside a sequence document",
            Bank1,
            rawdoc! { "update": "payments", "$db": "payments" },
            vec![seq(
                "updates",
                vec![with_dup(
                    rawdoc! { "q": {}, "u": { "$set": { "a": 1 } } },
                    "q",
                    rawdoc! { "tenantId": "bank2" },
                )],
            )],
            Rule::DuplicateKey,
        ),
    ]);
}

#[test]
fn fields_the_rules_do_not_understand_are_refused() {
    rejects(vec![
        (
            "find: unknown top-level field",
            Bank1,
            rawdoc! { "find": "payments", "filter": {}, "tenantOverride": true, "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "find: unknown $-field",
            Bank1,
            rawdoc! { "find": "payments", "$tenant": "bank2", "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "count: find-only field",
            Bank1,
            rawdoc! { "count": "payments", "sort": { "a": 1 }, "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "aggregate: unknown field",
            Bank1,
            rawdoc! { "aggregate": "payments", "pipeline": [], "cursor": {}, "out": "x", "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "insert: unknown field",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ {} ], "upsert": true, "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "update: unknown statement field",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "a": 1 } }, "tenant": "bank2" } ], "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "delete: unknown statement field",
            Bank1,
            rawdoc! { "delete": "payments", "deletes": [ { "q": {}, "limit": 1, "hard": true } ], "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "findAndModify: unknown field",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": {}, "remove": true, "hard": true, "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "getMore: unknown field",
            Bank1,
            rawdoc! { "getMore": 5_i64, "collection": "payments", "filter": {}, "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "unknown top-level query operator",
            Bank1,
            find(rawdoc! { "$tenant": "bank2" }),
            Rule::UnknownField,
        ),
        (
            "unknown update operator",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$setTenant": { "a": 1 } } } ], "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "update mixing operators and fields",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "a": 1 }, "b": 2 } } ], "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "unknown $lookup field",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "localField": "a", "foreignField": "b", "as": "c", "db": "other" } },
            ]),
            Rule::UnknownField,
        ),
        (
            "unknown $graphLookup field",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "a", "startWith": "$x", "connectFromField": "x", "connectToField": "y", "as": "z", "bypass": true } },
            ]),
            Rule::UnknownField,
        ),
        (
            "unknown $unionWith field",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": "refunds", "db": "other" } },
            ]),
            Rule::UnknownField,
        ),
        (
            "unknown tenantgate comment option",
            Bank1,
            rawdoc! { "find": "payments", "comment": "tenantgate:bypass", "$db": "payments" },
            Rule::UnknownField,
        ),
        (
            "unknown tenantgate comment option, document form",
            Bank1,
            rawdoc! { "find": "payments", "comment": { "tenantgate": { "sudo": true } }, "$db": "payments" },
            Rule::UnknownField,
        ),
    ]);
    rejects_with_sequences(vec![
        (
            "find with a document sequence",
            Bank1,
            rawdoc! { "find": "payments", "$db": "payments" },
            vec![seq("filter", vec![rawdoc! { "tenantId": "bank2" }])],
            Rule::UnknownField,
        ),
        (
            "update with a documents sequence",
            Bank1,
            rawdoc! { "update": "payments", "$db": "payments" },
            vec![seq("documents", vec![rawdoc! { "a": 1 }])],
            Rule::UnknownField,
        ),
        (
            "insert with an updates sequence",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ {} ], "$db": "payments" },
            vec![seq("updates", vec![rawdoc! { "q": {}, "u": {} }])],
            Rule::UnknownField,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// insert
// ---------------------------------------------------------------------------------------------

#[test]
fn insert_stamps_the_tenant_on_every_document() {
    rewrites(vec![
        (
            "documents without a tenant get it; one with the caller's tenant is kept",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "_id": 1, "amount": 1250 }, { "_id": 2, "tenantId": "bank1" } ], "ordered": true, "$db": "payments" },
            doc! { "insert": "payments", "documents": [ { "_id": 1, "amount": 1250, "tenantId": "bank1" }, { "_id": 2, "tenantId": "bank1" } ], "ordered": true, "$db": "payments" },
        ),
        (
            "bank2's documents get bank2",
            Bank2,
            rawdoc! { "insert": "payments", "documents": [ { "_id": 1 } ], "$db": "payments" },
            doc! { "insert": "payments", "documents": [ { "_id": 1, "tenantId": "bank2" } ], "$db": "payments" },
        ),
        (
            "nested tenantId-named fields are data",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "meta": { "tenantId": "bank2" } } ], "$db": "payments" },
            doc! { "insert": "payments", "documents": [ { "meta": { "tenantId": "bank2" }, "tenantId": "bank1" } ], "$db": "payments" },
        ),
        (
            "timestamps: createdAt and updatedAt are stamped with now",
            Bank1,
            rawdoc! { "insert": "invoices", "documents": [ { "_id": 1 } ], "$db": "payments" },
            doc! { "insert": "invoices", "documents": [ { "_id": 1, "tenantId": "bank1", "createdAt": NOW, "updatedAt": NOW } ], "$db": "payments" },
        ),
        (
            "timestamps: a client updatedAt is replaced, a client createdAt kept",
            Bank1,
            rawdoc! { "insert": "invoices", "documents": [ { "_id": 1, "updatedAt": 1, "createdAt": 2, "tenantId": "bank1" } ], "$db": "payments" },
            doc! { "insert": "invoices", "documents": [ { "_id": 1, "createdAt": 2, "tenantId": "bank1", "updatedAt": NOW } ], "$db": "payments" },
        ),
    ]);
    rejects(vec![
        (
            "one document of another tenant refuses the whole batch",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "_id": 1 }, { "_id": 2, "tenantId": "bank2" } ], "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "a null tenant",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "tenantId": null } ], "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "a non-string tenant",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "tenantId": 1 } ], "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "an embedded tenant document",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ { "tenantId": { "$eq": "bank1" } } ], "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "no documents at all",
            Bank1,
            rawdoc! { "insert": "payments", "$db": "payments" },
            Rule::MalformedCommand,
        ),
    ]);
}

#[test]
fn insert_through_a_documents_sequence() {
    let kept = rawdoc! { "_id": 2, "tenantId": "bank1", "amount": 5 };
    let sequences = [seq("documents", vec![rawdoc! { "_id": 1 }, kept.clone()])];
    let outcome = run(
        Bank1,
        rawdoc! { "insert": "payments", "ordered": false, "$db": "payments" },
        &sequences,
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "body",
        f.body.as_raw(),
        &doc! { "insert": "payments", "ordered": false, "$db": "payments" },
    )
    .expect("body");
    assert_eq!(f.sequences.len(), 1);
    assert_eq!(f.sequences[0].identifier, "documents");
    let docs = &f.sequences[0].documents;
    same(
        "doc 0",
        docs[0].as_raw(),
        &doc! { "_id": 1, "tenantId": "bank1" },
    )
    .expect("stamped");
    assert_eq!(
        docs[1].as_bytes(),
        kept.as_bytes(),
        "a document already carrying the caller's tenant is forwarded byte for byte"
    );
    assert_eq!(docs[1].as_bytes(), sequences[0].documents[1].as_bytes());
    assert!(outcome.audit.is_none());

    // The same in the body's array: the kept element is byte-identical too.
    let outcome = run(
        Bank1,
        rawdoc! { "insert": "payments", "documents": [ { "_id": 1 }, kept.clone() ], "$db": "payments" },
        &[],
    );
    let f = forward(&outcome).expect("forwarded");
    let arr = f.body.as_raw().get_array("documents").expect("documents");
    let second = arr
        .into_iter()
        .nth(1)
        .and_then(Result::ok)
        .and_then(|v| v.as_document())
        .expect("second document");
    assert_eq!(second.as_bytes(), kept.as_bytes());

    // Timestamps through a sequence.
    let outcome = run(
        Bank1,
        rawdoc! { "insert": "invoices", "$db": "payments" },
        &[seq("documents", vec![rawdoc! { "n": 1 }])],
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "stamped",
        f.sequences[0].documents[0].as_raw(),
        &doc! { "n": 1, "tenantId": "bank1", "createdAt": NOW, "updatedAt": NOW },
    )
    .expect("stamped");

    rejects_with_sequences(vec![(
        "another tenant's document in the sequence refuses the command",
        Bank1,
        rawdoc! { "insert": "payments", "$db": "payments" },
        vec![seq(
            "documents",
            vec![
                rawdoc! { "_id": 1 },
                rawdoc! { "_id": 2, "tenantId": "bank2" },
            ],
        )],
        Rule::TenantFieldWrite,
    )]);
}

// ---------------------------------------------------------------------------------------------
// update
// ---------------------------------------------------------------------------------------------

/// An `update` on `payments` with one statement.
fn upd(stmt: RawDocumentBuf) -> RawDocumentBuf {
    rawdoc! { "update": "payments", "updates": [ stmt ], "$db": "payments" }
}

#[test]
fn update_scopes_the_filter_and_guards_the_tenant_field() {
    rewrites(vec![
        (
            "operator update",
            Bank1,
            upd(rawdoc! { "q": { "_id": 1 }, "u": { "$set": { "status": "paid" } } }),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "status": "paid" } } } ], "$db": "payments" },
        ),
        (
            "multi, empty filter, several operators",
            Bank1,
            upd(
                rawdoc! { "q": {}, "u": { "$inc": { "n": 1 }, "$push": { "log": "x" }, "$unset": { "tmp": "" } }, "multi": true },
            ),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$inc": { "n": 1 }, "$push": { "log": "x" }, "$unset": { "tmp": "" } }, "multi": true } ], "$db": "payments" },
        ),
        (
            "setting the caller's own tenant is allowed",
            Bank1,
            upd(
                rawdoc! { "q": {}, "u": { "$set": { "tenantId": "bank1" }, "$setOnInsert": { "tenantId": "bank1" } } },
            ),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$set": { "tenantId": "bank1" }, "$setOnInsert": { "tenantId": "bank1" } } } ], "$db": "payments" },
        ),
        (
            "replacement gets the tenant",
            Bank1,
            upd(rawdoc! { "q": { "_id": 1 }, "u": { "amount": 5 } }),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "amount": 5, "tenantId": "bank1" } } ], "$db": "payments" },
        ),
        (
            "pipeline gets a final $set of the tenant",
            Bank1,
            upd(
                rawdoc! { "q": { "_id": 1 }, "u": [ { "$set": { "total": { "$add": [ "$a", "$b" ] } } }, { "$replaceWith": "$$ROOT" } ] },
            ),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": [ { "$set": { "total": { "$add": [ "$a", "$b" ] } } }, { "$replaceWith": "$$ROOT" }, { "$set": { "tenantId": { "$literal": "bank1" } } } ] } ], "$db": "payments" },
        ),
        (
            "upsert: the tenant equality sits at the top of the filter",
            Bank1,
            upd(rawdoc! { "q": { "_id": 1 }, "u": { "$set": { "a": 1 } }, "upsert": true }),
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "a": 1 } }, "upsert": true } ], "$db": "payments" },
        ),
        (
            "arrayFilters, collation, hint, let are kept",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "items.$[i].ok": true } }, "arrayFilters": [ { "i.qty": { "$gt": 1 } } ], "hint": { "a": 1 } } ], "let": { "x": 1 }, "ordered": false, "$db": "payments" },
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$set": { "items.$[i].ok": true } }, "arrayFilters": [ { "i.qty": { "$gt": 1 } } ], "hint": { "a": 1 } } ], "let": { "x": 1 }, "ordered": false, "$db": "payments" },
        ),
        (
            "timestamps: operator update gets updatedAt and createdAt-on-insert",
            Bank1,
            rawdoc! { "update": "invoices", "updates": [ { "q": { "_id": 1 }, "u": { "$set": { "a": 1 } } } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "a": 1, "updatedAt": NOW }, "$setOnInsert": { "createdAt": NOW } } } ], "$db": "payments" },
        ),
        (
            "timestamps: $inc-only update gains a $set",
            Bank1,
            rawdoc! { "update": "invoices", "updates": [ { "q": {}, "u": { "$inc": { "n": 1 } } } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$inc": { "n": 1 }, "$set": { "updatedAt": NOW }, "$setOnInsert": { "createdAt": NOW } } } ], "$db": "payments" },
        ),
        (
            "timestamps: a write under updatedAt is not stamped over (it would conflict)",
            Bank1,
            rawdoc! { "update": "invoices", "updates": [ { "q": {}, "u": { "$set": { "updatedAt.by": "ops" } } } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$set": { "updatedAt.by": "ops" } } } ], "$db": "payments" },
        ),
        (
            "timestamps: replacement",
            Bank1,
            rawdoc! { "update": "invoices", "updates": [ { "q": {}, "u": { "a": 1 } } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "a": 1, "tenantId": "bank1", "createdAt": NOW, "updatedAt": NOW } } ], "$db": "payments" },
        ),
        (
            "timestamps: pipeline",
            Bank1,
            rawdoc! { "update": "invoices", "updates": [ { "q": {}, "u": [ { "$set": { "a": 1 } } ] } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": [ { "$set": { "a": 1 } }, { "$set": { "tenantId": { "$literal": "bank1" }, "updatedAt": NOW } } ] } ], "$db": "payments" },
        ),
    ]);
    let stmt = |u: RawDocumentBuf| upd(rawdoc! { "q": {}, "u": u });
    let pipeline = |stage: RawDocumentBuf| upd(rawdoc! { "q": {}, "u": [ stage ] });
    rejects(vec![
        (
            "$set another tenant",
            Bank1,
            stmt(rawdoc! { "$set": { "tenantId": "bank2" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$unset",
            Bank1,
            stmt(rawdoc! { "$unset": { "tenantId": "" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$rename source",
            Bank1,
            stmt(rawdoc! { "$rename": { "tenantId": "formerTenant" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$rename target",
            Bank1,
            stmt(rawdoc! { "$rename": { "owner": "tenantId" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$rename target dotted",
            Bank1,
            stmt(rawdoc! { "$rename": { "owner": "tenantId.x" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$setOnInsert another tenant",
            Bank1,
            stmt(rawdoc! { "$setOnInsert": { "tenantId": "bank2" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$inc",
            Bank1,
            stmt(rawdoc! { "$inc": { "tenantId": 1 } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$mul",
            Bank1,
            stmt(rawdoc! { "$mul": { "tenantId": 1 } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$min",
            Bank1,
            stmt(rawdoc! { "$min": { "tenantId": "a" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$max",
            Bank1,
            stmt(rawdoc! { "$max": { "tenantId": "z" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$currentDate",
            Bank1,
            stmt(rawdoc! { "$currentDate": { "tenantId": true } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$push",
            Bank1,
            stmt(rawdoc! { "$push": { "tenantId": "x" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$addToSet",
            Bank1,
            stmt(rawdoc! { "$addToSet": { "tenantId": "x" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$pull",
            Bank1,
            stmt(rawdoc! { "$pull": { "tenantId": "x" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$pop",
            Bank1,
            stmt(rawdoc! { "$pop": { "tenantId": 1 } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$bit",
            Bank1,
            stmt(rawdoc! { "$bit": { "tenantId": { "and": 1 } } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$set dotted",
            Bank1,
            stmt(rawdoc! { "$set": { "tenantId.x": 1 } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$set all-positional",
            Bank1,
            stmt(rawdoc! { "$set": { "tenantId.$[]": "bank2" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$set filtered-positional",
            Bank1,
            stmt(rawdoc! { "$set": { "tenantId.$[e]": "bank2" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$set own tenant on a dotted path",
            Bank1,
            stmt(rawdoc! { "$set": { "tenantId.0": "bank1" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "$unset own tenant among others",
            Bank1,
            stmt(rawdoc! { "$set": { "a": 1 }, "$unset": { "b": "", "tenantId": "" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "replacement with another tenant",
            Bank1,
            stmt(rawdoc! { "a": 1, "tenantId": "bank2" }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $set another tenant",
            Bank1,
            pipeline(rawdoc! { "$set": { "tenantId": "bank2" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $set computed tenant",
            Bank1,
            pipeline(rawdoc! { "$addFields": { "tenantId": "$owner" } }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $unset",
            Bank1,
            pipeline(rawdoc! { "$unset": "tenantId" }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $unset array",
            Bank1,
            pipeline(rawdoc! { "$unset": [ "a", "tenantId" ] }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $project excluding it",
            Bank1,
            pipeline(rawdoc! { "$project": { "tenantId": 0 } }),
            Rule::TenantFieldWrite,
        ),
        (
            "pipeline $lookup",
            Bank1,
            pipeline(rawdoc! { "$lookup": { "from": "payments", "as": "x" } }),
            Rule::StageNotAllowed,
        ),
        (
            "update of a global collection",
            Bank1,
            rawdoc! { "update": "currencies", "updates": [ { "q": {}, "u": { "$set": { "rate": 1 } } } ], "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "statement without u",
            Bank1,
            upd(rawdoc! { "q": {} }),
            Rule::MalformedCommand,
        ),
    ]);
}

#[test]
fn update_through_an_updates_sequence() {
    let sequences = [seq(
        "updates",
        vec![
            rawdoc! { "q": { "_id": 1 }, "u": { "$set": { "a": 1 } }, "upsert": true },
            rawdoc! { "q": {}, "u": { "b": 2 } },
        ],
    )];
    let outcome = run(
        Bank1,
        rawdoc! { "update": "payments", "ordered": true, "$db": "payments" },
        &sequences,
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "body",
        f.body.as_raw(),
        &doc! { "update": "payments", "ordered": true, "$db": "payments" },
    )
    .expect("body");
    assert_eq!(f.reply, ReplyShape::AsIs);
    assert_eq!(f.sequences.len(), 1);
    assert_eq!(f.sequences[0].identifier, "updates");
    same("statement 0", f.sequences[0].documents[0].as_raw(), &doc! { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "a": 1 } }, "upsert": true }).expect("statement 0");
    same("statement 1", f.sequences[0].documents[1].as_raw(), &doc! { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "b": 2, "tenantId": "bank1" } }).expect("statement 1");

    rejects_with_sequences(vec![
        (
            "a tenant-field write in the second statement",
            Bank1,
            rawdoc! { "update": "payments", "$db": "payments" },
            vec![seq(
                "updates",
                vec![
                    rawdoc! { "q": {}, "u": { "$set": { "a": 1 } } },
                    rawdoc! { "q": {}, "u": { "$rename": { "tenantId": "t" } } },
                ],
            )],
            Rule::TenantFieldWrite,
        ),
        (
            "an override in a sequence statement's filter",
            Bank1,
            rawdoc! { "update": "payments", "$db": "payments" },
            vec![seq(
                "updates",
                vec![rawdoc! { "q": { "tenantId": "bank2" }, "u": { "$set": { "a": 1 } } }],
            )],
            Rule::TenantOverride,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// delete
// ---------------------------------------------------------------------------------------------

#[test]
fn delete_becomes_a_soft_delete() {
    rewrites_shaped(vec![
        (
            "limit 1: one document",
            Bank1,
            rawdoc! { "delete": "payments", "deletes": [ { "q": { "_id": 1 }, "limit": 1 } ], "$db": "payments" },
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "deletedAt": NOW } }, "multi": false } ], "$db": "payments" },
            ReplyShape::DeleteFromUpdate,
        ),
        (
            "limit 0: every match; collation and hint kept; ordered and writeConcern kept",
            Bank1,
            rawdoc! { "delete": "payments", "deletes": [ { "q": { "status": "void" }, "limit": 0, "collation": { "locale": "simple" }, "hint": { "status": 1 } } ], "ordered": true, "writeConcern": { "w": "majority" }, "$db": "payments" },
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null, "status": "void" }, "u": { "$set": { "deletedAt": NOW } }, "multi": true, "collation": { "locale": "simple" }, "hint": { "status": 1 } } ], "ordered": true, "writeConcern": { "w": "majority" }, "$db": "payments" },
            ReplyShape::DeleteFromUpdate,
        ),
        (
            "timestamps: the soft delete also sets updatedAt",
            Bank1,
            rawdoc! { "delete": "invoices", "deletes": [ { "q": {}, "limit": 0 } ], "$db": "payments" },
            doc! { "update": "invoices", "updates": [ { "q": { "tenantId": "bank1", "deletedAt": null }, "u": { "$set": { "deletedAt": NOW, "updatedAt": NOW } }, "multi": true } ], "$db": "payments" },
            ReplyShape::DeleteFromUpdate,
        ),
        (
            "a collection without soft delete keeps a scoped hard delete",
            Bank1,
            rawdoc! { "delete": "ledger", "deletes": [ { "q": { "_id": 1 }, "limit": 1 } ], "$db": "payments" },
            doc! { "delete": "ledger", "deletes": [ { "q": { "tenantId": "bank1", "_id": 1 }, "limit": 1 } ], "$db": "payments" },
            ReplyShape::AsIs,
        ),
    ]);
    rejects(vec![
        (
            "a limit other than 0 or 1",
            Bank1,
            rawdoc! { "delete": "payments", "deletes": [ { "q": {}, "limit": 5 } ], "$db": "payments" },
            Rule::MalformedCommand,
        ),
        (
            "a global collection",
            Bank1,
            rawdoc! { "delete": "currencies", "deletes": [ { "q": {}, "limit": 0 } ], "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "a view",
            Bank1,
            rawdoc! { "delete": "payment_summary", "deletes": [ { "q": {}, "limit": 0 } ], "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
    ]);
}

#[test]
fn delete_sequences_become_update_sequences() {
    let sequences = [seq(
        "deletes",
        vec![
            rawdoc! { "q": { "_id": 1 }, "limit": 1 },
            rawdoc! { "q": { "status": "void" }, "limit": 0 },
        ],
    )];
    let outcome = run(
        Bank1,
        rawdoc! { "delete": "payments", "ordered": true, "$db": "payments" },
        &sequences,
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "body",
        f.body.as_raw(),
        &doc! { "update": "payments", "ordered": true, "$db": "payments" },
    )
    .expect("body");
    assert_eq!(f.reply, ReplyShape::DeleteFromUpdate);
    assert_eq!(f.sequences.len(), 1);
    assert_eq!(f.sequences[0].identifier, "updates");
    same("0", f.sequences[0].documents[0].as_raw(), &doc! { "q": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "u": { "$set": { "deletedAt": NOW } }, "multi": false }).expect("0");
    same("1", f.sequences[0].documents[1].as_raw(), &doc! { "q": { "tenantId": "bank1", "deletedAt": null, "status": "void" }, "u": { "$set": { "deletedAt": NOW } }, "multi": true }).expect("1");

    // Hard delete through a sequence keeps its identifier.
    let outcome = run(
        Bank1,
        rawdoc! { "delete": "ledger", "$db": "payments" },
        &[seq("deletes", vec![rawdoc! { "q": {}, "limit": 0 }])],
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "body",
        f.body.as_raw(),
        &doc! { "delete": "ledger", "$db": "payments" },
    )
    .expect("body");
    assert_eq!(f.sequences[0].identifier, "deletes");
    same(
        "hard",
        f.sequences[0].documents[0].as_raw(),
        &doc! { "q": { "tenantId": "bank1" }, "limit": 0 },
    )
    .expect("hard");
    assert_eq!(f.reply, ReplyShape::AsIs);
}

#[test]
fn super_admin_delete_is_a_hard_delete_and_audited() {
    let body = rawdoc! { "delete": "payments", "deletes": [ { "q": { "amount": 1250 }, "limit": 0 } ], "$db": "payments" };
    let outcome = run(Admin, body.clone(), &[]);
    let f = forward(&outcome).expect("forwarded");
    assert_eq!(f.body.as_bytes(), body.as_bytes(), "forwarded unchanged");
    assert_eq!(f.reply, ReplyShape::AsIs);
    let a = outcome.audit.expect("a bypass is audited");
    assert_eq!(a.kind, AuditKind::Bypass);
    assert_eq!(a.rule, Rule::Bypass);
    assert_eq!(a.principal, "root");
    assert_eq!(a.tenant, None);
    assert_eq!(a.database.as_deref(), Some("payments"));
    assert_eq!(a.collection.as_deref(), Some("payments"));
    assert_eq!(a.command, "delete");
    assert_eq!(
        a.shape,
        doc! { "delete": "<string>", "deletes": [ { "q": { "amount": "<int>" }, "limit": "<int>" } ], "$db": "<string>" }
    );
}

// ---------------------------------------------------------------------------------------------
// findAndModify
// ---------------------------------------------------------------------------------------------

#[test]
fn find_and_modify_scopes_query_and_checks_update() {
    rewrites_shaped(vec![
        (
            "update",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": { "_id": 1 }, "update": { "$set": { "status": "paid" } }, "new": true, "$db": "payments" },
            doc! { "findAndModify": "payments", "query": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "update": { "$set": { "status": "paid" } }, "new": true, "$db": "payments" },
            ReplyShape::AsIs,
        ),
        (
            "lower-case command name",
            Bank1,
            rawdoc! { "findandmodify": "payments", "query": { "_id": 1 }, "update": { "$set": { "a": 1 } }, "$db": "payments" },
            doc! { "findandmodify": "payments", "query": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "update": { "$set": { "a": 1 } }, "$db": "payments" },
            ReplyShape::AsIs,
        ),
        (
            "replacement upsert without a query",
            Bank1,
            rawdoc! { "findAndModify": "payments", "update": { "a": 1 }, "upsert": true, "$db": "payments" },
            doc! { "findAndModify": "payments", "update": { "a": 1, "tenantId": "bank1" }, "upsert": true, "$db": "payments", "query": { "tenantId": "bank1", "deletedAt": null } },
            ReplyShape::AsIs,
        ),
        (
            "pipeline update",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": {}, "update": [ { "$set": { "a": 1 } } ], "$db": "payments" },
            doc! { "findAndModify": "payments", "query": { "tenantId": "bank1", "deletedAt": null }, "update": [ { "$set": { "a": 1 } }, { "$set": { "tenantId": { "$literal": "bank1" } } } ], "$db": "payments" },
            ReplyShape::AsIs,
        ),
        (
            "remove becomes a soft-delete update returning the old document",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": { "_id": 1 }, "sort": { "at": 1 }, "remove": true, "fields": { "amount": 1 }, "$db": "payments" },
            doc! { "findAndModify": "payments", "query": { "tenantId": "bank1", "deletedAt": null, "_id": 1 }, "sort": { "at": 1 }, "fields": { "amount": 1 }, "$db": "payments", "update": { "$set": { "deletedAt": NOW } }, "new": false },
            ReplyShape::RemoveFromFindAndModify,
        ),
        (
            "remove on a collection without soft delete stays a remove",
            Bank1,
            rawdoc! { "findAndModify": "ledger", "query": { "_id": 1 }, "remove": true, "$db": "payments" },
            doc! { "findAndModify": "ledger", "query": { "tenantId": "bank1", "_id": 1 }, "remove": true, "$db": "payments" },
            ReplyShape::AsIs,
        ),
    ]);
    rejects(vec![
        (
            "update writes the tenant field",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": {}, "update": { "$set": { "tenantId": "bank2" } }, "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "replacement with another tenant",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": {}, "update": { "tenantId": "bank2" }, "$db": "payments" },
            Rule::TenantFieldWrite,
        ),
        (
            "query escapes",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": { "tenantId": "bank2" }, "remove": true, "$db": "payments" },
            Rule::TenantOverride,
        ),
        (
            "remove and update together",
            Bank1,
            rawdoc! { "findAndModify": "payments", "query": {}, "remove": true, "update": { "$set": { "a": 1 } }, "$db": "payments" },
            Rule::MalformedCommand,
        ),
        (
            "global collection",
            Bank1,
            rawdoc! { "findAndModify": "currencies", "query": {}, "remove": true, "$db": "payments" },
            Rule::GlobalWrite,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// aggregate
// ---------------------------------------------------------------------------------------------

#[test]
fn aggregate_pipelines_are_scoped_at_every_depth() {
    rewrites(vec![
        (
            "$match prepended",
            Bank1,
            agg(vec![
                rawdoc! { "$match": { "status": "paid" } },
                rawdoc! { "$group": { "_id": "$status", "n": { "$sum": 1 } } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$match": { "status": "paid" } }, { "$group": { "_id": "$status", "n": { "$sum": 1 } } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "empty pipeline",
            Bank1,
            agg(vec![]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "global collection: only the soft-delete condition",
            Bank1,
            rawdoc! { "aggregate": "currencies", "pipeline": [ { "$sort": { "code": 1 } } ], "cursor": {}, "$db": "payments" },
            doc! { "aggregate": "currencies", "pipeline": [ { "$match": { "deletedAt": null } }, { "$sort": { "code": 1 } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$geoNear first gets the scope in its query",
            Bank1,
            agg(vec![
                rawdoc! { "$geoNear": { "near": [ 1.0, 2.0 ], "distanceField": "d", "query": { "kind": "atm" } } },
                rawdoc! { "$limit": 5 },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$geoNear": { "near": [ 1.0, 2.0 ], "distanceField": "d", "query": { "tenantId": "bank1", "deletedAt": null, "kind": "atm" } } }, { "$limit": 5 } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$geoNear first without a query gets one",
            Bank1,
            agg(vec![
                rawdoc! { "$geoNear": { "near": [ 1.0, 2.0 ], "distanceField": "d" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$geoNear": { "near": [ 1.0, 2.0 ], "distanceField": "d", "query": { "tenantId": "bank1", "deletedAt": null } } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup localField/foreignField gets a scoped pipeline",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "localField": "customerId", "foreignField": "_id", "as": "customer" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "customers", "localField": "customerId", "foreignField": "_id", "as": "customer", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup with let and pipeline gets the scope prepended",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "let": { "c": "$customerId" }, "pipeline": [ { "$match": { "$expr": { "$eq": [ "$_id", "$$c" ] } } } ], "as": "customer" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "customers", "let": { "c": "$customerId" }, "as": "customer", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$match": { "$expr": { "$eq": [ "$_id", "$$c" ] } } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup from a global collection gets only the soft-delete condition",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "currencies", "localField": "currency", "foreignField": "code", "as": "cur" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "currencies", "localField": "currency", "foreignField": "code", "as": "cur", "pipeline": [ { "$match": { "deletedAt": null } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup from a collection without soft delete gets only the tenant",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "ledger", "localField": "_id", "foreignField": "paymentId", "as": "entries" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "ledger", "localField": "_id", "foreignField": "paymentId", "as": "entries", "pipeline": [ { "$match": { "tenantId": "bank1" } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup from {db, coll} in the same database",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": { "db": "payments", "coll": "customers" }, "localField": "c", "foreignField": "_id", "as": "x" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": { "db": "payments", "coll": "customers" }, "localField": "c", "foreignField": "_id", "as": "x", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup inside a $lookup sub-pipeline",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "pipeline": [ { "$lookup": { "from": "addresses", "localField": "addressId", "foreignField": "_id", "as": "addr" } } ], "as": "c" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "customers", "as": "c", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "addresses", "localField": "addressId", "foreignField": "_id", "as": "addr", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$lookup sub-pipeline starting with $documents reads no collection",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "pipeline": [ { "$documents": [ { "k": 1 } ] } ], "as": "consts" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "as": "consts", "pipeline": [ { "$documents": [ { "k": 1 } ] } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$graphLookup gets restrictSearchWithMatch",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "accounts", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$graphLookup": { "from": "accounts", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain", "restrictSearchWithMatch": { "tenantId": "bank1", "deletedAt": null } } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$graphLookup's own restrictSearchWithMatch is scoped",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "accounts", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain", "maxDepth": 3, "restrictSearchWithMatch": { "active": true } } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$graphLookup": { "from": "accounts", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain", "maxDepth": 3, "restrictSearchWithMatch": { "tenantId": "bank1", "deletedAt": null, "active": true } } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$unionWith string form",
            Bank1,
            agg(vec![rawdoc! { "$unionWith": "refunds" }]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$unionWith": { "coll": "refunds", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$unionWith document form",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": "refunds", "pipeline": [ { "$project": { "amount": 1 } } ] } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$unionWith": { "coll": "refunds", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$project": { "amount": 1 } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$unionWith of $documents only",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "pipeline": [ { "$documents": [ { "x": 1 } ] } ] } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$unionWith": { "pipeline": [ { "$documents": [ { "x": 1 } ] } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$facet branches read the scoped input; a $lookup inside one is scoped",
            Bank1,
            agg(vec![
                rawdoc! { "$facet": { "byStatus": [ { "$sortByCount": "$status" } ], "withCustomer": [ { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "cust" } } ] } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$facet": { "byStatus": [ { "$sortByCount": "$status" } ], "withCustomer": [ { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "cust", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "$unionWith inside a $facet inside a $lookup",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "customers", "pipeline": [ { "$facet": { "all": [ { "$unionWith": "refunds" } ] } } ], "as": "c" } },
            ]),
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$lookup": { "from": "customers", "as": "c", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } }, { "$facet": { "all": [ { "$unionWith": { "coll": "refunds", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ] } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "database-level aggregate starting with $documents",
            Bank1,
            rawdoc! { "aggregate": 1, "pipeline": [ { "$documents": [ { "c": 1 } ] }, { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "x" } } ], "cursor": {}, "$db": "payments" },
            doc! { "aggregate": 1, "pipeline": [ { "$documents": [ { "c": 1 } ] }, { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "x", "pipeline": [ { "$match": { "tenantId": "bank1", "deletedAt": null } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
    ]);
}

#[test]
fn aggregate_stages_that_escape_are_refused() {
    let lookup_sub = |stage: RawDocumentBuf| {
        agg(vec![
            rawdoc! { "$lookup": { "from": "customers", "pipeline": [ stage ], "as": "c" } },
        ])
    };
    let mut cases = vec![
        (
            "$lookup from an admin collection",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "tenantgate_secrets", "localField": "a", "foreignField": "b", "as": "s" } },
            ]),
            Rule::CollectionNotAllowed,
        ),
        (
            "$lookup from a view",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "payment_summary", "localField": "a", "foreignField": "b", "as": "s" } },
            ]),
            Rule::ViewNotAllowed,
        ),
        (
            "$lookup from a system collection",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": "system.users", "localField": "a", "foreignField": "b", "as": "s" } },
            ]),
            Rule::CollectionNotAllowed,
        ),
        (
            "$lookup cross-database",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": { "db": "other", "coll": "payments" }, "localField": "a", "foreignField": "b", "as": "s" } },
            ]),
            Rule::CrossDatabase,
        ),
        (
            "$lookup into the internal database",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "from": { "db": "tenantgate", "coll": "principals" }, "pipeline": [], "as": "s" } },
            ]),
            Rule::CrossDatabase,
        ),
        (
            "$graphLookup cross-database",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": { "db": "admin", "coll": "system.users" }, "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "s" } },
            ]),
            Rule::CrossDatabase,
        ),
        (
            "$graphLookup from an admin collection",
            Bank1,
            agg(vec![
                rawdoc! { "$graphLookup": { "from": "tenantgate_secrets", "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "s" } },
            ]),
            Rule::CollectionNotAllowed,
        ),
        (
            "$unionWith an admin collection",
            Bank1,
            agg(vec![rawdoc! { "$unionWith": "tenantgate_secrets" }]),
            Rule::CollectionNotAllowed,
        ),
        (
            "$unionWith cross-database",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": { "db": "other", "coll": "x" } } },
            ]),
            Rule::CrossDatabase,
        ),
        (
            "$unionWith a view",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": "payment_summary", "pipeline": [] } },
            ]),
            Rule::ViewNotAllowed,
        ),
        (
            "$geoNear not first",
            Bank1,
            agg(vec![
                rawdoc! { "$limit": 1 },
                rawdoc! { "$geoNear": { "near": [ 0.0, 0.0 ], "distanceField": "d" } },
            ]),
            Rule::StageNotAllowed,
        ),
        (
            "$documents on a collection",
            Bank1,
            agg(vec![rawdoc! { "$documents": [ { "x": 1 } ] }]),
            Rule::MalformedCommand,
        ),
        (
            "$documents later in a $facet",
            Bank1,
            agg(vec![
                rawdoc! { "$facet": { "a": [ { "$documents": [] } ] } },
            ]),
            Rule::StageNotAllowed,
        ),
        (
            "database-level aggregate without $documents",
            Bank1,
            rawdoc! { "aggregate": 1, "pipeline": [ { "$match": {} } ], "cursor": {}, "$db": "payments" },
            Rule::StageNotAllowed,
        ),
        (
            "database-level $currentOp on admin",
            Bank1,
            rawdoc! { "aggregate": 1, "pipeline": [ { "$currentOp": {} } ], "cursor": {}, "$db": "admin" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "$lookup without from: sub-pipeline must start with $documents",
            Bank1,
            agg(vec![
                rawdoc! { "$lookup": { "pipeline": [ { "$match": {} } ], "as": "x" } },
            ]),
            Rule::StageNotAllowed,
        ),
        (
            "unknown stage",
            Bank1,
            agg(vec![rawdoc! { "$tenantEscape": {} }]),
            Rule::UnknownStage,
        ),
        (
            "unknown stage in a $lookup sub-pipeline",
            Bank1,
            lookup_sub(rawdoc! { "$rawScan": {} }),
            Rule::UnknownStage,
        ),
        (
            "aggregate on a view",
            Bank1,
            rawdoc! { "aggregate": "payment_summary", "pipeline": [], "cursor": {}, "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "stage with two fields",
            Bank1,
            agg(vec![rawdoc! { "$match": {}, "$out": "x" }]),
            Rule::MalformedCommand,
        ),
    ];
    for stage in [
        "$out",
        "$merge",
        "$collStats",
        "$indexStats",
        "$currentOp",
        "$changeStream",
        "$search",
        "$vectorSearch",
        "$listSessions",
        "$planCacheStats",
        "$searchMeta",
        "$queryStats",
    ] {
        let spec = || {
            let mut d = RawDocumentBuf::new();
            d.append(
                <&bson::raw::CStr>::try_from(stage).expect("key"),
                rawdoc! {},
            );
            d
        };
        cases.push((
            "denied stage at the top",
            Bank1,
            agg(vec![spec()]),
            Rule::StageNotAllowed,
        ));
        cases.push((
            "denied stage in a $lookup",
            Bank1,
            lookup_sub(spec()),
            Rule::StageNotAllowed,
        ));
        cases.push((
            "denied stage in a $facet",
            Bank1,
            agg(vec![rawdoc! { "$facet": { "f": [ spec() ] } }]),
            Rule::StageNotAllowed,
        ));
        cases.push((
            "denied stage in $unionWith",
            Bank1,
            agg(vec![
                rawdoc! { "$unionWith": { "coll": "refunds", "pipeline": [ spec() ] } },
            ]),
            Rule::StageNotAllowed,
        ));
    }
    rejects(cases);
}

// ---------------------------------------------------------------------------------------------
// Soft-delete visibility
// ---------------------------------------------------------------------------------------------

#[test]
fn include_deleted_drops_the_live_only_condition_and_is_stripped() {
    rewrites(vec![
        (
            "string form",
            Bank1,
            rawdoc! { "find": "payments", "filter": { "status": "paid" }, "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "status": "paid" }, "$db": "payments" },
        ),
        (
            "document form keeps the rest of the comment",
            Bank1,
            rawdoc! { "find": "payments", "filter": {}, "comment": { "tenantgate": { "includeDeleted": true }, "app": "billing" }, "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank1" }, "comment": { "app": "billing" }, "$db": "payments" },
        ),
        (
            "document form with only tenantgate's part drops the comment",
            Bank1,
            rawdoc! { "count": "payments", "comment": { "tenantgate": { "includeDeleted": true } }, "$db": "payments" },
            doc! { "count": "payments", "$db": "payments", "query": { "tenantId": "bank1" } },
        ),
        (
            "includeDeleted false changes nothing but is still stripped",
            Bank1,
            rawdoc! { "find": "payments", "comment": { "tenantgate": { "includeDeleted": false } }, "$db": "payments" },
            doc! { "find": "payments", "$db": "payments", "filter": { "tenantId": "bank1", "deletedAt": null } },
        ),
        (
            "aggregate and its $lookup see deleted documents",
            Bank1,
            rawdoc! { "aggregate": "payments", "pipeline": [ { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "x" } } ], "cursor": {}, "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "tenantId": "bank1" } }, { "$lookup": { "from": "customers", "localField": "c", "foreignField": "_id", "as": "x", "pipeline": [ { "$match": { "tenantId": "bank1" } } ] } } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "a global collection with includeDeleted needs no $match at all",
            Bank1,
            rawdoc! { "aggregate": "currencies", "pipeline": [ { "$limit": 1 } ], "cursor": {}, "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "aggregate": "currencies", "pipeline": [ { "$limit": 1 } ], "cursor": {}, "$db": "payments" },
        ),
        (
            "restore: $unset deletedAt on a deleted document",
            Bank1,
            rawdoc! { "update": "payments", "updates": [ { "q": { "_id": 1 }, "u": { "$unset": { "deletedAt": "" } } } ], "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank1", "_id": 1 }, "u": { "$unset": { "deletedAt": "" } } } ], "$db": "payments" },
        ),
        (
            "a plain comment is forwarded as it is",
            Bank1,
            rawdoc! { "find": "payments", "comment": "tenantgate is great", "$db": "payments" },
            doc! { "find": "payments", "comment": "tenantgate is great", "$db": "payments", "filter": { "tenantId": "bank1", "deletedAt": null } },
        ),
        (
            "actAs for one's own tenant is harmless",
            Bank1,
            rawdoc! { "find": "payments", "comment": "tenantgate:actAs=bank1;includeDeleted", "$db": "payments" },
            doc! { "find": "payments", "$db": "payments", "filter": { "tenantId": "bank1" } },
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// super_admin
// ---------------------------------------------------------------------------------------------

#[test]
fn super_admin_bypasses_with_an_audit_record() {
    for body in [
        rawdoc! { "find": "payments", "filter": { "tenantId": "bank2", "amount": 1250 }, "$db": "payments" },
        rawdoc! { "aggregate": "tenantgate_secrets", "pipeline": [ { "$out": "copy" } ], "cursor": {}, "$db": "payments" },
        rawdoc! { "insert": "currencies", "documents": [ { "code": "EUR" } ], "$db": "payments" },
        rawdoc! { "createIndexes": "payments", "indexes": [ { "key": { "tenantId": 1 }, "name": "t" } ], "$db": "payments" },
        rawdoc! { "find": "principals", "$db": "tenantgate" },
        rawdoc! { "dropDatabase": 1, "$db": "other" },
    ] {
        let command = body
            .iter()
            .next()
            .and_then(Result::ok)
            .map(|(k, _)| k.as_str().to_owned())
            .expect("name");
        let outcome = run(Admin, body.clone(), &[]);
        let f = forward(&outcome).expect("forwarded");
        assert_eq!(
            f.body.as_bytes(),
            body.as_bytes(),
            "{command}: forwarded unchanged"
        );
        assert_eq!(f.reply, ReplyShape::AsIs);
        let a = outcome.audit.expect("audited");
        assert_eq!(
            (a.kind, a.rule),
            (AuditKind::Bypass, Rule::Bypass),
            "{command}"
        );
        assert_eq!(a.principal, "root");
        assert_eq!(a.tenant, None);
        assert_eq!(a.command, command);
        check_redacted(&a.shape).expect("bypass shapes are redacted too");
    }
    // Cursor and session commands reach no new data: forwarded without a record.
    for body in [
        rawdoc! { "getMore": 9_i64, "collection": "payments", "$db": "payments" },
        rawdoc! { "endSessions": [ { "id": 1 } ], "$db": "admin" },
    ] {
        let outcome = run(Admin, body.clone(), &[]);
        assert_eq!(
            forward(&outcome).expect("forwarded").body.as_bytes(),
            body.as_bytes()
        );
        assert!(outcome.audit.is_none());
    }
    // tenantgate's comment options are stripped from a bypass too.
    let outcome = run(
        Admin,
        rawdoc! { "find": "payments", "comment": "tenantgate:includeDeleted", "$db": "payments" },
        &[],
    );
    let f = forward(&outcome).expect("forwarded");
    same(
        "body",
        f.body.as_raw(),
        &doc! { "find": "payments", "$db": "payments" },
    )
    .expect("stripped");
    assert_eq!(outcome.audit.map(|a| a.kind), Some(AuditKind::Bypass));
}

#[test]
fn super_admin_acting_as_a_tenant_gets_the_tenant_rules() {
    rewrites_shaped(vec![
        (
            "find as bank2",
            AdminAs("bank2"),
            rawdoc! { "find": "payments", "filter": { "status": "paid" }, "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            doc! { "find": "payments", "filter": { "tenantId": "bank2", "deletedAt": null, "status": "paid" }, "$db": "payments" },
            ReplyShape::AsIs,
        ),
        (
            "delete as bank2 is a soft delete",
            AdminAs("bank2"),
            rawdoc! { "delete": "payments", "deletes": [ { "q": {}, "limit": 0 } ], "comment": { "tenantgate": { "actAs": "bank2" } }, "$db": "payments" },
            doc! { "update": "payments", "updates": [ { "q": { "tenantId": "bank2", "deletedAt": null }, "u": { "$set": { "deletedAt": NOW } }, "multi": true } ], "$db": "payments" },
            ReplyShape::DeleteFromUpdate,
        ),
        (
            "insert as bank2",
            AdminAs("bank2"),
            rawdoc! { "insert": "payments", "documents": [ { "a": 1 } ], "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            doc! { "insert": "payments", "documents": [ { "a": 1, "tenantId": "bank2" } ], "$db": "payments" },
            ReplyShape::AsIs,
        ),
    ]);
    rejects(vec![
        (
            "acting as bank2 on an admin collection",
            AdminAs("bank2"),
            rawdoc! { "find": "tenantgate_secrets", "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "acting as bank2 writing a global collection",
            AdminAs("bank2"),
            rawdoc! { "insert": "currencies", "documents": [ {} ], "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "acting as bank2 running createIndexes",
            AdminAs("bank2"),
            rawdoc! { "createIndexes": "payments", "indexes": [], "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "a tenant acting as another tenant",
            Bank1,
            rawdoc! { "find": "payments", "comment": "tenantgate:actAs=bank2", "$db": "payments" },
            Rule::ActAsNotAllowed,
        ),
        (
            "a tenant acting as another tenant, document form",
            Bank1,
            rawdoc! { "find": "payments", "comment": { "tenantgate": { "actAs": "bank2" } }, "$db": "payments" },
            Rule::ActAsNotAllowed,
        ),
        (
            "a principal without roles acting as a tenant",
            Nobody,
            rawdoc! { "find": "payments", "comment": "tenantgate:actAs=bank1", "$db": "payments" },
            Rule::ActAsNotAllowed,
        ),
        (
            "a principal without tenant or roles",
            Nobody,
            rawdoc! { "find": "payments", "$db": "payments" },
            Rule::NoTenant,
        ),
    ]);
}

#[test]
fn server_administration_is_closed_to_everyone() {
    let mut cases = Vec::new();
    for (name, body) in [
        ("shutdown", rawdoc! { "shutdown": 1, "$db": "admin" }),
        (
            "createUser",
            rawdoc! { "createUser": "eve", "pwd": "x", "roles": [], "$db": "admin" },
        ),
        ("dropUser", rawdoc! { "dropUser": "eve", "$db": "admin" }),
        (
            "grantRolesToUser",
            rawdoc! { "grantRolesToUser": "eve", "roles": [ "root" ], "$db": "admin" },
        ),
        ("applyOps", rawdoc! { "applyOps": [], "$db": "admin" }),
        ("fsync", rawdoc! { "fsync": 1, "$db": "admin" }),
        (
            "setParameter",
            rawdoc! { "setParameter": 1, "auditAuthorizationSuccess": false, "$db": "admin" },
        ),
        (
            "replSetReconfig",
            rawdoc! { "replSetReconfig": {}, "$db": "admin" },
        ),
    ] {
        cases.push((name, Admin, body.clone(), Rule::CommandNotAllowed));
        cases.push((name, Bank1, body, Rule::CommandNotAllowed));
    }
    rejects(cases);
}

// ---------------------------------------------------------------------------------------------
// Collections and databases
// ---------------------------------------------------------------------------------------------

#[test]
fn collection_modes_and_databases() {
    rewrites(vec![
        (
            "global read: no tenant condition, live documents only",
            Bank1,
            rawdoc! { "find": "currencies", "filter": { "code": "EUR" }, "$db": "payments" },
            doc! { "find": "currencies", "filter": { "deletedAt": null, "code": "EUR" }, "$db": "payments" },
        ),
        (
            "global count",
            Bank2,
            rawdoc! { "count": "currencies", "$db": "payments" },
            doc! { "count": "currencies", "$db": "payments", "query": { "deletedAt": null } },
        ),
    ]);
    rejects(vec![
        (
            "global insert",
            Bank1,
            rawdoc! { "insert": "currencies", "documents": [ { "code": "XXX" } ], "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "global update",
            Bank1,
            rawdoc! { "update": "currencies", "updates": [ { "q": {}, "u": { "$set": { "rate": 0 } } } ], "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "global delete",
            Bank1,
            rawdoc! { "delete": "currencies", "deletes": [ { "q": {}, "limit": 0 } ], "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "global findAndModify",
            Bank1,
            rawdoc! { "findAndModify": "currencies", "query": {}, "update": { "$set": { "a": 1 } }, "$db": "payments" },
            Rule::GlobalWrite,
        ),
        (
            "admin collection find",
            Bank1,
            rawdoc! { "find": "tenantgate_secrets", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "admin collection aggregate",
            Bank1,
            rawdoc! { "aggregate": "tenantgate_secrets", "pipeline": [], "cursor": {}, "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "admin collection insert",
            Bank1,
            rawdoc! { "insert": "tenantgate_secrets", "documents": [ {} ], "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "admin collection getMore",
            Bank1,
            rawdoc! { "getMore": 5_i64, "collection": "tenantgate_secrets", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "admin collection killCursors",
            Bank1,
            rawdoc! { "killCursors": "tenantgate_secrets", "cursors": [ 5_i64 ], "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "admin collection listIndexes",
            Bank1,
            rawdoc! { "listIndexes": "tenantgate_secrets", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "view find",
            Bank1,
            rawdoc! { "find": "payment_summary", "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "view count",
            Bank1,
            rawdoc! { "count": "payment_summary", "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "view distinct",
            Bank1,
            rawdoc! { "distinct": "payment_summary", "key": "a", "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "view insert",
            Bank1,
            rawdoc! { "insert": "payment_summary", "documents": [ {} ], "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "system.views",
            Bank1,
            rawdoc! { "find": "system.views", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "system.profile",
            Bank1,
            rawdoc! { "find": "system.profile", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "system.js insert",
            Bank1,
            rawdoc! { "insert": "system.js", "documents": [ {} ], "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "a $ in the collection name",
            Bank1,
            rawdoc! { "find": "payments.$cmd", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "an empty collection name",
            Bank1,
            rawdoc! { "find": "", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
        (
            "a database not in the list",
            Bank1,
            rawdoc! { "find": "payments", "$db": "other" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "the internal database",
            Bank1,
            rawdoc! { "find": "principals", "$db": "tenantgate" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "admin",
            Bank1,
            rawdoc! { "find": "system.users", "$db": "admin" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "local",
            Bank1,
            rawdoc! { "find": "oplog.rs", "$db": "local" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "config",
            Bank1,
            rawdoc! { "aggregate": "chunks", "pipeline": [], "cursor": {}, "$db": "config" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "insert elsewhere",
            Bank1,
            rawdoc! { "insert": "payments", "documents": [ {} ], "$db": "other" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "getMore elsewhere",
            Bank1,
            rawdoc! { "getMore": 5_i64, "collection": "payments", "$db": "other" },
            Rule::DatabaseNotAllowed,
        ),
        (
            "no $db",
            Bank1,
            rawdoc! { "find": "payments" },
            Rule::MalformedCommand,
        ),
        (
            "non-string $db",
            Bank1,
            rawdoc! { "find": "payments", "$db": 1 },
            Rule::MalformedCommand,
        ),
        ("empty body", Bank1, rawdoc! {}, Rule::MalformedCommand),
        (
            "collection not a string",
            Bank1,
            rawdoc! { "find": 1, "$db": "payments" },
            Rule::MalformedCommand,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Allowlist, local replies, pass-through
// ---------------------------------------------------------------------------------------------

#[test]
fn commands_off_the_tenant_allowlist_are_refused() {
    rejects(vec![
        (
            "createIndexes",
            Bank1,
            rawdoc! { "createIndexes": "payments", "indexes": [ { "key": { "a": 1 }, "name": "a" } ], "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "dropIndexes",
            Bank1,
            rawdoc! { "dropIndexes": "payments", "index": "*", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "drop",
            Bank1,
            rawdoc! { "drop": "payments", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "dropDatabase",
            Bank1,
            rawdoc! { "dropDatabase": 1, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "renameCollection",
            Bank1,
            rawdoc! { "renameCollection": "payments.payments", "to": "payments.mine", "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "collMod",
            Bank1,
            rawdoc! { "collMod": "payments", "validator": {}, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "create",
            Bank1,
            rawdoc! { "create": "mine", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "create with viewOn",
            Bank1,
            rawdoc! { "create": "all_payments", "viewOn": "payments", "pipeline": [], "$db": "payments" },
            Rule::ViewNotAllowed,
        ),
        (
            "createUser",
            Bank1,
            rawdoc! { "createUser": "eve", "pwd": "x", "roles": [], "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "applyOps",
            Bank1,
            rawdoc! { "applyOps": [ { "op": "i", "ns": "payments.payments", "o": { "tenantId": "bank2" } } ], "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "eval",
            Bank1,
            rawdoc! { "eval": "1", "$db": "payments" },
            Rule::Javascript,
        ),
        (
            "serverStatus",
            Bank1,
            rawdoc! { "serverStatus": 1, "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "currentOp",
            Bank1,
            rawdoc! { "currentOp": 1, "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "killOp",
            Bank1,
            rawdoc! { "killOp": 1, "op": 5, "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "dbStats",
            Bank1,
            rawdoc! { "dbStats": 1, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "collStats",
            Bank1,
            rawdoc! { "collStats": "payments", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "validate",
            Bank1,
            rawdoc! { "validate": "payments", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            "bulkWrite",
            Bank1,
            rawdoc! { "bulkWrite": 1, "ops": [ { "insert": 0, "document": { "tenantId": "bank2" } } ], "nsInfo": [ { "ns": "payments.payments" } ], "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "hello reaching the engine",
            Bank1,
            rawdoc! { "hello": 1, "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "saslStart reaching the engine",
            Bank1,
            rawdoc! { "saslStart": 1, "mechanism": "SCRAM-SHA-256", "$db": "admin" },
            Rule::CommandNotAllowed,
        ),
        (
            "an invented command",
            Bank1,
            rawdoc! { "tenantgateBypass": 1, "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
    ]);
}

#[test]
fn some_commands_are_answered_locally() {
    let cases: Vec<(&str, Who, RawDocumentBuf, Document)> = vec![
        (
            "ping",
            Bank1,
            rawdoc! { "ping": 1, "$db": "admin" },
            doc! { "ok": 1.0 },
        ),
        (
            "ping without a tenant",
            Nobody,
            rawdoc! { "ping": 1, "$db": "payments" },
            doc! { "ok": 1.0 },
        ),
        (
            "connectionStatus",
            Bank1,
            rawdoc! { "connectionStatus": 1, "$db": "admin" },
            doc! { "authInfo": { "authenticatedUsers": [ { "user": "svc-bank1", "db": "admin" } ], "authenticatedUserRoles": [] }, "ok": 1.0 },
        ),
        (
            "connectionStatus for super_admin",
            Admin,
            rawdoc! { "connectionStatus": 1, "$db": "admin" },
            doc! { "authInfo": { "authenticatedUsers": [ { "user": "root", "db": "admin" } ], "authenticatedUserRoles": [ { "role": "super_admin", "db": "admin" } ] }, "ok": 1.0 },
        ),
        (
            "listDatabases lists the configured databases only",
            Bank1,
            rawdoc! { "listDatabases": 1, "$db": "admin" },
            doc! { "databases": [ { "name": "payments", "sizeOnDisk": 0_i64, "empty": false } ], "totalSize": 0_i64, "totalSizeMb": 0_i64, "ok": 1.0 },
        ),
        (
            "listDatabases nameOnly",
            Bank2,
            rawdoc! { "listDatabases": 1, "nameOnly": true, "$db": "admin" },
            doc! { "databases": [ { "name": "payments" } ], "ok": 1.0 },
        ),
    ];
    let total = cases.len();
    let mut failures = Vec::new();
    for (name, who, body, expected) in cases {
        let outcome = run(who, body, &[]);
        let result = match &outcome.decision {
            Decision::Reply(r) => same("reply", r, &expected),
            other => Err(format!("expected a local reply, got {other:?}")),
        };
        if let Err(e) = result.and_then(|()| match outcome.audit {
            None => Ok(()),
            Some(a) => Err(format!("unexpected audit {a:?}")),
        }) {
            failures.push(format!("[{name}] {e}"));
        }
    }
    report("local reply", failures, total);
}

#[test]
fn cursor_and_session_commands_pass_through() {
    for body in [
        rawdoc! { "getMore": 123_456_789_i64, "collection": "payments", "batchSize": 10, "$db": "payments" },
        rawdoc! { "getMore": 1_i64, "collection": "currencies", "lsid": { "id": 1 }, "$db": "payments" },
        rawdoc! { "killCursors": "payments", "cursors": [ 5_i64, 6_i64 ], "$db": "payments" },
        rawdoc! { "endSessions": [ { "id": 1 } ], "$db": "admin" },
        rawdoc! { "commitTransaction": 1, "txnNumber": 3_i64, "autocommit": false, "$db": "admin" },
        rawdoc! { "abortTransaction": 1, "$db": "admin" },
        rawdoc! { "buildInfo": 1, "$db": "admin" },
    ] {
        let outcome = run(Bank1, body.clone(), &[]);
        let f = forward(&outcome).unwrap_or_else(|e| panic!("{body:?}: {e}"));
        assert_eq!(
            f.body.as_bytes(),
            body.as_bytes(),
            "forwarded byte for byte: {body:?}"
        );
        assert!(f.sequences.is_empty());
        assert!(outcome.audit.is_none());
    }
    rewrites(vec![
        (
            "getMore with tenantgate's comment option: the option is stripped",
            Bank1,
            rawdoc! { "getMore": 1_i64, "collection": "payments", "comment": "tenantgate:includeDeleted", "$db": "payments" },
            doc! { "getMore": 1_i64, "collection": "payments", "$db": "payments" },
        ),
        (
            "listCollections hides admin collections",
            Bank1,
            rawdoc! { "listCollections": 1, "nameOnly": true, "$db": "payments" },
            doc! { "listCollections": 1, "nameOnly": true, "$db": "payments", "filter": { "name": { "$nin": [ "tenantgate_secrets" ] } } },
        ),
        (
            "listCollections with a filter",
            Bank1,
            rawdoc! { "listCollections": 1, "filter": { "type": "collection" }, "$db": "payments" },
            doc! { "listCollections": 1, "filter": { "$and": [ { "type": "collection" }, { "name": { "$nin": [ "tenantgate_secrets" ] } } ] }, "$db": "payments" },
        ),
        (
            "listIndexes of an open collection",
            Bank1,
            rawdoc! { "listIndexes": "payments", "cursor": {}, "$db": "payments" },
            doc! { "listIndexes": "payments", "cursor": {}, "$db": "payments" },
        ),
    ]);
    rejects(vec![
        (
            "getMore with a 32-bit id",
            Bank1,
            rawdoc! { "getMore": 5, "collection": "payments", "$db": "payments" },
            Rule::MalformedCommand,
        ),
        (
            "getMore without a collection",
            Bank1,
            rawdoc! { "getMore": 5_i64, "$db": "payments" },
            Rule::MalformedCommand,
        ),
        (
            "getMore on a system collection",
            Bank1,
            rawdoc! { "getMore": 5_i64, "collection": "system.profile", "$db": "payments" },
            Rule::CollectionNotAllowed,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Audit records and error replies
// ---------------------------------------------------------------------------------------------

#[test]
fn rejections_are_audited_with_values_redacted() {
    let body = rawdoc! { "find": "payments", "filter": { "amount": 1250, "tenantId": "bank2", "iban": "DE89370400440532013000" }, "comment": "nightly", "$db": "payments" };
    let outcome = run(Bank1, body, &[]);
    let Decision::Reject(r) = &outcome.decision else {
        panic!("rejected")
    };
    assert_eq!(r.rule, Rule::TenantOverride);
    let a = outcome.audit.clone().expect("audited");
    assert_eq!(a.kind, AuditKind::Rejection);
    assert_eq!(a.rule, Rule::TenantOverride);
    assert_eq!(a.principal, "svc-bank1");
    assert_eq!(a.tenant.as_deref(), Some("bank1"));
    assert_eq!(a.database.as_deref(), Some("payments"));
    assert_eq!(a.collection.as_deref(), Some("payments"));
    assert_eq!(a.command, "find");
    assert_eq!(a.message, r.message);
    assert_eq!(
        a.shape,
        doc! { "find": "<string>", "filter": { "amount": "<int>", "tenantId": "<string>", "iban": "<string>" }, "comment": "<string>", "$db": "<string>" }
    );
    let shape_text = format!("{:?}", a.shape);
    for secret in ["1250", "bank2", "DE89", "nightly"] {
        assert!(
            !shape_text.contains(secret),
            "{secret} leaked into {shape_text}"
        );
    }
    assert!(
        !r.message.contains("bank2") && !r.message.contains("1250"),
        "the client message carries no values: {}",
        r.message
    );

    // Sequences are summarised: a count and the first documents' shapes.
    let docs: Vec<RawDocumentBuf> = (0..5)
        .map(|i| rawdoc! { "n": i, "tenantId": "bank2" })
        .collect();
    let outcome = run(
        Bank1,
        rawdoc! { "insert": "payments", "$db": "payments" },
        &[seq("documents", docs)],
    );
    let a = outcome.audit.expect("audited");
    assert_eq!(a.rule, Rule::TenantFieldWrite);
    let first = doc! { "n": "<int>", "tenantId": "<string>" };
    assert_eq!(
        a.shape,
        doc! { "insert": "<string>", "$db": "<string>", "<sequence documents>": { "count": 5_i64, "first": [ first.clone(), first.clone(), first ] } }
    );

    // A deployment may keep values (not for production).
    let mut cfg = common::CONFIG.clone();
    cfg.audit_values = true;
    let outcome = common::run_with(
        &cfg,
        Bank1,
        &raw(
            rawdoc! { "find": "payments", "filter": { "amount": 1250, "tenantId": "bank2" }, "$db": "payments" },
        ),
        &[],
    );
    assert_eq!(
        outcome
            .audit
            .expect("audited")
            .shape
            .get_document("filter")
            .ok(),
        Some(&doc! { "amount": 1250, "tenantId": "bank2" })
    );
}

#[test]
fn the_error_reply_is_mongodb_unauthorized_naming_the_rule() {
    for (body, rule) in [
        (find(rawdoc! { "tenantId": "bank2" }), Rule::TenantOverride),
        (
            rawdoc! { "drop": "payments", "$db": "payments" },
            Rule::CommandNotAllowed,
        ),
        (
            rawdoc! { "find": "payments", "$db": "admin" },
            Rule::DatabaseNotAllowed,
        ),
    ] {
        let outcome = run(Bank1, body, &[]);
        let Decision::Reject(r) = outcome.decision else {
            panic!("rejected")
        };
        let mut reply = decode(&r.error_reply());
        let errmsg = reply.remove("errmsg").expect("errmsg");
        assert_eq!(
            reply,
            doc! { "ok": 0.0, "code": 13, "codeName": "Unauthorized" }
        );
        assert_eq!(
            errmsg,
            Bson::String(format!(
                "tenantgate policy rule '{}': {}",
                rule.as_str(),
                r.message
            ))
        );
    }
}

/// Override detection finds attempts; it cannot find every spelling of one. What makes an
/// escape impossible is the scope at the top of the filter, which no part of the caller's filter
/// can widen: a mention the detector misses still reads only the caller's live documents.
#[test]
fn an_attempt_the_detector_cannot_see_is_still_scoped() {
    rewrites(vec![(
        "$getField with a computed field name",
        Bank1,
        find(
            rawdoc! { "$expr": { "$eq": [ { "$getField": { "field": { "$concat": [ "tenant", "Id" ] }, "input": "$$ROOT" } }, "bank2" ] } },
        ),
        doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null, "$expr": { "$eq": [ { "$getField": { "field": { "$concat": [ "tenant", "Id" ] }, "input": "$$ROOT" } }, "bank2" ] } }, "$db": "payments" },
    )]);
}
