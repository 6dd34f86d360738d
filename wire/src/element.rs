//! Fast reading and building of BSON elements in documents that are already validated.
//!
//! The `bson` crate's raw iterator re-checks every key and string as it goes, which is right for
//! bytes of unknown origin but doubles the cost for a proxy that validated the whole message on
//! arrival ([`crate::RawDoc`]). The policy engine walks each command several times (hygiene,
//! options, the rewrite itself), so it reads through these instead: element boundaries come from
//! the length fields, values are decoded on demand, and building copies element bytes verbatim.
//! Reads stay bounds-checked — an inconsistency (impossible for validated input) ends in
//! [`ElementError`], never a panic.

use bson::RawDocument;

/// An element could not be read: the bytes are not the validated document they should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed BSON element")]
pub struct ElementError;

/// One element: its key, type byte and value bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Element<'a> {
    key: &'a str,
    ty: u8,
    value: &'a [u8],
}

/// A decoded view of an element's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// 0x01.
    Double(f64),
    /// 0x02.
    String(&'a str),
    /// 0x03.
    Document(&'a RawDocument),
    /// 0x04, read as the document it is on the wire (keys "0", "1", …).
    Array(&'a RawDocument),
    /// 0x08.
    Bool(bool),
    /// 0x0A.
    Null,
    /// 0x10.
    Int32(i32),
    /// 0x12.
    Int64(i64),
    /// Any other type: the type byte.
    Other(u8),
}

fn le_i32(b: &[u8]) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

impl<'a> Element<'a> {
    /// The key.
    pub fn key(&self) -> &'a str {
        self.key
    }

    /// The BSON type byte.
    pub fn element_type(&self) -> u8 {
        self.ty
    }

    /// The value's encoded bytes (without type byte and key).
    pub fn value_bytes(&self) -> &'a [u8] {
        self.value
    }

    /// The decoded value.
    pub fn value(&self) -> Value<'a> {
        let v = self.value;
        let doc = || RawDocument::from_bytes(v).ok();
        match self.ty {
            0x01 => v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(Value::Other(0x01), |b| Value::Double(f64::from_le_bytes(b))),
            0x02 => match v
                .get(4..v.len().saturating_sub(1))
                .and_then(|s| std::str::from_utf8(s).ok())
            {
                Some(s) => Value::String(s),
                None => Value::Other(0x02),
            },
            0x03 => doc().map_or(Value::Other(0x03), Value::Document),
            0x04 => doc().map_or(Value::Other(0x04), Value::Array),
            0x08 => Value::Bool(v.first() == Some(&1)),
            0x0A => Value::Null,
            0x10 => le_i32(v).map_or(Value::Other(0x10), Value::Int32),
            0x12 => v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map_or(Value::Other(0x12), |b| Value::Int64(i64::from_le_bytes(b))),
            other => Value::Other(other),
        }
    }

    /// The value if it is a string.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.value() {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value if it is an embedded document.
    pub fn as_document(&self) -> Option<&'a RawDocument> {
        match self.value() {
            Value::Document(d) => Some(d),
            _ => None,
        }
    }

    /// The value if it is an array (as a document).
    pub fn as_array(&self) -> Option<&'a RawDocument> {
        match self.value() {
            Value::Array(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the value is JavaScript code (with or without scope).
    pub fn is_code(&self) -> bool {
        matches!(self.ty, 0x0D | 0x0F)
    }
}

/// Iterates the elements of a validated document.
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    bytes: &'a [u8],
    pos: usize,
    failed: bool,
}

/// The elements of `doc`.
pub fn elements(doc: &RawDocument) -> Elements<'_> {
    Elements {
        bytes: doc.as_bytes(),
        pos: 4,
        failed: false,
    }
}

/// The first element of `doc` named `key`. Keys are compared as bytes; only the match is
/// decoded.
pub fn get<'a>(doc: &'a RawDocument, key: &str) -> Result<Option<Element<'a>>, ElementError> {
    let mut it = elements(doc);
    while let Some(raw) = it.next_raw() {
        let (key_bytes, ty, value) = raw?;
        if key_bytes == key.as_bytes() {
            let key = std::str::from_utf8(key_bytes).map_err(|_| ElementError)?;
            return Ok(Some(Element { key, ty, value }));
        }
    }
    Ok(None)
}

/// Size of a value of type `ty` at the start of `v`.
fn value_len(ty: u8, v: &[u8]) -> Option<usize> {
    let prefixed = |extra: usize| {
        le_i32(v)
            .and_then(|n| usize::try_from(n).ok())
            .map(|n| n + extra)
    };
    match ty {
        0x01 | 0x09 | 0x11 | 0x12 => Some(8),
        0x02 | 0x0D | 0x0E => prefixed(4),
        0x03 | 0x04 | 0x0F => prefixed(0),
        0x05 => prefixed(5),
        0x06 | 0x0A | 0x7F | 0xFF => Some(0),
        0x07 => Some(12),
        0x08 => Some(1),
        0x0B => {
            let a = memchr::memchr(0, v)? + 1;
            Some(a + memchr::memchr(0, v.get(a..)?)? + 1)
        }
        0x0C => prefixed(4 + 12),
        0x10 => Some(4),
        0x13 => Some(16),
        _ => None,
    }
}

impl<'a> Elements<'a> {
    /// The next element's key bytes, type and value bytes, without decoding the key.
    #[allow(clippy::type_complexity)]
    fn next_raw(&mut self) -> Option<Result<(&'a [u8], u8, &'a [u8]), ElementError>> {
        let end = self.bytes.len().checked_sub(1)?;
        if self.failed || self.pos >= end {
            return None;
        }
        let bytes: &'a [u8] = self.bytes;
        let pos = self.pos;
        let step = || -> Option<(&'a [u8], u8, &'a [u8], usize)> {
            let ty = *bytes.get(pos)?;
            let rest = bytes.get(pos + 1..end)?;
            // Keys are short: a plain scan beats memchr's set-up for the first 32 bytes.
            let key_len = match rest.iter().take(32).position(|&b| b == 0) {
                Some(n) => n,
                None => memchr::memchr(0, rest)?,
            };
            let value_at = pos + 1 + key_len + 1;
            let len = value_len(ty, bytes.get(value_at..end)?)?;
            let value_end = value_at.checked_add(len)?;
            if value_end > end {
                return None;
            }
            Some((
                &rest[..key_len],
                ty,
                bytes.get(value_at..value_end)?,
                value_end,
            ))
        };
        match step() {
            Some((key, ty, value, next)) => {
                self.pos = next;
                Some(Ok((key, ty, value)))
            }
            None => {
                self.failed = true;
                Some(Err(ElementError))
            }
        }
    }
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Element<'a>, ElementError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_raw()? {
            Ok((key, ty, value)) => match std::str::from_utf8(key) {
                Ok(key) => Ok(Element { key, ty, value }),
                Err(_) => {
                    self.failed = true;
                    Err(ElementError)
                }
            },
            Err(e) => Err(e),
        })
    }
}

/// Builds a document (or an array) by appending elements. Keys must not contain NUL: the
/// appenders refuse such keys with [`ElementError`].
#[derive(Debug, Clone)]
pub struct DocBuilder {
    buf: Vec<u8>,
    next_index: usize,
}

impl Default for DocBuilder {
    fn default() -> Self {
        Self::with_capacity(64)
    }
}

impl DocBuilder {
    /// An empty document with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity.max(5));
        buf.extend_from_slice(&[0, 0, 0, 0]);
        DocBuilder { buf, next_index: 0 }
    }

    /// A builder that starts with every element of `doc` (one copy of its bytes), so more can
    /// be appended after them.
    pub fn extending(doc: &RawDocument, extra: usize) -> Self {
        let bytes = doc.as_bytes();
        let mut buf = Vec::with_capacity(bytes.len() + extra);
        buf.extend_from_slice(&bytes[..bytes.len().saturating_sub(1).max(4)]);
        DocBuilder { buf, next_index: 0 }
    }

    fn head(&mut self, key: &str, ty: u8) -> Result<(), ElementError> {
        if key.as_bytes().contains(&0) {
            return Err(ElementError);
        }
        self.buf.push(ty);
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    /// Appends an element read from another document, bytes verbatim, under `key`.
    pub fn element(&mut self, key: &str, e: &Element<'_>) -> Result<(), ElementError> {
        self.head(key, e.ty)?;
        self.buf.extend_from_slice(e.value);
        Ok(())
    }

    /// Appends an element read from another document under its own key. The key came out of a
    /// C string, so it holds no NUL and needs no check.
    pub fn copy(&mut self, e: &Element<'_>) {
        self.buf.push(e.ty);
        self.buf.extend_from_slice(e.key.as_bytes());
        self.buf.push(0);
        self.buf.extend_from_slice(e.value);
    }

    /// Appends a string.
    pub fn str(&mut self, key: &str, s: &str) -> Result<(), ElementError> {
        self.head(key, 0x02)?;
        self.buf
            .extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    /// Appends an embedded document.
    pub fn doc(&mut self, key: &str, d: &RawDocument) -> Result<(), ElementError> {
        self.head(key, 0x03)?;
        self.buf.extend_from_slice(d.as_bytes());
        Ok(())
    }

    /// Appends an array given as its document bytes (from [`Value::Array`] or [`DocBuilder`]).
    pub fn array(&mut self, key: &str, d: &RawDocument) -> Result<(), ElementError> {
        self.head(key, 0x04)?;
        self.buf.extend_from_slice(d.as_bytes());
        Ok(())
    }

    /// Appends null.
    pub fn null(&mut self, key: &str) -> Result<(), ElementError> {
        self.head(key, 0x0A)
    }

    /// Appends a boolean.
    pub fn bool(&mut self, key: &str, b: bool) -> Result<(), ElementError> {
        self.head(key, 0x08)?;
        self.buf.push(u8::from(b));
        Ok(())
    }

    /// Appends a UTC datetime (milliseconds since the epoch).
    pub fn datetime(&mut self, key: &str, millis: i64) -> Result<(), ElementError> {
        self.head(key, 0x09)?;
        self.buf.extend_from_slice(&millis.to_le_bytes());
        Ok(())
    }

    /// Appends an array element (key "0", "1", … in order) read from elsewhere.
    pub fn push_element(&mut self, e: &Element<'_>) -> Result<(), ElementError> {
        let key = self.index_key();
        self.element(key.as_str(), e)
    }

    /// Appends a document as the next array element.
    pub fn push_doc(&mut self, d: &RawDocument) -> Result<(), ElementError> {
        let key = self.index_key();
        self.doc(key.as_str(), d)
    }

    /// Appends an array (given as its document) as the next array element.
    pub fn push_array(&mut self, d: &RawDocument) -> Result<(), ElementError> {
        let key = self.index_key();
        self.array(key.as_str(), d)
    }

    /// Appends a string as the next array element.
    pub fn push_str(&mut self, s: &str) -> Result<(), ElementError> {
        let key = self.index_key();
        self.str(key.as_str(), s)
    }

    fn index_key(&mut self) -> IndexKey {
        let k = IndexKey::new(self.next_index);
        self.next_index += 1;
        k
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 4
    }

    /// The finished document's bytes.
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.push(0);
        let len = self.buf.len() as i32;
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf
    }

    /// The finished document.
    pub fn finish(self) -> bson::RawDocumentBuf {
        let bytes = self.into_bytes();
        // Header and terminator are set just above; from_bytes checks only those.
        bson::RawDocumentBuf::from_bytes(bytes).unwrap_or_default()
    }
}

/// An array index as a key, formatted without allocating.
struct IndexKey {
    buf: [u8; 20],
    start: usize,
}

impl IndexKey {
    fn new(mut n: usize) -> Self {
        let mut buf = [0u8; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            buf[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        IndexKey { buf, start }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn index_keys_count_up() {
        let keys: Vec<String> = [0, 7, 10, 123, usize::MAX]
            .iter()
            .map(|&n| IndexKey::new(n).as_str().to_owned())
            .collect();
        assert_eq!(keys, ["0", "7", "10", "123", &usize::MAX.to_string()]);
        let d = rawdoc! { "a": 1 };
        let mut b = DocBuilder::extending(&d, 16);
        b.str("t", "x").expect("key");
        assert_eq!(b.finish(), rawdoc! { "a": 1, "t": "x" });
    }

    #[test]
    fn reads_every_type_like_the_bson_crate() {
        let d = rawdoc! {
            "d": 1.5, "s": "x", "o": { "a": 1 }, "a": [1, "b"], "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1] },
            "oid": bson::oid::ObjectId::from_bytes([1; 12]), "b": true, "t": bson::DateTime::from_millis(3), "n": bson::RawBson::Null,
            "re": bson::RawBson::RegularExpression(bson::Regex { pattern: "a".try_into().expect("cstr"), options: "".try_into().expect("cstr") }),
            "i": 7, "ts": bson::Timestamp { time: 1, increment: 2 }, "l": 8_i64, "dec": bson::Decimal128::from_bytes([0; 16]),
            "min": bson::RawBson::MinKey, "max": bson::RawBson::MaxKey,
        };
        let keys: Vec<&str> = elements(&d).map(|e| e.expect("valid").key()).collect();
        let expected: Vec<String> = d
            .iter()
            .map(|e| e.expect("valid").0.as_str().to_owned())
            .collect();
        assert_eq!(keys, expected);
        assert_eq!(
            get(&d, "s").expect("ok").and_then(|e| e.as_str()),
            Some("x")
        );
        assert_eq!(
            get(&d, "i").expect("ok").map(|e| e.value()),
            Some(Value::Int32(7))
        );
        assert_eq!(
            get(&d, "l").expect("ok").map(|e| e.value()),
            Some(Value::Int64(8))
        );
        assert_eq!(
            get(&d, "b").expect("ok").map(|e| e.value()),
            Some(Value::Bool(true))
        );
        assert_eq!(
            get(&d, "n").expect("ok").map(|e| e.value()),
            Some(Value::Null)
        );
        let arr = get(&d, "a")
            .expect("ok")
            .and_then(|e| e.as_array())
            .expect("array");
        assert_eq!(elements(arr).count(), 2);
        assert_eq!(get(&d, "zz").expect("ok"), None);
    }

    #[test]
    fn builds_what_the_bson_crate_builds() {
        let src = rawdoc! { "x": { "y": [1, 2] }, "z": 5_i64 };
        let mut b = DocBuilder::default();
        b.str("find", "c").expect("key");
        for e in elements(&src) {
            let e = e.expect("valid");
            b.element(e.key(), &e).expect("key");
        }
        b.null("deletedAt").expect("key");
        b.bool("t", true).expect("key");
        b.datetime("at", 9).expect("key");
        let mut arr = DocBuilder::default();
        arr.push_str("a").expect("key");
        arr.push_doc(&src).expect("key");
        let arr = arr.finish();
        b.array("arr", &arr).expect("key");
        let built = b.finish();
        let expected = rawdoc! {
            "find": "c", "x": { "y": [1, 2] }, "z": 5_i64, "deletedAt": bson::RawBson::Null, "t": true,
            "at": bson::DateTime::from_millis(9), "arr": ["a", { "x": { "y": [1, 2] }, "z": 5_i64 }],
        };
        assert_eq!(built, expected);
        assert!(DocBuilder::default().str("a\0b", "x").is_err());
    }

    #[test]
    fn damaged_bytes_end_in_an_error_not_a_panic() {
        let d = rawdoc! { "a": "hello", "b": 1 };
        let mut bytes = d.as_bytes().to_vec();
        bytes[7] = 0x7f; // string length far past the end
        let raw = RawDocument::from_bytes(&bytes).expect("header intact");
        let out: Vec<_> = elements(raw).collect();
        assert_eq!(out, vec![Err(ElementError)]);
    }
}
