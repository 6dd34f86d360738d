//! Reshaping upstream replies to rewritten commands, so a driver sees what it asked for.

use bson::{RawBsonRef, RawDocument, RawDocumentBuf};

use crate::decision::ReplyShape;

/// Adjusts a reply body according to `shape`. Returns `None` when the reply passes as it is
/// (or cannot be read, in which case the proxy forwards it untouched: it is the server's).
pub fn reshape(shape: ReplyShape, reply: &RawDocument) -> Option<RawDocumentBuf> {
    match shape {
        ReplyShape::AsIs => None,
        ReplyShape::DeleteFromUpdate => without(reply, &["nModified", "upserted"]),
        ReplyShape::RemoveFromFindAndModify => {
            let mut out = RawDocumentBuf::new();
            for (k, v) in reply.iter().flatten() {
                match (k.as_str(), v) {
                    ("lastErrorObject", RawBsonRef::Document(leo)) => {
                        out.append(k, without(leo, &["updatedExisting", "upserted"])?);
                    }
                    _ => out.append(k, v),
                }
            }
            Some(out)
        }
    }
}

fn without(doc: &RawDocument, drop: &[&str]) -> Option<RawDocumentBuf> {
    let mut out = RawDocumentBuf::new();
    for element in doc.iter() {
        let (k, v) = element.ok()?;
        if !drop.contains(&k.as_str()) {
            out.append(k, v);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn delete_replies_keep_n_only() {
        let reply = rawdoc! { "n": 2, "nModified": 2, "ok": 1.0 };
        assert_eq!(
            reshape(ReplyShape::DeleteFromUpdate, &reply),
            Some(rawdoc! { "n": 2, "ok": 1.0 })
        );
        let fam = rawdoc! { "lastErrorObject": { "n": 1, "updatedExisting": true }, "value": { "_id": 1 }, "ok": 1.0 };
        assert_eq!(
            reshape(ReplyShape::RemoveFromFindAndModify, &fam),
            Some(rawdoc! { "lastErrorObject": { "n": 1 }, "value": { "_id": 1 }, "ok": 1.0 })
        );
        assert_eq!(reshape(ReplyShape::AsIs, &reply), None);
    }
}
