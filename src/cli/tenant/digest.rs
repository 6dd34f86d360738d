//! The checksums an export is judged by.
//!
//! Two kinds. The SHA-256 of each file as written is what `sha256sum -c SHA256SUMS` checks and
//! what catches a truncated or edited file. The *content digest* is a SHA-256 over the
//! documents' BSON bytes in `_id` order; it is what survives a move. It is computed over the
//! source collection at export, over the file at import, and over the target collection after
//! import, and all three must agree.

use sha2::{Digest, Sha256};

/// A running content digest over BSON documents.
#[derive(Debug, Default)]
pub struct ContentDigest {
    hasher: Sha256,
    documents: u64,
    bytes: u64,
}

/// A finished content digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// Documents hashed.
    pub documents: u64,
    /// Their BSON bytes.
    pub bytes: u64,
}

impl ContentDigest {
    /// Adds one document's BSON bytes. BSON documents carry their own length, so consecutive
    /// documents cannot be confused with a different split of the same bytes.
    pub fn add(&mut self, bson: &[u8]) {
        self.hasher.update(bson);
        self.documents += 1;
        self.bytes += bson.len() as u64;
    }

    /// The digest so far.
    pub fn finish(self) -> Summary {
        Summary {
            sha256: hex(&self.hasher.finalize()),
            documents: self.documents,
            bytes: self.bytes,
        }
    }
}

/// A running SHA-256 of a file's bytes.
#[derive(Debug, Default)]
pub struct FileDigest(Sha256);

impl FileDigest {
    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Lower-case hex SHA-256.
    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_digest_depends_on_order_and_bytes() {
        let a = bson::doc! { "_id": 1, "tenantId": "bank1" }
            .to_vec()
            .expect("encodes");
        let b = bson::doc! { "_id": 2, "tenantId": "bank1" }
            .to_vec()
            .expect("encodes");
        let digest = |docs: &[&[u8]]| {
            let mut d = ContentDigest::default();
            for doc in docs {
                d.add(doc);
            }
            d.finish()
        };
        let ab = digest(&[&a, &b]);
        assert_eq!(ab.documents, 2);
        assert_eq!(ab.bytes, (a.len() + b.len()) as u64);
        assert_ne!(ab.sha256, digest(&[&b, &a]).sha256);
        assert_eq!(ab.sha256, digest(&[&a, &b]).sha256);
        // The SHA-256 of nothing, as `sha256sum` prints it.
        assert_eq!(
            digest(&[]).sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
