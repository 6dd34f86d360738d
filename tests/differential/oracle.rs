//! The oracle: the same read with "tenantId = T AND live" added directly, written independently
//! of the policy's own shape, and the canonical form results are compared in.

use bson::{Bson, Document, doc};

use super::generators::{CUSTOMERS, JOINED};

/// The tenant-and-live clause the oracle adds, written independently of the policy's shape.
pub fn scope(tenant: &str) -> Document {
    doc! { "$and": [ { "tenantId": tenant }, { "deletedAt": Bson::Null } ] }
}

pub fn scoped_filter(tenant: &str, filter: &Document) -> Document {
    doc! { "$and": [ filter.clone(), scope(tenant) ] }
}

/// The pipeline with the scope `$match` first, and first in every `$lookup` and `$unionWith`
/// sub-pipeline (`$facet` branches read the scoped input and need nothing).
pub fn scoped_pipeline(tenant: &str, stages: &[Document]) -> Vec<Document> {
    let mut out = vec![doc! { "$match": scope(tenant) }];
    for stage in stages {
        if let Some(union) = stage.get("$unionWith") {
            let (coll, sub) = match union {
                Bson::Document(spec) => (
                    spec.get_str("coll").unwrap_or(CUSTOMERS).to_owned(),
                    sub_pipeline(spec),
                ),
                other => (other.as_str().unwrap_or(CUSTOMERS).to_owned(), Vec::new()),
            };
            out.push(doc! { "$unionWith": {
                "coll": coll, "pipeline": scoped_pipeline(tenant, &sub),
            } });
            continue;
        }
        match stage.get_document("$lookup") {
            Ok(spec) => {
                let mut spec = spec.clone();
                let sub = sub_pipeline(&spec);
                spec.insert("pipeline", scoped_pipeline(tenant, &sub));
                out.push(doc! { "$lookup": spec });
            }
            Err(_) => out.push(stage.clone()),
        }
    }
    out
}

/// The `pipeline` of a `$lookup` / `$unionWith` spec, or no stages.
pub fn sub_pipeline(spec: &Document) -> Vec<Document> {
    spec.get_array("pipeline")
        .map(|a| a.iter().filter_map(|s| s.as_document().cloned()).collect())
        .unwrap_or_default()
}

/// Canonical extended JSON of each result, `joined` arrays sorted, the list sorted: a multiset
/// that ignores the order the server returned things in, but not types or values.
pub fn canonical(docs: Vec<Bson>) -> Vec<String> {
    let mut out: Vec<String> = docs
        .into_iter()
        .map(|b| {
            let b = match b {
                Bson::Document(mut d) => {
                    if let Ok(arr) = d.get_array_mut(JOINED) {
                        arr.sort_by_cached_key(|x| x.clone().into_canonical_extjson().to_string());
                    }
                    Bson::Document(d)
                }
                other => other,
            };
            b.into_canonical_extjson().to_string()
        })
        .collect();
    out.sort();
    out
}

pub fn json(b: impl Into<Bson>) -> String {
    b.into().into_relaxed_extjson().to_string()
}
