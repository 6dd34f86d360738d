//! Seed inputs for the policy fuzz target: the commands a MongoDB driver sends for ordinary
//! tenant work (shaped like the Rust driver's: `$db`, `lsid`, `$clusterTime`, `documents` and
//! `updates` as document sequences), plus the escapes the rules exist to stop. libFuzzer mutates
//! from these, so the raw-bytes mode starts from valid OP_MSG sections instead of noise.
//!
//! `policy/tests/fuzz_regressions.rs` writes them to `fuzz/seeds/policy/` (run it with
//! `TENANTGATE_WRITE_SEEDS=1`) and checks that the checked-in files match.

use bson::{Binary, Bson, DateTime, Document, doc, spec::BinarySubtype};

use super::grammar::sections;

fn driver_fields(mut body: Document, db: &str) -> Document {
    body.insert(
        "lsid",
        doc! { "id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![0x5a; 16] } },
    );
    body.insert(
        "$clusterTime",
        doc! { "clusterTime": bson::Timestamp { time: 1_700_000_000, increment: 1 },
        "signature": { "hash": Binary { subtype: BinarySubtype::Generic, bytes: vec![0; 20] }, "keyId": 0i64 } },
    );
    body.insert("$db", db);
    body
}

/// `(file name, fuzz input)` for every seed. Mode byte 0: raw OP_MSG sections.
pub fn policy_seeds() -> Vec<(String, Vec<u8>)> {
    let now = DateTime::from_millis(1_700_000_000_000);
    type Seq = Vec<(String, Vec<Document>)>;
    let none: Seq = Vec::new();
    let cmds: Vec<(&str, Document, Seq)> = vec![
        (
            "find",
            doc! { "find": "payments", "filter": { "status": "paid", "amount": { "$gt": 100 } }, "sort": { "createdAt": -1 }, "limit": 20 },
            none.clone(),
        ),
        (
            "find_own_tenant",
            doc! { "find": "payments", "filter": { "tenantId": "bank1", "deletedAt": null } },
            none.clone(),
        ),
        (
            "find_other_tenant",
            doc! { "find": "payments", "filter": { "$or": [ { "tenantId": "bank2" }, { "amount": 1 } ] } },
            none.clone(),
        ),
        (
            "find_where",
            doc! { "find": "payments", "filter": { "$where": Bson::JavaScriptCode("this.tenantId != 'bank1'".into()) } },
            none.clone(),
        ),
        (
            "find_expr",
            doc! { "find": "payments", "filter": { "$expr": { "$eq": [ "$tenantId", "bank2" ] } } },
            none.clone(),
        ),
        (
            "find_global",
            doc! { "find": "currencies", "filter": {} },
            none.clone(),
        ),
        (
            "find_include_deleted",
            doc! { "find": "payments", "filter": {}, "comment": "tenantgate:includeDeleted" },
            none.clone(),
        ),
        (
            "find_collation",
            doc! { "find": "payments", "filter": { "tenantId": "BANK1" }, "collation": { "locale": "en", "strength": 2 } },
            none.clone(),
        ),
        (
            "count",
            doc! { "count": "payments", "query": { "status": "open" } },
            none.clone(),
        ),
        (
            "estimated_count",
            doc! { "count": "invoices" },
            none.clone(),
        ),
        (
            "distinct",
            doc! { "distinct": "payments", "key": "status", "query": {} },
            none.clone(),
        ),
        (
            "aggregate",
            doc! { "aggregate": "payments", "pipeline": [ { "$match": { "status": "paid" } }, { "$group": { "_id": "$currency", "total": { "$sum": "$amount" } } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_lookup",
            doc! { "aggregate": "payments", "pipeline": [ { "$lookup": { "from": "invoices", "localField": "invoiceId", "foreignField": "_id", "as": "inv" } }, { "$unwind": "$inv" } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_lookup_pipeline",
            doc! { "aggregate": "payments", "pipeline": [ { "$lookup": { "from": "ledger", "let": { "p": "$_id" }, "pipeline": [ { "$match": { "$expr": { "$eq": [ "$paymentId", "$$p" ] } } } ], "as": "entries" } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_union_facet",
            doc! { "aggregate": "payments", "pipeline": [ { "$unionWith": { "coll": "invoices", "pipeline": [ { "$project": { "amount": 1 } } ] } }, { "$facet": { "a": [ { "$count": "n" } ], "b": [ { "$lookup": { "from": "currencies", "localField": "c", "foreignField": "code", "as": "cur" } } ] } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_graph",
            doc! { "aggregate": "payments", "pipeline": [ { "$graphLookup": { "from": "payments", "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain" } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_out",
            doc! { "aggregate": "payments", "pipeline": [ { "$out": "stolen" } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_documents",
            doc! { "aggregate": 1, "pipeline": [ { "$documents": [ { "x": 1 } ] }, { "$lookup": { "from": "payments", "pipeline": [], "as": "all" } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "aggregate_geonear",
            doc! { "aggregate": "payments", "pipeline": [ { "$geoNear": { "near": [0.0, 0.0], "distanceField": "d", "query": { "status": "open" } } } ], "cursor": {} },
            none.clone(),
        ),
        (
            "insert_sequence",
            doc! { "insert": "payments", "ordered": true },
            vec![(
                "documents".into(),
                vec![
                    doc! { "_id": 1, "amount": 10 },
                    doc! { "_id": 2, "tenantId": "bank1", "amount": 20 },
                ],
            )],
        ),
        (
            "insert_body",
            doc! { "insert": "invoices", "documents": [ { "number": "INV-1", "total": 99.5 } ] },
            none.clone(),
        ),
        (
            "insert_other_tenant",
            doc! { "insert": "payments" },
            vec![("documents".into(), vec![doc! { "tenantId": "bank2" }])],
        ),
        (
            "update_sequence",
            doc! { "update": "payments", "ordered": true },
            vec![(
                "updates".into(),
                vec![
                    doc! { "q": { "_id": 1 }, "u": { "$set": { "status": "paid", "paidAt": now } }, "upsert": false, "multi": false },
                ],
            )],
        ),
        (
            "update_body_pipeline",
            doc! { "update": "invoices", "updates": [ { "q": { "status": "draft" }, "u": [ { "$set": { "status": "sent" } } ], "multi": true } ] },
            none.clone(),
        ),
        (
            "update_tenant_field",
            doc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "tenantId": "bank2" } }, "multi": true } ] },
            none.clone(),
        ),
        (
            "update_upsert_replace",
            doc! { "update": "payments", "updates": [ { "q": { "_id": 7 }, "u": { "amount": 5 }, "upsert": true } ] },
            none.clone(),
        ),
        (
            "delete_sequence",
            doc! { "delete": "payments", "ordered": true },
            vec![(
                "deletes".into(),
                vec![doc! { "q": { "_id": 1 }, "limit": 1 }],
            )],
        ),
        (
            "delete_hard",
            doc! { "delete": "ledger", "deletes": [ { "q": { "status": "void" }, "limit": 0 } ] },
            none.clone(),
        ),
        (
            "find_and_modify",
            doc! { "findAndModify": "payments", "query": { "_id": 1 }, "update": { "$inc": { "amount": 1 } }, "new": true },
            none.clone(),
        ),
        (
            "find_and_modify_remove",
            doc! { "findAndModify": "invoices", "query": { "_id": 1 }, "remove": true },
            none.clone(),
        ),
        (
            "explain_find",
            doc! { "explain": { "find": "payments", "filter": { "amount": 5 } }, "verbosity": "queryPlanner" },
            none.clone(),
        ),
        (
            "explain_aggregate",
            doc! { "explain": { "aggregate": "payments", "pipeline": [], "cursor": {} } },
            none.clone(),
        ),
        (
            "get_more",
            doc! { "getMore": 42i64, "collection": "payments", "batchSize": 100 },
            none.clone(),
        ),
        (
            "kill_cursors",
            doc! { "killCursors": "payments", "cursors": [ 42i64 ] },
            none.clone(),
        ),
        (
            "list_collections",
            doc! { "listCollections": 1, "filter": {}, "nameOnly": true },
            none.clone(),
        ),
        (
            "list_indexes",
            doc! { "listIndexes": "payments" },
            none.clone(),
        ),
        (
            "end_sessions",
            doc! { "endSessions": [ { "id": Binary { subtype: BinarySubtype::Uuid, bytes: vec![1; 16] } } ] },
            none.clone(),
        ),
        (
            "commit",
            doc! { "commitTransaction": 1, "txnNumber": 1i64, "autocommit": false },
            none.clone(),
        ),
        ("ping", doc! { "ping": 1 }, none.clone()),
        (
            "list_databases",
            doc! { "listDatabases": 1, "nameOnly": true },
            none.clone(),
        ),
        (
            "act_as",
            doc! { "find": "payments", "filter": {}, "comment": { "tenantgate": { "actAs": "bank2" }, "app": "billing" } },
            none.clone(),
        ),
        (
            "admin_collection",
            doc! { "find": "tenantgate_secrets", "filter": {} },
            none.clone(),
        ),
        (
            "view",
            doc! { "aggregate": "payment_summary", "pipeline": [], "cursor": {} },
            none.clone(),
        ),
        (
            "create_view",
            doc! { "create": "mine", "viewOn": "payments", "pipeline": [] },
            none.clone(),
        ),
        ("drop", doc! { "drop": "payments" }, none.clone()),
        (
            "map_reduce",
            doc! { "mapReduce": "payments", "map": Bson::JavaScriptCode("emit(1,1)".into()), "reduce": Bson::JavaScriptCode("1".into()), "out": { "inline": 1 } },
            none.clone(),
        ),
    ];
    let mut out = Vec::new();
    for (name, body, seqs) in cmds {
        let db = if name == "ping" || name == "list_databases" {
            "admin"
        } else {
            "payments"
        };
        let body = driver_fields(body, db);
        let mut input = vec![0u8];
        input.extend(sections(&body, &seqs).expect("seed commands encode"));
        out.push((format!("{name}.bin"), input));
    }
    // Grammar mode: a few byte strings the generator turns into varied commands.
    for (i, bytes) in [
        &[1u8, 0, 0, 0][..],
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16],
        &[1, 3, 1, 7, 0, 2, 9, 9, 4, 1, 1, 1, 6, 0, 3, 3, 3, 8],
        &[
            1, 0xff, 0x80, 0x41, 0x10, 0x07, 0x33, 0x5c, 0x21, 0x99, 0x03, 0x04,
        ],
    ]
    .iter()
    .enumerate()
    {
        out.push((format!("grammar_{i}.bin"), bytes.to_vec()));
    }
    out
}
