//! `update`: each statement's filter is scoped and its update checked (see [`crate::update`]).
//! Statements come from the body's `updates` array or an `updates` document sequence.

use bson::RawDocument;

use super::{check_collation, rebuild, statement_array, statement_sequences, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{Mentions, check_expression, check_filter};
use crate::raw::{DocBuilder, Value, elements, finish};
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
    let out = rebuild(req, &t.options, None, &UPDATE_FIELDS, |e, out| {
        match e.key_bytes() {
            b"updates" => {
                statement_array(e, "updates", out, |stmt, out| {
                    statement(stmt, &scope, &rules, &m, out)
                })?;
                saw_updates = true;
            }
            b"let" => {
                check_expression(e.value(), &m)?;
                out.copy(e);
            }
            _ => out.copy(e),
        }
        Ok(())
    })?;
    let sequences = statement_sequences(req, "updates", "updates", |stmt, out| {
        statement(stmt, &scope, &rules, &m, out)
    })?;
    saw_updates |= !sequences.is_empty();
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

/// One update statement, rewritten: its elements are appended to `out`.
fn statement(
    stmt: &RawDocument,
    scope: &Scope<'_>,
    rules: &WriteRules<'_>,
    m: &Mentions<'_>,
    out: &mut DocBuilder,
) -> Result<(), Rejection> {
    let (mut saw_q, mut saw_u) = (false, false);
    for element in elements(stmt) {
        let e = element?;
        match (e.key_bytes(), e.value()) {
            (b"q", Value::Document(q)) => {
                check_filter(q, m)?;
                scope.write_filter(out, "q", Some(q))?;
                saw_q = true;
            }
            (b"q", _) => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "q must be a document",
                ));
            }
            (b"u", u) => {
                match rewrite_update(u, rules)? {
                    Some(updated) => updated.append_to(out, "u")?,
                    None => out.element("u", &e)?,
                }
                saw_u = true;
            }
            (b"c", c) => {
                check_expression(c, m)?;
                out.element("c", &e)?;
            }
            (b"collation", _) => {
                check_collation(&e)?;
                out.element("collation", &e)?;
            }
            (k, _) if super::listed(&STATEMENT_FIELDS, k) => out.copy(&e),
            _ => {
                return Err(Rejection::new(
                    Rule::UnknownField,
                    format!(
                        "'{}' is not an update statement field",
                        crate::audit::clip(e.key())
                    ),
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
    Ok(())
}
