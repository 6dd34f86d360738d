//! Generators: filters (comparisons, `$in`/`$nin`, `$exists`, `$type`, `$not`, `$elemMatch`,
//! `$and`/`$or`/`$nor`, `$expr`, dotted paths, the tenant and soft-delete fields themselves),
//! finds with sort/skip/limit/projection, counts, distincts, pipelines, and writes.

use bson::{Bson, Document, doc};
use proptest::collection::vec;
use proptest::prelude::*;

use super::seed::{TENANTS, date, dec, s};

/// The scoped collection every read targets.
pub const PAYMENTS: &str = "payments";
/// The scoped collection `$lookup` joins.
pub const CUSTOMERS: &str = "customers";
/// The collection the write property reseeds before each case.
pub const WRITES: &str = "writes";
/// The field `$lookup` stages write; its array is order-canonicalized before comparing.
pub const JOINED: &str = "joined";

pub fn tenant() -> BoxedStrategy<&'static str> {
    proptest::sample::select(TENANTS.to_vec()).boxed()
}

/// Values compared with the tenant field: every configured tenant, and near misses.
pub fn tenant_value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => tenant().prop_map(s),
        1 => Just(s("bank")),
        1 => Just(s("BANK1")),
        1 => Just(Bson::Array(vec![s("bank1"), s("bank2")])),
    ]
    .boxed()
}

pub fn scalar() -> BoxedStrategy<Bson> {
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

pub fn value() -> BoxedStrategy<Bson> {
    prop_oneof![
        6 => scalar(),
        1 => vec(scalar(), 0..3).prop_map(Bson::Array),
        1 => scalar().prop_map(|v| Bson::Document(doc! { "score": v })),
        1 => (scalar(), scalar()).prop_map(|(q, k)| Bson::Document(doc! { "qty": q, "sku": k })),
    ]
    .boxed()
}

/// Paths, including the tenant and soft-delete fields themselves and paths below them.
pub fn path() -> BoxedStrategy<&'static str> {
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

pub fn cmp_op() -> BoxedStrategy<&'static str> {
    proptest::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]).boxed()
}

pub fn type_name() -> BoxedStrategy<Bson> {
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
pub fn condition(tenant_path: bool) -> BoxedStrategy<Bson> {
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
pub fn leaf_filter() -> BoxedStrategy<Document> {
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
pub fn filter() -> BoxedStrategy<Document> {
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
pub fn sort() -> BoxedStrategy<Document> {
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

pub fn projection() -> BoxedStrategy<Document> {
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
pub fn lookup_filter() -> BoxedStrategy<Document> {
    prop_oneof![
        Just(doc! { "tier": "gold" }),
        Just(doc! { "name": { "$in": ["Ada", "Edsger"] } }),
        tenant_value().prop_map(|t| doc! { "tenantId": t }),
        Just(doc! { "deletedAt": { "$exists": true } }),
    ]
    .boxed()
}

/// A `$lookup` into `customers`, in each of its three forms, sometimes with a filter of its own.
pub fn lookup() -> BoxedStrategy<Document> {
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
pub fn pipeline() -> BoxedStrategy<Vec<Document>> {
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
pub enum Read {
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
pub struct ReadCase {
    pub tenant: &'static str,
    pub read: Read,
}

pub fn read_case() -> BoxedStrategy<ReadCase> {
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
pub struct WriteCase {
    pub tenant: &'static str,
    pub filter: Document,
    pub delete: bool,
}

pub fn write_case() -> BoxedStrategy<WriteCase> {
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
