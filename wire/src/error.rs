//! The one error type of the wire crate.
//!
//! Every variant is a protocol violation by whoever sent the bytes: the message cannot be
//! trusted, and the connection it came from should be closed (a framing error leaves the stream
//! at an unknown position). Variants carry enough to write a useful log line, never the
//! message's contents.

use crate::compression::Compressor;
use crate::document::BsonFault;

/// Why a message could not be decoded or encoded.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The header's length is below the 16-byte minimum (or negative).
    #[error("message length {length} is shorter than the 16-byte header")]
    MessageTooShort {
        /// The declared length.
        length: i64,
    },
    /// The header's length (or a decompressed size) is above the configured maximum.
    #[error("message length {length} exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// The declared or computed length.
        length: u64,
        /// The limit in force.
        max: usize,
    },
    /// The frame handed to the decoder is not as long as its header says.
    #[error("frame is {actual} bytes but its header declares {declared}")]
    LengthMismatch {
        /// Length from the header.
        declared: i64,
        /// Bytes actually present.
        actual: usize,
    },
    /// An opcode tenantgate does not speak (including the legacy CRUD opcodes).
    #[error("unsupported opcode {0}")]
    UnsupportedOpCode(i32),
    /// A field or section ran past the end of the message.
    #[error("message truncated while reading {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// Bytes were left over after the last field of a message or section.
    #[error("{count} unexpected trailing bytes after {what}")]
    TrailingBytes {
        /// What had just been read.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A document failed BSON validation.
    #[error("invalid BSON in {context} at byte {offset}: {fault}")]
    InvalidBson {
        /// Where in the message the document sits.
        context: &'static str,
        /// Offset of the fault inside the document.
        offset: usize,
        /// What is wrong with it.
        fault: BsonFault,
    },
    /// A document exceeds the maximum document size.
    #[error("document in {context} is {size} bytes, over the maximum of {max}")]
    DocumentTooLarge {
        /// Where in the message the document sits.
        context: &'static str,
        /// Its declared size.
        size: usize,
        /// The limit in force.
        max: usize,
    },
    /// A C string (collection name, sequence identifier) has no terminator or is not UTF-8.
    #[error("invalid C string in {what}")]
    InvalidCString {
        /// The field being read.
        what: &'static str,
    },
    /// Flag bits that the opcode's specification says a parser must refuse.
    #[error("unknown {op} flag bits {bits:#010x}")]
    UnknownFlags {
        /// The message kind (`OP_MSG`, `OP_QUERY`, `OP_REPLY`).
        op: &'static str,
        /// The offending bits.
        bits: u32,
    },
    /// An OP_MSG section kind other than 0 or 1.
    #[error("unknown OP_MSG section kind {0}")]
    UnknownSectionKind(u8),
    /// An OP_MSG must have exactly one body (kind 0) section.
    #[error("OP_MSG has {0} body sections; exactly one is required")]
    BodySectionCount(usize),
    /// An OP_REPLY's `numberReturned` disagrees with the documents present.
    #[error("OP_REPLY declares {declared} documents but carries {actual}")]
    ReplyCountMismatch {
        /// `numberReturned` from the message.
        declared: i32,
        /// Documents actually decoded.
        actual: usize,
    },
    /// The OP_MSG checksum does not match its contents.
    #[error(
        "OP_MSG checksum mismatch: message says {declared:#010x}, contents give {computed:#010x}"
    )]
    ChecksumMismatch {
        /// Checksum carried by the message.
        declared: u32,
        /// CRC-32C computed over the message.
        computed: u32,
    },
    /// OP_COMPRESSED names a compressor tenantgate does not know.
    #[error("unknown compressor id {0}")]
    UnknownCompressor(u8),
    /// OP_COMPRESSED wraps another OP_COMPRESSED.
    #[error("OP_COMPRESSED may not wrap another OP_COMPRESSED")]
    NestedCompression,
    /// OP_COMPRESSED declares an uncompressed size that is negative, above the limit, or
    /// impossible for the compressed bytes present (a decompression bomb).
    #[error("OP_COMPRESSED declares an invalid uncompressed size {declared}: {reason}")]
    InvalidUncompressedSize {
        /// The declared size.
        declared: i64,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Decompression failed or produced a different size than declared.
    #[error("{compressor} decompression failed: {reason}")]
    Decompression {
        /// The compressor in use.
        compressor: Compressor,
        /// What went wrong.
        reason: String,
    },
    /// Compression of an outgoing message failed.
    #[error("{compressor} compression failed: {reason}")]
    Compression {
        /// The compressor in use.
        compressor: Compressor,
        /// What went wrong.
        reason: String,
    },
}
