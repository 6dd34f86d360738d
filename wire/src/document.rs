//! Validated, zero-copy BSON documents.
//!
//! A [`RawDoc`] is a slice of the frame it arrived in, checked once, completely, when it is
//! created: every length, every element type, UTF-8 in every key and string, and the nesting
//! depth. Code downstream (the policy engine, logs, the upstream) can then read it as a
//! [`bson::RawDocument`] without meeting a malformed element halfway through, and two readers can
//! never disagree about where an element ends — a parser differential is how filters get escaped.

use std::fmt;

use bson::{RawDocument, RawDocumentBuf};
use bytes::Bytes;

/// What is wrong with a document that failed validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BsonFault {
    /// Fewer than the five bytes of an empty document.
    TooShort,
    /// The length prefix disagrees with the bytes the document occupies.
    LengthMismatch,
    /// The final byte is not the terminating NUL.
    MissingTerminator,
    /// An element runs past the end of its document.
    Truncated,
    /// A key or string is not valid UTF-8.
    InvalidUtf8,
    /// A string's length is below one or it lacks its terminating NUL.
    InvalidString,
    /// An element type byte BSON does not define.
    UnknownElementType(u8),
    /// A boolean byte other than 0 or 1.
    InvalidBoolean(u8),
    /// A binary value with a negative or inconsistent length.
    InvalidBinary,
    /// A code-with-scope value whose lengths disagree.
    InvalidCodeWithScope,
    /// Documents and arrays nest deeper than the limit.
    TooDeep,
}

impl fmt::Display for BsonFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BsonFault::TooShort => f.write_str("document shorter than 5 bytes"),
            BsonFault::LengthMismatch => f.write_str("length prefix does not match the document"),
            BsonFault::MissingTerminator => f.write_str("missing terminating NUL"),
            BsonFault::Truncated => f.write_str("element runs past the end of the document"),
            BsonFault::InvalidUtf8 => f.write_str("key or string is not valid UTF-8"),
            BsonFault::InvalidString => f.write_str("malformed string length or terminator"),
            BsonFault::UnknownElementType(t) => write!(f, "unknown element type {t:#04x}"),
            BsonFault::InvalidBoolean(b) => write!(f, "boolean byte {b:#04x} is neither 0 nor 1"),
            BsonFault::InvalidBinary => f.write_str("malformed binary length"),
            BsonFault::InvalidCodeWithScope => f.write_str("malformed code-with-scope"),
            BsonFault::TooDeep => f.write_str("documents nest too deeply"),
        }
    }
}

/// A fault with the offset (inside the outermost document) where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub(crate) offset: usize,
    pub(crate) fault: BsonFault,
}

/// What validation learned about a document, at every depth, for the policy engine: hazards
/// that must refuse a command, found during the one walk the codec makes anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DocFacts {
    /// Some (non-array) document repeats a key: two parsers could read different values.
    pub duplicate_keys: bool,
    /// JavaScript appears: a code value, or a `$where` / `$function` / `$accumulator` key.
    pub javascript: bool,
    /// How many levels of documents and arrays nest below this one (0: none). The policy engine
    /// reads it to tell whether a rewrite that adds levels could pass [`crate::MAX_BSON_DEPTH`].
    pub depth: u32,
}

impl DocFacts {
    /// Folds in the facts of a document nested directly inside this one.
    fn merge_child(&mut self, child: DocFacts) {
        self.duplicate_keys |= child.duplicate_keys;
        self.javascript |= child.javascript;
        self.depth = self.depth.max(child.depth + 1);
    }
}

/// A complete, validated BSON document held in shared [`Bytes`].
///
/// Cloning is a reference-count increment. Equality compares bytes, which is what round-trip
/// guarantees are about.
#[derive(Clone)]
pub struct RawDoc {
    bytes: Bytes,
    /// Known for documents that were validated; `None` for ones built by this process.
    facts: Option<DocFacts>,
}

impl PartialEq for RawDoc {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for RawDoc {}

impl std::hash::Hash for RawDoc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl RawDoc {
    /// Validates `bytes` as exactly one BSON document nested at most `max_depth` deep.
    pub fn from_bytes(bytes: Bytes, max_depth: u32) -> Result<Self, (usize, BsonFault)> {
        let facts = validate(&bytes, max_depth).map_err(|e| (e.offset, e.fault))?;
        Ok(RawDoc {
            bytes,
            facts: Some(facts),
        })
    }

    /// What validation found (duplicate keys, JavaScript); `None` for built documents.
    pub fn facts(&self) -> Option<DocFacts> {
        self.facts
    }

    /// Copies and validates a document built with the `bson` crate. Documents built through its
    /// API are valid; ones wrapped from arbitrary bytes may not be, hence the check.
    pub fn from_raw(doc: &RawDocument) -> Result<Self, (usize, BsonFault)> {
        Self::from_bytes(
            Bytes::copy_from_slice(doc.as_bytes()),
            crate::MAX_BSON_DEPTH,
        )
    }

    /// Takes ownership of a document built with the `bson` crate, validating it.
    pub fn from_buf(doc: RawDocumentBuf) -> Result<Self, (usize, BsonFault)> {
        Self::from_bytes(Bytes::from(doc.into_bytes()), crate::MAX_BSON_DEPTH)
    }

    /// Wraps a document that is well-formed by construction: built through the `bson` crate's
    /// append API, or derived from a validated `RawDoc` by appending well-formed elements. Skips
    /// the validation pass (the policy engine's per-document rewrites would otherwise pay for
    /// every document twice); debug builds still validate, and the length prefix and trailing
    /// NUL that [`RawDoc::as_raw`] relies on are always checked.
    pub fn from_built(doc: RawDocumentBuf) -> Result<Self, (usize, BsonFault)> {
        Self::from_built_bytes(Bytes::from(doc.into_bytes()))
    }

    /// [`RawDoc::from_built`] for a document's bytes, e.g. a slice of a buffer that holds many
    /// built documents ([`crate::element::DocBatch`]).
    pub fn from_built_bytes(bytes: Bytes) -> Result<Self, (usize, BsonFault)> {
        debug_assert!(
            validate(&bytes, u32::MAX).is_ok(),
            "from_built given an invalid document"
        );
        Self::from_framed_bytes(bytes)
    }

    /// Wraps a document after checking only its frame: at least five bytes, a length prefix
    /// equal to the slice's length, a trailing NUL — what [`RawDoc::as_raw`] relies on. The
    /// elements are not walked (see [`crate::Limits::validate_documents`]); readers must treat
    /// them as possibly malformed, as [`crate::element`]'s bounds-checked reads do.
    pub fn from_framed_bytes(bytes: Bytes) -> Result<Self, (usize, BsonFault)> {
        if bytes.len() < 5 || bytes[bytes.len() - 1] != 0 {
            return Err((0, BsonFault::MissingTerminator));
        }
        if usize::try_from(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])).ok()
            != Some(bytes.len())
        {
            return Err((0, BsonFault::LengthMismatch));
        }
        Ok(RawDoc { bytes, facts: None })
    }

    /// The document as a borrowed raw BSON view.
    pub fn as_raw(&self) -> &RawDocument {
        // `validate` checked exactly what `from_bytes` checks (length prefix equals the slice
        // length, at least five bytes, trailing NUL), and the bytes are immutable since.
        #[allow(clippy::expect_used)]
        RawDocument::from_bytes(&self.bytes).expect("RawDoc holds a validated document")
    }

    /// The encoded document.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The shared buffer behind the document.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for the five-byte empty document `{}`.
    pub fn is_empty(&self) -> bool {
        self.bytes.len() == 5
    }

    /// The first key: for a command body, the command name.
    pub fn first_key(&self) -> Option<&str> {
        // The codec's own element reader: no second UTF-8 walk of the value, as the `bson`
        // crate's iterator does.
        match crate::element::elements(self.as_raw()).next() {
            Some(Ok(e)) => Some(e.key()),
            _ => None,
        }
    }

    /// A string field of the top level, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match crate::element::get(self.as_raw(), key) {
            Ok(Some(e)) => e.as_str(),
            _ => None,
        }
    }

    /// Decodes into an owned, mutable [`bson::Document`] (allocates; use for rewrites only).
    pub fn to_document(&self) -> Result<bson::Document, bson::error::Error> {
        bson::Document::try_from(self.as_raw())
    }
}

/// Documents built with the `bson` crate always have a correct length prefix and terminator
/// (its constructors check them), which is all [`RawDoc::as_raw`] relies on; they carry no
/// [`DocFacts`].
impl From<RawDocumentBuf> for RawDoc {
    fn from(doc: RawDocumentBuf) -> Self {
        RawDoc {
            bytes: Bytes::from(doc.into_bytes()),
            facts: None,
        }
    }
}

impl AsRef<RawDocument> for RawDoc {
    fn as_ref(&self) -> &RawDocument {
        self.as_raw()
    }
}

impl TryFrom<&bson::Document> for RawDoc {
    type Error = (usize, BsonFault);

    fn try_from(doc: &bson::Document) -> Result<Self, Self::Error> {
        let buf = RawDocumentBuf::try_from(doc).map_err(|_| (0, BsonFault::InvalidUtf8))?;
        Self::from_buf(buf)
    }
}

impl fmt::Debug for RawDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_raw(), f)
    }
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks one whole document: `bytes` must be exactly the document. Returns what the walk
/// learned about it ([`DocFacts`]).
pub(crate) fn validate(bytes: &[u8], max_depth: u32) -> Result<DocFacts, Invalid> {
    validate_at(bytes, 0, 0, max_depth, false)
}

fn fail(offset: usize, fault: BsonFault) -> Invalid {
    Invalid { offset, fault }
}

/// Validates the document `doc` (exactly its bytes), found at `base` in the outermost document.
/// Keys compared for duplicates without allocating; documents with more keys use a set.
const INLINE_KEYS: usize = 32;
/// Operators that run server-side JavaScript.
const JS_OPERATORS: [&[u8]; 3] = [b"$where", b"$function", b"$accumulator"];

fn validate_at(
    doc: &[u8],
    base: usize,
    depth: u32,
    max_depth: u32,
    is_array: bool,
) -> Result<DocFacts, Invalid> {
    if depth > max_depth {
        return Err(fail(base, BsonFault::TooDeep));
    }
    if doc.len() < 5 {
        return Err(fail(base, BsonFault::TooShort));
    }
    let declared = le_i32(doc, 0).ok_or(fail(base, BsonFault::TooShort))?;
    if usize::try_from(declared).ok() != Some(doc.len()) {
        return Err(fail(base, BsonFault::LengthMismatch));
    }
    let end = doc.len() - 1;
    if doc[end] != 0 {
        return Err(fail(base + end, BsonFault::MissingTerminator));
    }
    let mut facts = DocFacts::default();
    let mut inline: [&[u8]; INLINE_KEYS] = [&[]; INLINE_KEYS];
    let mut count = 0usize;
    let mut overflow: Option<std::collections::HashSet<&[u8]>> = None;
    let mut i = 4;
    while i < end {
        let element_at = i;
        let ty = doc[i];
        i += 1;
        let key_len = cstring_len(&doc[i..end], base + i).map_err(|e| match e.fault {
            BsonFault::Truncated => fail(base + element_at, BsonFault::Truncated),
            _ => e,
        })?;
        let key = &doc[i..i + key_len - 1];
        i += key_len;
        if !is_array {
            let duplicate = match overflow.as_mut() {
                Some(set) => !set.insert(key),
                None if count < INLINE_KEYS => {
                    let seen = inline[..count].contains(&key);
                    inline[count] = key;
                    seen
                }
                None => {
                    let mut set: std::collections::HashSet<&[u8]> =
                        inline.iter().copied().collect();
                    let seen = !set.insert(key);
                    overflow = Some(set);
                    seen
                }
            };
            count += 1;
            facts.duplicate_keys |= duplicate;
            facts.javascript |= key.first() == Some(&b'$') && JS_OPERATORS.contains(&key);
        }
        facts.javascript |= matches!(ty, 0x0D | 0x0F);
        let value = &doc[i..end];
        let at = base + i;
        let need = |n: usize| {
            if value.len() >= n {
                Ok(n)
            } else {
                Err(fail(at, BsonFault::Truncated))
            }
        };
        let size = match ty {
            // double, datetime, timestamp, int64
            0x01 | 0x09 | 0x11 | 0x12 => need(8)?,
            // string, JavaScript code, symbol
            0x02 | 0x0D | 0x0E => string_len(value, at)?,
            // embedded document, array
            0x03 | 0x04 => {
                let n = le_i32(value, 0).ok_or(fail(at, BsonFault::Truncated))?;
                let n = usize::try_from(n).map_err(|_| fail(at, BsonFault::LengthMismatch))?;
                if n > value.len() {
                    return Err(fail(at, BsonFault::Truncated));
                }
                facts.merge_child(validate_at(
                    &value[..n],
                    at,
                    depth + 1,
                    max_depth,
                    ty == 0x04,
                )?);
                n
            }
            0x05 => binary_len(value, at)?,
            // undefined, null, max key, min key
            0x06 | 0x0A | 0x7F | 0xFF => 0,
            0x07 => need(12)?,
            0x08 => {
                need(1)?;
                if value[0] > 1 {
                    return Err(fail(at, BsonFault::InvalidBoolean(value[0])));
                }
                1
            }
            0x0B => {
                let pattern = cstring_len(value, at)?;
                let options = cstring_len(&value[pattern..], at + pattern)?;
                pattern + options
            }
            // DBPointer: string then ObjectId
            0x0C => {
                let s = string_len(value, at)?;
                if value.len() < s + 12 {
                    return Err(fail(at, BsonFault::Truncated));
                }
                s + 12
            }
            0x0F => code_with_scope_len(value, at, depth, max_depth)?,
            0x10 => need(4)?,
            0x13 => need(16)?,
            other => {
                return Err(fail(
                    base + element_at,
                    BsonFault::UnknownElementType(other),
                ));
            }
        };
        i += size;
    }
    if i != end {
        return Err(fail(base + end, BsonFault::Truncated));
    }
    Ok(facts)
}

/// Length of a C string including its NUL, checking UTF-8. Keys are almost always ASCII, which
/// is checked a word at a time; only other keys pay for full UTF-8 validation.
fn cstring_len(value: &[u8], at: usize) -> Result<usize, Invalid> {
    let n = memchr::memchr(0, value).ok_or(fail(at, BsonFault::Truncated))?;
    let text = &value[..n];
    if !text.is_ascii() {
        std::str::from_utf8(text).map_err(|_| fail(at, BsonFault::InvalidUtf8))?;
    }
    Ok(n + 1)
}

/// Length of a BSON string value (4-byte length, bytes, NUL), checking UTF-8.
fn string_len(value: &[u8], at: usize) -> Result<usize, Invalid> {
    let n = le_i32(value, 0).ok_or(fail(at, BsonFault::Truncated))?;
    let n = usize::try_from(n).map_err(|_| fail(at, BsonFault::InvalidString))?;
    if n < 1 {
        return Err(fail(at, BsonFault::InvalidString));
    }
    let total = n.checked_add(4).ok_or(fail(at, BsonFault::InvalidString))?;
    if total > value.len() {
        return Err(fail(at, BsonFault::Truncated));
    }
    if value[total - 1] != 0 {
        return Err(fail(at, BsonFault::InvalidString));
    }
    let text = &value[4..total - 1];
    if !text.is_ascii() {
        std::str::from_utf8(text).map_err(|_| fail(at, BsonFault::InvalidUtf8))?;
    }
    Ok(total)
}

fn binary_len(value: &[u8], at: usize) -> Result<usize, Invalid> {
    let n = le_i32(value, 0).ok_or(fail(at, BsonFault::Truncated))?;
    let n = usize::try_from(n).map_err(|_| fail(at, BsonFault::InvalidBinary))?;
    let total = n.checked_add(5).ok_or(fail(at, BsonFault::InvalidBinary))?;
    if total > value.len() {
        return Err(fail(at, BsonFault::Truncated));
    }
    // Subtype 2 (old binary) repeats the length inside the payload.
    if value[4] == 0x02 {
        let inner = le_i32(value, 5).ok_or(fail(at, BsonFault::InvalidBinary))?;
        if usize::try_from(inner).ok().and_then(|v| v.checked_add(4)) != Some(n) {
            return Err(fail(at, BsonFault::InvalidBinary));
        }
    }
    Ok(total)
}

fn code_with_scope_len(
    value: &[u8],
    at: usize,
    depth: u32,
    max_depth: u32,
) -> Result<usize, Invalid> {
    let total = le_i32(value, 0).ok_or(fail(at, BsonFault::Truncated))?;
    let total = usize::try_from(total).map_err(|_| fail(at, BsonFault::InvalidCodeWithScope))?;
    // 4 (total) + at least 5 (empty string) + 5 (empty scope)
    if total < 14 {
        return Err(fail(at, BsonFault::InvalidCodeWithScope));
    }
    if total > value.len() {
        return Err(fail(at, BsonFault::Truncated));
    }
    let inner = &value[4..total];
    let code = string_len(inner, at + 4)?;
    let scope = &inner[code..];
    validate_at(scope, at + 4 + code, depth + 1, max_depth, false)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Binary, DateTime, Decimal128, Regex, Timestamp, doc, rawdoc, spec::BinarySubtype};

    fn ok(bytes: &[u8]) -> Result<(), BsonFault> {
        validate(bytes, crate::MAX_BSON_DEPTH)
            .map(|_| ())
            .map_err(|e| e.fault)
    }

    #[test]
    fn accepts_every_element_type_the_bson_crate_writes() {
        let d = doc! {
            "double": 1.5, "string": "héllo", "doc": { "a": 1 }, "array": [1, "two", { "three": 3 }],
            "binary": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2, 3] },
            "undefined": bson::Bson::Undefined, "oid": bson::oid::ObjectId::new(), "bool": true,
            "date": DateTime::from_millis(1_700_000_000_000), "null": bson::Bson::Null,
            "regex": Regex { pattern: "^a".try_into().expect("cstring"), options: "i".try_into().expect("cstring") },
            "code": bson::Bson::JavaScriptCode("x".into()), "int32": 7_i32,
            "ts": Timestamp { time: 1, increment: 2 }, "int64": 8_i64,
            "dec": Decimal128::from_bytes([0; 16]), "min": bson::Bson::MinKey, "max": bson::Bson::MaxKey,
        };
        let d = RawDocumentBuf::try_from(&d).expect("encodes");
        assert_eq!(ok(d.as_bytes()), Ok(()));
        let cws = doc! { "c": bson::Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "f()".into(), scope: doc! { "a": 1 } }) };
        let raw = RawDocumentBuf::try_from(&cws).expect("encodes");
        assert_eq!(ok(raw.as_bytes()), Ok(()));
    }

    #[test]
    fn rejects_structural_damage() {
        let good = rawdoc! { "a": "b", "n": 1 };
        let bytes = good.as_bytes().to_vec();
        assert_eq!(ok(&bytes[..4]), Err(BsonFault::TooShort));
        let mut wrong_len = bytes.clone();
        wrong_len[0] += 1;
        assert_eq!(ok(&wrong_len), Err(BsonFault::LengthMismatch));
        let mut no_nul = bytes.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = 1;
        assert_eq!(ok(&no_nul), Err(BsonFault::MissingTerminator));
        let mut bad_type = bytes.clone();
        bad_type[4] = 0x42;
        assert_eq!(ok(&bad_type), Err(BsonFault::UnknownElementType(0x42)));
        // string length pointing past the end
        let mut long_str = bytes.clone();
        long_str[7] = 0x7f;
        assert_eq!(ok(&long_str), Err(BsonFault::Truncated));
        // negative string length
        let mut neg = bytes.clone();
        neg[7..11].copy_from_slice(&(-5_i32).to_le_bytes());
        assert_eq!(ok(&neg), Err(BsonFault::InvalidString));
    }

    #[test]
    fn rejects_invalid_utf8_and_booleans() {
        let mut d = rawdoc! { "k": "v" }.into_bytes();
        d[5] = 0xff; // key byte
        assert_eq!(ok(&d), Err(BsonFault::InvalidUtf8));
        let mut s = rawdoc! { "k": "v" }.into_bytes();
        s[11] = 0xff; // string byte
        assert_eq!(ok(&s), Err(BsonFault::InvalidUtf8));
        let mut b = rawdoc! { "k": true }.into_bytes();
        b[7] = 2;
        assert_eq!(ok(&b), Err(BsonFault::InvalidBoolean(2)));
    }

    #[test]
    fn rejects_nesting_beyond_the_limit_without_recursing_forever() {
        let mut d = doc! { "leaf": 1 };
        for _ in 0..300 {
            d = doc! { "n": d };
        }
        let raw = RawDocumentBuf::try_from(&d).expect("encodes");
        assert_eq!(ok(raw.as_bytes()), Err(BsonFault::TooDeep));
        assert_eq!(
            validate(raw.as_bytes(), 400)
                .map(|_| ())
                .map_err(|e| e.fault),
            Ok(())
        );
    }

    #[test]
    fn validation_reports_duplicate_keys_and_javascript_at_any_depth() {
        let facts = |d: &bson::RawDocumentBuf| validate(d.as_bytes(), 200).expect("valid");
        assert_eq!(
            facts(&rawdoc! { "a": 1, "b": { "c": [1, 1] } }),
            DocFacts {
                depth: 2,
                ..DocFacts::default()
            }
        );
        let mut dup = rawdoc! { "x": 1 };
        dup.append(bson::raw::cstr!("x"), 2);
        let nested = rawdoc! { "find": "c", "filter": { "$or": [ dup.clone() ] } };
        assert!(facts(&nested).duplicate_keys);
        let mut many = rawdoc! {};
        for i in 0..40 {
            let k = format!("k{i}");
            many.append(<&bson::raw::CStr>::try_from(k.as_str()).expect("key"), i);
        }
        assert!(!facts(&many).duplicate_keys);
        many.append(bson::raw::cstr!("k39"), 0);
        assert!(facts(&many).duplicate_keys);
        assert!(facts(&rawdoc! { "f": { "$where": "1" } }).javascript);
        assert!(facts(&rawdoc! { "f": [ { "x": { "$function": {} } } ] }).javascript);
        let code = doc! { "c": bson::Bson::JavaScriptCode("1".into()) };
        assert!(facts(&RawDocumentBuf::try_from(&code).expect("encodes")).javascript);
        assert!(
            !facts(&rawdoc! { "where": "$where" }).javascript,
            "values are data"
        );
    }

    #[test]
    fn validation_reports_the_deepest_nesting() {
        let facts = |d: &bson::RawDocumentBuf| validate(d.as_bytes(), 200).expect("valid");
        assert_eq!(facts(&rawdoc! { "a": 1 }).depth, 0);
        assert_eq!(
            facts(&rawdoc! { "a": {}, "b": [ { "c": [ [] ] } ] }).depth,
            4
        );
        let mut deep = rawdoc! { "x": 1 };
        for _ in 0..150 {
            deep = rawdoc! { "a": deep };
        }
        assert_eq!(facts(&deep).depth, 150);
        // The deepest document `from_bytes` accepts under a limit has exactly that depth.
        assert!(validate(deep.as_bytes(), 150).is_ok());
        assert!(validate(deep.as_bytes(), 149).is_err());
    }

    #[test]
    fn exposes_first_key_and_strings_without_decoding() {
        let doc = RawDoc::from_buf(rawdoc! { "find": "payments", "$db": "bank" }).expect("valid");
        assert_eq!(doc.first_key(), Some("find"));
        assert_eq!(doc.get_str("$db"), Some("bank"));
        assert_eq!(doc.get_str("missing"), None);
    }
}
