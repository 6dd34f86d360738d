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
use bytes::Bytes;

use crate::document::RawDoc;

/// An element could not be read: the bytes are not the validated document they should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed BSON element")]
pub struct ElementError;

/// One element: its key, type byte and value bytes.
///
/// The key is kept as bytes: the iterator has checked that they are UTF-8 (an ASCII test for the
/// usual keys), and callers match keys by bytes ([`Element::key_bytes`]), so the `&str` is only
/// made when someone asks for it ([`Element::key`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Element<'a> {
    /// The whole element as encoded: type byte, key, NUL, value. Key and value are sub-slices
    /// of it, so an element is three words and cheap to move through iterator adapters.
    raw: &'a [u8],
    /// The key's length (the bytes between the type byte and the key's NUL).
    key_len: u32,
    ty: u8,
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
    /// The key as text. Elements only come from [`Elements`] and [`get`], which checked the
    /// key is UTF-8; the empty fallback is unreachable.
    pub fn key(&self) -> &'a str {
        std::str::from_utf8(self.key_bytes()).unwrap_or_default()
    }

    /// The key's bytes (no NUL, valid UTF-8): what rules compare against.
    #[inline]
    pub fn key_bytes(&self) -> &'a [u8] {
        self.raw
            .get(1..1 + self.key_len as usize)
            .unwrap_or_default()
    }

    /// The BSON type byte.
    pub fn element_type(&self) -> u8 {
        self.ty
    }

    /// The value's encoded bytes (without type byte and key).
    #[inline]
    pub fn value_bytes(&self) -> &'a [u8] {
        self.raw
            .get(self.key_len as usize + 2..)
            .unwrap_or_default()
    }

    /// The decoded value.
    pub fn value(&self) -> Value<'a> {
        let v = self.value_bytes();
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
    /// Where the next element starts; `usize::MAX` once an element failed to read.
    pos: usize,
}

/// The elements of `doc`.
pub fn elements(doc: &RawDocument) -> Elements<'_> {
    Elements {
        bytes: doc.as_bytes(),
        pos: 4,
    }
}

/// The first element of `doc` named `key`. Keys are compared as bytes; only the match is
/// decoded.
pub fn get<'a>(doc: &'a RawDocument, key: &str) -> Result<Option<Element<'a>>, ElementError> {
    let mut it = elements(doc);
    while let Some(raw) = it.next_raw() {
        let (e, _) = raw?;
        if e.key_bytes() == key.as_bytes() {
            // Equal to a `&str`, so UTF-8.
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// Size of a value of type `ty` at the start of `v`.
#[inline(always)]
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
    /// The next element's key bytes (and whether they are ASCII), type, value bytes and whole
    /// encoding, without decoding the key.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn next_raw(&mut self) -> Option<Result<(Element<'a>, bool), ElementError>> {
        let bytes: &'a [u8] = self.bytes;
        let end = bytes.len().checked_sub(1)?;
        let pos = self.pos;
        if pos >= end {
            return None;
        }
        match step(bytes, pos, end) {
            Some((e, ascii, next)) => {
                self.pos = next;
                Some(Ok((e, ascii)))
            }
            None => {
                self.pos = usize::MAX;
                Some(Err(ElementError))
            }
        }
    }
}

/// One element at `pos` of a document whose terminating NUL is at `end`, whether its key is
/// ASCII, and the position of the next element. `None` when the bytes do not hold an element
/// there.
#[inline(always)]
fn step(bytes: &[u8], pos: usize, end: usize) -> Option<(Element<'_>, bool, usize)> {
    let rest = bytes.get(pos..end)?;
    let (&ty, after_ty) = rest.split_first()?;
    let (key_len, ascii) = key_end(after_ty)?;
    // Type byte, key, NUL: the value starts here (relative to `pos`).
    let value_at = key_len + 2;
    let len = value_len(ty, rest.get(value_at..)?)?;
    let total = value_at.checked_add(len)?;
    Some((
        Element {
            raw: rest.get(..total)?,
            key_len: u32::try_from(key_len).ok()?,
            ty,
        },
        ascii,
        pos + total,
    ))
}

/// Whether `key` holds a NUL byte. Keys are short: eight bytes at a time in a word (the
/// has-zero-byte test of [`key_end`]) beats both a byte loop and memchr's set-up.
#[inline(always)]
fn has_nul(key: &[u8]) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut words = key.chunks_exact(8);
    for chunk in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        if v.wrapping_sub(LO) & !v & HI != 0 {
            return true;
        }
    }
    words.remainder().contains(&0)
}

/// The length of the key at the start of `s` (up to its NUL) and whether it is ASCII. Keys are
/// short, so this tests eight bytes at a time in a word (the classic has-zero-byte trick)
/// rather than paying for memchr's set-up, and learns the ASCII answer from the same words.
#[inline(always)]
fn key_end(s: &[u8]) -> Option<(usize, bool)> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    let mut high = 0u64;
    while let Some(chunk) = s.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        // The lowest flagged byte is the first zero byte (false positives only sit above it).
        let zero = v.wrapping_sub(LO) & !v & HI;
        if zero != 0 {
            let n = (zero.trailing_zeros() / 8) as usize;
            let below = (1u64 << (8 * n)).wrapping_sub(1);
            return Some((at + n, (high | (v & below)) & HI == 0));
        }
        high |= v;
        at += 8;
        if at >= 64 {
            // A long key: let memchr take over.
            let n = at + memchr::memchr(0, s.get(at..)?)?;
            return Some((n, s.get(..n)?.is_ascii()));
        }
    }
    let tail = s.get(at..)?;
    let n = tail.iter().position(|&b| b == 0)?;
    Some((at + n, high & HI == 0 && tail.get(..n)?.is_ascii()))
}

impl<'a> Iterator for Elements<'a> {
    type Item = Result<Element<'a>, ElementError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.next_raw()? {
            // Keys are almost always ASCII; anything else must still be UTF-8.
            Ok((e, ascii)) if ascii || std::str::from_utf8(e.key_bytes()).is_ok() => Ok(e),
            Ok(_) => {
                self.pos = usize::MAX;
                Err(ElementError)
            }
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
        if has_nul(key.as_bytes()) {
            return Err(ElementError);
        }
        self.head_bytes(key.as_bytes(), ty);
        Ok(())
    }

    /// The type byte and key of an element whose key is known to hold no NUL.
    fn head_bytes(&mut self, key: &[u8], ty: u8) {
        self.buf.reserve(key.len() + 2);
        self.buf.push(ty);
        self.buf.extend_from_slice(key);
        self.buf.push(0);
    }

    /// Appends an element read from another document, bytes verbatim, under `key`.
    pub fn element(&mut self, key: &str, e: &Element<'_>) -> Result<(), ElementError> {
        self.head(key, e.ty)?;
        self.buf.extend_from_slice(e.value_bytes());
        Ok(())
    }

    /// Appends an element read from another document under its own key. The key came out of a
    /// C string, so it holds no NUL and needs no check.
    pub fn copy(&mut self, e: &Element<'_>) {
        self.buf.extend_from_slice(e.raw);
    }

    /// Appends a string.
    pub fn str(&mut self, key: &str, s: &str) -> Result<(), ElementError> {
        self.head(key, 0x02)?;
        self.string_value(s);
        Ok(())
    }

    fn string_value(&mut self, s: &str) {
        self.buf.reserve(s.len() + 5);
        self.buf
            .extend_from_slice(&((s.len() + 1) as i32).to_le_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
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

    /// Opens an embedded document (or, with `array`, an array) under `key`: what is appended
    /// next goes inside it, until [`DocBuilder::close`]. Nested documents are written in place
    /// this way instead of being built in a buffer of their own and copied.
    pub fn open(&mut self, key: &str, array: bool) -> Result<Opened, ElementError> {
        self.head(key, if array { 0x04 } else { 0x03 })?;
        Ok(self.open_here())
    }

    /// Opens an embedded document (or array) as the next array element.
    pub fn push_open(&mut self, array: bool) -> Result<Opened, ElementError> {
        let key = self.index_key();
        self.head_bytes(key.as_bytes(), if array { 0x04 } else { 0x03 });
        Ok(self.open_here())
    }

    fn open_here(&mut self) -> Opened {
        let opened = Opened {
            at: self.buf.len(),
            outer_index: self.next_index,
        };
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.next_index = 0;
        opened
    }

    /// Closes what [`DocBuilder::open`] opened: terminator and length prefix.
    pub fn close(&mut self, opened: Opened) {
        self.buf.push(0);
        let len = (self.buf.len() - opened.at) as i32;
        if let Some(prefix) = self.buf.get_mut(opened.at..opened.at + 4) {
            prefix.copy_from_slice(&len.to_le_bytes());
        }
        self.next_index = opened.outer_index;
    }

    /// Appends the elements of `doc` (not the document itself) to what is being built.
    pub fn extend_elements(&mut self, doc: &RawDocument) {
        let bytes = doc.as_bytes();
        if let Some(inner) = bytes.get(4..bytes.len().saturating_sub(1)) {
            self.buf.extend_from_slice(inner);
        }
    }

    /// Bytes appended so far (the length prefix is not yet set).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Drops what was appended after [`DocBuilder::len`] returned `len`, to undo elements
    /// written at the current level of a document (not of an array: array keys are not
    /// renumbered). Nothing happens if `len` is past the end.
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len.max(4));
    }

    /// Appends an array element (key "0", "1", … in order) read from elsewhere.
    pub fn push_element(&mut self, e: &Element<'_>) -> Result<(), ElementError> {
        let key = self.index_key();
        self.head_bytes(key.as_bytes(), e.ty);
        self.buf.extend_from_slice(e.value_bytes());
        Ok(())
    }

    /// Appends a document as the next array element.
    pub fn push_doc(&mut self, d: &RawDocument) -> Result<(), ElementError> {
        let key = self.index_key();
        self.head_bytes(key.as_bytes(), 0x03);
        self.buf.extend_from_slice(d.as_bytes());
        Ok(())
    }

    /// Appends an array (given as its document) as the next array element.
    pub fn push_array(&mut self, d: &RawDocument) -> Result<(), ElementError> {
        let key = self.index_key();
        self.head_bytes(key.as_bytes(), 0x04);
        self.buf.extend_from_slice(d.as_bytes());
        Ok(())
    }

    /// Appends a string as the next array element.
    pub fn push_str(&mut self, s: &str) -> Result<(), ElementError> {
        let key = self.index_key();
        self.head_bytes(key.as_bytes(), 0x02);
        self.string_value(s);
        Ok(())
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

    /// The finished document, for the wire, without a second copy or validation pass.
    pub fn into_raw_doc(self) -> Result<RawDoc, ElementError> {
        RawDoc::from_built_bytes(Bytes::from(self.into_bytes())).map_err(|_| ElementError)
    }

    /// The finished document.
    pub fn finish(self) -> bson::RawDocumentBuf {
        let bytes = self.into_bytes();
        // Header and terminator are set just above; from_bytes checks only those.
        bson::RawDocumentBuf::from_bytes(bytes).unwrap_or_default()
    }
}

/// A document or array opened in a [`DocBuilder`], to be closed by [`DocBuilder::close`].
#[derive(Debug)]
#[must_use = "an opened document must be closed"]
pub struct Opened {
    at: usize,
    outer_index: usize,
}

/// Documents built one after another in one buffer and handed out as [`RawDoc`]s sharing it:
/// one allocation for a rewritten document sequence instead of one (or three) per document.
/// Documents that need no change are kept as they arrived.
#[derive(Debug)]
pub struct DocBatch {
    out: DocBuilder,
    docs: Vec<Batched>,
}

#[derive(Debug)]
enum Batched {
    Kept(RawDoc),
    Built { at: usize, end: usize },
}

impl DocBatch {
    /// Room for `docs` documents of `bytes` bytes in all.
    pub fn with_capacity(docs: usize, bytes: usize) -> Self {
        DocBatch {
            out: DocBuilder::with_capacity(bytes + 8 * docs),
            docs: Vec::with_capacity(docs),
        }
    }

    /// Adds a document unchanged.
    pub fn keep(&mut self, doc: RawDoc) {
        self.docs.push(Batched::Kept(doc));
    }

    /// Starts the next document: append its elements to [`DocBatch::builder`], then
    /// [`DocBatch::close`].
    pub fn open(&mut self) -> Result<Opened, ElementError> {
        self.out.push_open(false)
    }

    /// Where the open document's elements go.
    pub fn builder(&mut self) -> &mut DocBuilder {
        &mut self.out
    }

    /// Ends the document [`DocBatch::open`] started.
    pub fn close(&mut self, opened: Opened) {
        let at = opened.at;
        self.out.close(opened);
        self.docs.push(Batched::Built {
            at,
            end: self.out.buf.len(),
        });
    }

    /// The documents, in the order they were added.
    pub fn finish(self) -> Result<Vec<RawDoc>, ElementError> {
        let bytes = Bytes::from(self.out.into_bytes());
        self.docs
            .into_iter()
            .map(|d| match d {
                Batched::Kept(doc) => Ok(doc),
                Batched::Built { at, end } => {
                    if at > end || end > bytes.len() {
                        return Err(ElementError);
                    }
                    RawDoc::from_built_bytes(bytes.slice(at..end)).map_err(|_| ElementError)
                }
            })
            .collect()
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

    fn as_bytes(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(b"0")
    }

    #[cfg(test)]
    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn a_nul_anywhere_in_a_key_is_found() {
        for len in 0..40 {
            let clean = vec![b'k'; len];
            assert!(!has_nul(&clean), "{len} bytes without NUL");
            for at in 0..len {
                let mut key = clean.clone();
                key[at] = 0;
                assert!(has_nul(&key), "NUL at {at} of {len}");
            }
        }
        // Bytes whose high bit is set are not NUL (the word test's false-positive case).
        assert!(!has_nul(&[
            0x80, 0x81, 0xFF, 0x01, 0x80, 0x80, 0x80, 0x80, 0xC3
        ]));
        let mut b = DocBuilder::default();
        assert_eq!(b.str("a\0b", "v"), Err(ElementError));
        assert_eq!(b.open("0123456789\0", false).err(), Some(ElementError));
    }

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
    fn nested_documents_are_written_in_place() {
        let user = rawdoc! { "_id": 1 };
        let mut b = DocBuilder::default();
        b.str("find", "c").expect("key");
        let filter = b.open("filter", false).expect("key");
        b.str("tenantId", "bank1").expect("key");
        let and = b.open("$and", true).expect("key");
        b.push_doc(&user).expect("key");
        let inner = b.push_open(false).expect("key");
        b.extend_elements(&rawdoc! { "a": 1, "b": "x" });
        b.close(inner);
        b.close(and);
        b.close(filter);
        b.push_str("after").expect("key");
        let expected = rawdoc! {
            "find": "c",
            "filter": { "tenantId": "bank1", "$and": [ { "_id": 1 }, { "a": 1, "b": "x" } ] },
            "0": "after",
        };
        assert_eq!(b.finish(), expected);
    }

    #[test]
    fn a_batch_hands_out_built_and_kept_documents_in_order() {
        let kept = RawDoc::from_buf(rawdoc! { "k": 1 }).expect("valid");
        let mut batch = DocBatch::with_capacity(3, 64);
        let o = batch.open().expect("open");
        batch.builder().str("a", "x").expect("key");
        batch.close(o);
        batch.keep(kept.clone());
        let o = batch.open().expect("open");
        batch.close(o);
        let docs = batch.finish().expect("built");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].as_raw(), rawdoc! { "a": "x" }.as_ref());
        assert_eq!(docs[1], kept);
        assert_eq!(docs[2].as_raw(), rawdoc! {}.as_ref());
    }

    #[test]
    fn keys_of_every_length_are_found() {
        for n in [0, 1, 7, 8, 9, 15, 16, 63, 64, 65, 200] {
            let key = "k".repeat(n);
            let mut d = bson::RawDocumentBuf::new();
            d.append(
                <&bson::raw::CStr>::try_from(key.as_str()).expect("no NUL"),
                n as i32,
            );
            d.append(bson::raw::cstr!("z"), "é");
            let got: Vec<(String, Value<'_>)> = elements(&d)
                .map(|e| e.map(|e| (e.key().to_owned(), e.value())))
                .collect::<Result<_, _>>()
                .expect("valid");
            assert_eq!(
                got,
                vec![
                    (key.clone(), Value::Int32(n as i32)),
                    ("z".into(), Value::String("é"))
                ]
            );
        }
        let mut bad = rawdoc! { "ab": 1 }.into_bytes();
        bad[5] = 0xff; // the key is no longer UTF-8
        let raw = RawDocument::from_bytes(&bad).expect("header intact");
        assert_eq!(elements(raw).collect::<Vec<_>>(), vec![Err(ElementError)]);
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
