//! Checks every command gets before any rule looks at it, for every principal.
//!
//! - **Duplicate keys.** BSON allows a key twice in one document; the proxy and the server may
//!   then read different values (first one here, last one there). A command, filter, stage or
//!   stored document with a repeated key is refused.
//! - **Server-side JavaScript.** `$where`, `$function`, `$accumulator` and JavaScript code values
//!   run arbitrary code on the server, out of the engine's sight.
//! - **Document sequences** must not repeat an identifier or shadow a body field, for the same
//!   reason as duplicate keys.
//!
//! One pass over everything, no allocation for documents of up to 32 keys.

use bson::RawDocument;
use tenantgate_wire::{DocumentSequence, RawDoc};

use crate::decision::{Rejection, Rule};
use crate::engine::Fields;
use crate::raw::{Value, elements};

const JS_OPERATORS: [&str; 3] = ["$where", "$function", "$accumulator"];
const INLINE_KEYS: usize = 32;

/// Checks the body and every sequence. Documents the wire codec validated carry the answer
/// already ([`tenantgate_wire::DocFacts`], found in its own walk); only a flagged or built
/// document is walked here, to name the offending key.
pub(crate) fn check_command(
    body: &RawDoc,
    fields: &Fields<'_>,
    sequences: &[DocumentSequence],
) -> Result<(), Rejection> {
    check_raw_doc(body)?;
    for (i, seq) in sequences.iter().enumerate() {
        // `fields`: the body's top-level elements, already read by the engine.
        let id = seq.identifier.as_bytes();
        if fields.iter().any(|e| e.key_bytes() == id) {
            return Err(Rejection::new(
                Rule::DuplicateKey,
                format!(
                    "document sequence '{}' duplicates a field of the command body",
                    seq.identifier
                ),
            ));
        }
        if sequences[..i]
            .iter()
            .any(|s| s.identifier == seq.identifier)
        {
            return Err(Rejection::new(
                Rule::DuplicateKey,
                format!("document sequence '{}' appears twice", seq.identifier),
            ));
        }
        for doc in &seq.documents {
            check_raw_doc(doc)?;
        }
    }
    Ok(())
}

fn check_raw_doc(doc: &RawDoc) -> Result<(), Rejection> {
    match doc.facts() {
        Some(f) if !f.duplicate_keys && !f.javascript => Ok(()),
        Some(f) => {
            check_document(doc.as_raw())?;
            // The walk below agrees with the codec's; should it ever not, refuse all the same.
            Err(if f.javascript {
                Rejection::new(Rule::Javascript, "server-side JavaScript is not allowed")
            } else {
                Rejection::new(Rule::DuplicateKey, "a key appears twice in one document")
            })
        }
        None => check_document(doc.as_raw()),
    }
}

/// Checks one document and everything inside it.
pub(crate) fn check_document(doc: &RawDocument) -> Result<(), Rejection> {
    let mut inline: [&str; INLINE_KEYS] = [""; INLINE_KEYS];
    let mut overflow: Option<std::collections::HashSet<&str>> = None;
    for (count, element) in elements(doc).enumerate() {
        let e = element?;
        let key = e.key();
        if key.starts_with('$') && JS_OPERATORS.contains(&key) {
            return Err(Rejection::new(
                Rule::Javascript,
                format!("server-side JavaScript ({key}) is not allowed"),
            ));
        }
        let duplicate = match overflow.as_mut() {
            Some(set) => !set.insert(key),
            None if count < INLINE_KEYS => {
                let seen = inline[..count].contains(&key);
                inline[count] = key;
                seen
            }
            None => {
                let mut set: std::collections::HashSet<&str> = inline.iter().copied().collect();
                let seen = !set.insert(key);
                overflow = Some(set);
                seen
            }
        };
        if duplicate {
            return Err(Rejection::new(
                Rule::DuplicateKey,
                format!(
                    "the key '{}' appears twice in one document",
                    crate::audit::clip(key)
                ),
            ));
        }
        check_value(&e)?;
    }
    Ok(())
}

/// Array elements: their keys are indexes (the server ignores them), so only values are checked.
fn check_array(arr: &RawDocument) -> Result<(), Rejection> {
    for element in elements(arr) {
        check_value(&element?)?;
    }
    Ok(())
}

/// A value: no JavaScript code, and nested documents and arrays checked in turn.
fn check_value(e: &crate::raw::Element<'_>) -> Result<(), Rejection> {
    if e.is_code() {
        return Err(Rejection::new(
            Rule::Javascript,
            "JavaScript code values are not allowed",
        ));
    }
    match e.value() {
        Value::Document(d) => check_document(d),
        Value::Array(a) => check_array(a),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn dup_doc() -> bson::RawDocumentBuf {
        // rawdoc! would refuse a duplicate; append does not.
        let mut d = rawdoc! { "tenantId": "bank1" };
        d.append(bson::raw::cstr!("tenantId"), "bank2");
        d
    }

    #[test]
    fn duplicate_keys_at_any_depth_are_refused() {
        let top = dup_doc();
        assert_eq!(
            check_document(&top).map_err(|r| r.rule),
            Err(Rule::DuplicateKey)
        );
        let nested = rawdoc! { "find": "c", "filter": { "$or": [ top.clone() ] } };
        assert_eq!(
            check_document(&nested).map_err(|r| r.rule),
            Err(Rule::DuplicateKey)
        );
        let mut many = rawdoc! {};
        for i in 0..40 {
            let k = format!("k{i}");
            many.append(
                <&bson::raw::CStr>::try_from(k.as_str()).expect("valid key"),
                i,
            );
        }
        assert!(check_document(&many).is_ok());
        many.append(bson::raw::cstr!("k3"), 1);
        assert_eq!(
            check_document(&many).map_err(|r| r.rule),
            Err(Rule::DuplicateKey)
        );
    }

    #[test]
    fn javascript_anywhere_is_refused() {
        for d in [
            rawdoc! { "find": "c", "filter": { "$where": "this.a == 1" } },
            rawdoc! { "aggregate": "c", "pipeline": [ { "$project": { "x": { "$function": { "body": "f", "args": [], "lang": "js" } } } } ] },
            rawdoc! { "find": "c", "filter": { "a": bson::RawBson::JavaScriptCode("1".into()) } },
        ] {
            assert_eq!(
                check_document(&d).map_err(|r| r.rule),
                Err(Rule::Javascript),
                "{d:?}"
            );
        }
    }
}
