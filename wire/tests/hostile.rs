//! Hand-crafted hostile and malformed messages: each must be refused with the right typed error.

use bson::rawdoc;
use bytes::{BufMut, Bytes, BytesMut};
use tenantgate_wire::{
    BsonFault, Compressor, Limits, Message, MsgFlags, OpCompressed, OpMsg, OpReply, Payload,
    RawDoc, WireError,
};

fn doc(d: bson::RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(d).expect("valid document")
}

fn ping() -> Message {
    Message::new(
        7,
        0,
        Payload::Msg(OpMsg::new(doc(rawdoc! { "ping": 1, "$db": "admin" }))),
    )
}

fn decode(bytes: impl Into<Bytes>) -> Result<Message, WireError> {
    Message::decode(bytes.into(), &Limits::default())
}

/// A raw OP_MSG frame from flag bits and already-encoded sections.
fn raw_op_msg(flags: u32, sections: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32_le((16 + 4 + sections.len()) as i32);
    b.put_i32_le(1);
    b.put_i32_le(0);
    b.put_i32_le(2013);
    b.put_u32_le(flags);
    b.put_slice(sections);
    b
}

fn body_section(d: &RawDoc) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(d.as_bytes());
    v
}

#[test]
fn checksum_is_verified_and_recomputed() {
    let mut op = OpMsg::new(doc(
        rawdoc! { "find": "payments", "filter": { "tenantId": "bank1" }, "$db": "p" },
    ));
    op.set_flags(MsgFlags::default().with(MsgFlags::CHECKSUM_PRESENT, true))
        .expect("known flag");
    let msg = Message::new(1, 0, Payload::Msg(op));
    let bytes = msg.to_bytes().expect("encodes");
    assert_eq!(decode(bytes.clone()).expect("valid checksum"), msg);
    assert_eq!(
        &bytes[bytes.len() - 4..],
        &crc32c::crc32c(&bytes[..bytes.len() - 4]).to_le_bytes()
    );

    // Tamper with the filter value: "bank1" -> "bank2". The checksum no longer matches.
    let mut tampered = bytes.to_vec();
    let at = tampered
        .windows(5)
        .position(|w| w == b"bank1")
        .expect("value present");
    tampered[at + 4] = b'2';
    assert!(matches!(
        decode(tampered),
        Err(WireError::ChecksumMismatch { .. })
    ));

    // A rewrite re-encodes with a fresh checksum that verifies.
    let Payload::Msg(mut op) = msg.payload else {
        unreachable!()
    };
    op.set_body(doc(
        rawdoc! { "find": "payments", "filter": { "tenantId": "bank2" }, "$db": "p" },
    ));
    let rewritten = Message::new(1, 0, Payload::Msg(op))
        .to_bytes()
        .expect("encodes");
    assert!(decode(rewritten).is_ok());
}

#[test]
fn checksum_flag_without_room_for_a_checksum_is_truncated() {
    let frame = raw_op_msg(MsgFlags::CHECKSUM_PRESENT, &[]);
    assert!(matches!(decode(frame), Err(WireError::Truncated { .. })));
}

#[test]
fn unknown_required_flag_bits_are_refused() {
    let body = body_section(&doc(rawdoc! { "ping": 1 }));
    assert!(matches!(
        decode(raw_op_msg(1 << 3, &body)),
        Err(WireError::UnknownFlags { op: "OP_MSG", .. })
    ));
    assert!(
        decode(raw_op_msg(1 << 20, &body)).is_ok(),
        "optional bits are ignored, as the spec requires"
    );
}

#[test]
fn section_errors() {
    let d = doc(rawdoc! { "insert": "c", "$db": "p" });
    // no body
    assert_eq!(
        decode(raw_op_msg(0, &[])),
        Err(WireError::BodySectionCount(0))
    );
    // two bodies
    let mut two = body_section(&d);
    two.extend(body_section(&d));
    assert_eq!(
        decode(raw_op_msg(0, &two)),
        Err(WireError::BodySectionCount(2))
    );
    // unknown kind
    let mut kind2 = body_section(&d);
    kind2.push(2);
    assert_eq!(
        decode(raw_op_msg(0, &kind2)),
        Err(WireError::UnknownSectionKind(2))
    );
    // sequence whose size runs past the message
    let mut seq = body_section(&d);
    seq.push(1);
    seq.extend_from_slice(&1000i32.to_le_bytes());
    seq.extend_from_slice(b"documents\0");
    assert!(matches!(
        decode(raw_op_msg(0, &seq)),
        Err(WireError::Truncated { .. })
    ));
    // sequence whose size is negative or too small for the identifier
    for size in [-1i32, 0, 4] {
        let mut s = body_section(&d);
        s.push(1);
        s.extend_from_slice(&size.to_le_bytes());
        assert!(decode(raw_op_msg(0, &s)).is_err(), "size {size}");
    }
    // a document inside the sequence that overruns the sequence
    let inner = doc(rawdoc! { "a": 1 });
    let mut s = body_section(&d);
    s.push(1);
    let declared = 4 + 2 + inner.len() - 3; // cuts the document short
    s.extend_from_slice(&(declared as i32).to_le_bytes());
    s.extend_from_slice(b"d\0");
    s.extend_from_slice(&inner.as_bytes()[..inner.len() - 3]);
    assert!(decode(raw_op_msg(0, &s)).is_err());
    // identifier without a terminator
    let mut s = body_section(&d);
    s.push(1);
    s.extend_from_slice(&7i32.to_le_bytes());
    s.extend_from_slice(b"abc");
    assert!(matches!(
        decode(raw_op_msg(0, &s)),
        Err(WireError::InvalidCString { .. })
    ));
}

#[test]
fn bad_bson_in_the_body_is_refused() {
    let mut body = body_section(&doc(
        rawdoc! { "find": "c", "filter": { "tenantId": "bank1" } },
    ));
    let at = body
        .iter()
        .position(|&b| b == 0x03)
        .expect("embedded document type byte");
    body[at] = 0x42;
    let err = decode(raw_op_msg(0, &body)).expect_err("unknown element type");
    assert!(
        matches!(
            err,
            WireError::InvalidBson {
                fault: BsonFault::UnknownElementType(0x42),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn deep_nesting_and_oversized_documents_are_refused() {
    let mut d = bson::doc! { "x": 1 };
    for _ in 0..250 {
        d = bson::doc! { "$and": [d] };
    }
    let deep = bson::RawDocumentBuf::try_from(&d).expect("encodes");
    let frame = raw_op_msg(0, &{
        let mut v = vec![0u8];
        v.extend_from_slice(deep.as_bytes());
        v
    });
    assert!(matches!(
        decode(frame),
        Err(WireError::InvalidBson {
            fault: BsonFault::TooDeep,
            ..
        })
    ));

    let small = Limits {
        max_document_size: 64,
        ..Limits::default()
    };
    let big = doc(rawdoc! { "pad": "x".repeat(100) });
    let frame = raw_op_msg(0, &body_section(&big));
    assert!(matches!(
        Message::decode(frame.freeze(), &small),
        Err(WireError::DocumentTooLarge { .. })
    ));
}

#[test]
fn header_lengths_must_match_the_frame() {
    let mut bytes = ping().to_bytes().expect("encodes").to_vec();
    bytes.push(0);
    assert!(matches!(
        decode(bytes.clone()),
        Err(WireError::LengthMismatch { .. })
    ));
    bytes.truncate(10);
    assert!(matches!(
        decode(bytes),
        Err(WireError::MessageTooShort { .. })
    ));
    let mut negative = ping().to_bytes().expect("encodes").to_vec();
    negative[..4].copy_from_slice(&(-20i32).to_le_bytes());
    assert!(matches!(
        decode(negative),
        Err(WireError::MessageTooShort { .. })
    ));
}

#[test]
fn legacy_crud_opcodes_are_refused() {
    for code in [2001i32, 2002, 2005, 2006, 2007, 2010, 2011] {
        let mut bytes = ping().to_bytes().expect("encodes").to_vec();
        bytes[12..16].copy_from_slice(&code.to_le_bytes());
        assert_eq!(decode(bytes), Err(WireError::UnsupportedOpCode(code)));
    }
}

#[test]
fn op_reply_count_must_match() {
    let reply = Message::new(
        1,
        7,
        Payload::Reply(OpReply::single(doc(rawdoc! { "ok": 1.0 }))),
    );
    let mut bytes = reply.to_bytes().expect("encodes").to_vec();
    bytes[16 + 16..16 + 20].copy_from_slice(&5i32.to_le_bytes());
    assert!(matches!(
        decode(bytes),
        Err(WireError::ReplyCountMismatch {
            declared: 5,
            actual: 1
        })
    ));
}

#[test]
fn op_query_with_trailing_garbage_is_refused() {
    let bytes = Bytes::from(
        std::fs::read(format!(
            "{}/tests/fixtures/handshake_op_query.bin",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture"),
    );
    let mut padded = bytes.to_vec();
    padded.extend_from_slice(&[1, 2, 3]);
    let len = padded.len() as i32;
    padded[..4].copy_from_slice(&len.to_le_bytes());
    assert!(decode(padded).is_err());
    let mut reserved = bytes.to_vec();
    reserved[16] |= 1; // reserved bit 0
    assert!(matches!(
        decode(reserved),
        Err(WireError::UnknownFlags { op: "OP_QUERY", .. })
    ));
}

fn compressed_frame(original: i32, size: i32, compressor: u8, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_i32_le((16 + 9 + payload.len()) as i32);
    b.put_i32_le(3);
    b.put_i32_le(0);
    b.put_i32_le(2012);
    b.put_i32_le(original);
    b.put_i32_le(size);
    b.put_u8(compressor);
    b.put_slice(payload);
    b
}

#[test]
fn decompression_bombs_are_refused_before_decompressing() {
    // 40 MB of zeros compresses to a few kilobytes.
    let zeros = vec![0u8; 40_000_000];
    let packed = Compressor::Zstd.compress(&zeros).expect("compresses");
    assert!(packed.len() < 100_000);
    let tight = Limits {
        max_message_size: 1_000_000,
        ..Limits::default()
    };
    let frame = compressed_frame(2013, 40_000_000, 3, &packed).freeze();
    let err = Message::decode(frame, &tight).expect_err("over the limit");
    assert!(
        matches!(err, WireError::InvalidUncompressedSize { .. }),
        "{err}"
    );

    // Declared under the limit but the stream expands further: stops one byte past and fails.
    let frame = compressed_frame(2013, 1_000, 3, &packed).freeze();
    let msg = decode(frame).expect("frame itself is well-formed");
    assert!(matches!(
        msg.decompressed(&Limits::default()),
        Err(WireError::Decompression { .. })
    ));

    // Negative and impossible sizes.
    assert!(matches!(
        decode(compressed_frame(2013, -1, 3, &packed)),
        Err(WireError::InvalidUncompressedSize { .. })
    ));
    assert!(matches!(
        decode(compressed_frame(2013, 48_000_000, 1, &[0; 8])),
        Err(WireError::InvalidUncompressedSize { .. })
    ));
    // snappy cannot expand 8 bytes into 10 MB: refused by ratio before allocating
    let frame = decode(compressed_frame(2013, 10_000_000, 1, &[0; 8])).expect("well-formed frame");
    assert!(matches!(
        frame.decompressed(&Limits::default()),
        Err(WireError::InvalidUncompressedSize { .. })
    ));
}

#[test]
fn compressed_header_errors() {
    let inner = ping();
    let OpCompressed {
        compressed,
        uncompressed_size,
        ..
    } = OpCompressed::compress(&inner, Compressor::Zlib).expect("compresses");
    assert_eq!(
        decode(compressed_frame(2013, uncompressed_size, 9, &compressed)),
        Err(WireError::UnknownCompressor(9))
    );
    assert_eq!(
        decode(compressed_frame(2012, uncompressed_size, 2, &compressed)),
        Err(WireError::NestedCompression)
    );
    assert_eq!(
        decode(compressed_frame(2002, uncompressed_size, 2, &compressed)),
        Err(WireError::UnsupportedOpCode(2002))
    );
    let ok = decode(compressed_frame(2013, uncompressed_size, 2, &compressed)).expect("valid");
    assert_eq!(
        ok.decompressed(&Limits::default())
            .expect("decompresses")
            .0
            .payload,
        inner.payload
    );
    // wrapped bytes that are not a valid OP_MSG
    let junk = Compressor::Zlib.compress(&[9u8; 40]).expect("compresses");
    let msg = decode(compressed_frame(2013, 40, 2, &junk)).expect("frame is well-formed");
    assert!(msg.decompressed(&Limits::default()).is_err());
}

#[test]
fn compressed_replies_round_trip_in_both_directions() {
    let reply = Message::new(
        9,
        7,
        Payload::Msg(OpMsg::new(doc(rawdoc! { "ok": 1.0, "n": 3 }))),
    );
    for c in [
        Compressor::Noop,
        Compressor::Snappy,
        Compressor::Zlib,
        Compressor::Zstd,
    ] {
        let wire = reply
            .compressed(c)
            .expect("compresses")
            .to_bytes()
            .expect("encodes");
        let back = decode(wire).expect("decodes");
        assert_eq!((back.request_id, back.response_to), (9, 7));
        assert_eq!(
            back.decompressed(&Limits::default()).expect("decompresses"),
            (reply.clone(), Some(c))
        );
    }
}

#[test]
fn replies_from_a_trusted_upstream_are_checked_at_their_frame_only() {
    // {ok: 1.0, a: {b: 1}} with the inner document's length one too large: the outer document
    // is intact, the nested one is not.
    let mut body = rawdoc! { "ok": 1.0, "a": { "b": 1_i32 } }.into_bytes();
    let inner_len_at = body.len() - 1 - 12; // the inner document is 12 bytes, before the NUL
    assert_eq!(body[inner_len_at], 12);
    body[inner_len_at] = 13;
    let mut section = vec![0u8];
    section.extend_from_slice(&body);
    let frame = raw_op_msg(0, &section).freeze();

    assert!(
        matches!(
            Message::decode(frame.clone(), &Limits::default()),
            Err(WireError::InvalidBson { .. })
        ),
        "untrusted input is walked element by element"
    );
    let trusted = Limits {
        validate_documents: false,
        ..Limits::default()
    };
    let msg = Message::decode(frame, &trusted).expect("the frame itself is intact");
    let Payload::Msg(op) = msg.payload else {
        panic!("an OP_MSG")
    };
    let top = op.body().as_raw();
    assert!(
        tenantgate_wire::element::get(top, "ok")
            .expect("ok reads")
            .is_some()
    );
    assert!(
        tenantgate_wire::element::get(top, "a").is_err(),
        "the broken element is an error for its reader, not a panic"
    );

    // The frame checks still hold: a body whose length prefix disagrees is refused.
    let mut short = section.clone();
    short[1] = short[1].wrapping_add(1);
    assert!(Message::decode(raw_op_msg(0, &short).freeze(), &trusted).is_err());
    // And so is one without its terminating NUL.
    let mut unterminated = section;
    let last = unterminated.len() - 1;
    unterminated[last] = 1;
    assert!(Message::decode(raw_op_msg(0, &unterminated).freeze(), &trusted).is_err());
}
