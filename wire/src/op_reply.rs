//! OP_REPLY (opcode 1): the answer to an OP_QUERY handshake.

use bytes::{BufMut, Bytes};

use crate::document::RawDoc;
use crate::error::WireError;
use crate::header::HEADER_LEN;
use crate::limits::Limits;
use crate::reader::Reader;

/// OP_REPLY response flags; undefined bits are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReplyFlags(u32);

impl ReplyFlags {
    /// The cursor of a getMore was not found.
    pub const CURSOR_NOT_FOUND: u32 = 1 << 0;
    /// The query failed; the single document is the error.
    pub const QUERY_FAILURE: u32 = 1 << 1;
    /// Set by mongos; drivers ignore it.
    pub const SHARD_CONFIG_STALE: u32 = 1 << 2;
    /// The server supports `awaitData`.
    pub const AWAIT_CAPABLE: u32 = 1 << 3;

    const KNOWN: u32 = 0b1111;

    /// Flags from their wire value, refusing undefined bits.
    pub fn from_bits(bits: u32) -> Result<Self, WireError> {
        let unknown = bits & !Self::KNOWN;
        if unknown != 0 {
            return Err(WireError::UnknownFlags {
                op: "OP_REPLY",
                bits: unknown,
            });
        }
        Ok(ReplyFlags(bits))
    }

    /// The wire value.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// A legacy reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpReply {
    /// Response flags.
    pub flags: ReplyFlags,
    /// Cursor id (0 for a command reply).
    pub cursor_id: i64,
    /// Position of the first document in the cursor.
    pub starting_from: i32,
    /// The returned documents; `numberReturned` on the wire is their count.
    pub documents: Vec<RawDoc>,
}

impl OpReply {
    /// A command reply carrying one document.
    pub fn single(doc: RawDoc) -> Self {
        OpReply {
            flags: ReplyFlags::default(),
            cursor_id: 0,
            starting_from: 0,
            documents: vec![doc],
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        20 + self.documents.iter().map(RawDoc::len).sum::<usize>()
    }

    pub(crate) fn write_payload(&self, dst: &mut impl BufMut) {
        dst.put_u32_le(self.flags.bits());
        dst.put_i64_le(self.cursor_id);
        dst.put_i32_le(self.starting_from);
        // The document count is bounded by the message size, checked by the encoder.
        dst.put_i32_le(self.documents.len() as i32);
        for doc in &self.documents {
            dst.put_slice(doc.as_bytes());
        }
    }

    pub(crate) fn decode(frame: &Bytes, limits: &Limits) -> Result<Self, WireError> {
        let mut r = Reader::new(frame.slice(HEADER_LEN.min(frame.len())..));
        let flags = ReplyFlags::from_bits(r.u32("OP_REPLY responseFlags")?)?;
        let cursor_id = r.i64("OP_REPLY cursorID")?;
        let starting_from = r.i32("OP_REPLY startingFrom")?;
        let declared = r.i32("OP_REPLY numberReturned")?;
        // Never pre-allocate from `declared`: it is untrusted. Read what is there, then compare.
        let mut documents = Vec::new();
        while r.remaining() > 0 {
            documents.push(r.document("OP_REPLY documents", limits)?);
        }
        if usize::try_from(declared).ok() != Some(documents.len()) {
            return Err(WireError::ReplyCountMismatch {
                declared,
                actual: documents.len(),
            });
        }
        Ok(OpReply {
            flags,
            cursor_id,
            starting_from,
            documents,
        })
    }
}
