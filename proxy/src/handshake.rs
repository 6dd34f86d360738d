//! The proxy's own `hello` / `isMaster` reply.
//!
//! The proxy presents itself as one server and never forwards the upstream's topology: no
//! `hosts`, `setName`, `primary` or `me`, so a driver cannot discover the replica set members and
//! connect around it. When the upstream is a replica set member (or mongos) the proxy presents
//! itself as a mongos (`msg: "isdbgrid"`), so drivers keep sessions, retryable writes and
//! transactions — all on this one address; otherwise as a standalone. No `topologyVersion` is
//! sent, so drivers poll rather than stream `hello` (exhaust is never needed).

use bson::{RawArrayBuf, RawDocumentBuf, rawdoc};
use tenantgate_wire::Compressor;

use crate::upstream::UpstreamInfo;

/// The highest wire version the proxy speaks (MongoDB 8.0).
pub const MAX_WIRE_VERSION: i32 = 25;
/// The lowest (MongoDB 5.0): OP_MSG everywhere, OP_QUERY only for the handshake.
pub const MIN_WIRE_VERSION: i32 = 13;

/// Inputs of one handshake reply.
#[derive(Debug)]
pub struct HelloParams<'a> {
    /// The client used the legacy `isMaster` spelling (reply with `ismaster`).
    pub legacy: bool,
    /// The client connection's id.
    pub connection_id: i64,
    /// Compressors agreed with this client.
    pub compression: &'a [Compressor],
    /// `saslSupportedMechs` answer, when the client asked.
    pub sasl_mechs: Option<Vec<&'static str>>,
    /// `speculativeAuthenticate` answer, when the client asked and the first step succeeded.
    pub speculative: Option<RawDocumentBuf>,
    /// What the upstream can do.
    pub upstream: &'a UpstreamInfo,
}

/// Builds the reply body.
pub fn hello_reply(p: &HelloParams<'_>) -> RawDocumentBuf {
    let mut reply = if p.legacy {
        rawdoc! { "ismaster": true }
    } else {
        rawdoc! { "isWritablePrimary": true }
    };
    reply.append(bson::raw::cstr!("helloOk"), true);
    if p.upstream.supports_transactions {
        reply.append(bson::raw::cstr!("msg"), "isdbgrid");
    }
    reply.append(bson::raw::cstr!("maxBsonObjectSize"), 16 * 1024 * 1024);
    reply.append(
        bson::raw::cstr!("maxMessageSizeBytes"),
        tenantgate_wire::MAX_MESSAGE_SIZE_BYTES as i32,
    );
    reply.append(bson::raw::cstr!("maxWriteBatchSize"), 100_000);
    reply.append(bson::raw::cstr!("localTime"), bson::DateTime::now());
    if let Some(minutes) = p.upstream.session_timeout_minutes {
        reply.append(bson::raw::cstr!("logicalSessionTimeoutMinutes"), minutes);
    }
    reply.append(bson::raw::cstr!("connectionId"), p.connection_id);
    reply.append(
        bson::raw::cstr!("minWireVersion"),
        MIN_WIRE_VERSION.max(p.upstream.min_wire_version),
    );
    reply.append(
        bson::raw::cstr!("maxWireVersion"),
        MAX_WIRE_VERSION.min(p.upstream.max_wire_version),
    );
    reply.append(bson::raw::cstr!("readOnly"), false);
    if !p.compression.is_empty() {
        let mut names = RawArrayBuf::new();
        for c in p.compression {
            names.push(c.name());
        }
        reply.append(bson::raw::cstr!("compression"), names);
    }
    if let Some(mechs) = &p.sasl_mechs {
        let mut names = RawArrayBuf::new();
        for m in mechs {
            names.push(*m);
        }
        reply.append(bson::raw::cstr!("saslSupportedMechs"), names);
    }
    if let Some(spec) = &p.speculative {
        reply.append(bson::raw::cstr!("speculativeAuthenticate"), spec.clone());
    }
    reply.append(bson::raw::cstr!("ok"), 1.0);
    reply
}

/// The client's compressors that the proxy supports, in the client's order of preference.
pub fn negotiate(requested: impl IntoIterator<Item = String>) -> Vec<Compressor> {
    let mut out = Vec::new();
    for name in requested {
        if let Some(c) = Compressor::from_name(&name)
            && c != Compressor::Noop
            && !out.contains(&c)
        {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_hides_the_topology_and_advertises_what_was_agreed() {
        let info = UpstreamInfo {
            max_wire_version: 27,
            min_wire_version: 0,
            supports_transactions: true,
            session_timeout_minutes: Some(30),
        };
        let reply = hello_reply(&HelloParams {
            legacy: false,
            connection_id: 3,
            compression: &[Compressor::Zstd],
            sasl_mechs: Some(vec!["SCRAM-SHA-256"]),
            speculative: None,
            upstream: &info,
        });
        let d = bson::Document::try_from(reply.as_ref()).expect("decodes");
        for hidden in ["hosts", "setName", "primary", "me", "topologyVersion"] {
            assert!(d.get(hidden).is_none(), "{hidden} must not be advertised");
        }
        assert_eq!(d.get_str("msg").ok(), Some("isdbgrid"));
        assert_eq!(d.get_i32("maxWireVersion").ok(), Some(MAX_WIRE_VERSION));
        assert_eq!(d.get_i32("minWireVersion").ok(), Some(MIN_WIRE_VERSION));
        assert_eq!(d.get_array("compression").map(|a| a.len()).ok(), Some(1));
        assert_eq!(
            negotiate(["snappy", "bogus", "zstd", "snappy", "noop"].map(String::from)),
            vec![Compressor::Snappy, Compressor::Zstd]
        );
    }
}
