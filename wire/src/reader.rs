//! A bounds-checked cursor over one message's bytes.
//!
//! Every read states what it is reading, so a truncated message says which field ran out. Slices
//! are taken from the shared frame (`Bytes::slice`), never copied.

use bytes::Bytes;

use crate::document::RawDoc;
use crate::error::WireError;
use crate::limits::Limits;

pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&[u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated { what });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, WireError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn cstring(&mut self, what: &'static str) -> Result<String, WireError> {
        let rest = &self.buf[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::InvalidCString { what })?;
        let s = std::str::from_utf8(&rest[..n]).map_err(|_| WireError::InvalidCString { what })?;
        let s = s.to_owned();
        self.pos += n + 1;
        Ok(s)
    }

    /// The next `n` bytes, shared with the frame.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<Bytes, WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated { what });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    /// Everything left, shared with the frame.
    pub(crate) fn rest(&mut self) -> Bytes {
        let out = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        out
    }

    /// One BSON document: its length prefix is checked against what remains and the size limit
    /// before the document is sliced, then the document is validated completely.
    pub(crate) fn document(
        &mut self,
        context: &'static str,
        limits: &Limits,
    ) -> Result<RawDoc, WireError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 4 {
            return Err(WireError::Truncated { what: context });
        }
        let declared = i32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = usize::try_from(declared).map_err(|_| WireError::InvalidBson {
            context,
            offset: 0,
            fault: crate::BsonFault::LengthMismatch,
        })?;
        if len > limits.max_document_size {
            return Err(WireError::DocumentTooLarge {
                context,
                size: len,
                max: limits.max_document_size,
            });
        }
        let bytes = self.bytes(len, context)?;
        let doc = if limits.validate_documents {
            RawDoc::from_bytes(bytes, limits.max_bson_depth)
        } else {
            RawDoc::from_framed_bytes(bytes)
        };
        doc.map_err(|(offset, fault)| WireError::InvalidBson {
            context,
            offset,
            fault,
        })
    }

    /// Fails when bytes remain: every message kind must be consumed exactly.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(WireError::TrailingBytes { what, count }),
        }
    }
}
