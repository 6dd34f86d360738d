//! Differential property test of tenant isolation against the real upstream (issue #10).
//!
//! **Property.** For a generated read `P` (a `find` filter with sort/skip/limit/projection, a
//! count, a `distinct`, or an aggregation pipeline) and a tenant `T`, what `P` returns when `T`
//! runs it through a real tenantgate proxy (official driver → proxy → upstream, the production
//! path) is exactly the multiset of documents the upstream returns, queried directly, for
//! "`P` AND `tenantId = T` AND live", where live is the policy's own soft-delete filter
//! `deletedAt: null` (MongoDB: missing, `null`, or an array holding `null`). For pipelines the
//! oracle prepends `{$match: {$and: [{tenantId: T}, {deletedAt: null}]}}` and puts the same clause
//! first in every `$lookup` sub-pipeline. Writes: `updateMany` / `deleteMany` through the proxy
//! change exactly the documents the directly scoped filter matches (deletes only set
//! `deletedAt`), and nothing else.
//!
//! A policy refusal is an acceptable outcome only if it is `Unauthorized` (13) naming the rule
//! `tenant_override` and the case names the tenant field somewhere; any other error, or any
//! difference in results, fails. Both sides failing with the same server error code is accepted
//! (the proxy then returned nothing wrong) and counted, so a generator that drifts into invalid
//! queries shows up in the final statistics assertion rather than passing silently.
//!
//! **What the upstream does with odd tenant ids.** MongoDB's `{tenantId: "bank1"}` also matches
//! `tenantId: ["bank1", "bank2"]` (array element match), but not `{id: "bank1"}`, `[["bank1"]]`,
//! `"bank10"`, `"BANK1"` or a number. The policy's guarantee is therefore "the upstream's own
//! answer to `tenantId = T`": a document whose `tenantId` is an array containing `T` *is* visible
//! to `T` (and to every other tenant in the array). tenantgate never writes such a document
//! (inserts stamp `T`, updates may not touch the field); it can only come from an out-of-band
//! write. [`upstream_semantics_the_property_relies_on`] pins this down.
//!
//! **SecantusDB divergences** (the default upstream of `scripts/test`). Probed on 0.7.0b3: the
//! comparison, `$type`, `$elemMatch`, null/missing and cross-type numeric semantics the
//! generators use agree with MongoDB's documentation. Two divergences:
//! - `$count` over no input returns `{n: 0}` where MongoDB returns no document. It cannot break
//!   the property (both sides run on the same server), so `$count` stays in the generators.
//! - `$graphLookup` ignores `restrictSearchWithMatch`, which is where the policy puts the scope:
//!   on SecantusDB a tenant's `$graphLookup` reaches other tenants' and deleted documents. The
//!   branch is left out of the generators; the dedicated
//!   [`graph_lookup_is_scoped_where_the_upstream_honours_restrict_search_with_match`] checks it
//!   on an upstream that honours the option and warns loudly on one that does not.
//!
//! `PROPTEST_CASES` sets the number of cases per property (reads 300, writes 120 by default);
//! the seed is fixed unless `PROPTEST_RNG_SEED` is set; failures are persisted in
//! `proptest-regressions/policy_differential.txt` and the shrunk case is printed.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bson::{Bson, DateTime, Document, doc};
use common::TestProxy;
use futures::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::{Collection, Database};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{
    Config, FileFailurePersistence, RngSeed, TestCaseError, TestError, TestRunner,
};

/// The tenants of the proxy's config; `bank1` is a prefix of `bank10` on purpose.
const TENANTS: [&str; 3] = ["bank1", "bank10", "bank2"];
/// The scoped collection every read targets.
const PAYMENTS: &str = "payments";
/// The scoped collection `$lookup` joins.
const CUSTOMERS: &str = "customers";
/// The collection the write property reseeds before each case.
const WRITES: &str = "writes";
/// The field `$lookup` stages write; its array is order-canonicalized before comparing.
const JOINED: &str = "joined";
/// One case (proxy and oracle together) finishes within this or fails instead of hanging.
const CASE_TIMEOUT: Duration = Duration::from_secs(30);
/// A fixed base time for the seeded dates.
const T0: i64 = 1_780_000_000_000;
const DAY: i64 = 86_400_000;

// ---------------------------------------------------------------------------------------------
// Seed data
// ---------------------------------------------------------------------------------------------

fn s(v: &str) -> Bson {
    Bson::String(v.to_owned())
}

fn dec(v: &str) -> Bson {
    Bson::Decimal128(v.parse().expect("a valid decimal literal"))
}

fn date(offset_days: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(T0 + offset_days * DAY))
}

/// Values of `amount`: every numeric type at equal and different values, a numeric string,
/// null, arrays. `None` leaves the field out.
fn amounts() -> Vec<Option<Bson>> {
    vec![
        Some(Bson::Int32(100)),
        Some(Bson::Int64(100)),
        Some(Bson::Double(100.0)),
        Some(dec("100")),
        Some(Bson::Int32(50)),
        Some(Bson::Double(150.5)),
        Some(Bson::Int64(200)),
        Some(dec("250")),
        Some(s("100")),
        Some(Bson::Null),
        Some(Bson::Array(vec![Bson::Int32(50), Bson::Int64(200)])),
        Some(Bson::Array(vec![])),
        None,
    ]
}

fn statuses() -> Vec<Option<Bson>> {
    vec![
        Some(s("succeeded")),
        Some(s("failed")),
        Some(Bson::Null),
        None,
        Some(Bson::Array(vec![s("failed"), s("disputed")])),
        Some(s("")),
    ]
}

/// `customerId` values: own, other tenants', deleted, shared, tenantless, arrays.
fn customer_refs() -> Vec<Option<Bson>> {
    vec![
        Some(s("c-bank1-1")),
        Some(s("c-bank10-1")),
        Some(s("c-bank2-1")),
        Some(s("c-bank1-2")),
        Some(Bson::Array(vec![s("c-bank1-1"), s("c-bank2-1")])),
        Some(s("c-shared")),
        Some(s("c-none")),
        None,
    ]
}

/// Liveness: missing, null and `[null]` are live to MongoDB's `deletedAt: null`; a date, `false`
/// and `[null, date]`… the last one is live too (an array holding null matches).
fn deleted_ats() -> Vec<Option<Bson>> {
    vec![
        None,
        Some(Bson::Null),
        Some(date(-3)),
        Some(Bson::Array(vec![Bson::Null])),
        Some(Bson::Boolean(false)),
        Some(date(-1)),
        Some(Bson::Array(vec![Bson::Null, date(-2)])),
    ]
}

fn pick(list: &[Option<Bson>], i: usize) -> Option<Bson> {
    list[i % list.len()].clone()
}

/// 14 payments per tenant in every combination of shapes, plus documents whose `tenantId` is not
/// a plain string (array, nested document, number, null, missing, case or whitespace variants).
fn payments() -> Vec<Document> {
    let (amounts, statuses, refs, deleted) =
        (amounts(), statuses(), customer_refs(), deleted_ats());
    let mut out = Vec::new();
    for (ti, tenant) in TENANTS.iter().enumerate() {
        for i in 0..14usize {
            let mut d = doc! { "_id": format!("{tenant}-{i:02}"), "tenantId": *tenant };
            fill(&mut d, i + ti * 5, &amounts, &statuses, &refs, &deleted);
            out.push(d);
        }
    }
    let odd: [(&str, Option<Bson>); 10] = [
        ("odd-array", Some(Bson::Array(vec![s("bank1"), s("bank2")]))),
        ("odd-array10", Some(Bson::Array(vec![s("bank10")]))),
        ("odd-nested", Some(Bson::Document(doc! { "id": "bank1" }))),
        (
            "odd-deep-array",
            Some(Bson::Array(vec![Bson::Array(vec![s("bank1")])])),
        ),
        ("odd-number", Some(Bson::Int32(1))),
        ("odd-null", Some(Bson::Null)),
        ("odd-missing", None),
        ("odd-upper", Some(s("BANK1"))),
        ("odd-space", Some(s("bank1 "))),
        ("odd-prefix", Some(s("bank"))),
    ];
    for (i, (id, tenant)) in odd.into_iter().enumerate() {
        let mut d = doc! { "_id": id };
        if let Some(t) = tenant {
            d.insert("tenantId", t);
        }
        // Live, so only the tenant id decides whether a tenant sees it.
        fill(&mut d, i * 3, &amounts, &statuses, &refs, &[None]);
        out.push(d);
    }
    out
}

fn fill(
    d: &mut Document,
    i: usize,
    amounts: &[Option<Bson>],
    statuses: &[Option<Bson>],
    refs: &[Option<Bson>],
    deleted: &[Option<Bson>],
) {
    let mut put = |k: &str, v: Option<Bson>| {
        if let Some(v) = v {
            d.insert(k, v);
        }
    };
    put("amount", pick(amounts, i));
    put("status", pick(statuses, i * 5 + 1));
    put(
        "tags",
        match i % 4 {
            0 => Some(Bson::Array(vec![s("a"), s("b")])),
            1 => Some(Bson::Array(vec![])),
            2 => Some(s("a")),
            _ => None,
        },
    );
    put(
        "meta",
        match i % 5 {
            0 => Some(Bson::Document(doc! { "score": i as i32, "kind": "card" })),
            1 => Some(Bson::Document(
                doc! { "score": i as i64, "kind": "wire", "tenantId": "bank2" },
            )),
            2 => Some(Bson::Null),
            3 => Some(Bson::Document(doc! { "kind": Bson::Null })),
            _ => None,
        },
    );
    put(
        "items",
        match i % 3 {
            0 => Some(Bson::Array(vec![
                Bson::Document(doc! { "qty": 1, "sku": "x" }),
                Bson::Document(doc! { "qty": 3_i64, "sku": "y" }),
            ])),
            // An embedded `tenantId` naming another tenant: data, not scope.
            1 => Some(Bson::Array(vec![Bson::Document(
                doc! { "qty": 2.0, "sku": "x", "tenantId": "bank2" },
            )])),
            _ => None,
        },
    );
    put("at", Some(date(i as i64)));
    put("customerId", pick(refs, i * 3 + 2));
    put("deletedAt", pick(deleted, i / 2));
}

/// Per tenant: `-1` live, `-2` soft-deleted, `-3` live with a tier; plus a customer shared by
/// an array tenant id and one without a tenant.
fn customers() -> Vec<Document> {
    let mut out = Vec::new();
    for tenant in TENANTS {
        out.push(doc! { "_id": format!("c-{tenant}-1"), "tenantId": tenant, "name": "Ada" });
        out.push(doc! {
            "_id": format!("c-{tenant}-2"), "tenantId": tenant, "name": "Grace",
            "deletedAt": date(-5),
        });
        out.push(doc! {
            "_id": format!("c-{tenant}-3"), "tenantId": tenant, "name": "Alan", "tier": "gold",
            "deletedAt": Bson::Null,
        });
    }
    out.push(doc! { "_id": "c-shared", "tenantId": ["bank1", "bank2"], "name": "Edsger" });
    out.push(doc! { "_id": "c-none", "name": "Barbara", "tier": "gold" });
    out
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn tenant() -> BoxedStrategy<&'static str> {
    proptest::sample::select(TENANTS.to_vec()).boxed()
}

/// Values compared with the tenant field: every configured tenant, and near misses.
fn tenant_value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => tenant().prop_map(s),
        1 => Just(s("bank")),
        1 => Just(s("BANK1")),
        1 => Just(Bson::Array(vec![s("bank1"), s("bank2")])),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Bson> {
    prop_oneof![
        Just(Bson::Int32(100)),
        Just(Bson::Int64(100)),
        Just(Bson::Double(100.0)),
        Just(dec("100")),
        Just(dec("1E+2")),
        Just(Bson::Int32(50)),
        Just(Bson::Double(150.5)),
        Just(Bson::Int64(200)),
        Just(Bson::Int32(3)),
        Just(Bson::Int32(0)),
        Just(s("100")),
        Just(s("succeeded")),
        Just(s("failed")),
        Just(s("")),
        Just(s("a")),
        Just(s("x")),
        Just(s("card")),
        Just(s("c-bank1-1")),
        Just(Bson::Null),
        Just(Bson::Boolean(false)),
        Just(date(2)),
        Just(date(-2)),
        tenant().prop_map(s),
    ]
    .boxed()
}

fn value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => scalar(),
        1 => vec(scalar(), 0..3).prop_map(Bson::Array),
        1 => scalar().prop_map(|v| Bson::Document(doc! { "score": v })),
        1 => (scalar(), scalar()).prop_map(|(q, k)| Bson::Document(doc! { "qty": q, "sku": k })),
    ]
    .boxed()
}

/// Paths, including the tenant and soft-delete fields themselves and paths below them.
fn path() -> BoxedStrategy<&'static str> {
    prop_oneof![
        16 => proptest::sample::select(vec![
            "amount", "status", "tags", "meta", "meta.score", "meta.kind", "meta.tenantId",
            "items", "items.qty", "items.sku", "items.tenantId", "items.0.qty", "at",
            "customerId", "absent", "_id",
        ]),
        2 => Just("deletedAt"),
        1 => proptest::sample::select(vec!["tenantId", "tenantId", "tenantId", "tenantId.id"]),
    ]
    .boxed()
}

fn cmp_op() -> BoxedStrategy<&'static str> {
    proptest::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]).boxed()
}

fn type_name() -> BoxedStrategy<Bson> {
    proptest::sample::select(vec![
        s("number"),
        s("string"),
        s("array"),
        s("null"),
        s("object"),
        s("double"),
        s("int"),
        s("long"),
        s("decimal"),
        s("date"),
        s("bool"),
        Bson::Int32(2),
        Bson::Int32(16),
    ])
    .boxed()
}

/// A condition on one path: equality, comparisons, `$in`/`$nin`, `$exists`, `$type`, `$not`,
/// `$elemMatch` in both forms.
fn condition(tenant_path: bool) -> BoxedStrategy<Bson> {
    let v = if tenant_path {
        prop_oneof![2 => tenant_value(), 1 => value()].boxed()
    } else {
        value()
    };
    let elem_query = vec(
        (
            proptest::sample::select(vec!["qty", "sku", "tenantId"]),
            cmp_op(),
            scalar(),
        ),
        1..3,
    )
    .prop_map(|conds| {
        let mut d = Document::new();
        for (k, op, v) in conds {
            d.insert(k, doc! { op: v });
        }
        d
    });
    prop_oneof![
        4 => v.clone(),
        4 => (cmp_op(), v.clone()).prop_map(|(op, v)| Bson::Document(doc! { op: v })),
        1 => (cmp_op(), v.clone(), cmp_op(), scalar()).prop_map(|(a, x, b, y)| {
            let mut d = doc! { a: x };
            d.insert(b, y);
            Bson::Document(d)
        }),
        2 => (prop_oneof![Just("$in"), Just("$nin")], vec(v.clone(), 0..3))
            .prop_map(|(op, vs)| Bson::Document(doc! { op: vs })),
        1 => any::<bool>().prop_map(|b| Bson::Document(doc! { "$exists": b })),
        1 => type_name().prop_map(|t| Bson::Document(doc! { "$type": t })),
        1 => (cmp_op(), v).prop_map(|(op, v)| Bson::Document(doc! { "$not": { op: v } })),
        1 => type_name().prop_map(|t| Bson::Document(doc! { "$not": { "$type": t } })),
        1 => (cmp_op(), scalar())
            .prop_map(|(op, v)| Bson::Document(doc! { "$elemMatch": { op: v } })),
        1 => elem_query.prop_map(|q| Bson::Document(doc! { "$elemMatch": q })),
    ]
    .boxed()
}

/// One document of `path: condition` pairs (possibly empty).
fn leaf_filter() -> BoxedStrategy<Document> {
    let pair = path().prop_flat_map(|p| (Just(p), condition(p.starts_with("tenantId"))));
    prop_oneof![
        16 => vec(pair, 0..3).prop_map(|pairs| {
            let mut d = Document::new();
            for (p, c) in pairs {
                d.insert(p, c);
            }
            d
        }),
        2 => (prop_oneof![Just("$gt"), Just("$lte"), Just("$eq")], scalar())
            .prop_map(|(op, v)| doc! { "$expr": { op: ["$amount", v] } }),
        1 => (prop_oneof![Just("$eq"), Just("$ne")], tenant_value())
            .prop_map(|(op, v)| doc! { "$expr": { op: ["$tenantId", v] } }),
    ]
    .boxed()
}

/// Filters nested under `$and`, `$or` and `$nor`, alone or next to field conditions.
fn filter() -> BoxedStrategy<Document> {
    leaf_filter()
        .prop_recursive(3, 24, 3, |inner| {
            prop_oneof![
                (
                    prop_oneof![Just("$and"), Just("$or"), Just("$nor")],
                    vec(inner.clone(), 1..4)
                )
                    .prop_map(|(op, fs)| doc! { op: fs }),
                (leaf_filter(), inner).prop_map(|(mut leaf, f)| {
                    leaf.insert("$and", vec![f]);
                    leaf
                }),
            ]
        })
        .boxed()
}

/// A sort on one field with `_id` as tie-break, so skip/limit select the same documents on any
/// plan.
fn sort() -> BoxedStrategy<Document> {
    (
        proptest::sample::select(vec![
            "amount",
            "status",
            "at",
            "meta.score",
            "tags",
            "customerId",
        ]),
        prop_oneof![Just(1), Just(-1)],
    )
        .prop_map(|(f, dir)| {
            let mut d = doc! { f: dir };
            d.insert("_id", 1);
            d
        })
        .boxed()
}

fn projection() -> BoxedStrategy<Document> {
    prop_oneof![
        Just(doc! { "amount": 1, "status": 1 }),
        Just(doc! { "meta": 0, "items": 0 }),
        Just(doc! { "tenantId": 0 }),
        Just(doc! { "items.qty": 1, "tenantId": 1 }),
        Just(doc! { "_id": 0, "at": 1 }),
    ]
    .boxed()
}

/// A filter on `customers`, for `$lookup` and `$unionWith` sub-pipelines.
fn lookup_filter() -> BoxedStrategy<Document> {
    prop_oneof![
        Just(doc! { "tier": "gold" }),
        Just(doc! { "name": { "$in": ["Ada", "Edsger"] } }),
        tenant_value().prop_map(|t| doc! { "tenantId": t }),
        Just(doc! { "deletedAt": { "$exists": true } }),
    ]
    .boxed()
}

/// A `$lookup` into `customers`, in each of its three forms, sometimes with a filter of its own.
fn lookup() -> BoxedStrategy<Document> {
    (0..3u8, prop_oneof![Just(doc! {}), lookup_filter()])
        .prop_map(|(form, inner)| {
            let mut sub: Vec<Document> = Vec::new();
            if !inner.is_empty() {
                sub.push(doc! { "$match": inner });
            }
            match form {
                0 => doc! { "$lookup": {
                    "from": CUSTOMERS, "localField": "customerId", "foreignField": "_id",
                    "as": JOINED,
                } },
                1 => {
                    sub.insert(
                        0,
                        doc! { "$match": { "$expr": { "$eq": ["$_id", "$$cid"] } } },
                    );
                    doc! { "$lookup": {
                        "from": CUSTOMERS, "let": { "cid": "$customerId" }, "pipeline": sub,
                        "as": JOINED,
                    } }
                }
                _ => doc! { "$lookup": {
                    "from": CUSTOMERS, "localField": "customerId", "foreignField": "_id",
                    "pipeline": sub, "as": JOINED,
                } },
            }
        })
        .boxed()
}

/// `[$match] [$sort [$skip] [$limit]] [$lookup] [$unwind] [$unionWith] [$match]
/// [$project|$addFields|$set] [$group|$count|$facet]`: `$skip`/`$limit` only follow a total sort, before anything that repeats
/// `_id`, so both sides keep the same documents on any plan.
fn pipeline() -> BoxedStrategy<Vec<Document>> {
    let paging = (
        sort(),
        proptest::option::of(0..4i64),
        proptest::option::of(1..6i64),
    );
    let unwind = prop_oneof![
        Just(doc! { "$unwind": "$tags" }),
        Just(doc! { "$unwind": "$items" }),
        Just(doc! { "$unwind": { "path": "$amount", "preserveNullAndEmptyArrays": true } }),
    ];
    let reshape = prop_oneof![
        projection().prop_map(|p| doc! { "$project": p }),
        Just(
            doc! { "$addFields": { "shown": "$tenantId", "n": { "$size": { "$ifNull": [ { "$cond": [ { "$isArray": "$tags" }, "$tags", [] ] }, [] ] } } } }
        ),
        Just(doc! { "$set": { "deletedAt": "$$REMOVE" } }),
    ];
    let terminal = prop_oneof![
        proptest::sample::select(vec!["$status", "$customerId", "$meta.kind", "$tenantId"])
            .prop_map(|k| doc! { "$group": {
                "_id": k, "n": { "$sum": 1 }, "score": { "$sum": "$meta.score" },
            } }),
        // SecantusDB divergence: `$count` over no input returns `{n: 0}` (MongoDB: no
        // document). Harmless here, as both sides run on the same server.
        Just(doc! { "$count": "n" }),
        // `$facet` branches read the already scoped input; each branch's output is made
        // order-free (only `_id`, sorted) so it compares on any plan.
        filter().prop_map(|f| doc! { "$facet": {
            "picked": [ { "$match": f }, { "$project": { "_id": 1 } }, { "$sort": { "_id": 1 } } ],
            "total": [ { "$count": "n" } ],
        } }),
    ];
    // `$unionWith` customers, sometimes filtered: its sub-pipeline is scoped too.
    let union = prop_oneof![
        Just(doc! { "$unionWith": CUSTOMERS }),
        lookup_filter().prop_map(|f| doc! { "$unionWith": {
            "coll": CUSTOMERS, "pipeline": [ { "$match": f } ],
        } }),
    ];
    (
        proptest::option::of(filter()),
        proptest::option::of(paging),
        proptest::option::of(lookup()),
        proptest::option::of(unwind),
        proptest::option::weighted(0.2, union),
        proptest::option::weighted(0.3, filter()),
        proptest::option::of(reshape),
        proptest::option::weighted(0.4, terminal),
    )
        .prop_map(
            |(first, paging, lookup, unwind, union, second, reshape, terminal)| {
                let mut stages = Vec::new();
                if let Some(f) = first {
                    stages.push(doc! { "$match": f });
                }
                if let Some((sort, skip, limit)) = paging {
                    stages.push(doc! { "$sort": sort });
                    if let Some(n) = skip {
                        stages.push(doc! { "$skip": n });
                    }
                    if let Some(n) = limit {
                        stages.push(doc! { "$limit": n });
                    }
                }
                stages.extend(lookup);
                stages.extend(unwind);
                stages.extend(union);
                if let Some(f) = second {
                    stages.push(doc! { "$match": f });
                }
                stages.extend(reshape);
                stages.extend(terminal);
                stages
            },
        )
        .boxed()
}

/// One read, as the driver sends it.
#[derive(Debug, Clone)]
enum Read {
    Find {
        filter: Document,
        sort: Option<Document>,
        skip: Option<u64>,
        limit: Option<i64>,
        projection: Option<Document>,
        batch_size: Option<u32>,
    },
    /// `countDocuments` (an aggregation under the hood).
    CountDocuments {
        filter: Document,
    },
    /// The `count` command; `None` is what `estimatedDocumentCount` sends (no query at all).
    Count {
        query: Option<Document>,
    },
    Distinct {
        key: &'static str,
        filter: Document,
    },
    Aggregate {
        pipeline: Vec<Document>,
    },
}

#[derive(Debug, Clone)]
struct ReadCase {
    tenant: &'static str,
    read: Read,
}

fn read_case() -> BoxedStrategy<ReadCase> {
    let find = (
        filter(),
        proptest::option::of((
            sort(),
            proptest::option::of(0..5u64),
            proptest::option::of(1..6i64),
        )),
        proptest::option::of(projection()),
        proptest::option::of(prop_oneof![Just(2u32), Just(5u32)]),
    )
        .prop_map(|(filter, paging, projection, batch_size)| {
            let (sort, skip, limit) = match paging {
                Some((s, skip, limit)) => (Some(s), skip, limit),
                None => (None, None, None),
            };
            Read::Find {
                filter,
                sort,
                skip,
                limit,
                projection,
                batch_size,
            }
        });
    let read = prop_oneof![
        6 => find,
        1 => filter().prop_map(|filter| Read::CountDocuments { filter }),
        1 => proptest::option::of(filter()).prop_map(|query| Read::Count { query }),
        1 => (
            proptest::sample::select(vec!["status", "tags", "meta.kind", "items.sku", "tenantId"]),
            filter(),
        )
            .prop_map(|(key, filter)| Read::Distinct { key, filter }),
        5 => pipeline().prop_map(|pipeline| Read::Aggregate { pipeline }),
    ];
    (tenant(), read)
        .prop_map(|(tenant, read)| ReadCase { tenant, read })
        .boxed()
}

#[derive(Debug, Clone)]
struct WriteCase {
    tenant: &'static str,
    filter: Document,
    delete: bool,
}

fn write_case() -> BoxedStrategy<WriteCase> {
    // Mostly flat filters: deep random ones rarely match any of T's few live documents.
    let filter = prop_oneof![2 => leaf_filter(), 1 => filter()];
    (tenant(), filter, any::<bool>())
        .prop_map(|(tenant, filter, delete)| WriteCase {
            tenant,
            filter,
            delete,
        })
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// Oracle
// ---------------------------------------------------------------------------------------------

/// The tenant-and-live clause the oracle adds, written independently of the policy's shape.
fn scope(tenant: &str) -> Document {
    doc! { "$and": [ { "tenantId": tenant }, { "deletedAt": Bson::Null } ] }
}

fn scoped_filter(tenant: &str, filter: &Document) -> Document {
    doc! { "$and": [ filter.clone(), scope(tenant) ] }
}

/// The pipeline with the scope `$match` first, and first in every `$lookup` and `$unionWith`
/// sub-pipeline (`$facet` branches read the scoped input and need nothing).
fn scoped_pipeline(tenant: &str, stages: &[Document]) -> Vec<Document> {
    let mut out = vec![doc! { "$match": scope(tenant) }];
    for stage in stages {
        if let Some(union) = stage.get("$unionWith") {
            let (coll, sub) = match union {
                Bson::Document(spec) => (
                    spec.get_str("coll").unwrap_or(CUSTOMERS).to_owned(),
                    sub_pipeline(spec),
                ),
                other => (other.as_str().unwrap_or(CUSTOMERS).to_owned(), Vec::new()),
            };
            out.push(doc! { "$unionWith": {
                "coll": coll, "pipeline": scoped_pipeline(tenant, &sub),
            } });
            continue;
        }
        match stage.get_document("$lookup") {
            Ok(spec) => {
                let mut spec = spec.clone();
                let sub = sub_pipeline(&spec);
                spec.insert("pipeline", scoped_pipeline(tenant, &sub));
                out.push(doc! { "$lookup": spec });
            }
            Err(_) => out.push(stage.clone()),
        }
    }
    out
}

/// The `pipeline` of a `$lookup` / `$unionWith` spec, or no stages.
fn sub_pipeline(spec: &Document) -> Vec<Document> {
    spec.get_array("pipeline")
        .map(|a| a.iter().filter_map(|s| s.as_document().cloned()).collect())
        .unwrap_or_default()
}

/// Canonical extended JSON of each result, `joined` arrays sorted, the list sorted: a multiset
/// that ignores the order the server returned things in, but not types or values.
fn canonical(docs: Vec<Bson>) -> Vec<String> {
    let mut out: Vec<String> = docs
        .into_iter()
        .map(|b| {
            let b = match b {
                Bson::Document(mut d) => {
                    if let Ok(arr) = d.get_array_mut(JOINED) {
                        arr.sort_by_cached_key(|x| x.clone().into_canonical_extjson().to_string());
                    }
                    Bson::Document(d)
                }
                other => other,
            };
            b.into_canonical_extjson().to_string()
        })
        .collect();
    out.sort();
    out
}

fn json(b: impl Into<Bson>) -> String {
    b.into().into_relaxed_extjson().to_string()
}

// ---------------------------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------------------------

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Both sides answered; the answers were compared (and matched). `names_tenant`: the case
    /// mentions the tenant field and was still forwarded (an own-tenant condition, or a field
    /// path the check treats as data).
    Compared { nonempty: bool, names_tenant: bool },
    /// The policy refused it as a tenant override.
    Refused,
    /// The upstream refused it on both sides with the same code.
    BothFailed,
}

/// Whether a case mentions the tenant field anywhere (a key, a path or a `$tenantId`
/// reference); generated values never contain the string.
fn names_tenant(case: &impl std::fmt::Debug) -> bool {
    format!("{case:?}").contains("tenantId")
}

/// Server error code and message of a failed operation, if it was the server's.
fn server_error(e: &mongodb::error::Error) -> Option<(i32, String)> {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => Some((c.code, c.message.clone())),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some((w.code, w.message.clone())),
        _ => None,
    }
}

/// A proxy over a fresh database seeded with [`payments`] and [`customers`], a driver client per
/// tenant, and the upstream database itself.
struct World {
    proxy: TestProxy,
    upstream: Database,
    tenants: BTreeMap<&'static str, Database>,
}

impl World {
    async fn start(prefix: &str) -> World {
        let name = common::fresh_db_name(prefix);
        let config = format!(
            "{}\n[[tenants]]\nslug = \"bank10\"\nname = \"Tenth Bank\"\n\n[[principals]]\nusername = \"svc-bank10\"\npassword = \"bank10-secret\"\ntenant = \"bank10\"\n",
            common::two_bank_config(&name)
        );
        let proxy = TestProxy::start(&config).await;
        let upstream = common::mongo_client().await.database(&name);
        let mut tenants = BTreeMap::new();
        for t in TENANTS {
            let db = proxy
                .client(&format!("svc-{t}"), &format!("{t}-secret"))
                .await
                .database(&name);
            tenants.insert(t, db);
        }
        for (coll, docs) in [
            (PAYMENTS, payments()),
            (CUSTOMERS, customers()),
            (WRITES, payments()),
        ] {
            upstream
                .collection::<Document>(coll)
                .insert_many(docs)
                .await
                .unwrap_or_else(|e| panic!("seeding {coll}: {e}"));
        }
        World {
            proxy,
            upstream,
            tenants,
        }
    }

    fn tenant(&self, t: &str) -> &Database {
        self.tenants.get(t).expect("a configured tenant")
    }

    async fn finish(self) {
        self.upstream.drop().await.expect("drop the test database");
        self.proxy.stop().await;
    }

    /// Runs `read` on `db` (the proxy's or the upstream's) and returns the results as documents
    /// (counts as `{n}`, distinct values as themselves).
    async fn run_read(db: &Database, read: &Read) -> mongodb::error::Result<Vec<Bson>> {
        let coll: Collection<Document> = db.collection(PAYMENTS);
        Ok(match read {
            Read::Find {
                filter,
                sort,
                skip,
                limit,
                projection,
                batch_size,
            } => {
                let mut find = coll.find(filter.clone());
                if let Some(s) = sort {
                    find = find.sort(s.clone());
                }
                if let Some(n) = skip {
                    find = find.skip(*n);
                }
                if let Some(n) = limit {
                    find = find.limit(*n);
                }
                if let Some(p) = projection {
                    find = find.projection(p.clone());
                }
                if let Some(n) = batch_size {
                    find = find.batch_size(*n);
                }
                let docs: Vec<Document> = find.await?.try_collect().await?;
                docs.into_iter().map(Bson::Document).collect()
            }
            Read::CountDocuments { filter } => {
                let n = coll.count_documents(filter.clone()).await?;
                vec![Bson::Document(doc! { "n": n as i64 })]
            }
            Read::Count { query } => {
                let mut cmd = doc! { "count": PAYMENTS };
                if let Some(q) = query {
                    cmd.insert("query", q.clone());
                }
                let reply = db.run_command(cmd).await?;
                vec![reply.get("n").cloned().unwrap_or(Bson::Null)]
            }
            Read::Distinct { key, filter } => coll.distinct(*key, filter.clone()).await?,
            Read::Aggregate { pipeline } => {
                let docs: Vec<Document> = coll
                    .aggregate(pipeline.clone())
                    .await?
                    .try_collect()
                    .await?;
                docs.into_iter().map(Bson::Document).collect()
            }
        })
    }

    /// The same read, scoped by the oracle, run directly on the upstream.
    fn oracle_read(case: &ReadCase) -> Read {
        let t = case.tenant;
        match &case.read {
            Read::Find {
                filter,
                sort,
                skip,
                limit,
                projection,
                batch_size,
            } => Read::Find {
                filter: scoped_filter(t, filter),
                sort: sort.clone(),
                skip: *skip,
                limit: *limit,
                projection: projection.clone(),
                batch_size: *batch_size,
            },
            Read::CountDocuments { filter } => Read::CountDocuments {
                filter: scoped_filter(t, filter),
            },
            Read::Count { query } => Read::Count {
                query: Some(scoped_filter(t, query.as_ref().unwrap_or(&Document::new()))),
            },
            Read::Distinct { key, filter } => Read::Distinct {
                key,
                filter: scoped_filter(t, filter),
            },
            Read::Aggregate { pipeline } => Read::Aggregate {
                pipeline: scoped_pipeline(t, pipeline),
            },
        }
    }

    async fn check_read(&self, case: &ReadCase) -> Result<Outcome, TestCaseError> {
        let via_proxy = Self::run_read(self.tenant(case.tenant), &case.read).await;
        let oracle = Self::oracle_read(case);
        let direct = Self::run_read(&self.upstream, &oracle).await;
        match (via_proxy, direct) {
            (Ok(got), Ok(want)) => {
                let nonempty = !want.is_empty();
                let (got, want) = (canonical(got), canonical(want));
                if got != want {
                    return Err(TestCaseError::fail(format!(
                        "{} through the proxy differs from the directly scoped read\n\
                         proxy ({}):  {got:#?}\ndirect ({}): {want:#?}\noracle: {oracle:?}",
                        case.tenant,
                        got.len(),
                        want.len()
                    )));
                }
                Ok(Outcome::Compared {
                    nonempty,
                    names_tenant: names_tenant(&case.read),
                })
            }
            (Err(e), direct) => {
                let (code, message) = server_error(&e).ok_or_else(|| {
                    TestCaseError::fail(format!("the proxy failed outside the server: {e}"))
                })?;
                if code == 13 && message.contains("'tenant_override'") {
                    if !names_tenant(&case.read) {
                        return Err(TestCaseError::fail(format!(
                            "refused as a tenant override without naming tenantId: {message}"
                        )));
                    }
                    return Ok(Outcome::Refused);
                }
                match direct {
                    Err(d) if server_error(&d).map(|(c, _)| c) == Some(code) => {
                        Ok(Outcome::BothFailed)
                    }
                    other => Err(TestCaseError::fail(format!(
                        "the proxy failed ({code}: {message}) but the direct read gave {other:?}"
                    ))),
                }
            }
            (Ok(got), Err(e)) => Err(TestCaseError::fail(format!(
                "the direct read failed ({e}) but the proxy answered {got:?}"
            ))),
        }
    }

    /// Every document of `writes`, by `_id`.
    async fn dump(&self) -> BTreeMap<String, Document> {
        let docs: Vec<Document> = self
            .upstream
            .collection::<Document>(WRITES)
            .find(doc! {})
            .await
            .expect("dump writes")
            .try_collect()
            .await
            .expect("iterate writes");
        docs.into_iter()
            .map(|d| (d.get_str("_id").expect("string _id").to_owned(), d))
            .collect()
    }

    async fn check_write(&self, case: &WriteCase, mark: i64) -> Result<Outcome, TestCaseError> {
        let direct: Collection<Document> = self.upstream.collection(WRITES);
        // Reseed first, so a failed case leaves nothing behind for the shrinker's next run.
        direct.delete_many(doc! {}).await.expect("clear writes");
        direct.insert_many(payments()).await.expect("reseed writes");

        let matched: Vec<Document> = direct
            .find(scoped_filter(case.tenant, &case.filter))
            .await
            .expect("oracle find")
            .try_collect()
            .await
            .expect("oracle cursor");
        let matched: Vec<String> = matched
            .iter()
            .map(|d| d.get_str("_id").expect("string _id").to_owned())
            .collect();
        let before = self.dump().await;

        let coll: Collection<Document> = self.tenant(case.tenant).collection(WRITES);
        let n = if case.delete {
            coll.delete_many(case.filter.clone())
                .await
                .map(|r| r.deleted_count)
        } else {
            coll.update_many(case.filter.clone(), doc! { "$set": { "mark": mark } })
                .await
                .map(|r| r.matched_count)
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                return match server_error(&e) {
                    Some((13, m)) if m.contains("'tenant_override'") => {
                        prop_assert!(
                            names_tenant(&case.filter),
                            "refused without naming tenantId: {m}"
                        );
                        prop_assert_eq!(self.dump().await, before, "a refused write changed data");
                        Ok(Outcome::Refused)
                    }
                    _ => Err(TestCaseError::fail(format!("the write failed: {e}"))),
                };
            }
        };
        prop_assert_eq!(n, matched.len() as u64, "count reported for {:?}", matched);

        let after = self.dump().await;
        prop_assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "documents appeared or were hard-deleted"
        );
        for (id, old) in &before {
            let new = &after[id];
            if !matched.contains(id) {
                prop_assert_eq!(new, old, "{} changed but is not T's live match", id);
                continue;
            }
            let field = if case.delete { "deletedAt" } else { "mark" };
            match new.get(field) {
                Some(Bson::DateTime(_)) if case.delete => {}
                Some(Bson::Int64(m)) if !case.delete && *m == mark => {}
                other => {
                    return Err(TestCaseError::fail(format!(
                        "{id}: {field} is {other:?} after the write"
                    )));
                }
            }
            let (mut new, mut old) = (new.clone(), old.clone());
            new.remove(field);
            old.remove(field);
            prop_assert_eq!(new, old, "{} changed beyond {}", id, field);
        }
        Ok(Outcome::Compared {
            nonempty: !matched.is_empty(),
            names_tenant: names_tenant(&case.filter),
        })
    }
}

/// `PROPTEST_CASES`, or `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A runner with a fixed seed (unless `PROPTEST_RNG_SEED` is set), failures persisted under
/// `proptest-regressions/`, and shrinking bounded: every shrink step is a round trip.
fn runner(default_cases: u32) -> TestRunner {
    let mut config = Config {
        cases: cases(default_cases),
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/policy_differential.txt",
        ))),
        max_shrink_iters: 400,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(0x7e4a_6a7e);
    }
    TestRunner::new(config)
}

/// Runs `check` on every generated case inside `rt`, under [`CASE_TIMEOUT`]; panics with the
/// shrunk case on failure; returns the outcome of each case.
fn run_property<V, F, Fut>(
    rt: &tokio::runtime::Runtime,
    default_cases: u32,
    strategy: BoxedStrategy<V>,
    check: F,
) -> Vec<Outcome>
where
    V: std::fmt::Debug + Clone,
    F: Fn(V) -> Fut,
    Fut: Future<Output = Result<Outcome, TestCaseError>>,
{
    let outcomes = RefCell::new(Vec::new());
    let mut runner = runner(default_cases);
    let result = runner.run(&strategy, |case| {
        let outcome = rt
            .block_on(async { tokio::time::timeout(CASE_TIMEOUT, check(case)).await })
            .map_err(|_| TestCaseError::fail("the case did not finish within the timeout"))??;
        outcomes.borrow_mut().push(outcome);
        Ok(())
    });
    match result {
        Ok(()) => outcomes.into_inner(),
        Err(TestError::Fail(reason, case)) => {
            panic!("\n{reason}\n\nminimal failing case:\n{case:#?}\n")
        }
        Err(e) => panic!("{e}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Tallies outcomes and checks the generators exercised the property: most cases compared
/// results, many of them non-empty, and some were refused.
fn assert_coverage(what: &str, outcomes: &[Outcome]) {
    let total = outcomes.len();
    let compared = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Compared { .. }))
        .count();
    let nonempty = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Compared { nonempty: true, .. }))
        .count();
    let named = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Compared {
                    names_tenant: true,
                    ..
                }
            )
        })
        .count();
    let refused = outcomes.iter().filter(|o| **o == Outcome::Refused).count();
    let failed = outcomes
        .iter()
        .filter(|o| **o == Outcome::BothFailed)
        .count();
    eprintln!(
        "{what}: {total} cases, {compared} compared ({nonempty} non-empty, {named} naming \
         tenantId), {refused} refused as tenant_override, {failed} refused by the upstream on \
         both sides"
    );
    assert!(
        compared * 2 >= total,
        "{what}: only {compared}/{total} compared"
    );
    assert!(
        nonempty * 4 >= total,
        "{what}: only {nonempty}/{total} non-empty"
    );
    assert!(
        refused * 50 >= total,
        "{what}: only {refused}/{total} refused"
    );
    assert!(
        failed * 10 <= total,
        "{what}: {failed}/{total} invalid on both sides"
    );
}

#[test]
fn reads_through_the_proxy_equal_directly_scoped_reads() {
    let rt = runtime();
    let world = rt.block_on(World::start("diff_read"));
    let outcomes = run_property(&rt, 300, read_case(), |case| {
        let world = &world;
        async move { world.check_read(&case).await }
    });
    assert_coverage("reads", &outcomes);
    rt.block_on(world.finish());
}

#[test]
fn writes_through_the_proxy_touch_exactly_the_directly_scoped_documents() {
    let rt = runtime();
    let world = rt.block_on(World::start("diff_write"));
    let next_mark = std::cell::Cell::new(0i64);
    let outcomes = run_property(&rt, 120, write_case(), |case| {
        let world = &world;
        next_mark.set(next_mark.get() + 1);
        let mark = next_mark.get();
        async move { world.check_write(&case, mark).await }
    });
    assert_coverage("writes", &outcomes);
    rt.block_on(world.finish());
}

/// The MongoDB semantics the property's oracle relies on, and what they mean for documents whose
/// `tenantId` is not a plain string: checked through the proxy and directly.
#[test]
fn upstream_semantics_the_property_relies_on() {
    let rt = runtime();
    let world = rt.block_on(World::start("diff_sem"));
    rt.block_on(async {
        let ids = |docs: Vec<Document>| -> Vec<String> {
            let mut v: Vec<String> = docs
                .iter()
                .map(|d| d.get_str("_id").expect("string _id").to_owned())
                .collect();
            v.sort();
            v
        };
        let odd = doc! { "_id": { "$regex": "^odd-" } };
        for (t, want) in [
            // An array holding T matches `tenantId: T`; nothing else odd does.
            ("bank1", vec!["odd-array"]),
            ("bank10", vec!["odd-array10"]),
            ("bank2", vec!["odd-array"]),
        ] {
            let through: Vec<Document> = world
                .tenant(t)
                .collection::<Document>(PAYMENTS)
                .find(odd.clone())
                .await
                .expect("find through the proxy")
                .try_collect()
                .await
                .expect("cursor");
            assert_eq!(ids(through), want, "{t} through the proxy");
            let direct: Vec<Document> = world
                .upstream
                .collection::<Document>(PAYMENTS)
                .find(scoped_filter(t, &odd))
                .await
                .expect("direct find")
                .try_collect()
                .await
                .expect("cursor");
            assert_eq!(ids(direct), want, "{t} directly");
        }
        // Live per `deletedAt: null`: missing, null, [null] and [null, date]; not a date or false.
        let live: Vec<Document> = world
            .tenant("bank1")
            .collection::<Document>(PAYMENTS)
            .find(doc! { "_id": { "$regex": "^bank1-" } })
            .await
            .expect("find through the proxy")
            .try_collect()
            .await
            .expect("cursor");
        for d in &live {
            match d.get("deletedAt") {
                None | Some(Bson::Null) => {}
                Some(Bson::Array(a)) if a.contains(&Bson::Null) => {}
                other => panic!("a deleted document is visible: {other:?} in {d:?}"),
            }
        }
        let expected_live = payments()
            .iter()
            .filter(|d| d.get_str("tenantId").ok() == Some("bank1"))
            .filter(|d| match d.get("deletedAt") {
                None | Some(Bson::Null) => true,
                Some(Bson::Array(a)) => a.contains(&Bson::Null),
                _ => false,
            })
            .count();
        assert_eq!(
            live.len(),
            expected_live,
            "{}",
            json(Bson::Array(
                live.iter().cloned().map(Bson::Document).collect()
            ))
        );
        // The proxy refuses to create a document with an array tenant id.
        let refused = world
            .tenant("bank1")
            .collection::<Document>(PAYMENTS)
            .insert_one(doc! { "_id": "sneak", "tenantId": ["bank1", "bank2"] })
            .await;
        match refused.as_ref().map_err(server_error) {
            Err(Some((13, m))) => assert!(m.contains("'tenant_field_write'"), "{m}"),
            other => panic!("an array tenant id must be refused: {other:?}"),
        }
    });
    rt.block_on(world.finish());
}

/// `$graphLookup` is not in the generators: the policy scopes it through
/// `restrictSearchWithMatch`, and SecantusDB 0.7.0b3 ignores that option entirely (divergence
/// from MongoDB, which applies it at every depth). This test probes the upstream directly and
/// then checks the MongoDB-documented behaviour through the proxy, where the upstream honours
/// the option. On an upstream that ignores it, `$graphLookup` through tenantgate reaches other
/// tenants' and deleted documents; the test says so loudly and checks the probe still holds, so
/// the day SecantusDB is fixed the real check runs instead.
#[test]
fn graph_lookup_is_scoped_where_the_upstream_honours_restrict_search_with_match() {
    let rt = runtime();
    let world = rt.block_on(World::start("diff_graph"));
    rt.block_on(async {
        let graph = |restrict: Option<Document>| {
            let mut spec = doc! {
                "from": CUSTOMERS, "startWith": "$customerId", "connectFromField": "name",
                "connectToField": "_id", "as": "graph",
            };
            if let Some(r) = restrict {
                spec.insert("restrictSearchWithMatch", r);
            }
            vec![
                doc! { "$match": { "customerId": { "$exists": true } } },
                doc! { "$graphLookup": spec },
            ]
        };
        let joined = |docs: Vec<Document>| -> Vec<Document> {
            docs.iter()
                .flat_map(|d| d.get_array("graph").cloned().unwrap_or_default())
                .filter_map(|b| b.as_document().cloned())
                .collect()
        };
        let probe: Vec<Document> = world
            .upstream
            .collection::<Document>(PAYMENTS)
            .aggregate(graph(Some(doc! { "_id": "no such customer" })))
            .await
            .expect("direct $graphLookup")
            .try_collect()
            .await
            .expect("cursor");
        let honours = joined(probe).is_empty();

        let through: Vec<Document> = world
            .tenant("bank1")
            .collection::<Document>(PAYMENTS)
            .aggregate(graph(None))
            .await
            .expect("$graphLookup through the proxy")
            .try_collect()
            .await
            .expect("cursor");
        let reached = joined(through);
        let foreign: Vec<&Document> = reached
            .iter()
            .filter(|c| {
                let own = match c.get("tenantId") {
                    Some(Bson::String(t)) => t == "bank1",
                    Some(Bson::Array(a)) => a.contains(&s("bank1")),
                    _ => false,
                };
                !own || c.get("deletedAt").is_some_and(|d| *d != Bson::Null)
            })
            .collect();
        if honours {
            assert!(!reached.is_empty(), "bank1's own customers are reached");
            assert!(
                foreign.is_empty(),
                "$graphLookup through the proxy reached other tenants' or deleted documents: \
                 {foreign:?}"
            );
        } else {
            eprintln!(
                "\n*** WARNING: this upstream ignores $graphLookup.restrictSearchWithMatch \
                 (SecantusDB divergence): $graphLookup through tenantgate reached {} document(s) \
                 of other tenants or deleted ones. On MongoDB the scope holds. ***\n",
                foreign.len()
            );
            assert!(
                !foreign.is_empty(),
                "the probe says the option is ignored, so the unscoped join must show"
            );
        }
    });
    rt.block_on(world.finish());
}
