//! Property tests of the isolation invariant, for tenant `bank1`:
//!
//! - a forwarded read or write carries the tenant conjunction at the top of its filter, with the
//!   caller's filter under `$and` (less any top-level condition that repeats the scope);
//! - a forwarded pipeline starts with `{$match: <scope>}`, and so does every `$lookup` /
//!   `$unionWith` sub-pipeline that reads a collection (`$graphLookup` gets it in
//!   `restrictSearchWithMatch`);
//! - a forwarded command never contains the string `"bank2"`: the generators only place it where
//!   it is compared with the tenant field, so its presence means an escape got through;
//! - a command that never names the tenant field and reads only open collections is forwarded
//!   (the rules do not refuse ordinary work);
//! - any document as a command body, from any principal, is decided without a panic; a refusal
//!   always comes with a redacted audit record.
//!
//! `PROPTEST_CASES` sets the number of cases (default 256).

mod common;

use bson::{Bson, Document, RawDocumentBuf, doc};
use proptest::collection::vec;
use proptest::prelude::*;
use tenantgate_policy::{AuditKind, CollectionMode, Decision, Outcome, Rule};
use tenantgate_wire::RawDoc;

use common::{CONFIG, Who, raw, run, seq, strings};

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn s(v: &str) -> Bson {
    Bson::String(v.to_owned())
}

/// Values compared with the tenant field: the only place `"bank2"` is ever generated.
fn tenant_value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => Just(s("bank1")),
        3 => Just(s("bank2")),
        1 => Just(s("bank3")),
        1 => Just(Bson::Null),
        1 => any::<i32>().prop_map(Bson::Int32),
    ]
    .boxed()
}

/// Ordinary data: never `"bank2"`.
fn plain_value() -> BoxedStrategy<Bson> {
    prop_oneof![
        Just(s("bank1")),
        Just(s("paid")),
        Just(s("tenantId")),
        Just(s("")),
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        (-1e6f64..1e6).prop_map(Bson::Double),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
    ]
    .boxed()
}

fn tenant_path() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("tenantId".to_owned()),
        1 => Just("tenantId.x".to_owned()),
        1 => Just("tenantId.0".to_owned()),
    ]
    .boxed()
}

fn plain_path() -> BoxedStrategy<String> {
    prop::sample::select(vec![
        "amount",
        "status",
        "_id",
        "items",
        "meta.tenantId",
        "tenantIdentity",
        "owner.tenant",
    ])
    .prop_map(str::to_owned)
    .boxed()
}

/// A condition on one path, with values from `value`.
fn condition(value: BoxedStrategy<Bson>) -> BoxedStrategy<Bson> {
    let cmp = prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]);
    prop_oneof![
        3 => value.clone(),
        2 => (cmp.clone(), value.clone()).prop_map(|(op, v)| {
            let mut d = Document::new();
            d.insert(op, v);
            Bson::Document(d)
        }),
        1 => (prop::sample::select(vec!["$in", "$nin"]), vec(value.clone(), 0..3)).prop_map(|(op, vs)| {
            let mut d = Document::new();
            d.insert(op, vs);
            Bson::Document(d)
        }),
        1 => any::<bool>().prop_map(|b| Bson::Document(doc! { "$exists": b })),
        1 => Just(Bson::Document(doc! { "$regex": "^bank" })),
        1 => (cmp, value).prop_map(|(op, v)| {
            let mut inner = Document::new();
            inner.insert(op, v);
            Bson::Document(doc! { "$not": inner })
        }),
    ]
    .boxed()
}

/// An aggregation expression (`$expr`, sub-pipeline filters).
fn expression() -> BoxedStrategy<Bson> {
    let tenant_ref = prop_oneof![
        Just(s("$tenantId")),
        Just(s("$tenantId.x")),
        Just(s("$$ROOT.tenantId")),
        Just(s("$$CURRENT.tenantId")),
        Just(Bson::Document(doc! { "$getField": "tenantId" })),
        Just(Bson::Document(
            doc! { "$getField": { "field": "tenantId", "input": "$$ROOT" } }
        )),
        Just(Bson::Document(
            doc! { "$getField": { "field": { "$literal": "tenantId" }, "input": "$$ROOT" } }
        )),
    ];
    let plain_ref = prop_oneof![
        Just(s("$amount")),
        Just(s("$status")),
        Just(s("$meta.tenantId")),
        Just(s("$$ROOT.amount")),
        Just(Bson::Document(doc! { "$getField": "amount" })),
    ];
    let op = prop::sample::select(vec!["$eq", "$ne", "$gt", "$lt"]);
    let compare = |op: &str, a: Bson, b: Bson, flip: bool| {
        let mut d = Document::new();
        d.insert(op, if flip { vec![b, a] } else { vec![a, b] });
        Bson::Document(d)
    };
    let leaf = prop_oneof![
        (
            op.clone(),
            tenant_ref.clone(),
            tenant_value(),
            any::<bool>()
        )
            .prop_map(move |(op, a, b, flip)| compare(op, a, b, flip)),
        (op, plain_ref, plain_value(), any::<bool>())
            .prop_map(move |(op, a, b, flip)| compare(op, a, b, flip)),
        (tenant_ref, vec(tenant_value(), 0..3))
            .prop_map(|(r, vs)| Bson::Document(doc! { "$in": [ r, vs ] })),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (
                prop::sample::select(vec!["$and", "$or"]),
                vec(inner.clone(), 1..3)
            )
                .prop_map(|(op, es)| {
                    let mut d = Document::new();
                    d.insert(op, es);
                    Bson::Document(d)
                }),
            inner
                .clone()
                .prop_map(|e| Bson::Document(doc! { "$not": [ e ] })),
            inner.prop_map(|e| Bson::Document(doc! { "$cond": [ e, true, false ] })),
        ]
    })
    .boxed()
}

fn to_doc(clauses: Vec<(String, Bson)>) -> Document {
    clauses.into_iter().collect()
}

/// A query filter: field conditions (tenant and plain), `$expr`, and recursively
/// `$and`/`$or`/`$nor`, `$elemMatch` and `$not: {$elemMatch}`.
fn filter() -> BoxedStrategy<Document> {
    let clause = prop_oneof![
        3 => (tenant_path(), condition(tenant_value())),
        5 => (plain_path(), condition(plain_value())),
        2 => expression().prop_map(|e| ("$expr".to_owned(), e)),
    ];
    vec(clause.clone(), 0..3)
        .prop_map(to_doc)
        .prop_recursive(3, 24, 3, move |inner| {
            vec(
                prop_oneof![
                    3 => clause.clone(),
                    2 => (prop::sample::select(vec!["$and", "$or", "$nor"]), vec(inner.clone(), 1..3))
                        .prop_map(|(op, fs)| (op.to_owned(), Bson::Array(fs.into_iter().map(Bson::Document).collect()))),
                    1 => inner.clone().prop_map(|f| ("items".to_owned(), Bson::Document(doc! { "$elemMatch": f }))),
                    1 => inner.clone().prop_map(|f| ("items".to_owned(), Bson::Document(doc! { "$not": { "$elemMatch": f } }))),
                ],
                0..3,
            )
            .prop_map(to_doc)
        })
        .boxed()
}

/// Collections a sub-read may name: mostly open ones, sometimes closed ones.
fn collection() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop::sample::select(vec!["payments", "customers", "currencies", "ledger", "invoices"]),
        1 => prop::sample::select(vec!["tenantgate_secrets", "payment_summary", "system.views"]),
    ]
    .prop_map(str::to_owned)
    .boxed()
}

fn documents_stage() -> Document {
    doc! { "$documents": [ { "k": 1 } ] }
}

fn docs(stages: Vec<Document>) -> Bson {
    Bson::Array(stages.into_iter().map(Bson::Document).collect())
}

/// A pipeline over the stage pool, sub-pipelines generated recursively.
fn pipeline() -> BoxedStrategy<Vec<Document>> {
    let simple = prop_oneof![
        3 => filter().prop_map(|f| doc! { "$match": f }),
        1 => Just(doc! { "$project": { "amount": 1, "status": 1 } }),
        1 => Just(doc! { "$project": { "t": "$tenantId" } }),
        1 => Just(doc! { "$sort": { "amount": -1 } }),
        1 => (1i32..100).prop_map(|n| doc! { "$limit": n }),
        1 => Just(doc! { "$group": { "_id": "$status", "n": { "$sum": 1 } } }),
        1 => collection().prop_map(|c| doc! { "$lookup": { "from": c, "localField": "customerId", "foreignField": "_id", "as": "joined" } }),
        1 => collection().prop_map(|c| doc! { "$unionWith": c }),
    ];
    vec(simple.clone(), 0..4)
        .prop_recursive(3, 32, 4, move |inner| {
            vec(
                prop_oneof![
                    4 => simple.clone(),
                    2 => (collection(), inner.clone()).prop_map(|(c, p)| doc! { "$lookup": { "from": c, "let": { "v": "$amount" }, "pipeline": docs(p), "as": "joined" } }),
                    1 => (collection(), inner.clone()).prop_map(|(c, p)| doc! { "$lookup": { "from": c, "localField": "a", "foreignField": "b", "pipeline": docs(p), "as": "joined" } }),
                    1 => inner.clone().prop_map(|p| {
                        let mut stages = vec![documents_stage()];
                        stages.extend(p);
                        doc! { "$lookup": { "pipeline": docs(stages), "as": "consts" } }
                    }),
                    2 => (collection(), inner.clone()).prop_map(|(c, p)| doc! { "$unionWith": { "coll": c, "pipeline": docs(p) } }),
                    1 => inner.clone().prop_map(|p| {
                        let mut stages = vec![documents_stage()];
                        stages.extend(p);
                        doc! { "$unionWith": { "pipeline": docs(stages) } }
                    }),
                    2 => (inner.clone(), inner.clone()).prop_map(|(a, b)| doc! { "$facet": { "a": docs(a), "b": docs(b) } }),
                    1 => (collection(), filter()).prop_map(|(c, f)| doc! { "$graphLookup": { "from": c, "startWith": "$parent", "connectFromField": "parent", "connectToField": "_id", "as": "chain", "restrictSearchWithMatch": f } }),
                ],
                0..4,
            )
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Oracles
// ---------------------------------------------------------------------------------------------

/// What bank1's scope on `collection` must enforce.
fn scope(collection: &str) -> Document {
    let policy = CONFIG.collection(collection);
    let mut d = Document::new();
    if policy.mode == CollectionMode::Tenant {
        d.insert("tenantId", "bank1");
    }
    if policy.soft_delete {
        d.insert("deletedAt", Bson::Null);
    }
    d
}

fn open(collection: &str) -> bool {
    !collection.starts_with("system.")
        && matches!(
            CONFIG.collection(collection).mode,
            CollectionMode::Tenant | CollectionMode::Global
        )
}

fn is_tenant_path(p: &str) -> bool {
    p == "tenantId" || p.starts_with("tenantId.")
}

/// Whether any string below `value` is a tenant path (the field name given to `$getField`).
fn names_tenant_field(value: &Bson) -> bool {
    match value {
        Bson::String(s) => is_tenant_path(s),
        Bson::Document(d) => d.values().any(names_tenant_field),
        Bson::Array(a) => a.iter().any(names_tenant_field),
        _ => false,
    }
}

/// Whether `value` names the tenant field anywhere (a path, a field reference, `$getField`).
fn mentions_tenant(value: &Bson) -> bool {
    match value {
        Bson::String(s) => {
            let Some(rest) = s.strip_prefix('$') else {
                return false;
            };
            let rest = rest
                .strip_prefix("$ROOT.")
                .or_else(|| rest.strip_prefix("$CURRENT."))
                .unwrap_or(rest);
            is_tenant_path(rest)
        }
        Bson::Document(d) => d.iter().any(|(k, v)| {
            is_tenant_path(k) || (k == "$getField" && names_tenant_field(v)) || mentions_tenant(v)
        }),
        Bson::Array(a) => a.iter().any(mentions_tenant),
        _ => false,
    }
}

/// Every collection a pipeline reads (`from`, `coll`, `$unionWith: "c"`), at any depth.
fn collections_read(value: &Bson, out: &mut Vec<String>) {
    match value {
        Bson::Document(d) => {
            for (k, v) in d {
                match (k.as_str(), v) {
                    ("from" | "coll", Bson::String(c)) | ("$unionWith", Bson::String(c)) => {
                        out.push(c.clone())
                    }
                    _ => collections_read(v, out),
                }
            }
        }
        Bson::Array(a) => a.iter().for_each(|v| collections_read(v, out)),
        _ => {}
    }
}

fn forwarded_body(outcome: &Outcome) -> Option<Document> {
    match &outcome.decision {
        Decision::Forward(f) => Some(common::decode(f.body.as_raw())),
        _ => None,
    }
}

/// No `"bank2"` anywhere in the forwarded command.
fn no_other_tenant(body: &Document) -> Result<(), TestCaseError> {
    let mut all = Vec::new();
    strings(&Bson::Document(body.clone()), &mut all);
    prop_assert!(
        !all.iter().any(|s| s == "bank2"),
        "bank2 reached the upstream: {body:?}"
    );
    Ok(())
}

fn stage_parts(stage: &Bson) -> Result<(&str, &Bson), TestCaseError> {
    let d = stage
        .as_document()
        .ok_or_else(|| TestCaseError::fail("a stage is not a document"))?;
    prop_assert_eq!(d.len(), 1, "a stage with {} fields", d.len());
    let (k, v) = d.iter().next().expect("one field");
    Ok((k.as_str(), v))
}

/// Checks a forwarded pipeline: it starts with the scope of `reads` (when it reads a
/// collection), and so does every sub-read inside it.
fn check_pipeline(stages: &[Bson], reads: Option<&str>) -> Result<(), TestCaseError> {
    match reads {
        Some(c) => {
            let expected = scope(c);
            if expected.is_empty() {
                // Nothing to enforce (not reached with this config).
            } else {
                let first = stages
                    .first()
                    .ok_or_else(|| TestCaseError::fail("a scoped pipeline is empty"))?;
                prop_assert_eq!(
                    first,
                    &Bson::Document(doc! { "$match": expected }),
                    "pipeline reading {} does not start with its scope",
                    c
                );
            }
        }
        None => {
            if let Some(first) = stages.first() {
                let (name, _) = stage_parts(first)?;
                prop_assert_eq!(
                    name,
                    "$documents",
                    "a collection-less sub-pipeline must start with $documents"
                );
            }
        }
    }
    check_stages(stages)
}

/// Checks the sub-reads of each stage.
fn check_stages(stages: &[Bson]) -> Result<(), TestCaseError> {
    for stage in stages {
        let (name, spec) = stage_parts(stage)?;
        match name {
            "$lookup" => {
                let d = spec
                    .as_document()
                    .ok_or_else(|| TestCaseError::fail("$lookup spec"))?;
                let sub = d
                    .get_array("pipeline")
                    .map_err(|_| TestCaseError::fail(format!("$lookup without pipeline: {d:?}")))?;
                check_pipeline(sub, d.get_str("from").ok())?;
            }
            "$unionWith" => {
                let d = spec
                    .as_document()
                    .ok_or_else(|| TestCaseError::fail("$unionWith left in string form"))?;
                let sub = d
                    .get_array("pipeline")
                    .map_err(|_| TestCaseError::fail("$unionWith without pipeline"))?;
                check_pipeline(sub, d.get_str("coll").ok())?;
            }
            "$facet" => {
                let d = spec
                    .as_document()
                    .ok_or_else(|| TestCaseError::fail("$facet spec"))?;
                for (_, branch) in d {
                    let branch = branch
                        .as_array()
                        .ok_or_else(|| TestCaseError::fail("$facet branch"))?;
                    // Branches read the already-scoped input: only their sub-reads are checked.
                    check_stages(branch)?;
                }
            }
            "$graphLookup" => {
                let d = spec
                    .as_document()
                    .ok_or_else(|| TestCaseError::fail("$graphLookup spec"))?;
                let from = d
                    .get_str("from")
                    .map_err(|_| TestCaseError::fail("$graphLookup from"))?;
                let restrict = d
                    .get_document("restrictSearchWithMatch")
                    .map_err(|_| TestCaseError::fail("$graphLookup not restricted"))?;
                // The scope's conditions come first, in order.
                let want = scope(from);
                let head: Document = restrict
                    .iter()
                    .take(want.len())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(
                    RawDocumentBuf::try_from(&head).expect("encodes"),
                    RawDocumentBuf::try_from(&want).expect("encodes"),
                    "$graphLookup restriction {:?}",
                    restrict
                );
            }
            _ => {}
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

// ---------------------------------------------------------------------------------------------
// Arbitrary commands
// ---------------------------------------------------------------------------------------------

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "find", "filter", "query", "pipeline", "documents", "updates", "deletes", "q", "u",
            "limit", "multi", "upsert", "remove", "update", "new", "$db", "comment", "tenantId",
            "tenantId.x", "deletedAt", "$and", "$or", "$nor", "$not", "$expr", "$elemMatch",
            "$in", "$eq", "$ne", "$match", "$lookup", "$unionWith", "$facet", "$graphLookup",
            "$geoNear", "$documents", "$set", "$unset", "$rename", "$setOnInsert", "$literal",
            "$getField", "from", "coll", "let", "as", "localField", "foreignField", "cursor",
            "explain", "key", "getMore", "collection", "tenantgate", "includeDeleted", "actAs",
        ])
        .prop_map(str::to_owned),
        1 => "[a-zA-Z_$][a-zA-Z0-9_.$]{0,8}",
    ]
    .boxed()
}

fn arb_leaf() -> BoxedStrategy<Bson> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "payments", "currencies", "tenantgate_secrets", "payment_summary", "ledger", "invoices",
            "system.views", "bank1", "bank2", "$tenantId", "$$ROOT.tenantId", "tenantgate:includeDeleted",
            "tenantgate:actAs=bank2", "tenantgate:actAs=bank1", "admin", "other", "",
        ])
        .prop_map(s),
        1 => "\\PC{0,8}".prop_map(Bson::String),
        1 => any::<i32>().prop_map(Bson::Int32),
        1 => any::<i64>().prop_map(Bson::Int64),
        1 => prop_oneof![Just(0.0), Just(1.0), any::<f64>()].prop_map(Bson::Double),
        1 => any::<bool>().prop_map(Bson::Boolean),
        1 => Just(Bson::Null),
        1 => any::<i64>().prop_map(|t| Bson::DateTime(bson::DateTime::from_millis(t))),
    ]
    .boxed()
}

fn arb_bson() -> BoxedStrategy<Bson> {
    arb_leaf()
        .prop_recursive(5, 64, 5, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..5).prop_map(Bson::Array),
                vec((arb_key(), inner), 0..5)
                    .prop_map(|kv| Bson::Document(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A command-shaped body: a command name first, then fields, then maybe `$db`.
fn arb_command() -> BoxedStrategy<RawDocumentBuf> {
    let name = prop::sample::select(vec![
        "find",
        "count",
        "distinct",
        "aggregate",
        "insert",
        "update",
        "delete",
        "findAndModify",
        "explain",
        "getMore",
        "killCursors",
        "listCollections",
        "listIndexes",
        "listDatabases",
        "ping",
        "connectionStatus",
        "create",
        "drop",
        "mapReduce",
        "bulkWrite",
        "endSessions",
        "shutdown",
        "hello",
    ]);
    let target = prop_oneof![3 => arb_leaf(), 1 => arb_bson()];
    let db = proptest::option::weighted(
        0.9,
        prop::sample::select(vec!["payments", "admin", "tenantgate", "other"]),
    );
    (name, target, vec((arb_key(), arb_bson()), 0..6), db)
        .prop_map(|(name, target, fields, db)| {
            let mut d = Document::new();
            d.insert(name, target);
            for (k, v) in fields {
                if k != name {
                    d.insert(k, v);
                }
            }
            if let Some(db) = db {
                d.insert("$db", db);
            }
            RawDocumentBuf::try_from(&d).expect("generated documents encode")
        })
        .boxed()
}

fn arb_who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => Just(Who::Bank1),
        1 => Just(Who::Admin),
        1 => Just(Who::Nobody),
    ]
}

fn check_any_outcome(
    who: Who,
    body: &RawDocumentBuf,
    outcome: &Outcome,
) -> Result<(), TestCaseError> {
    match &outcome.decision {
        Decision::Reject(r) => {
            let a = outcome
                .audit
                .as_ref()
                .ok_or_else(|| TestCaseError::fail("a refusal without an audit record"))?;
            prop_assert_eq!(a.kind, AuditKind::Rejection);
            prop_assert_eq!(a.rule, r.rule);
            prop_assert_eq!(a.principal.as_str(), who.name());
            // Values are redacted: every string in the shape is a type marker.
            let mut all = Vec::new();
            strings(&Bson::Document(a.shape.clone()), &mut all);
            prop_assert!(
                all.iter().all(|s| s.starts_with('<') && s.ends_with('>')),
                "unredacted shape {:?}",
                a.shape
            );
        }
        Decision::Forward(f) => {
            // Whatever is forwarded is valid BSON.
            RawDoc::from_raw(f.body.as_raw())
                .map_err(|e| TestCaseError::fail(format!("invalid body {e:?}")))?;
            for s in &f.sequences {
                for d in &s.documents {
                    RawDoc::from_raw(d.as_raw()).map_err(|e| {
                        TestCaseError::fail(format!("invalid sequence document {e:?}"))
                    })?;
                }
            }
            if who == Who::Bank1 {
                check_tenant_forward(body, f.body.as_raw())?;
            }
        }
        Decision::Reply(_) => {}
    }
    Ok(())
}

/// For bank1's forwarded reads of tenant collections: the filter starts with `tenantId: "bank1"`.
fn check_tenant_forward(
    sent: &RawDocumentBuf,
    forwarded: &bson::RawDocument,
) -> Result<(), TestCaseError> {
    let Some(Ok((name, bson::RawBsonRef::String(coll)))) = sent.iter().next() else {
        return Ok(());
    };
    if CONFIG.collection(coll).mode != CollectionMode::Tenant {
        return Ok(());
    }
    let field = match name.as_str() {
        "find" => "filter",
        "count" | "distinct" => "query",
        _ => return Ok(()),
    };
    let filter = forwarded
        .get_document(field)
        .map_err(|_| TestCaseError::fail(format!("forwarded {name} without {field}")))?;
    let first = filter
        .iter()
        .next()
        .and_then(Result::ok)
        .map(|(k, v)| (k.as_str().to_owned(), v.as_str().map(str::to_owned)));
    prop_assert_eq!(
        first,
        Some(("tenantId".to_owned(), Some("bank1".to_owned())))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// Where each command kind carries its filter, and how to build it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Find,
    Count,
    Distinct,
    Update,
    Delete,
    FindAndModify,
}

fn command_with_filter(kind: Kind, coll: &str, f: &Document) -> Document {
    match kind {
        Kind::Find => doc! { "find": coll, "filter": f.clone(), "$db": "payments" },
        Kind::Count => doc! { "count": coll, "query": f.clone(), "$db": "payments" },
        Kind::Distinct => {
            doc! { "distinct": coll, "key": "status", "query": f.clone(), "$db": "payments" }
        }
        Kind::Update => {
            doc! { "update": coll, "updates": [ { "q": f.clone(), "u": { "$set": { "status": "paid" } }, "upsert": true } ], "$db": "payments" }
        }
        Kind::Delete => {
            doc! { "delete": coll, "deletes": [ { "q": f.clone(), "limit": 0 } ], "$db": "payments" }
        }
        Kind::FindAndModify => {
            doc! { "findAndModify": coll, "query": f.clone(), "update": { "$inc": { "n": 1 } }, "$db": "payments" }
        }
    }
}

fn forwarded_filter(kind: Kind, body: &Document) -> Option<Document> {
    let first_statement = |array: &str| {
        body.get_array(array)
            .ok()
            .and_then(|a| a.first())
            .and_then(Bson::as_document)
            .and_then(|s| s.get_document("q").ok())
            .cloned()
    };
    match kind {
        Kind::Find => body.get_document("filter").ok().cloned(),
        Kind::Count | Kind::Distinct | Kind::FindAndModify => {
            body.get_document("query").ok().cloned()
        }
        Kind::Update => first_statement("updates"),
        Kind::Delete => first_statement("updates").or_else(|| first_statement("deletes")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn filters_are_scoped_or_refused(
        f in filter(),
        coll in prop::sample::select(vec!["payments", "ledger", "currencies", "invoices"]),
        kind in prop::sample::select(vec![Kind::Find, Kind::Count, Kind::Distinct, Kind::Update, Kind::Delete, Kind::FindAndModify]),
    ) {
        let body = command_with_filter(kind, coll, &f);
        let outcome = run(Who::Bank1, RawDocumentBuf::try_from(&body).expect("encodes"), &[]);
        let write = !matches!(kind, Kind::Find | Kind::Count | Kind::Distinct);
        match forwarded_body(&outcome) {
            None => {
                prop_assert!(outcome.audit.is_some());
                let rule = match &outcome.decision { Decision::Reject(r) => r.rule, _ => Rule::Bypass };
                let names_tenant = mentions_tenant(&Bson::Document(f.clone()));
                let global_write = write && coll == "currencies";
                prop_assert!(names_tenant || global_write, "ordinary {kind:?} refused ({rule}): {f:?}");
                if global_write {
                    prop_assert_eq!(rule, Rule::GlobalWrite);
                }
            }
            Some(forwarded) => {
                prop_assert!(!(write && coll == "currencies"), "tenant write to a global collection");
                let mut expected = scope(coll);
                // Top-level conditions that repeat the scope are dropped from the user's copy
                // (an upsert refuses a path matched by equality twice). The rest joins the
                // scope at the top level unless a condition is on a field the scope sets; then
                // the user's filter goes under `$and`.
                let mut user = f.clone();
                if expected.contains_key("tenantId") {
                    user.remove("tenantId");
                }
                if expected.contains_key("deletedAt") && user.get("deletedAt") == Some(&Bson::Null) {
                    user.remove("deletedAt");
                }
                let collides = user.keys().any(|k| expected.contains_key(k));
                if !user.is_empty() {
                    if collides {
                        expected.insert("$and", vec![Bson::Document(user)]);
                    } else {
                        for (k, v) in user {
                            expected.insert(k, v);
                        }
                    }
                }
                let got = forwarded_filter(kind, &forwarded);
                // Byte comparison: same keys in the same order, the scope first.
                prop_assert_eq!(
                    got.as_ref().map(|g| RawDocumentBuf::try_from(g).expect("encodes")),
                    Some(RawDocumentBuf::try_from(&expected).expect("encodes")),
                    "{:?} on {}: {:?}", kind, coll, forwarded
                );
                no_other_tenant(&forwarded)?;
            }
        }
    }

    #[test]
    fn pipelines_are_scoped_at_every_depth_or_refused(
        p in pipeline(),
        coll in prop::sample::select(vec!["payments", "ledger", "currencies", "invoices"]),
    ) {
        let body = doc! { "aggregate": coll, "pipeline": docs(p.clone()), "cursor": {}, "$db": "payments" };
        let outcome = run(Who::Bank1, RawDocumentBuf::try_from(&body).expect("encodes"), &[]);
        let stages = Bson::Array(p.iter().cloned().map(Bson::Document).collect());
        match forwarded_body(&outcome) {
            None => {
                let rule = match &outcome.decision { Decision::Reject(r) => r.rule, _ => Rule::Bypass };
                prop_assert!(outcome.audit.is_some());
                let mut read = Vec::new();
                collections_read(&stages, &mut read);
                let all_open = read.iter().all(|c| open(c));
                prop_assert!(
                    mentions_tenant(&stages) || !all_open,
                    "ordinary pipeline refused ({}): {:?}", rule, p
                );
            }
            Some(forwarded) => {
                let out = forwarded.get_array("pipeline").expect("pipeline forwarded");
                prop_assert_eq!(out.len(), p.len() + 1, "one stage prepended");
                check_pipeline(out, Some(coll))?;
                no_other_tenant(&forwarded)?;
            }
        }
    }

    #[test]
    fn any_command_from_anyone_is_decided_without_panicking(
        body in arb_command(),
        who in arb_who(),
        seqs in vec(
            (prop::sample::select(vec!["documents", "updates", "deletes", "filter", "ops"]), vec(vec((arb_key(), arb_bson()), 0..4), 0..3)),
            0..2,
        ),
    ) {
        let sequences: Vec<_> = seqs
            .into_iter()
            .map(|(id, ds)| seq(id, ds.into_iter().map(|kv| {
                let d: Document = kv.into_iter().collect();
                RawDocumentBuf::try_from(&d).expect("encodes")
            }).collect()))
            .collect();
        let outcome = run(who, body.clone(), &sequences);
        check_any_outcome(who, &body, &outcome)?;
    }

    #[test]
    fn arbitrary_documents_as_bodies_never_panic(
        kv in vec((arb_key(), arb_bson()), 0..8),
        who in arb_who(),
    ) {
        let d: Document = kv.into_iter().collect();
        let body = RawDocumentBuf::try_from(&d).expect("encodes");
        let outcome = common::run_with(&CONFIG, who, &raw(body.clone()), &[]);
        check_any_outcome(who, &body, &outcome)?;
    }
}

/// The properties above hold vacuously if the generators only produce refusals (or only
/// harmless commands). This samples them with a fixed seed and checks both outcomes are common,
/// that escapes are refused as overrides, and that forwarded pipelines do nest sub-reads.
#[test]
fn generators_reach_both_outcomes_and_real_depth() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut filter_fwd, mut filter_override, mut filter_mentions_fwd) = (0, 0, 0);
    let filters = filter();
    for _ in 0..500 {
        let f = filters.new_tree(&mut runner).expect("tree").current();
        let body = RawDocumentBuf::try_from(&command_with_filter(Kind::Find, "payments", &f))
            .expect("encodes");
        match run(Who::Bank1, body, &[]).decision {
            Decision::Forward(_) => {
                filter_fwd += 1;
                if mentions_tenant(&Bson::Document(f)) {
                    filter_mentions_fwd += 1;
                }
            }
            Decision::Reject(r) if r.rule == Rule::TenantOverride => filter_override += 1,
            _ => {}
        }
    }
    assert!(filter_fwd >= 100, "only {filter_fwd}/500 filters forwarded");
    assert!(
        filter_override >= 100,
        "only {filter_override}/500 filters refused as overrides"
    );
    assert!(
        filter_mentions_fwd >= 10,
        "own-tenant mentions rarely forwarded: {filter_mentions_fwd}"
    );

    let (mut pipe_fwd, mut pipe_rejected, mut nested_fwd) = (0, 0, 0);
    let pipelines = pipeline();
    for _ in 0..500 {
        let p = pipelines.new_tree(&mut runner).expect("tree").current();
        let body = doc! { "aggregate": "payments", "pipeline": docs(p.clone()), "cursor": {}, "$db": "payments" };
        match run(
            Who::Bank1,
            RawDocumentBuf::try_from(&body).expect("encodes"),
            &[],
        )
        .decision
        {
            Decision::Forward(_) => {
                pipe_fwd += 1;
                let mut read = Vec::new();
                collections_read(&docs(p), &mut read);
                if read.len() >= 2 {
                    nested_fwd += 1;
                }
            }
            Decision::Reject(_) => pipe_rejected += 1,
            Decision::Reply(_) => {}
        }
    }
    assert!(pipe_fwd >= 100, "only {pipe_fwd}/500 pipelines forwarded");
    assert!(
        pipe_rejected >= 50,
        "only {pipe_rejected}/500 pipelines refused"
    );
    assert!(
        nested_fwd >= 25,
        "only {nested_fwd} forwarded pipelines read two or more collections"
    );
}
