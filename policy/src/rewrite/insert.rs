//! `insert`: every document gets `tenant_field: T`, in the body's `documents` array or in a
//! `documents` sequence. A document carrying another tenant's id refuses the whole command, so a
//! batch is never half-written. Documents that already carry T (and need no stamps) are forwarded
//! as the very bytes that arrived.

use tenantgate_wire::{DocumentSequence, RawDoc};

use super::{rebuild, target_collection};
use crate::decision::{Forward, Rejection, ReplyShape, Rule};
use crate::engine::{Request, Tenant};
use crate::raw::{DocBatch, Value, elements, finish};
use crate::update::{WriteRules, replacement_plan, write_replacement};

const INSERT_FIELDS: [&str; 3] = ["documents", "ordered", "bypassDocumentValidation"];

pub(super) fn insert(req: &Request<'_>, t: &Tenant<'_>) -> Result<Forward, Rejection> {
    let collection = target_collection(req)?;
    let (_, rules, _) = t.write_access(collection)?;
    let mut saw_documents = false;
    let out = rebuild(req, &t.options, None, &INSERT_FIELDS, |e, out| {
        if e.key_bytes() == b"documents" {
            let Value::Array(docs) = e.value() else {
                return Err(Rejection::new(
                    Rule::MalformedCommand,
                    "documents must be an array",
                ));
            };
            let arr = out.open("documents", true)?;
            for item in elements(docs) {
                let item = item?;
                let Value::Document(d) = item.value() else {
                    return Err(Rejection::new(
                        Rule::MalformedCommand,
                        "documents must hold documents",
                    ));
                };
                match replacement_plan(d, &rules)? {
                    Some(needs_tenant) => {
                        let doc = out.push_open(false)?;
                        write_replacement(d, &rules, needs_tenant, out)?;
                        out.close(doc);
                    }
                    None => out.push_element(&item)?,
                }
            }
            out.close(arr);
            saw_documents = true;
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

/// The documents of a sequence with the tenant field (and stamps) added, built in one buffer;
/// documents that already carry T are kept as they arrived.
fn stamp_all(docs: &[RawDoc], rules: &WriteRules<'_>) -> Result<Vec<RawDoc>, Rejection> {
    let bytes: usize = docs.iter().map(RawDoc::len).sum();
    let extra = rules.tenant_field.len()
        + rules.tenant.len()
        + 8
        + if rules.stamp.is_some() { 40 } else { 0 };
    let mut batch = DocBatch::with_capacity(docs.len(), bytes + extra * docs.len());
    for d in docs {
        match replacement_plan(d.as_raw(), rules)? {
            Some(needs_tenant) => {
                let opened = batch.open()?;
                write_replacement(d.as_raw(), rules, needs_tenant, batch.builder())?;
                batch.close(opened);
            }
            None => batch.keep(d.clone()),
        }
    }
    Ok(batch.finish()?)
}
