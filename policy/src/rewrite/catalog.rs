//! Read-only catalogue commands: `listCollections` (collections reserved for `super_admin` are
//! filtered out of the answer) and `listIndexes` (index metadata of an open collection).

use super::{no_sequences, rebuild, target_collection};
use crate::config::CollectionMode;
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{DocBuilder, Value, finish};

const LIST_COLLECTIONS_FIELDS: [&str; 4] =
    ["filter", "nameOnly", "authorizedCollections", "cursor"];
const LIST_INDEXES_FIELDS: [&str; 1] = ["cursor"];

pub(super) fn catalog(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    if req.name == "listIndexes" {
        t.collection(target_collection(req)?)?;
        let out = rebuild(req, &t.options, None, &LIST_INDEXES_FIELDS, |e, out| {
            out.copy(e);
            Ok(())
        })?;
        return Ok(Forward {
            body: finish(out)?,
            sequences: Vec::new(),
            reply: ReplyShape::AsIs,
        });
    }
    let mut hidden = DocBuilder::with_capacity(64);
    for (name, policy) in &t.config.collections {
        if policy.mode == CollectionMode::Admin {
            hidden.push_str(name)?;
        }
    }
    let mut nin = DocBuilder::with_capacity(64);
    nin.array("$nin", &hidden.finish())?;
    let mut not_hidden = DocBuilder::with_capacity(64);
    not_hidden.doc("name", &nin.finish())?;
    let not_hidden = not_hidden.finish();
    let mut saw_filter = false;
    let mut out = rebuild(req, &t.options, None, &LIST_COLLECTIONS_FIELDS, |e, out| {
        if e.key() == "filter" {
            let mut and = DocBuilder::with_capacity(128);
            match e.value() {
                Value::Document(d) => and.push_doc(d)?,
                Value::Null => {}
                _ => {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "filter must be a document",
                    ));
                }
            }
            and.push_doc(&not_hidden)?;
            let mut filter = DocBuilder::with_capacity(128);
            filter.array("$and", &and.finish())?;
            out.doc("filter", &filter.finish())?;
            saw_filter = true;
        } else {
            out.copy(e);
        }
        Ok(())
    })?;
    if !saw_filter {
        out.doc("filter", &not_hidden)?;
    }
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
