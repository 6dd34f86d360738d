//! Property tests: every message we can encode decodes to the same value, and no input —
//! random bytes, or a valid frame with bytes flipped, cut or spliced — panics the decoder.

use bson::{Bson, Document, RawDocumentBuf};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tenantgate_wire::{
    Compressor, DocumentSequence, Limits, Message, MsgFlags, OpMsg, OpQuery, OpReply, Payload,
    QueryFlags, RawDoc, ReplyFlags, Section, split_frame,
};

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z_$][a-zA-Z0-9_.]{0,12}", "\\PC{0,6}"]
}

fn arb_leaf() -> impl Strategy<Value = Bson> {
    prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        "\\PC{0,24}".prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        any::<[u8; 12]>().prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))),
        any::<i64>().prop_map(|t| Bson::DateTime(bson::DateTime::from_millis(t))),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(|bytes| Bson::Binary(
            bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes
            }
        )),
    ]
}

fn arb_bson() -> impl Strategy<Value = Bson> {
    arb_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Bson::Array),
            proptest::collection::vec((arb_key(), inner), 0..6)
                .prop_map(|kv| Bson::Document(kv.into_iter().collect::<Document>())),
        ]
    })
}

fn arb_doc() -> impl Strategy<Value = RawDoc> {
    proptest::collection::vec((arb_key(), arb_bson()), 0..8).prop_map(|kv| {
        let d: Document = kv.into_iter().collect();
        let raw = RawDocumentBuf::try_from(&d).expect("generated documents encode");
        RawDoc::from_buf(raw).expect("bson crate output validates")
    })
}

fn arb_op_msg() -> impl Strategy<Value = OpMsg> {
    let seq = ("[a-zA-Z]{1,10}", proptest::collection::vec(arb_doc(), 0..5)).prop_map(
        |(identifier, documents)| DocumentSequence {
            identifier,
            documents,
        },
    );
    (
        any::<(bool, bool, bool)>(),
        arb_doc(),
        proptest::collection::vec(seq, 0..3),
        any::<prop::sample::Index>(),
    )
        .prop_map(|((crc, more, exhaust), body, seqs, at)| {
            let flags = MsgFlags::default()
                .with(MsgFlags::CHECKSUM_PRESENT, crc)
                .with(MsgFlags::MORE_TO_COME, more)
                .with(MsgFlags::EXHAUST_ALLOWED, exhaust);
            let mut sections: Vec<Section> = seqs.into_iter().map(Section::Sequence).collect();
            let at = at.index(sections.len() + 1);
            sections.insert(at, Section::Body(body));
            OpMsg::from_sections(flags, sections).expect("one body")
        })
}

fn arb_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        arb_op_msg().prop_map(Payload::Msg),
        (
            0u32..=0x7f,
            "[a-z]{1,8}\\.\\$?[a-z]{1,8}",
            any::<i32>(),
            any::<i32>(),
            arb_doc(),
            proptest::option::of(arb_doc())
        )
            .prop_map(|(f, name, skip, ret, query, sel)| Payload::Query(OpQuery {
                flags: QueryFlags::from_bits(f << 1).expect("known bits"),
                full_collection_name: name,
                number_to_skip: skip,
                number_to_return: ret,
                query,
                return_fields_selector: sel,
            })),
        (
            0u32..16,
            any::<i64>(),
            any::<i32>(),
            proptest::collection::vec(arb_doc(), 0..4)
        )
            .prop_map(
                |(f, cursor_id, starting_from, documents)| Payload::Reply(OpReply {
                    flags: ReplyFlags::from_bits(f).expect("known bits"),
                    cursor_id,
                    starting_from,
                    documents
                })
            ),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (any::<i32>(), any::<i32>(), arb_payload()).prop_map(|(id, to, p)| Message::new(id, to, p))
}

fn arb_compressor() -> impl Strategy<Value = Compressor> {
    prop_oneof![
        Just(Compressor::Noop),
        Just(Compressor::Snappy),
        Just(Compressor::Zlib),
        Just(Compressor::Zstd)
    ]
}

/// Decodes everything a frame could lead to, including decompression; must never panic, and
/// whatever decodes must re-encode to exactly the bytes it came from (the encoding is canonical,
/// so a forwarded message can never say something its decoded form did not).
fn decode_all(bytes: Bytes) {
    let limits = Limits::default();
    if let Ok(msg) = Message::decode(bytes.clone(), &limits) {
        assert_eq!(msg.to_bytes().expect("decoded messages encode"), bytes);
        let _ = msg.decompressed(&limits);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn encode_then_decode_is_identity(msg in arb_message()) {
        let bytes = msg.to_bytes().expect("encodes");
        prop_assert_eq!(bytes.len(), msg.encoded_len());
        let back = Message::decode(bytes.clone(), &Limits::default()).expect("decodes");
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.to_bytes().expect("re-encodes"), bytes);
    }

    #[test]
    fn compressed_messages_decode_to_the_same_message(msg in arb_message(), c in arb_compressor()) {
        let limits = Limits::default();
        let wire = msg.compressed(c).expect("compresses").to_bytes().expect("encodes");
        let (back, used) = Message::decode(wire, &limits).expect("decodes").decompressed(&limits).expect("decompresses");
        prop_assert_eq!(used, Some(c));
        prop_assert_eq!(back, msg);
    }

    #[test]
    fn frames_split_the_same_however_the_bytes_arrive(msgs in proptest::collection::vec(arb_message(), 1..4), cut in 1usize..64) {
        let mut stream = BytesMut::new();
        for m in &msgs {
            m.encode(&mut stream).expect("encodes");
        }
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(cut) {
            buf.extend_from_slice(chunk);
            while let Some(frame) = split_frame(&mut buf, &Limits::default()).expect("valid stream") {
                out.push(Message::decode(frame, &Limits::default()).expect("decodes"));
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, msgs);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(Bytes::from(bytes.clone()));
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = split_frame(&mut buf, &Limits::default());
    }

    #[test]
    fn arbitrary_bytes_behind_a_plausible_header_never_panic(op in prop_oneof![Just(1i32), Just(2004), Just(2012), Just(2013)], body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut frame = Vec::with_capacity(16 + body.len());
        frame.extend_from_slice(&((16 + body.len()) as i32).to_le_bytes());
        frame.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        frame.extend_from_slice(&op.to_le_bytes());
        frame.extend_from_slice(&body);
        decode_all(Bytes::from(frame));
    }

    #[test]
    fn damaged_valid_frames_never_panic(msg in arb_message(), c in proptest::option::of(arb_compressor()), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), cut in any::<prop::sample::Index>()) {
        let msg = match c { Some(c) => msg.compressed(c).expect("compresses"), None => msg };
        let mut bytes = msg.to_bytes().expect("encodes").to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            // keep the length field honest so the damage reaches the payload decoders
            if i >= 4 { bytes[i] = value; }
        }
        decode_all(Bytes::from(bytes.clone()));
        // a truncated copy with a consistent header
        let keep = 16 + cut.index(bytes.len() - 15);
        let mut short = bytes[..keep.min(bytes.len())].to_vec();
        let len = short.len() as i32;
        short[..4].copy_from_slice(&len.to_le_bytes());
        decode_all(Bytes::from(short));
    }
}
