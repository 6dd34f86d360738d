//! Commands the policy benchmarks rewrite, shared by `benches/policy.rs` and
//! `policy/examples/policy_cost.rs` (instruction counts under callgrind).
#![allow(dead_code)]

use bson::{DateTime, RawDocumentBuf, doc, oid::ObjectId, rawdoc};
use bytes::Bytes;
use tenantgate_wire::{Message, OpMsg, Payload, RawDoc};

pub fn raw(d: RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(d).expect("valid document")
}

/// Fields every driver adds to a command.
pub fn envelope(mut body: RawDocumentBuf) -> RawDocumentBuf {
    body.append(bson::raw::cstr!("lsid"), rawdoc! { "id": bson::Binary { subtype: bson::spec::BinarySubtype::Uuid, bytes: vec![7; 16] } });
    body.append(
        bson::raw::cstr!("$clusterTime"),
        rawdoc! { "clusterTime": bson::Timestamp { time: 1, increment: 1 }, "signature": { "hash": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![0; 20] }, "keyId": 0_i64 } },
    );
    body.append(bson::raw::cstr!("$db"), "payments");
    body
}

pub fn frame(msg: OpMsg) -> Bytes {
    Message::new(1, 0, Payload::Msg(msg))
        .to_bytes()
        .expect("encodes")
}

pub fn find_by_id() -> Bytes {
    let id = ObjectId::from_bytes([1; 12]);
    frame(OpMsg::new(raw(envelope(
        rawdoc! { "find": "payments", "filter": { "_id": id }, "limit": 1_i64, "singleBatch": true },
    ))))
}

pub fn find_nested_or() -> Bytes {
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

pub fn aggregate_lookups_facet() -> Bytes {
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

pub fn insert_100() -> Bytes {
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

pub fn upsert() -> Bytes {
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

/// The policy every case runs under (the issue's: tenant data in `payments`) and the principal
/// that sends it (a service bound to `bank1`).
pub fn setup() -> (
    tenantgate_policy::PolicyConfig,
    tenantgate_policy::Principal,
) {
    (
        tenantgate_policy::PolicyConfig {
            databases: vec!["payments".into()],
            ..tenantgate_policy::PolicyConfig::default()
        },
        tenantgate_policy::Principal::tenant(
            "svc-bank1",
            tenantgate_policy::TenantId::new("bank1"),
        ),
    )
}

/// The engine's context for [`setup`]'s policy and principal, at a fixed time.
pub fn context<'a>(
    config: &'a tenantgate_policy::PolicyConfig,
    principal: &'a tenantgate_policy::Principal,
) -> tenantgate_policy::Context<'a> {
    tenantgate_policy::Context {
        principal,
        config,
        now: DateTime::from_millis(1_795_000_000_000),
    }
}

/// Every case, named as in the benchmark groups.
pub fn cases() -> Vec<(&'static str, Bytes)> {
    vec![
        ("a_find_by_id", find_by_id()),
        ("b_find_nested_or", find_nested_or()),
        ("c_aggregate_2_lookups_facet", aggregate_lookups_facet()),
        ("d_insert_100_seq", insert_100()),
        ("e_upsert", upsert()),
    ]
}

/// The proxy's per-command path: decode, decide, encode the rewritten message into `out`.
pub fn rewrite(
    frame: &Bytes,
    ctx: &tenantgate_policy::Context<'_>,
    limits: &tenantgate_wire::Limits,
    out: &mut bytes::BytesMut,
) {
    let msg = Message::decode(frame.clone(), limits).expect("decodes");
    let Payload::Msg(op) = &msg.payload else {
        panic!("benchmark frames are OP_MSG")
    };
    let tenantgate_policy::Decision::Forward(fwd) = tenantgate_policy::decide(op, ctx).decision
    else {
        panic!("benchmark commands are forwarded")
    };
    let rewritten = OpMsg::from_parts(
        tenantgate_wire::MsgFlags::default(),
        fwd.body,
        fwd.sequences,
    )
    .expect("known flags");
    Message::new(msg.request_id, 0, Payload::Msg(rewritten))
        .encode(out)
        .expect("encodes");
}
