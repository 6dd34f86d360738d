//! `aggregate`: on a collection, the pipeline is scoped (see [`super::pipeline`]); at database
//! level (`aggregate: 1`) it must start with `$documents` and every stage must be safe.

use bson::RawBsonRef;

use super::pipeline::{Input, rewrite};
use super::{no_sequences, rebuild};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::check_expression;
use crate::raw::{finish, key};

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
    let input = match req.body.get("aggregate") {
        Ok(Some(RawBsonRef::String(coll))) => Input::Collection(t.read_scope(coll)?),
        Ok(Some(RawBsonRef::Int32(1) | RawBsonRef::Int64(1))) => Input::Documents,
        Ok(Some(RawBsonRef::Double(1.0))) => Input::Documents,
        _ => {
            return Err(Rejection::new(
                Rule::MalformedCommand,
                "aggregate must name a collection or be 1",
            ));
        }
    };
    let m = t.mentions();
    let mut saw_pipeline = false;
    let out = rebuild(req, &t.options, None, &FIELDS, |k, v, out| {
        match k {
            "pipeline" => {
                let RawBsonRef::Array(stages) = v else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "pipeline must be an array",
                    ));
                };
                out.append(key(k)?, rewrite(stages, input, req.db, t)?);
                saw_pipeline = true;
            }
            "let" => {
                check_expression(v, &m)?;
                out.append(key(k)?, v);
            }
            _ => out.append(key(k)?, v),
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
