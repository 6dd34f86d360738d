//! The MongoDB wire protocol, as bytes in and messages out.
//!
//! tenantgate sits on the path of every database call, so this crate is written for untrusted
//! input first and speed second, and it does no I/O at all: the proxy owns the sockets, this crate
//! owns the bytes. It reads and writes every message a modern driver and server exchange:
//!
//! - [`OpMsg`] (opcode 2013) with every flag bit (`checksumPresent` verified on input and
//!   recomputed on output, `moreToCome`, `exhaustAllowed`), one body section and any number of
//!   document sequences in any order;
//! - [`OpQuery`] (2004) and [`OpReply`] (1), which drivers still use for the legacy
//!   `isMaster`/`hello` handshake;
//! - [`OpCompressed`] (2012) with snappy, zlib and zstd, in both directions.
//!
//! Frames stay [`bytes::Bytes`]: documents are validated once and then exposed as borrowed
//! [`bson::RawDocument`]s (see [`RawDoc`]), so the command name, `$db` and the body can be read
//! without decoding the whole message. Every length is checked before anything is allocated and
//! every failure is a typed [`WireError`], never a panic.
//!
//! The usual flow is [`split_frame`] on a connection's read buffer (incomplete input is
//! `Ok(None)`), then [`Message::decode`]; with the `codec` feature, [`codec::MessageCodec`] does
//! both for a `tokio_util::codec::Framed` socket.

#[cfg(feature = "codec")]
pub mod codec;
mod compression;
mod document;
pub mod element;
mod error;
mod frame;
mod header;
mod limits;
mod message;
mod op_compressed;
mod op_msg;
mod op_query;
mod op_reply;
mod reader;

pub use compression::Compressor;
pub use document::{BsonFault, DocFacts, RawDoc};
pub use error::WireError;
pub use frame::split_frame;
pub use header::{HEADER_LEN, Header, OpCode};
pub use limits::{Limits, MAX_BSON_DEPTH, MAX_DOCUMENT_SIZE_BYTES, MAX_MESSAGE_SIZE_BYTES};
pub use message::{Message, Payload};
pub use op_compressed::OpCompressed;
pub use op_msg::{DocumentSequence, MsgFlags, OpMsg, Section, SectionRef};
pub use op_query::{OpQuery, QueryFlags};
pub use op_reply::{OpReply, ReplyFlags};
