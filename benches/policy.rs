//! The policy engine's cost: decode → decide → encode of the commands the proxy rewrites most,
//! each next to the wire floor (decode → encode of the same frame) so the ratio can be read off.
//!
//! ```text
//! cargo bench --bench policy
//! ```
//! Goals (issue #3): (a) ≤ 2 µs median; every case ≤ 2× its floor.

use std::hint::black_box;

use bson::{DateTime, RawDocumentBuf, doc, oid::ObjectId, rawdoc};
use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use tenantgate_policy::{Context, Decision, PolicyConfig, Principal, TenantId, decide};
use tenantgate_wire::{Limits, Message, MsgFlags, OpMsg, Payload, RawDoc};

fn raw(d: RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(d).expect("valid document")
}

/// Fields every driver adds to a command.
fn envelope(mut body: RawDocumentBuf) -> RawDocumentBuf {
    body.append(bson::raw::cstr!("lsid"), rawdoc! { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] } });
    body.append(
        bson::raw::cstr!("$clusterTime"),
        rawdoc! { "clusterTime": bson::Timestamp { time: 1, increment: 1 }, "signature": { "hash": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20] }, "keyId": 0_i64 } },
    );
    body.append(bson::raw::cstr!("$db"), "payments");
    body
}

fn frame(msg: OpMsg) -> Bytes {
    Message::new(1, 0, Payload::Msg(msg))
        .to_bytes()
        .expect("encodes")
}

fn find_by_id() -> Bytes {
    let id = ObjectId::from_bytes([1; 12]);
    frame(OpMsg::new(raw(envelope(
        rawdoc! { "find": "payments", "filter": { "_id": id }, "limit": 1_i64, "singleBatch": true },
    ))))
}

fn find_nested_or() -> Bytes {
    frame(OpMsg::new(raw(envelope(rawdoc! {
        "find": "payments",
        "filter": {
            "$or": [
                { "status": "pending", "amount": { "$gte": 10_000_i64 } },
                { "$and": [ { "currency": { "$in": ["EUR", "GBP"] } }, { "customer.country": { "$ne": "US" } } ] },
                { "metadata.channel": "api", "createdAt": { "$gt": DateTime::from_millis(1_790_000_000_000) } },
            ]
        },
        "sort": { "createdAt": -1 }, "limit": 50_i64,
    }))))
}

fn aggregate_lookups_facet() -> Bytes {
    frame(OpMsg::new(raw(envelope(rawdoc! {
        "aggregate": "payments",
        "pipeline": [
            { "$match": { "status": "succeeded" } },
            { "$lookup": { "from": "customers", "localField": "customerId", "foreignField": "_id", "as": "customer" } },
            { "$lookup": { "from": "refunds", "let": { "pid": "$_id" }, "pipeline": [ { "$match": { "$expr": { "$eq": ["$paymentId", "$$pid"] } } } ], "as": "refunds" } },
            { "$facet": {
                "byCurrency": [ { "$group": { "_id": "$currency", "total": { "$sum": "$amount" } } } ],
                "recent": [ { "$sort": { "createdAt": -1 } }, { "$limit": 10 } ],
            } },
        ],
        "cursor": {},
    }))))
}

fn insert_100() -> Bytes {
    let docs = (0..100)
        .map(|i| {
            let d = doc! {
                "_id": ObjectId::from_bytes([i as u8; 12]),
                "amount": 12_500_i64 + i64::from(i), "currency": "EUR", "status": "pending",
                "customer": { "id": format!("cus_{i:06}"), "name": "Ada Lovelace", "country": "GB" },
                "description": "Invoice 2026-11 settlement",
                "metadata": { "orderId": format!("ord-{i}"), "channel": "api" },
                "createdAt": DateTime::from_millis(1_795_000_000_000 + i64::from(i)),
            };
            RawDoc::try_from(&d).expect("valid")
        })
        .collect();
    frame(
        OpMsg::new(raw(envelope(
            rawdoc! { "insert": "payments", "ordered": true },
        )))
        .with_sequence("documents", docs),
    )
}

fn upsert() -> Bytes {
    let stmt = rawdoc! {
        "q": { "_id": ObjectId::from_bytes([2; 12]) },
        "u": { "$set": { "status": "succeeded", "settledAt": DateTime::from_millis(1_795_000_000_000) }, "$inc": { "attempts": 1 } },
        "upsert": true, "multi": false,
    };
    frame(
        OpMsg::new(raw(envelope(
            rawdoc! { "update": "payments", "ordered": true },
        )))
        .with_sequence("updates", vec![raw(stmt)]),
    )
}

fn policy(c: &mut Criterion) {
    let config: PolicyConfig = PolicyConfig {
        databases: vec!["payments".into()],
        ..PolicyConfig::default()
    };
    let principal = Principal::tenant("svc-bank1", TenantId::new("bank1"));
    let ctx = Context {
        principal: &principal,
        config: &config,
        now: DateTime::from_millis(1_795_000_000_000),
    };
    let limits = Limits::default();
    let mut out = BytesMut::with_capacity(64 * 1024);

    for (name, frame) in [
        ("a_find_by_id", find_by_id()),
        ("b_find_nested_or", find_nested_or()),
        ("c_aggregate_2_lookups_facet", aggregate_lookups_facet()),
        ("d_insert_100_seq", insert_100()),
        ("e_upsert", upsert()),
    ] {
        let mut group = c.benchmark_group(format!("policy/{name}"));
        group.bench_function("floor_decode_encode", |b| {
            b.iter(|| {
                out.clear();
                Message::decode(black_box(frame.clone()), &limits)
                    .expect("decodes")
                    .encode(&mut out)
                    .expect("encodes");
            })
        });
        group.bench_function("decide_only", |b| {
            let msg = Message::decode(frame.clone(), &limits).expect("decodes");
            let op = msg.as_op_msg().expect("op_msg").clone();
            b.iter(|| black_box(decide(black_box(&op), &ctx)))
        });
        group.bench_function("rewrite_decode_decide_encode", |b| {
            b.iter(|| {
                out.clear();
                let msg = Message::decode(black_box(frame.clone()), &limits).expect("decodes");
                let Payload::Msg(op) = &msg.payload else {
                    unreachable!()
                };
                let Decision::Forward(fwd) = decide(op, &ctx).decision else {
                    panic!("{name} must be forwarded")
                };
                let mut sections = vec![tenantgate_wire::Section::Body(fwd.body)];
                sections.extend(
                    fwd.sequences
                        .into_iter()
                        .map(tenantgate_wire::Section::Sequence),
                );
                let rewritten =
                    OpMsg::from_sections(MsgFlags::default(), sections).expect("one body");
                Message::new(msg.request_id, 0, Payload::Msg(rewritten))
                    .encode(&mut out)
                    .expect("encodes");
            })
        });
        group.finish();
    }
}

criterion_group!(benches, policy);
criterion_main!(benches);
