//! `findAndModify`: scoped query, checked update; `remove: true` on a soft-delete collection
//! becomes an update setting the soft-delete field, returning the document as it was (which is
//! what a remove returns). The proxy drops `updatedExisting` from the reply
//! (`ReplyShape::RemoveFromFindAndModify`).

use bson::{RawBson, RawBsonRef, RawDocumentBuf};

use super::{no_sequences, rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{check_expression, check_filter};
use crate::raw::{finish, key, truthy};
use crate::update::rewrite_update;

const FIELDS: [&str; 12] = [
    "query",
    "sort",
    "remove",
    "update",
    "new",
    "fields",
    "upsert",
    "bypassDocumentValidation",
    "arrayFilters",
    "collation",
    "hint",
    "let",
];

pub(super) fn find_and_modify(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    no_sequences(req)?;
    let collection = target_collection(req)?;
    let (scope, rules, policy) = t.write_access(collection)?;
    let m = t.mentions();
    let remove = req.body.get("remove").ok().flatten().is_some_and(truthy);
    let soft_remove = remove && policy.soft_delete;
    if remove && req.body.get("update").ok().flatten().is_some() {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "findAndModify cannot both remove and update",
        ));
    }
    let mut saw_query = false;
    let mut out = rebuild(req, &t.options, None, &FIELDS, |k, v, out| {
        match k {
            "query" => {
                let user = match v {
                    RawBsonRef::Document(d) => Some(d),
                    RawBsonRef::Null => None,
                    _ => {
                        return Err(Rejection::new(
                            Rule::MalformedCommand,
                            "query must be a document",
                        ));
                    }
                };
                if let Some(u) = user {
                    check_filter(u, &m)?;
                }
                out.append(key(k)?, scope.filter(user)?);
                saw_query = true;
            }
            "update" => match rewrite_update(v, &rules)? {
                Some(RawBson::Document(d)) => out.append(key(k)?, d),
                Some(RawBson::Array(a)) => out.append(key(k)?, a),
                Some(other) => out.append(key(k)?, other),
                None => out.append(key(k)?, v),
            },
            // A soft remove is an update that must return the document as it was.
            "remove" | "new" | "upsert" if soft_remove => {}
            "let" => {
                check_expression(v, &m)?;
                out.append(key(k)?, v);
            }
            _ => out.append(key(k)?, v),
        }
        Ok(())
    })?;
    if !saw_query {
        out.append(bson::raw::cstr!("query"), scope.filter(None)?);
    }
    let reply = if soft_remove {
        let mut set = RawDocumentBuf::new();
        set.append(key(&t.config.soft_delete_field)?, t.now);
        if let Some(s) = rules.stamp {
            set.append(key(s.updated_field)?, s.now);
        }
        let mut u = RawDocumentBuf::new();
        u.append(bson::raw::cstr!("$set"), set);
        out.append(bson::raw::cstr!("update"), u);
        out.append(bson::raw::cstr!("new"), false);
        ReplyShape::RemoveFromFindAndModify
    } else {
        ReplyShape::AsIs
    };
    Ok(Forward {
        body: finish(out)?,
        sequences: Vec::new(),
        reply,
    })
}
