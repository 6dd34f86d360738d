//! The wire codec's cost: decode and re-encode of the messages the proxy handles most.
//!
//! These figures are the floor the policy engine's rewrite cost is measured against
//! (`benches/policy.rs`): a rewrite can never be cheaper than decoding and re-encoding.
//!
//! ```text
//! cargo bench --bench wire
//! ```

use std::hint::black_box;

use bson::{doc, rawdoc};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tenantgate_wire::{Compressor, Limits, Message, OpMsg, Payload, RawDoc, split_frame};

/// The `find` the Rust driver sent during fixture capture (filter, limit, lsid, $db).
fn find_frame() -> Bytes {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/wire/tests/fixtures/find_op_msg.bin"
    );
    Bytes::from(std::fs::read(path).expect("wire fixture present"))
}

/// An `insert` of 100 payment documents in a kind-1 `documents` sequence, as drivers send it.
fn insert_100_frame() -> Bytes {
    let body = rawdoc! {
        "insert": "payments", "ordered": true, "$db": "payments",
        "lsid": { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] } },
    };
    let docs = (0..100)
        .map(|i| {
            let d = doc! {
                "_id": bson::oid::ObjectId::from_bytes([i as u8; 12]),
                "tenantId": "bank1",
                "amount": 12_500_i64 + i64::from(i),
                "currency": "EUR",
                "status": "pending",
                "customer": { "id": format!("cus_{i:06}"), "name": "Ada Lovelace", "country": "GB" },
                "description": "Invoice 2026-11 settlement",
                "metadata": { "orderId": format!("ord-{i}"), "channel": "api" },
                "createdAt": bson::DateTime::from_millis(1_795_000_000_000 + i64::from(i)),
            };
            RawDoc::try_from(&d).expect("valid document")
        })
        .collect();
    let msg =
        OpMsg::new(RawDoc::from_buf(body).expect("valid body")).with_sequence("documents", docs);
    Message::new(1, 0, Payload::Msg(msg))
        .to_bytes()
        .expect("encodes")
}

fn bench_message(c: &mut Criterion, name: &str, frame: Bytes) {
    let limits = Limits::default();
    let mut group = c.benchmark_group(format!("wire/{name}"));
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| Message::decode(black_box(frame.clone()), &limits).expect("decodes"))
    });
    let mut out = BytesMut::with_capacity(frame.len());
    group.bench_function("decode_encode", |b| {
        b.iter(|| {
            out.clear();
            let msg = Message::decode(black_box(frame.clone()), &limits).expect("decodes");
            msg.encode(&mut out).expect("encodes");
            black_box(&out);
        })
    });
    let mut stream = BytesMut::with_capacity(frame.len());
    group.bench_function("split_decode_encode", |b| {
        b.iter(|| {
            stream.extend_from_slice(&frame);
            let f = split_frame(&mut stream, &limits)
                .expect("valid")
                .expect("complete");
            out.clear();
            Message::decode(f, &limits)
                .expect("decodes")
                .encode(&mut out)
                .expect("encodes");
            black_box(&out);
        })
    });
    group.finish();
}

fn wire(c: &mut Criterion) {
    bench_message(c, "find", find_frame());
    bench_message(c, "insert_100_seq", insert_100_frame());

    let limits = Limits::default();
    let find = Message::decode(find_frame(), &limits).expect("decodes");
    let mut group = c.benchmark_group("wire/find_compressed");
    for compressor in [Compressor::Snappy, Compressor::Zlib, Compressor::Zstd] {
        let frame = find
            .compressed(compressor)
            .expect("compresses")
            .to_bytes()
            .expect("encodes");
        group.bench_function(format!("{compressor}_decode_decompress"), |b| {
            b.iter(|| {
                Message::decode(black_box(frame.clone()), &limits)
                    .expect("decodes")
                    .decompressed(&limits)
                    .expect("ok")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
