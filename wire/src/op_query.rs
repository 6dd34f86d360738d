//! OP_QUERY (opcode 2004), kept only for the legacy handshake.
//!
//! Drivers that have not yet learned the server's wire version send their first `isMaster` /
//! `hello` as an OP_QUERY on `admin.$cmd`. The codec reads any well-formed OP_QUERY; deciding
//! that nothing but the handshake is accepted is the proxy's job.

use bytes::{BufMut, Bytes};

use crate::document::RawDoc;
use crate::error::WireError;
use crate::header::HEADER_LEN;
use crate::limits::Limits;
use crate::reader::Reader;

/// OP_QUERY flag bits. Bit 0 is reserved and bits above 7 are undefined: both are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QueryFlags(u32);

impl QueryFlags {
    /// Tailable cursor.
    pub const TAILABLE_CURSOR: u32 = 1 << 1;
    /// Allow reads from a secondary (`secondaryOk`).
    pub const SECONDARY_OK: u32 = 1 << 2;
    /// Internal replication use.
    pub const OPLOG_REPLAY: u32 = 1 << 3;
    /// Do not time out idle cursors.
    pub const NO_CURSOR_TIMEOUT: u32 = 1 << 4;
    /// Block at the end of a tailable cursor.
    pub const AWAIT_DATA: u32 = 1 << 5;
    /// Stream all results.
    pub const EXHAUST: u32 = 1 << 6;
    /// Partial results from a sharded cluster.
    pub const PARTIAL: u32 = 1 << 7;

    const KNOWN: u32 = 0b1111_1110;

    /// Flags from their wire value, refusing reserved and undefined bits.
    pub fn from_bits(bits: u32) -> Result<Self, WireError> {
        let unknown = bits & !Self::KNOWN;
        if unknown != 0 {
            return Err(WireError::UnknownFlags {
                op: "OP_QUERY",
                bits: unknown,
            });
        }
        Ok(QueryFlags(bits))
    }

    /// The wire value.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

/// A legacy query message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpQuery {
    /// Flag bits.
    pub flags: QueryFlags,
    /// `db.collection`; `admin.$cmd` for the handshake.
    pub full_collection_name: String,
    /// Documents to skip.
    pub number_to_skip: i32,
    /// Documents to return (-1 for a command).
    pub number_to_return: i32,
    /// The query, or for a command the command document.
    pub query: RawDoc,
    /// Optional projection.
    pub return_fields_selector: Option<RawDoc>,
}

impl OpQuery {
    /// The command name when this is a command (`<db>.$cmd`): the query's first key, unwrapping
    /// the legacy `$query` envelope.
    pub fn command_name(&self) -> Option<&str> {
        match self.query.first_key() {
            Some("$query") | Some("query") => {
                match self.query.as_raw().get("$query").ok().flatten() {
                    Some(bson::RawBsonRef::Document(inner)) => match inner.iter().next() {
                        Some(Ok((key, _))) => Some(key.as_str()),
                        _ => None,
                    },
                    _ => self.query.first_key(),
                }
            }
            other => other,
        }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        4 + self.full_collection_name.len()
            + 1
            + 8
            + self.query.len()
            + self.return_fields_selector.as_ref().map_or(0, RawDoc::len)
    }

    pub(crate) fn write_payload(&self, dst: &mut impl BufMut) {
        dst.put_u32_le(self.flags.bits());
        dst.put_slice(self.full_collection_name.as_bytes());
        dst.put_u8(0);
        dst.put_i32_le(self.number_to_skip);
        dst.put_i32_le(self.number_to_return);
        dst.put_slice(self.query.as_bytes());
        if let Some(sel) = &self.return_fields_selector {
            dst.put_slice(sel.as_bytes());
        }
    }

    pub(crate) fn decode(frame: &Bytes, limits: &Limits) -> Result<Self, WireError> {
        let mut r = Reader::new(frame.slice(HEADER_LEN.min(frame.len())..));
        let flags = QueryFlags::from_bits(r.u32("OP_QUERY flags")?)?;
        let full_collection_name = r.cstring("OP_QUERY fullCollectionName")?;
        let number_to_skip = r.i32("OP_QUERY numberToSkip")?;
        let number_to_return = r.i32("OP_QUERY numberToReturn")?;
        let query = r.document("OP_QUERY query", limits)?;
        let return_fields_selector = if r.remaining() > 0 {
            Some(r.document("OP_QUERY returnFieldsSelector", limits)?)
        } else {
            None
        };
        r.finish("OP_QUERY")?;
        Ok(OpQuery {
            flags,
            full_collection_name,
            number_to_skip,
            number_to_return,
            query,
            return_fields_selector,
        })
    }
}
