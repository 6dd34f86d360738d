//! `find`, `count` and `distinct`: the filter becomes the scoped filter.
//!
//! `count` without a query (what `estimatedDocumentCount` sends) gets the scope as its query, so
//! it counts only the tenant's live documents.

use super::{no_sequences, rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{check_expression, check_filter};
use crate::raw::{Value, finish};

const FIND_FIELDS: [&str; 20] = [
    "filter",
    "sort",
    "projection",
    "hint",
    "skip",
    "limit",
    "batchSize",
    "singleBatch",
    "max",
    "min",
    "returnKey",
    "showRecordId",
    "tailable",
    "noCursorTimeout",
    "awaitData",
    "allowPartialResults",
    "collation",
    "allowDiskUse",
    "let",
    "readOnce",
];
const COUNT_FIELDS: [&str; 6] = ["query", "limit", "skip", "hint", "collation", "fields"];
const DISTINCT_FIELDS: [&str; 4] = ["key", "query", "collation", "hint"];

pub(super) fn read(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let collection = target_collection(req)?;
    let scope = t.read_scope(collection)?;
    let m = t.mentions();
    let (filter_field, known): (&str, &[&str]) = match req.name {
        "find" => ("filter", &FIND_FIELDS),
        "count" => ("query", &COUNT_FIELDS),
        _ => ("query", &DISTINCT_FIELDS),
    };
    let mut saw_filter = false;
    let mut out = rebuild(req, &t.options, None, known, |e, out| {
        let k = e.key_bytes();
        if k == filter_field.as_bytes() {
            let user = match e.value() {
                Value::Document(d) => Some(d),
                Value::Null | Value::Other(0x06) => None,
                _ => {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        format!("{filter_field} must be a document"),
                    ));
                }
            };
            if let Some(u) = user {
                check_filter(u, &m)?;
            }
            scope.write_filter(out, filter_field, user)?;
            saw_filter = true;
        } else {
            if k == b"let" {
                check_expression(e.value(), &m)?;
            }
            out.copy(e);
        }
        Ok(())
    })?;
    if !saw_filter {
        scope.write_filter(&mut out, filter_field, None)?;
    }
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
