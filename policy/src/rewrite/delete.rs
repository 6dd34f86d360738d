//! `delete`: on a soft-delete collection it becomes an `update` that sets the soft-delete field
//! to the current time, with the same `limit` semantics (`limit: 1` updates one, `0` all). The
//! filter includes "live only", so `n` in the reply counts exactly the documents this delete
//! removed; the proxy reshapes the reply (`ReplyShape::DeleteFromUpdate`) so a driver sees what
//! `delete` returns. On a collection without soft delete it stays a (scoped) hard delete.

use bson::{RawDocument, RawDocumentBuf};

use super::{check_collation, rebuild, statement_array, statement_sequences, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{Mentions, check_expression, check_filter};
use crate::raw::{DocBuilder, Element, Value, elements, finish};
use crate::scope::Scope;

const DELETE_FIELDS: [&str; 3] = ["deletes", "ordered", "let"];
const STATEMENT_FIELDS: [&str; 4] = ["q", "limit", "collation", "hint"];

/// How each statement is rewritten.
struct Plan<'a> {
    scope: Scope<'a>,
    /// `Some(u)`: soft delete with this update document (`{$set: {deletedAt: now}}`).
    soft: Option<RawDocumentBuf>,
}

pub(super) fn delete(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let collection = target_collection(req)?;
    let (scope, rules, policy) = t.write_access(collection)?;
    let soft = if policy.soft_delete {
        let mut set = DocBuilder::with_capacity(64);
        set.datetime(&t.config.soft_delete_field, t.now.timestamp_millis())?;
        if let Some(s) = rules.stamp {
            set.datetime(s.updated_field, s.now.timestamp_millis())?;
        }
        let mut u = DocBuilder::with_capacity(80);
        u.doc("$set", &set.finish())?;
        Some(u.finish())
    } else {
        None
    };
    let plan = Plan { scope, soft };
    let m = t.mentions();
    let (rename, list_field) = if plan.soft.is_some() {
        (Some("update"), "updates")
    } else {
        (None, "deletes")
    };
    let mut saw = false;
    let out = rebuild(req, &t.options, rename, &DELETE_FIELDS, |e, out| {
        match e.key() {
            "deletes" => {
                statement_array(e, list_field, out, |stmt, out| {
                    statement(stmt, &plan, &m, out)
                })?;
                saw = true;
            }
            "let" => {
                check_expression(e.value(), &m)?;
                out.copy(e);
            }
            _ => out.copy(e),
        }
        Ok(())
    })?;
    let sequences = statement_sequences(req, "deletes", list_field, |stmt, out| {
        statement(stmt, &plan, &m, out)
    })?;
    saw |= !sequences.is_empty();
    if !saw {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "delete needs deletes",
        ));
    }
    let reply = if plan.soft.is_some() {
        ReplyShape::DeleteFromUpdate
    } else {
        ReplyShape::AsIs
    };
    Ok(Forward {
        body: finish(out)?,
        sequences,
        reply,
    })
}

/// One delete statement, rewritten: its elements are appended to `out`.
fn statement(
    stmt: &RawDocument,
    plan: &Plan<'_>,
    m: &Mentions<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    let mut q = None;
    let mut limit: Option<Element<'_>> = None;
    let mut rest: Vec<Element<'_>> = Vec::new();
    for element in elements(stmt) {
        let e = element?;
        match (e.key(), e.value()) {
            ("q", Value::Document(d)) => q = Some(d),
            ("q", _) => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "q must be a document",
                ));
            }
            ("limit", _) => limit = Some(e),
            ("collation", _) => {
                check_collation(&e)?;
                rest.push(e);
            }
            (k, _) if STATEMENT_FIELDS.contains(&k) => rest.push(e),
            (k, _) => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!(
                        "'{}' is not a delete statement field",
                        crate::audit::clip(k)
                    ),
                ));
            }
        }
    }
    let (Some(q), Some(limit)) = (q, limit) else {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "a delete statement needs q and limit",
        ));
    };
    let one = match limit.value() {
        Value::Int32(1) | Value::Int64(1) => true,
        Value::Double(1.0) => true,
        Value::Int32(0) | Value::Int64(0) => false,
        Value::Double(0.0) => false,
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "limit must be 0 or 1",
            ));
        }
    };
    check_filter(q, m)?;
    plan.scope.write_filter(out, "q", Some(q))?;
    match &plan.soft {
        Some(u) => {
            out.doc("u", u)?;
            out.bool("multi", !one)?;
        }
        None => out.element("limit", &limit)?,
    }
    for e in rest {
        out.copy(&e);
    }
    Ok(())
}
