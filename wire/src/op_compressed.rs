//! OP_COMPRESSED (opcode 2012): another message's body, compressed.
//!
//! Layout: `originalOpcode` (i32), `uncompressedSize` (i32, the wrapped message without its
//! header), `compressorId` (u8), then the compressed bytes. The declared size is checked against
//! the message size limit when the frame is decoded, before any decompression starts, so a
//! decompression bomb is refused on sight; the decompressor then must produce exactly that size.
//! The compressed bytes are kept as they arrived, so a compressed frame re-encodes byte for byte.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::Compressor;
use crate::error::WireError;
use crate::header::{HEADER_LEN, Header, OpCode};
use crate::limits::Limits;
use crate::message::Message;
use crate::reader::Reader;

/// Largest buffer reserved up front for a decompressed message; past this it grows with the
/// actual output, so memory follows what the sender really produced.
const INITIAL_DECOMPRESS_CAPACITY: usize = 1 << 20;

/// A compressed message, not yet decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpCompressed {
    /// Opcode of the wrapped message (never OP_COMPRESSED itself).
    pub original_op_code: OpCode,
    /// Size of the wrapped message without its header.
    pub uncompressed_size: i32,
    /// How the payload is compressed.
    pub compressor: Compressor,
    /// The compressed payload, shared with the frame.
    pub compressed: Bytes,
}

impl OpCompressed {
    /// Compresses `message` (its payload; the header is rebuilt on the way back).
    pub fn compress(message: &Message, compressor: Compressor) -> Result<Self, WireError> {
        if let crate::Payload::Compressed(_) = message.payload {
            return Err(WireError::NestedCompression);
        }
        let mut plain = BytesMut::with_capacity(message.encoded_len());
        message.encode(&mut plain)?;
        let body = &plain[HEADER_LEN..];
        let uncompressed_size =
            i32::try_from(body.len()).map_err(|_| WireError::MessageTooLarge {
                length: body.len() as u64,
                max: i32::MAX as usize,
            })?;
        Ok(OpCompressed {
            original_op_code: message.op_code(),
            uncompressed_size,
            compressor,
            compressed: Bytes::from(compressor.compress(body)?),
        })
    }

    /// Decompresses into the wrapped message, which keeps this frame's ids.
    pub fn decompress(
        &self,
        request_id: i32,
        response_to: i32,
        limits: &Limits,
    ) -> Result<Message, WireError> {
        let size = checked_size(self.uncompressed_size, limits)?;
        let mut out = Vec::with_capacity(HEADER_LEN + size.min(INITIAL_DECOMPRESS_CAPACITY));
        Header {
            message_length: (HEADER_LEN + size) as i32,
            request_id,
            response_to,
            op_code: self.original_op_code,
        }
        .write(&mut out);
        self.compressor
            .decompress_into(&self.compressed, size, &mut out)?;
        Message::decode(Bytes::from(out), limits)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        9 + self.compressed.len()
    }

    pub(crate) fn write_payload(&self, dst: &mut impl BufMut) {
        dst.put_i32_le(self.original_op_code.as_i32());
        dst.put_i32_le(self.uncompressed_size);
        dst.put_u8(self.compressor.id());
        dst.put_slice(&self.compressed);
    }

    pub(crate) fn decode(frame: &Bytes, limits: &Limits) -> Result<Self, WireError> {
        let mut r = Reader::new(frame.slice(HEADER_LEN.min(frame.len())..));
        let original = r.i32("OP_COMPRESSED originalOpcode")?;
        let original_op_code = match OpCode::from_i32(original)? {
            OpCode::Compressed => return Err(WireError::NestedCompression),
            code => code,
        };
        let uncompressed_size = r.i32("OP_COMPRESSED uncompressedSize")?;
        checked_size(uncompressed_size, limits)?;
        let compressor = Compressor::from_id(r.u8("OP_COMPRESSED compressorId")?)?;
        let compressed = r.rest();
        Ok(OpCompressed {
            original_op_code,
            uncompressed_size,
            compressor,
            compressed,
        })
    }
}

/// The declared size as a usize, refused when negative or when the rebuilt message (header plus
/// payload) would exceed the message size limit.
fn checked_size(declared: i32, limits: &Limits) -> Result<usize, WireError> {
    let size = usize::try_from(declared).map_err(|_| WireError::InvalidUncompressedSize {
        declared: i64::from(declared),
        reason: "negative",
    })?;
    if size + HEADER_LEN > limits.max_message_size {
        return Err(WireError::InvalidUncompressedSize {
            declared: i64::from(declared),
            reason: "over the maximum message size",
        });
    }
    Ok(size)
}
