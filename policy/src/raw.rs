//! Reading and building raw BSON for the engine.
//!
//! Commands reaching the engine were fully validated by the wire codec, so the engine reads them
//! through `tenantgate_wire::element` — element boundaries from the length fields, no second
//! validation pass — and builds rewritten commands by copying element bytes. A read error here
//! would be an internal inconsistency; it is still a rejection, never a panic.

use bson::RawDocument;
use tenantgate_wire::RawDoc;
pub(crate) use tenantgate_wire::element::{DocBatch, DocBuilder, Element, ElementError, Value};

use crate::decision::{Rejection, Rule};

impl From<ElementError> for Rejection {
    fn from(_: ElementError) -> Self {
        Rejection::new(
            Rule::MalformedCommand,
            "malformed BSON (or a field name containing NUL)",
        )
    }
}

/// Elements of a document (or of an array, read as a document).
pub(crate) fn elements(doc: &RawDocument) -> impl Iterator<Item = Result<Element<'_>, Rejection>> {
    tenantgate_wire::element::elements(doc).map(|r| r.map_err(Rejection::from))
}

/// Values of an array (given as its document).
pub(crate) fn items(arr: &RawDocument) -> impl Iterator<Item = Result<Value<'_>, Rejection>> {
    elements(arr).map(|r| r.map(|e| e.value()))
}

/// The first element named `key`.
pub(crate) fn get<'a>(doc: &'a RawDocument, key: &str) -> Result<Option<Element<'a>>, Rejection> {
    Ok(tenantgate_wire::element::get(doc, key)?)
}

/// The first element of a document.
pub(crate) fn first(doc: &RawDocument) -> Result<Option<Element<'_>>, Rejection> {
    elements(doc).next().transpose()
}

/// Whether the first key of `doc` starts with `$` (an operator document).
pub(crate) fn is_operator_doc(doc: &RawDocument) -> bool {
    matches!(first(doc), Ok(Some(e)) if e.key().starts_with('$'))
}

/// A finished document as a `RawDoc` for the wire. Documents built here are well-formed by
/// construction, so the full validation pass is skipped (see `RawDoc::from_built`).
pub(crate) fn finish(doc: DocBuilder) -> Result<RawDoc, Rejection> {
    doc.into_raw_doc().map_err(|_| {
        Rejection::new(
            Rule::MalformedCommand,
            "rewritten command is not valid BSON",
        )
    })
}

/// Truthiness as MongoDB reads flags such as `remove`, `upsert`, `multi`.
pub(crate) fn truthy(v: Value<'_>) -> bool {
    match v {
        Value::Bool(b) => b,
        Value::Int32(i) => i != 0,
        Value::Int64(i) => i != 0,
        Value::Double(d) => d != 0.0,
        Value::Null | Value::Other(0x06) => false,
        _ => true,
    }
}
