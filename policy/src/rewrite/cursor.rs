//! `getMore` and `killCursors`: forwarded as they are once the collection is checked. The rule
//! that a principal may only touch cursors it opened is enforced by the proxy, which knows which
//! cursor ids each principal's commands returned (rule `cursor_not_owned`).

use super::{no_sequences, rebuild};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{Value, finish, get};

const GET_MORE_FIELDS: [&str; 2] = ["collection", "batchSize"];
const KILL_CURSORS_FIELDS: [&str; 1] = ["cursors"];

/// Cursors of database-level commands live in pseudo-collections: `aggregate: 1` in
/// `$cmd.aggregate`, `listCollections` in `$cmd.listCollections`.
const COMMAND_CURSOR_NAMESPACES: [&str; 2] = ["$cmd.aggregate", "$cmd.listCollections"];

pub(super) fn cursor(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let collection = match req.name {
        "getMore" => {
            if !matches!(
                get(req.body, "getMore")?.map(|e| e.value()),
                Some(Value::Int64(_))
            ) {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "getMore must be a 64-bit cursor id",
                ));
            }
            match get(req.body, "collection")?.and_then(|e| e.as_str()) {
                Some(s) => s,
                None => {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "getMore needs a collection",
                    ));
                }
            }
        }
        _ => match get(req.body, "killCursors")?.and_then(|e| e.as_str()) {
            Some(s) => s,
            None => {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "killCursors must name a collection",
                ));
            }
        },
    };
    if !COMMAND_CURSOR_NAMESPACES.contains(&collection) {
        t.collection(collection)?;
    }
    let known: &[&str] = if req.name == "getMore" {
        &GET_MORE_FIELDS
    } else {
        &KILL_CURSORS_FIELDS
    };
    if !t.options.present {
        // Check fields without keeping the rebuilt copy: the command is forwarded byte for byte.
        rebuild(req, &t.options, None, known, |_, _| Ok(()))?;
        return Ok(Forward {
            body: req.raw.clone(),
            sequences: Vec::new(),
            reply: ReplyShape::AsIs,
        });
    }
    let out = rebuild(req, &t.options, None, known, |e, out| {
        out.copy(e);
        Ok(())
    })?;
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
