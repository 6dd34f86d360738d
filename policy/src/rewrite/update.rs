//! `update`: each statement's filter is scoped and its update checked (see [`crate::update`]).
//! Statements come from the body's `updates` array or an `updates` document sequence.

use bson::{RawArrayBuf, RawBson, RawBsonRef, RawDocument, RawDocumentBuf};
use tenantgate_wire::{DocumentSequence, RawDoc};

use super::{rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{Mentions, check_expression, check_filter};
use crate::raw::{elements, finish, items, key};
use crate::scope::Scope;
use crate::update::{WriteRules, rewrite_update};

const UPDATE_FIELDS: [&str; 4] = ["updates", "ordered", "bypassDocumentValidation", "let"];
const STATEMENT_FIELDS: [&str; 9] = [
    "q",
    "u",
    "upsert",
    "multi",
    "arrayFilters",
    "collation",
    "hint",
    "c",
    "sort",
];

pub(super) fn update(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let collection = target_collection(req)?;
    let (scope, rules, _) = t.write_access(collection)?;
    let m = t.mentions();
    let mut saw_updates = false;
    let out = rebuild(req, &t.options, None, &UPDATE_FIELDS, |k, v, out| {
        match k {
            "updates" => {
                let RawBsonRef::Array(stmts) = v else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "updates must be an array",
                    ));
                };
                let mut arr = RawArrayBuf::new();
                for item in items(stmts) {
                    let RawBsonRef::Document(stmt) = item? else {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "updates must hold documents",
                        ));
                    };
                    arr.push(statement(stmt, &scope, &rules, &m)?);
                }
                saw_updates = true;
                out.append(key(k)?, arr);
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
        if seq.identifier != "updates" {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "document sequence '{}' is not understood for update",
                    seq.identifier
                ),
            ));
        }
        saw_updates = true;
        let documents = seq
            .documents
            .iter()
            .map(|d| statement(d.as_raw(), &scope, &rules, &m).and_then(finish))
            .collect::<Result<Vec<RawDoc>, _>>()?;
        sequences.push(DocumentSequence {
            identifier: seq.identifier.clone(),
            documents,
        });
    }
    if !saw_updates {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "update needs updates",
        ));
    }
    Ok(Forward {
        body: finish(out)?,
        sequences,
        reply: ReplyShape::AsIs,
    })
}

/// One update statement, rewritten.
fn statement(
    stmt: &RawDocument,
    scope: &Scope<'_>,
    rules: &WriteRules<'_>,
    m: &Mentions<'_>,
) -> Result<RawDocumentBuf, Rejection> {
    let mut out = RawDocumentBuf::new();
    let (mut saw_q, mut saw_u) = (false, false);
    for element in elements(stmt) {
        let (k, v) = element?;
        match k {
            "q" => {
                let RawBsonRef::Document(q) = v else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "q must be a document",
                    ));
                };
                check_filter(q, m)?;
                out.append(key(k)?, scope.filter(Some(q))?);
                saw_q = true;
            }
            "u" => {
                match rewrite_update(v, rules)? {
                    Some(RawBson::Document(d)) => out.append(key(k)?, d),
                    Some(RawBson::Array(a)) => out.append(key(k)?, a),
                    Some(other) => out.append(key(k)?, other),
                    None => out.append(key(k)?, v),
                }
                saw_u = true;
            }
            "c" => {
                check_expression(v, m)?;
                out.append(key(k)?, v);
            }
            _ if STATEMENT_FIELDS.contains(&k) => out.append(key(k)?, v),
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!("'{k}' is not an update statement field"),
                ));
            }
        }
    }
    if !(saw_q && saw_u) {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "an update statement needs q and u",
        ));
    }
    Ok(out)
}
