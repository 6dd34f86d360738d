//! Read-only catalogue commands: `listCollections` (collections reserved for `super_admin` are
//! filtered out of the answer) and `listIndexes` (index metadata of an open collection).

use bson::{RawArrayBuf, RawBsonRef, RawDocumentBuf};

use super::{no_sequences, rebuild, target_collection};
use crate::config::CollectionMode;
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{finish, key};

const LIST_COLLECTIONS_FIELDS: [&str; 4] =
    ["filter", "nameOnly", "authorizedCollections", "cursor"];
const LIST_INDEXES_FIELDS: [&str; 1] = ["cursor"];

pub(super) fn catalog(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    if req.name == "listIndexes" {
        t.collection(target_collection(req)?)?;
        let out = rebuild(req, &t.options, None, &LIST_INDEXES_FIELDS, |k, v, out| {
            out.append(key(k)?, v);
            Ok(())
        })?;
        return Ok(Forward {
            body: finish(out)?,
            sequences: Vec::new(),
            reply: ReplyShape::AsIs,
        });
    }
    let mut hidden = RawArrayBuf::new();
    for (name, policy) in &t.config.collections {
        if policy.mode == CollectionMode::Admin {
            hidden.push(name.as_str());
        }
    }
    let mut not_hidden = RawDocumentBuf::new();
    let mut nin = RawDocumentBuf::new();
    nin.append(bson::raw::cstr!("$nin"), hidden);
    not_hidden.append(bson::raw::cstr!("name"), nin);
    let mut saw_filter = false;
    let mut out = rebuild(
        req,
        &t.options,
        None,
        &LIST_COLLECTIONS_FIELDS,
        |k, v, out| {
            if k == "filter" {
                let mut and = RawArrayBuf::new();
                match v {
                    RawBsonRef::Document(d) => and.push(d),
                    RawBsonRef::Null => {}
                    _ => {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "filter must be a document",
                        ));
                    }
                }
                and.push(&not_hidden);
                let mut filter = RawDocumentBuf::new();
                filter.append(bson::raw::cstr!("$and"), and);
                out.append(key(k)?, filter);
                saw_filter = true;
            } else {
                out.append(key(k)?, v);
            }
            Ok(())
        },
    )?;
    if !saw_filter {
        out.append(bson::raw::cstr!("filter"), &not_hidden);
    }
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply: ReplyShape::AsIs,
    })
}
