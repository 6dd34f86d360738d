//! Size and depth limits applied to untrusted input before anything is allocated.

/// MongoDB's `maxMessageSizeBytes`: the largest wire message a server accepts or sends.
pub const MAX_MESSAGE_SIZE_BYTES: usize = 48_000_000;

/// The largest single BSON document the server handles internally: `maxBsonObjectSize`
/// (16 MiB) plus the 16 KiB of headroom the server allows for command wrappers.
pub const MAX_DOCUMENT_SIZE_BYTES: usize = 16 * 1024 * 1024 + 16 * 1024;

/// How deeply documents and arrays may nest. The server refuses more than 100 levels of user
/// data; commands wrap that in a few more levels, so 200 keeps every legal command while a
/// hostile one cannot exhaust the stack of anything that later walks the document recursively.
pub const MAX_BSON_DEPTH: u32 = 200;

/// The limits one decoder enforces. Defaults are MongoDB's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted message, header included, before and after decompression.
    pub max_message_size: usize,
    /// Largest accepted BSON document anywhere in a message.
    pub max_document_size: usize,
    /// Deepest accepted nesting of documents and arrays.
    pub max_bson_depth: u32,
    /// Walk every document element by element (the default, and what untrusted input gets).
    /// `false` checks each document's length prefix, size limit and terminator only: for replies
    /// from the configured upstream database, which the proxy reads through bounds-checked
    /// accessors and hands on to drivers that validate them as they would a direct reply. The
    /// nesting limit is then not enforced either.
    pub validate_documents: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: MAX_MESSAGE_SIZE_BYTES,
            max_document_size: MAX_DOCUMENT_SIZE_BYTES,
            max_bson_depth: MAX_BSON_DEPTH,
            validate_documents: true,
        }
    }
}
