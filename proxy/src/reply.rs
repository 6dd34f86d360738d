//! Building replies to the client: MongoDB-style errors and OP_MSG / OP_REPLY wrappers.

use bson::{RawDocumentBuf, rawdoc};
use tenantgate_wire::{Message, OpMsg, OpReply, Payload, RawDoc, ReplyFlags};

/// Error codes the proxy answers with (MongoDB's own numbers).
pub mod code {
    /// `Unauthorized`: policy rejections and commands before authentication.
    pub const UNAUTHORIZED: i32 = 13;
    /// `TooManyLogicalSessions`: the session table is full of live sessions.
    pub const TOO_MANY_LOGICAL_SESSIONS: i32 = 261;
    /// `AuthenticationFailed`.
    pub const AUTHENTICATION_FAILED: i32 = 18;
    /// `CursorNotFound`: getMore / killCursors on a cursor the principal does not own.
    pub const CURSOR_NOT_FOUND: i32 = 43;
    /// `HostUnreachable`: the upstream could not be reached (retryable).
    pub const HOST_UNREACHABLE: i32 = 6;
    /// `NetworkTimeout` (retryable).
    pub const NETWORK_TIMEOUT: i32 = 89;
    /// `UnsupportedOpQueryCommand`.
    pub const UNSUPPORTED_OP_QUERY: i32 = 352;
    /// `MechanismUnavailable`.
    pub const MECHANISM_UNAVAILABLE: i32 = 334;
    /// `BadValue`.
    pub const BAD_VALUE: i32 = 2;
    /// `IngressRequestRateLimitExceeded`: a per-tenant limit (retryable).
    pub const RATE_LIMITED: i32 = 462;
    /// `ShutdownInProgress`: a command that arrived after shutdown began (retryable; drivers
    /// also mark the server unknown and reconnect).
    pub const SHUTDOWN_IN_PROGRESS: i32 = 91;
}

/// `{ ok: 0, errmsg, code, codeName }`.
pub fn error_body(code: i32, code_name: &str, errmsg: &str) -> RawDocumentBuf {
    rawdoc! { "ok": 0.0, "errmsg": errmsg, "code": code, "codeName": code_name }
}

/// A retryable network error, labelled as drivers expect.
pub fn retryable_error_body(code: i32, code_name: &str, errmsg: &str) -> RawDocumentBuf {
    let mut body = error_body(code, code_name, errmsg);
    let mut labels = bson::RawArrayBuf::new();
    labels.push("RetryableWriteError");
    body.append(bson::raw::cstr!("errorLabels"), labels);
    body
}

/// A per-tenant limit was hit: retryable, as MongoDB's own overload errors are.
pub fn overloaded_body(what: &str) -> RawDocumentBuf {
    let mut body = error_body(
        code::RATE_LIMITED,
        "IngressRequestRateLimitExceeded",
        &format!("tenantgate: the tenant's {what} limit is reached; retry with backoff"),
    );
    let mut labels = bson::RawArrayBuf::new();
    labels.push("SystemOverloadedError");
    labels.push("RetryableError");
    body.append(bson::raw::cstr!("errorLabels"), labels);
    body
}

/// An OP_MSG reply to `request_id`.
pub fn op_msg(reply_id: i32, request_id: i32, body: RawDoc) -> Message {
    Message::new(reply_id, request_id, Payload::Msg(OpMsg::new(body)))
}

/// An OP_REPLY (legacy handshake) to `request_id`.
pub fn op_reply(reply_id: i32, request_id: i32, body: RawDoc, failure: bool) -> Message {
    let mut reply = OpReply::single(body);
    if failure {
        reply.flags = ReplyFlags::from_bits(ReplyFlags::QUERY_FAILURE).unwrap_or_default();
    }
    Message::new(reply_id, request_id, Payload::Reply(reply))
}
