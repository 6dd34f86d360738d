//! `aggregate`: on a collection, the pipeline is scoped (see [`super::pipeline`]); at database
//! level (`aggregate: 1`) it must start with `$documents` and every stage must be safe.

use super::pipeline::{Input, rewrite};
use super::{no_sequences, rebuild};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::check_expression;
use crate::raw::{Value, finish, get};

const FIELDS: [&str; 8] = [
    "pipeline",
    "cursor",
    "explain",
    "allowDiskUse",
    "bypassDocumentValidation",
    "collation",
    "hint",
    "let",
];

pub(super) fn aggregate(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let input = match get(req.body, "aggregate")?.map(|e| e.value()) {
        Some(Value::String(coll)) => Input::Collection(t.read_scope(coll)?),
        Some(Value::Int32(1) | Value::Int64(1)) => Input::Documents,
        Some(Value::Double(1.0)) => Input::Documents,
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "aggregate must name a collection or be 1",
            ));
        }
    };
    let m = t.mentions();
    let mut saw_pipeline = false;
    let out = rebuild(req, &t.options, None, &FIELDS, |e, out| {
        match (e.key_bytes(), e.value()) {
            (b"pipeline", Value::Array(stages)) => {
                let pipeline = out.open("pipeline", true)?;
                rewrite(stages, input, req.db, t, out)?;
                out.close(pipeline);
                saw_pipeline = true;
            }
            (b"pipeline", _) => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "pipeline must be an array",
                ));
            }
            (b"let", v) => {
                check_expression(v, &m)?;
                out.element("let", e)?;
            }
            _ => out.copy(e),
        }
        Ok(())
    })?;
    if !saw_pipeline {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "aggregate needs a pipeline",
        ));
    }
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
