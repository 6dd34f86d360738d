//! `insert`: every document gets `tenant_field: T`, in the body's `documents` array or in a
//! `documents` sequence. A document carrying another tenant's id refuses the whole command, so a
//! batch is never half-written. Documents that already carry T (and need no stamps) are forwarded
//! as the very bytes that arrived.

use tenantgate_wire::{DocumentSequence, RawDoc};

use super::{rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{DocBuilder, Value, elements, finish};
use crate::update::{WriteRules, rewrite_replacement};

const INSERT_FIELDS: [&str; 3] = ["documents", "ordered", "bypassDocumentValidation"];

pub(super) fn insert(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let collection = target_collection(req)?;
    let (_, rules, _) = t.write_access(collection)?;
    let mut saw_documents = false;
    let out = rebuild(req, &t.options, None, &INSERT_FIELDS, |e, out| {
        if e.key() == "documents" {
            let Value::Array(docs) = e.value() else {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "documents must be an array",
                ));
            };
            let mut arr = DocBuilder::with_capacity(docs.as_bytes().len() + 64);
            for item in elements(docs) {
                let item = item?;
                let Value::Document(d) = item.value() else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "documents must hold documents",
                    ));
                };
                match rewrite_replacement(d, &rules)? {
                    Some(new) => arr.push_doc(&new)?,
                    None => arr.push_element(&item)?,
                }
            }
            saw_documents = true;
            out.array("documents", &arr.finish())?;
        } else {
            out.copy(e);
        }
        Ok(())
    })?;
    let mut sequences = Vec::with_capacity(req.sequences.len());
    for seq in req.sequences {
        if seq.identifier != "documents" {
            return Err(Rejection::new(
                Rule::UnknownField,
                format!(
                    "document sequence '{}' is not understood for insert",
                    crate::audit::clip(&seq.identifier)
                ),
            ));
        }
        saw_documents = true;
        sequences.push(DocumentSequence {
            identifier: seq.identifier.clone(),
            documents: stamp_all(&seq.documents, &rules)?,
        });
    }
    if !saw_documents {
        return Err(Rejection::new(
            Rule::MalformedCommand,
            "insert needs documents",
        ));
    }
    Ok(Forward {
        body: finish(out)?,
        sequences,
        reply: ReplyShape::AsIs,
    })
}

fn stamp_all(docs: &[RawDoc], rules: &WriteRules<'_>) -> Result<Vec<RawDoc>, Rejection> {
    docs.iter()
        .map(|d| match rewrite_replacement(d.as_raw(), rules)? {
            Some(new) => RawDoc::from_built(new).map_err(|_| {
                Rejection::new(
                    Rule::MalformedCommand,
                    "rewritten document is not valid BSON",
                )
            }),
            None => Ok(d.clone()),
        })
        .collect()
}
