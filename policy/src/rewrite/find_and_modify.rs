//! `findAndModify`: scoped query, checked update; `remove: true` on a soft-delete collection
//! becomes an update setting the soft-delete field, returning the document as it was (which is
//! what a remove returns). The proxy drops `updatedExisting` from the reply
//! (`ReplyShape::RemoveFromFindAndModify`).

use super::{no_sequences, rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::filter::{check_expression, check_filter};
use crate::raw::{DocBuilder, Value, finish, get, truthy};
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
    let remove = get(req.body, "remove")?.is_some_and(|e| truthy(e.value()));
    let soft_remove = remove && policy.soft_delete;
    if remove && get(req.body, "update")?.is_some() {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "findAndModify cannot both remove and update",
        ));
    }
    let mut saw_query = false;
    let mut out = rebuild(req, &t.options, None, &FIELDS, |e, out| {
        match (e.key(), e.value()) {
            ("query", v) => {
                let user = match v {
                    Value::Document(d) => Some(d),
                    Value::Null => None,
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
                scope.write_filter(out, "query", user)?;
                saw_query = true;
            }
            ("update", u) => match rewrite_update(u, &rules)? {
                Some(updated) => updated.append_to(out, "update")?,
                None => out.element("update", e)?,
            },
            // A soft remove is an update that must return the document as it was.
            ("remove" | "new" | "upsert", _) if soft_remove => {}
            ("let", v) => {
                check_expression(v, &m)?;
                out.element("let", e)?;
            }
            _ => out.copy(e),
        }
        Ok(())
    })?;
    if !saw_query {
        scope.write_filter(&mut out, "query", None)?;
    }
    let reply = if soft_remove {
        let mut set = DocBuilder::with_capacity(64);
        set.datetime(&t.config.soft_delete_field, t.now.timestamp_millis())?;
        if let Some(s) = rules.stamp {
            set.datetime(s.updated_field, s.now.timestamp_millis())?;
        }
        let mut u = DocBuilder::with_capacity(80);
        u.doc("$set", &set.finish())?;
        out.doc("update", &u.finish())?;
        out.bool("new", false)?;
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
