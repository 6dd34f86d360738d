//! A whole wire message: header ids plus one payload, decoded from and encoded to a frame.

use bytes::{BufMut, Bytes, BytesMut};

use crate::compression::Compressor;
use crate::error::WireError;
use crate::header::{HEADER_LEN, Header, OpCode};
use crate::limits::Limits;
use crate::op_compressed::OpCompressed;
use crate::op_msg::OpMsg;
use crate::op_query::OpQuery;
use crate::op_reply::OpReply;

/// What follows the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// OP_MSG.
    Msg(OpMsg),
    /// OP_QUERY (legacy handshake only).
    Query(OpQuery),
    /// OP_REPLY (answer to OP_QUERY).
    Reply(OpReply),
    /// OP_COMPRESSED, not yet decompressed.
    Compressed(OpCompressed),
}

/// One wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's id for this message.
    pub request_id: i32,
    /// The request this message answers, 0 for requests.
    pub response_to: i32,
    /// The message itself.
    pub payload: Payload,
}

impl Message {
    /// A message with the given ids.
    pub fn new(request_id: i32, response_to: i32, payload: Payload) -> Self {
        Message {
            request_id,
            response_to,
            payload,
        }
    }

    /// Decodes one complete frame (header included, as returned by [`crate::split_frame`]).
    ///
    /// OP_COMPRESSED stays compressed here ([`Message::decompressed`] unwraps it), so the
    /// caller decides whether and when to pay for decompression.
    pub fn decode(frame: Bytes, limits: &Limits) -> Result<Self, WireError> {
        if frame.len() < HEADER_LEN {
            return Err(WireError::MessageTooShort {
                length: frame.len() as i64,
            });
        }
        let header = Header::parse(&frame)?;
        if header.message_length < HEADER_LEN as i32 {
            return Err(WireError::MessageTooShort {
                length: i64::from(header.message_length),
            });
        }
        if frame.len() > limits.max_message_size {
            return Err(WireError::MessageTooLarge {
                length: frame.len() as u64,
                max: limits.max_message_size,
            });
        }
        if usize::try_from(header.message_length).ok() != Some(frame.len()) {
            return Err(WireError::LengthMismatch {
                declared: i64::from(header.message_length),
                actual: frame.len(),
            });
        }
        let payload = match header.op_code {
            OpCode::Msg => Payload::Msg(OpMsg::decode(&frame, limits)?),
            OpCode::Query => Payload::Query(OpQuery::decode(&frame, limits)?),
            OpCode::Reply => Payload::Reply(OpReply::decode(&frame, limits)?),
            OpCode::Compressed => Payload::Compressed(OpCompressed::decode(&frame, limits)?),
        };
        Ok(Message {
            request_id: header.request_id,
            response_to: header.response_to,
            payload,
        })
    }

    /// The message with any compression removed, and the compressor that was used, so a reply
    /// can be compressed the same way.
    pub fn decompressed(self, limits: &Limits) -> Result<(Message, Option<Compressor>), WireError> {
        match &self.payload {
            Payload::Compressed(c) => {
                let inner = c.decompress(self.request_id, self.response_to, limits)?;
                Ok((inner, Some(c.compressor)))
            }
            _ => Ok((self, None)),
        }
    }

    /// This message compressed with `compressor`, keeping its ids.
    pub fn compressed(&self, compressor: Compressor) -> Result<Message, WireError> {
        let c = OpCompressed::compress(self, compressor)?;
        Ok(Message {
            request_id: self.request_id,
            response_to: self.response_to,
            payload: Payload::Compressed(c),
        })
    }

    /// The opcode the payload is sent under.
    pub fn op_code(&self) -> OpCode {
        match self.payload {
            Payload::Msg(_) => OpCode::Msg,
            Payload::Query(_) => OpCode::Query,
            Payload::Reply(_) => OpCode::Reply,
            Payload::Compressed(_) => OpCode::Compressed,
        }
    }

    /// The OP_MSG, when this is one.
    pub fn as_op_msg(&self) -> Option<&OpMsg> {
        match &self.payload {
            Payload::Msg(m) => Some(m),
            _ => None,
        }
    }

    /// Encoded size in bytes, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match &self.payload {
                Payload::Msg(m) => m.encoded_len(),
                Payload::Query(q) => q.encoded_len(),
                Payload::Reply(r) => r.encoded_len(),
                Payload::Compressed(c) => c.encoded_len(),
            }
    }

    /// Appends the encoded message to `dst`. An OP_MSG with `checksumPresent` gets a freshly
    /// computed CRC-32C, so a rewritten message is never sent with a stale checksum. Callers
    /// compare [`Message::encoded_len`] with the peer's `maxMessageSizeBytes`; this only refuses
    /// what the 32-bit length field cannot express.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = self.encoded_len();
        let message_length = i32::try_from(len).map_err(|_| WireError::MessageTooLarge {
            length: len as u64,
            max: i32::MAX as usize,
        })?;
        dst.reserve(len);
        let start = dst.len();
        Header {
            message_length,
            request_id: self.request_id,
            response_to: self.response_to,
            op_code: self.op_code(),
        }
        .write(dst);
        match &self.payload {
            Payload::Msg(m) => {
                m.write_payload(dst);
                if m.flags().checksum_present() {
                    let crc = crc32c::crc32c(&dst[start..]);
                    dst.put_u32_le(crc);
                }
            }
            Payload::Query(q) => q.write_payload(dst),
            Payload::Reply(r) => r.write_payload(dst),
            Payload::Compressed(c) => c.write_payload(dst),
        }
        debug_assert_eq!(dst.len() - start, len);
        Ok(())
    }

    /// The encoded message as a new buffer.
    pub fn to_bytes(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut out)?;
        Ok(out.freeze())
    }
}
