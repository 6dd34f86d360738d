//! `tokio_util::codec` adapters, so a socket can be read as a stream of frames or messages.
//!
//! Enabled by the `codec` feature; the rest of the crate never touches I/O. Reads reuse the
//! `Framed` read buffer and frames are split off it without copying.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::error::WireError;
use crate::frame::split_frame;
use crate::limits::Limits;
use crate::message::Message;

/// A codec error: the socket failed or the peer broke the protocol.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Reading or writing the socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a valid message.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Yields each complete frame as shared bytes without decoding it; writes frames as they are.
#[derive(Debug, Clone, Default)]
pub struct FrameCodec {
    limits: Limits,
}

impl FrameCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        FrameCodec { limits }
    }
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        Ok(split_frame(src, &self.limits)?)
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        dst.extend_from_slice(&frame);
        Ok(())
    }
}

/// Yields decoded [`Message`]s (compressed ones stay compressed); encodes messages.
#[derive(Debug, Clone, Default)]
pub struct MessageCodec {
    limits: Limits,
}

impl MessageCodec {
    /// A codec enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        MessageCodec { limits }
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        match split_frame(src, &self.limits)? {
            Some(frame) => Ok(Some(Message::decode(frame, &self.limits)?)),
            None => Ok(None),
        }
    }
}

impl Encoder<&Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, message: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        let len = message.encoded_len();
        if len > self.limits.max_message_size {
            return Err(WireError::MessageTooLarge {
                length: len as u64,
                max: self.limits.max_message_size,
            }
            .into());
        }
        Ok(message.encode(dst)?)
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = CodecError;

    fn encode(&mut self, message: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        <Self as Encoder<&Message>>::encode(self, &message, dst)
    }
}
