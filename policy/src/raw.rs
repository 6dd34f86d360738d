//! Small helpers for reading and building raw BSON without decoding whole documents.

use bson::raw::CStr;
use bson::{RawArray, RawBsonRef, RawDocument, RawDocumentBuf};
use tenantgate_wire::RawDoc;

use crate::decision::{Rejection, Rule};

/// Elements of a document. Documents reaching the engine were fully validated by the wire
/// codec, so a read error here is an internal inconsistency; it is still a rejection, never a
/// panic.
pub(crate) fn elements(
    doc: &RawDocument,
) -> impl Iterator<Item = Result<(&str, RawBsonRef<'_>), Rejection>> {
    doc.iter().map(|r| {
        r.map(|(k, v)| (k.as_str(), v))
            .map_err(|_| Rejection::new(Rule::MalformedCommand, "malformed BSON"))
    })
}

/// Values of an array.
pub(crate) fn items(arr: &RawArray) -> impl Iterator<Item = Result<RawBsonRef<'_>, Rejection>> {
    arr.into_iter()
        .map(|r| r.map_err(|_| Rejection::new(Rule::MalformedCommand, "malformed BSON array")))
}

/// A key for appending. Keys come from validated input or validated config, so conversion does
/// not fail in practice; if it did, the command is refused.
pub(crate) fn key(s: &str) -> Result<&CStr, Rejection> {
    <&CStr>::try_from(s)
        .map_err(|_| Rejection::new(Rule::MalformedCommand, "field name contains NUL"))
}

/// Wraps a document this crate built (through the `bson` append API, or by appending elements to
/// a validated document) as a `RawDoc` for the wire. Such documents are well-formed by
/// construction, so the full validation pass is skipped (see `RawDoc::from_built`).
pub(crate) fn finish(doc: RawDocumentBuf) -> Result<RawDoc, Rejection> {
    RawDoc::from_built(doc).map_err(|_| {
        Rejection::new(
            Rule::MalformedCommand,
            "rewritten command is not valid BSON",
        )
    })
}

/// Truthiness as MongoDB reads flags such as `remove`, `upsert`, `multi`.
pub(crate) fn truthy(v: RawBsonRef<'_>) -> bool {
    match v {
        RawBsonRef::Boolean(b) => b,
        RawBsonRef::Int32(i) => i != 0,
        RawBsonRef::Int64(i) => i != 0,
        RawBsonRef::Double(d) => d != 0.0,
        RawBsonRef::Null | RawBsonRef::Undefined => false,
        _ => true,
    }
}

/// Appends `key: value` (a string) to a copy of `doc`, working on the bytes directly: the
/// common insert rewrite (stamp the tenant id) costs one copy and no per-element work.
pub(crate) fn with_string_field(doc: &RawDocument, key: &str, value: &str) -> RawDocumentBuf {
    let src = doc.as_bytes();
    let mut out = Vec::with_capacity(src.len() + key.len() + value.len() + 7);
    out.extend_from_slice(&src[..src.len() - 1]);
    out.push(0x02);
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out.extend_from_slice(&((value.len() + 1) as i32).to_le_bytes());
    out.extend_from_slice(value.as_bytes());
    out.push(0);
    out.push(0);
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    // The bytes are a valid document by construction (a valid prefix, one string element, NUL).
    RawDocumentBuf::from_bytes(out).unwrap_or_else(|_| {
        let mut fallback = doc.to_owned();
        if let Ok(k) = key_cstr(key) {
            fallback.append(k, value);
        }
        fallback
    })
}

fn key_cstr(s: &str) -> Result<&CStr, bson::error::Error> {
    <&CStr>::try_from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn appending_a_string_field_on_the_bytes_matches_the_bson_crate() {
        let doc = rawdoc! { "_id": 1, "amount": 5_i64, "nested": { "a": [1, 2] } };
        let mut expected = doc.clone();
        expected.append(bson::raw::cstr!("tenantId"), "bank1");
        assert_eq!(with_string_field(&doc, "tenantId", "bank1"), expected);
        let empty = rawdoc! {};
        let mut expected = empty.clone();
        expected.append(bson::raw::cstr!("t"), "");
        assert_eq!(with_string_field(&empty, "t", ""), expected);
    }
}
