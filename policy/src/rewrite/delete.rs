//! `delete`: on a soft-delete collection it becomes an `update` that sets the soft-delete field
//! to the current time, with the same `limit` semantics (`limit: 1` updates one, `0` all). The
//! filter includes "live only", so `n` in the reply counts exactly the documents this delete
//! removed; the proxy reshapes the reply (`ReplyShape::DeleteFromUpdate`) so a driver sees what
//! `delete` returns. On a collection without soft delete it stays a (scoped) hard delete.

use bson::{RawArrayBuf, RawBsonRef, RawDocument, RawDocumentBuf};
use tenantgate_wire::{DocumentSequence, RawDoc};

use super::{rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{Mentions, check_expression, check_filter};
use crate::raw::{elements, finish, items, key};
use crate::scope::Scope;

const DELETE_FIELDS: [&str; 3] = ["deletes", "ordered", "let"];
const STATEMENT_FIELDS: [&str; 4] = ["q", "limit", "collation", "hint"];

/// How each statement is rewritten.
struct Plan<'a> {
    scope: Scope<'a>,
    /// `Some(set)`: soft delete with this `$set` document.
    soft: Option<RawDocumentBuf>,
}

pub(super) fn delete(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let collection = target_collection(req)?;
    let (scope, rules, policy) = t.write_access(collection)?;
    let soft = if policy.soft_delete {
        let mut set = RawDocumentBuf::new();
        set.append(key(&t.config.soft_delete_field)?, t.now);
        if let Some(s) = rules.stamp {
            set.append(key(s.updated_field)?, s.now);
        }
        let mut u = RawDocumentBuf::new();
        u.append(bson::raw::cstr!("$set"), set);
        Some(u)
    } else {
        None
    };
    let plan = Plan { scope, soft };
    let m = t.mentions();
    let (rename, array_field, seq_field) = if plan.soft.is_some() {
        (Some("update"), "updates", "updates")
    } else {
        (None, "deletes", "deletes")
    };
    let mut saw = false;
    let out = rebuild(req, &t.options, rename, &DELETE_FIELDS, |k, v, out| {
        match k {
            "deletes" => {
                let RawBsonRef::Array(stmts) = v else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "deletes must be an array",
                    ));
                };
                let mut arr = RawArrayBuf::new();
                for item in items(stmts) {
                    let RawBsonRef::Document(stmt) = item? else {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "deletes must hold documents",
                        ));
                    };
                    arr.push(statement(stmt, &plan, &m)?);
                }
                saw = true;
                out.append(key(array_field)?, arr);
            }
            "let" => {
                check_expression(v, &m)?;
                out.append(key(k)?, v);
            }
            _ => out.append(key(k)?, v),
        }
        Ok(())
    })?;
    let mut sequences = Vec::with_capacity(req.sequences.len());
    for seq in req.sequences {
        if seq.identifier != "deletes" {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "document sequence '{}' is not understood for delete",
                    seq.identifier
                ),
            ));
        }
        saw = true;
        let documents = seq
            .documents
            .iter()
            .map(|d| statement(d.as_raw(), &plan, &m).and_then(finish))
            .collect::<Result<Vec<RawDoc>, _>>()?;
        sequences.push(DocumentSequence {
            identifier: seq_field.to_owned(),
            documents,
        });
    }
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

fn statement(
    stmt: &RawDocument,
    plan: &Plan<'_>,
    m: &Mentions<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    let mut q = None;
    let mut limit = None;
    let mut rest: Vec<(&str, RawBsonRef<'_>)> = Vec::new();
    for element in elements(stmt) {
        let (k, v) = element?;
        match k {
            "q" => match v {
                RawBsonRef::Document(d) => q = Some(d),
                _ => {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "q must be a document",
                    ));
                }
            },
            "limit" => limit = Some(v),
            _ if STATEMENT_FIELDS.contains(&k) => rest.push((k, v)),
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{k}' is not a delete statement field"),
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
    let one = match limit {
        RawBsonRef::Int32(1) | RawBsonRef::Int64(1) => true,
        RawBsonRef::Double(1.0) => true,
        RawBsonRef::Int32(0) | RawBsonRef::Int64(0) => false,
        RawBsonRef::Double(0.0) => false,
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "limit must be 0 or 1",
            ));
        }
    };
    check_filter(q, m)?;
    let mut out = RawDocumentBuf::new();
    out.append(bson::raw::cstr!("q"), plan.scope.filter(Some(q))?);
    match &plan.soft {
        Some(u) => {
            out.append(bson::raw::cstr!("u"), u);
            out.append(bson::raw::cstr!("multi"), !one);
        }
        None => out.append(bson::raw::cstr!("limit"), limit),
    }
    for (k, v) in rest {
        out.append(key(k)?, v);
    }
    Ok(out)
}
