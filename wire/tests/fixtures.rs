//! Round-trips frames captured from real drivers and servers (see `fixtures/README.md`):
//! decode → encode must reproduce every byte, and the decoded structure must be what the
//! driver sent.

use bytes::Bytes;
use tenantgate_wire::{Compressor, Limits, Message, OpCode, Payload, SectionRef};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

/// Decodes a fixture, re-encodes it, and asserts the bytes are identical.
fn round_trip(name: &str) -> Message {
    let bytes = fixture(name);
    let msg = Message::decode(bytes.clone(), &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(msg.encoded_len(), bytes.len(), "{name}: encoded_len");
    let out = msg.to_bytes().expect("encodes");
    assert_eq!(out, bytes, "{name}: re-encoded bytes differ");
    msg
}

#[test]
fn every_fixture_round_trips_byte_for_byte() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8 name");
        if name.ends_with(".bin") {
            round_trip(&name);
            count += 1;
        }
    }
    assert!(count >= 14, "expected the captured fixtures, found {count}");
}

#[test]
fn handshake_as_op_msg() {
    let msg = round_trip("handshake_op_msg.bin");
    let op = msg.as_op_msg().expect("OP_MSG");
    assert_eq!(op.command_name(), Some("isMaster"));
    assert_eq!(op.database(), Some("admin"));
    assert!(
        op.body().as_raw().get("client").expect("valid").is_some(),
        "driver metadata present"
    );
    let reply = round_trip("handshake_op_msg.reply.bin");
    assert_eq!(reply.response_to, msg.request_id);
    assert_eq!(
        reply
            .as_op_msg()
            .and_then(|m| m.body().as_raw().get_f64("ok").ok()),
        Some(1.0)
    );
}

#[test]
fn legacy_handshake_query_and_reply() {
    let msg = round_trip("handshake_op_query.bin");
    let Payload::Query(q) = &msg.payload else {
        panic!("expected OP_QUERY, got {:?}", msg.op_code())
    };
    assert_eq!(q.full_collection_name, "admin.$cmd");
    assert_eq!(q.number_to_return, -1);
    assert_eq!(q.command_name(), Some("isMaster"));
    let reply = round_trip("handshake_op_query.reply.bin");
    let Payload::Reply(r) = &reply.payload else {
        panic!("expected OP_REPLY, got {:?}", reply.op_code())
    };
    assert_eq!(reply.response_to, msg.request_id);
    assert_eq!(r.documents.len(), 1);
    assert_eq!(r.cursor_id, 0);
    assert!(
        r.documents[0]
            .as_raw()
            .get("maxWireVersion")
            .expect("valid")
            .is_some()
    );
}

#[test]
fn find_exposes_name_db_and_filter_without_decoding() {
    let msg = round_trip("find_op_msg.bin");
    let op = msg.as_op_msg().expect("OP_MSG");
    assert_eq!(op.command_name(), Some("find"));
    assert_eq!(op.database(), Some("fixtures"));
    assert_eq!(op.body().get_str("find"), Some("payments"));
    let filter = op
        .body()
        .as_raw()
        .get_document("filter")
        .expect("filter document");
    assert_eq!(filter.get_str("tenantId").ok(), Some("bank1"));
    assert!(op.sequences().is_empty());
    assert!(!op.flags().checksum_present());
}

#[test]
fn insert_carries_its_documents_in_a_sequence() {
    let msg = round_trip("insert_sequence_op_msg.bin");
    let op = msg.as_op_msg().expect("OP_MSG");
    assert_eq!(op.command_name(), Some("insert"));
    assert!(
        op.body()
            .as_raw()
            .get("documents")
            .expect("valid")
            .is_none(),
        "documents are not in the body"
    );
    let seq = op.sequence("documents").expect("a documents sequence");
    assert_eq!(seq.documents.len(), 3);
    for doc in &seq.documents {
        assert_eq!(doc.get_str("tenantId"), Some("bank1"));
        assert_eq!(doc.get_str("currency"), Some("EUR"));
    }
    assert!(
        matches!(op.sections().next(), Some(SectionRef::Body(_))),
        "drivers send the body first"
    );
}

#[test]
fn compressed_find_with_every_compressor() {
    for (name, compressor) in [
        ("find_zstd_op_compressed.bin", Compressor::Zstd),
        ("find_zlib_op_compressed.bin", Compressor::Zlib),
        ("find_snappy_op_compressed.bin", Compressor::Snappy),
    ] {
        let msg = round_trip(name);
        let Payload::Compressed(c) = &msg.payload else {
            panic!("{name}: not OP_COMPRESSED")
        };
        assert_eq!(c.compressor, compressor, "{name}");
        assert_eq!(c.original_op_code, OpCode::Msg, "{name}");
        let (inner, used) = msg
            .clone()
            .decompressed(&Limits::default())
            .expect("decompresses");
        assert_eq!(used, Some(compressor));
        assert_eq!(inner.request_id, msg.request_id);
        let op = inner.as_op_msg().expect("wrapped OP_MSG");
        assert_eq!(op.command_name(), Some("find"), "{name}");
        assert_eq!(
            inner.encoded_len() - 16,
            c.uncompressed_size as usize,
            "{name}"
        );
        // and back: compressing again yields a frame that decodes to the same message
        let again = inner.compressed(compressor).expect("compresses");
        let decoded = Message::decode(again.to_bytes().expect("encodes"), &Limits::default())
            .expect("decodes");
        assert_eq!(
            decoded
                .decompressed(&Limits::default())
                .expect("decompresses")
                .0,
            inner,
            "{name}"
        );
    }
}
