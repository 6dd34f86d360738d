//! The 16-byte standard message header and the opcodes tenantgate speaks.

use crate::error::WireError;

/// Length of the standard message header.
pub const HEADER_LEN: usize = 16;

/// Opcodes a modern driver or server exchanges. The legacy CRUD opcodes (OP_INSERT, OP_UPDATE,
/// OP_DELETE, OP_GET_MORE, OP_KILL_CURSORS) were removed in MongoDB 5.1 / 6.0 and are refused
/// as [`WireError::UnsupportedOpCode`]: a proxy that forwarded them could not police them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// OP_REPLY (1): a reply to OP_QUERY.
    Reply,
    /// OP_QUERY (2004): only the legacy handshake still uses it.
    Query,
    /// OP_COMPRESSED (2012): wraps another message.
    Compressed,
    /// OP_MSG (2013): every modern command and reply.
    Msg,
}

impl OpCode {
    /// The opcode's number on the wire.
    pub const fn as_i32(self) -> i32 {
        match self {
            OpCode::Reply => 1,
            OpCode::Query => 2004,
            OpCode::Compressed => 2012,
            OpCode::Msg => 2013,
        }
    }

    /// Maps a wire number to an opcode, refusing everything else.
    pub fn from_i32(code: i32) -> Result<Self, WireError> {
        match code {
            1 => Ok(OpCode::Reply),
            2004 => Ok(OpCode::Query),
            2012 => Ok(OpCode::Compressed),
            2013 => Ok(OpCode::Msg),
            other => Err(WireError::UnsupportedOpCode(other)),
        }
    }
}

/// The standard message header, as read from the first 16 bytes of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length in bytes, header included.
    pub message_length: i32,
    /// Identifier the sender chose for this message.
    pub request_id: i32,
    /// `request_id` of the message this one answers (0 for requests).
    pub response_to: i32,
    /// What follows the header.
    pub op_code: OpCode,
}

impl Header {
    /// Parses a header. The caller guarantees at least [`HEADER_LEN`] bytes; shorter input is
    /// reported as truncated rather than trusted.
    pub fn parse(bytes: &[u8]) -> Result<Self, WireError> {
        let Some(raw) = bytes.get(..HEADER_LEN) else {
            return Err(WireError::Truncated {
                what: "message header",
            });
        };
        let field = |i: usize| i32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        Ok(Header {
            message_length: field(0),
            request_id: field(4),
            response_to: field(8),
            op_code: OpCode::from_i32(field(12))?,
        })
    }

    /// Appends the header's 16 bytes.
    pub fn write(&self, dst: &mut impl bytes::BufMut) {
        dst.put_i32_le(self.message_length);
        dst.put_i32_le(self.request_id);
        dst.put_i32_le(self.response_to);
        dst.put_i32_le(self.op_code.as_i32());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_the_same_bytes() {
        let header = Header {
            message_length: 61,
            request_id: 7,
            response_to: 0,
            op_code: OpCode::Msg,
        };
        let mut out = Vec::new();
        header.write(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        assert_eq!(Header::parse(&out).ok(), Some(header));
    }

    #[test]
    fn refuses_legacy_and_unknown_opcodes() {
        for code in [2001, 2002, 2005, 2006, 2007, 0, -1, 9999] {
            let mut out = vec![16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
            out.extend_from_slice(&i32::to_le_bytes(code));
            assert!(
                matches!(Header::parse(&out), Err(WireError::UnsupportedOpCode(c)) if c == code)
            );
        }
    }

    #[test]
    fn short_input_is_truncated_not_a_panic() {
        assert!(matches!(
            Header::parse(&[1, 2, 3]),
            Err(WireError::Truncated { .. })
        ));
    }
}
