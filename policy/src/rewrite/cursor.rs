//! `getMore` and `killCursors`: forwarded as they are once the collection is checked. The rule
//! that a principal may only touch cursors it opened is enforced by the proxy, which knows which
//! cursor ids each principal's commands returned (rule `cursor_not_owned`).

use bson::RawBsonRef;

use super::{no_sequences, rebuild};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{finish, key};

const GET_MORE_FIELDS: [&str; 2] = ["collection", "batchSize"];
const KILL_CURSORS_FIELDS: [&str; 1] = ["cursors"];

pub(super) fn cursor(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let collection = match req.name {
        "getMore" => {
            if !matches!(req.body.get("getMore"), Ok(Some(RawBsonRef::Int64(_)))) {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "getMore must be a 64-bit cursor id",
                ));
            }
            match req.body.get("collection") {
                Ok(Some(RawBsonRef::String(s))) => s,
                _ => {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "getMore needs a collection",
                    ));
                }
            }
        }
        _ => match req.body.get("killCursors") {
            Ok(Some(RawBsonRef::String(s))) => s,
            _ => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "killCursors must name a collection",
                ));
            }
        },
    };
    t.collection(collection)?;
    let known: &[&str] = if req.name == "getMore" {
        &GET_MORE_FIELDS
    } else {
        &KILL_CURSORS_FIELDS
    };
    if !t.options.present {
        // Check fields without rebuilding: the command is forwarded byte for byte.
        rebuild(req, &t.options, None, known, |_, _, _| Ok(()))?;
        return Ok(Forward {
            body: req.raw.clone(),
            sequences: Vec::new(),
            reply: ReplyShape::AsIs,
        });
    }
    let out = rebuild(req, &t.options, None, known, |k, v, out| {
        out.append(key(k)?, v);
        Ok(())
    })?;
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
