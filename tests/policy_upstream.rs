//! The policy engine against the real upstream: two tenants' data in the same collections, and
//! for a battery of filters, pipelines and writes, the rewritten command (sent through the
//! official Rust driver, bypassing nothing else) touches only the calling tenant's live
//! documents. Expected results are computed from the seeded data, not from the engine.

mod common;

use bson::{Bson, DateTime, Document, RawDocumentBuf, doc, rawdoc};
use mongodb::Database;
use tenantgate_policy::{
    Context, Decision, PolicyConfig, Principal, Rejection, ReplyShape, Rule, TenantId,
    decide_command, reply,
};
use tenantgate_wire::RawDoc;

const NOW: i64 = 1_795_000_000_000;

struct Fixture {
    db: Database,
    name: String,
    config: PolicyConfig,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        let name = common::fresh_db_name(prefix);
        let client = common::mongo_client().await;
        let db = client.database(&name);
        let mut config: PolicyConfig = toml::from_str(
            r#"
            [collections.currencies]
            mode = "global"
            [collections.audit_secrets]
            mode = "admin"
            "#,
        )
        .expect("config parses");
        config.databases = vec![name.clone()];
        config.validate().expect("valid config");
        let f = Fixture { db, name, config };
        f.seed().await;
        f
    }

    /// bank1: p1..p5 live (p4 failed), p6 p7 deleted; bank2: q1..q5 live, q6 deleted.
    async fn seed(&self) {
        let deleted = DateTime::from_millis(NOW - 1000);
        let mut payments = Vec::new();
        for (tenant, prefix, live, dead) in [("bank1", "p", 5, 2), ("bank2", "q", 5, 1)] {
            for i in 1..=(live + dead) {
                let mut d = doc! {
                    "_id": format!("{prefix}{i}"), "tenantId": tenant, "amount": i64::from(i) * 100,
                    "currency": if i % 2 == 0 { "EUR" } else { "USD" },
                    "status": if i == 4 { "failed" } else { "succeeded" },
                    "customerId": format!("{prefix}c{}", 1 + i % 2),
                };
                if i > live {
                    d.insert("deletedAt", deleted);
                }
                payments.push(d);
            }
        }
        self.db
            .collection::<Document>("payments")
            .insert_many(payments)
            .await
            .expect("seed payments");
        let customers = vec![
            doc! { "_id": "pc1", "tenantId": "bank1", "name": "Ada" },
            doc! { "_id": "pc2", "tenantId": "bank1", "name": "Grace", "deletedAt": deleted },
            doc! { "_id": "qc1", "tenantId": "bank2", "name": "Alan" },
            doc! { "_id": "qc2", "tenantId": "bank2", "name": "Edsger" },
        ];
        self.db
            .collection::<Document>("customers")
            .insert_many(customers)
            .await
            .expect("seed customers");
        let currencies = vec![
            doc! { "_id": "EUR", "digits": 2 },
            doc! { "_id": "USD", "digits": 2 },
        ];
        self.db
            .collection::<Document>("currencies")
            .insert_many(currencies)
            .await
            .expect("seed currencies");
    }

    fn decide(&self, body: RawDocumentBuf, principal: &Principal) -> Decision {
        let mut body = body;
        body.append(bson::raw::cstr!("$db"), self.name.as_str());
        let raw = RawDoc::from_buf(body).expect("valid command");
        let ctx = Context {
            principal,
            config: &self.config,
            now: DateTime::from_millis(NOW),
        };
        decide_command(&raw, &[], &ctx).decision
    }

    /// Decides as `principal` and runs the forwarded command; the reply is reshaped as the proxy
    /// would.
    async fn run(
        &self,
        body: RawDocumentBuf,
        principal: &Principal,
    ) -> Result<Document, Rejection> {
        match self.decide(body, principal) {
            Decision::Forward(fwd) => {
                assert!(
                    fwd.sequences.is_empty(),
                    "these tests send everything in the body"
                );
                let mut cmd = RawDocumentBuf::new();
                for (k, v) in fwd.body.as_raw().iter().map(|e| e.expect("valid")) {
                    if k.as_str() != "$db" {
                        cmd.append(k, v);
                    }
                }
                let reply = self
                    .db
                    .run_raw_command(cmd)
                    .await
                    .expect("upstream accepts the rewritten command");
                let raw = RawDocumentBuf::try_from(&reply).expect("encodes");
                let shaped = reply::reshape(fwd.reply, &raw).unwrap_or(raw);
                Ok(Document::try_from(shaped.as_ref()).expect("decodes"))
            }
            Decision::Reject(r) => Err(r),
            Decision::Reply(r) => Ok(Document::try_from(r.as_ref()).expect("decodes")),
        }
    }

    async fn direct(&self, coll: &str, filter: Document) -> Vec<Document> {
        use futures::TryStreamExt;
        let cursor = self
            .db
            .collection::<Document>(coll)
            .find(filter)
            .await
            .expect("direct find");
        cursor.try_collect().await.expect("direct cursor")
    }

    async fn drop(self) {
        self.db.drop().await.expect("drop test database");
    }
}

fn bank(n: u8) -> Principal {
    Principal::tenant(format!("svc-bank{n}"), TenantId::new(format!("bank{n}")))
}

fn batch(reply: &Document) -> Vec<Document> {
    let cursor = reply
        .get_document("cursor")
        .unwrap_or_else(|_| panic!("a cursor reply: {reply:?}"));
    cursor
        .get_array("firstBatch")
        .expect("firstBatch")
        .iter()
        .map(|b| b.as_document().expect("documents").clone())
        .collect()
}

fn ids(docs: &[Document]) -> Vec<String> {
    let mut v: Vec<String> = docs
        .iter()
        .map(|d| d.get_str("_id").expect("string ids").to_owned())
        .collect();
    v.sort();
    v
}

/// Every document is bank1's and live.
fn all_own_and_live(docs: &[Document]) {
    for d in docs {
        assert_eq!(d.get_str("tenantId").ok(), Some("bank1"), "{d:?}");
        assert!(
            matches!(d.get("deletedAt"), None | Some(Bson::Null)),
            "deleted document leaked: {d:?}"
        );
    }
}

#[tokio::test]
async fn reads_see_only_the_tenants_live_documents() {
    let f = Fixture::new("pol_reads").await;
    let b1 = bank(1);
    let cases: Vec<(Document, Vec<&str>)> = vec![
        (doc! {}, vec!["p1", "p2", "p3", "p4", "p5"]),
        (doc! { "status": "failed" }, vec!["p4"]),
        (
            doc! { "$or": [ { "status": "failed" }, { "amount": { "$gte": 500_i64 } } ] },
            vec!["p4", "p5"],
        ),
        (doc! { "amount": { "$in": [100_i64, 600_i64] } }, vec!["p1"]),
        (doc! { "_id": "q1" }, vec![]),
        (
            doc! { "_id": { "$in": ["q1", "q2", "p6", "p2"] } },
            vec!["p2"],
        ),
        (
            doc! { "$expr": { "$gt": ["$amount", 300_i64] } },
            vec!["p4", "p5"],
        ),
        (
            doc! { "tenantId": "bank1", "currency": "EUR" },
            vec!["p2", "p4"],
        ),
        (doc! { "$nor": [ { "status": "succeeded" } ] }, vec!["p4"]),
        (doc! { "deletedAt": { "$exists": true } }, vec![]),
    ];
    for (filter, expected) in cases {
        let body = rawdoc! { "find": "payments", "filter": RawDocumentBuf::try_from(&filter).expect("encodes"), "batchSize": 100 };
        let reply = f
            .run(body, &b1)
            .await
            .unwrap_or_else(|r| panic!("{filter:?} rejected: {r:?}"));
        let docs = batch(&reply);
        all_own_and_live(&docs);
        assert_eq!(ids(&docs), expected, "{filter:?}");
    }
    // estimatedDocumentCount sends count without a query
    let reply = f
        .run(rawdoc! { "count": "payments" }, &b1)
        .await
        .expect("allowed");
    assert_eq!(
        reply
            .get_i32("n")
            .ok()
            .map(i64::from)
            .or(reply.get_i64("n").ok()),
        Some(5)
    );
    let reply = f
        .run(rawdoc! { "distinct": "payments", "key": "tenantId" }, &b1)
        .await
        .expect("allowed");
    assert_eq!(
        reply.get_array("values").expect("values"),
        &vec![Bson::from("bank1")]
    );
    // and bank2 sees its own five
    let reply = f
        .run(rawdoc! { "find": "payments", "filter": {} }, &bank(2))
        .await
        .expect("allowed");
    assert_eq!(ids(&batch(&reply)), ["q1", "q2", "q3", "q4", "q5"]);
    f.drop().await;
}

#[tokio::test]
async fn escape_attempts_are_rejected_not_answered() {
    let f = Fixture::new("pol_escape").await;
    let b1 = bank(1);
    for body in [
        rawdoc! { "find": "payments", "filter": { "tenantId": "bank2" } },
        rawdoc! { "find": "payments", "filter": { "$or": [ { "tenantId": { "$ne": "bank1" } } ] } },
        rawdoc! { "aggregate": "payments", "pipeline": [ { "$match": { "$expr": { "$ne": ["$tenantId", "bank1"] } } } ], "cursor": {} },
        rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "tenantId": "bank2" } }, "multi": true } ] },
    ] {
        let err = f
            .run(body.clone(), &b1)
            .await
            .expect_err("must be rejected");
        assert!(
            matches!(err.rule, Rule::TenantOverride | Rule::TenantFieldWrite),
            "{body:?}: {err:?}"
        );
    }
    let err = f
        .run(
            rawdoc! { "aggregate": "payments", "pipeline": [ { "$out": "stolen" } ], "cursor": {} },
            &b1,
        )
        .await
        .expect_err("$out is refused");
    assert_eq!(err.rule, Rule::StageNotAllowed);
    // nothing was changed upstream
    assert_eq!(
        f.direct("payments", doc! { "tenantId": "bank2" })
            .await
            .len(),
        6
    );
    f.drop().await;
}

#[tokio::test]
async fn pipelines_are_scoped_at_every_depth() {
    let f = Fixture::new("pol_pipes").await;
    let b1 = bank(1);

    // $lookup, equality form: joined customers are bank1's and live (pc2 is deleted).
    let reply = f
        .run(
            rawdoc! { "aggregate": "payments", "pipeline": [
                { "$lookup": { "from": "customers", "localField": "customerId", "foreignField": "_id", "as": "c" } },
                { "$sort": { "_id": 1 } },
            ], "cursor": {} },
            &b1,
        )
        .await
        .expect("allowed");
    let docs = batch(&reply);
    all_own_and_live(&docs);
    assert_eq!(docs.len(), 5);
    for d in &docs {
        let joined = d.get_array("c").expect("joined array");
        for c in joined {
            let c = c.as_document().expect("doc");
            assert_eq!(c.get_str("tenantId").ok(), Some("bank1"));
            assert_eq!(
                c.get_str("_id").ok(),
                Some("pc1"),
                "only the live bank1 customer joins"
            );
        }
    }

    // $lookup, pipeline form, trying to join every customer.
    let reply = f
        .run(
            rawdoc! { "aggregate": "payments", "pipeline": [
                { "$limit": 1 },
                { "$lookup": { "from": "customers", "pipeline": [ { "$match": {} } ], "as": "all" } },
            ], "cursor": {} },
            &b1,
        )
        .await
        .expect("allowed");
    let all = batch(&reply)[0].get_array("all").expect("joined").clone();
    assert_eq!(all.len(), 1, "only pc1: {all:?}");

    // $unionWith customers: payments and customers of bank1 only.
    let reply = f
        .run(rawdoc! { "aggregate": "payments", "pipeline": [ { "$unionWith": "customers" } ], "cursor": {} }, &b1)
        .await
        .expect("allowed");
    let docs = batch(&reply);
    all_own_and_live(&docs);
    assert_eq!(ids(&docs), ["p1", "p2", "p3", "p4", "p5", "pc1"]);

    // $facet over the scoped input, and a global collection joined by every tenant.
    let reply = f
        .run(
            rawdoc! { "aggregate": "payments", "pipeline": [
                { "$facet": {
                    "total": [ { "$group": { "_id": null, "sum": { "$sum": "$amount" } } } ],
                    "withCurrency": [ { "$lookup": { "from": "currencies", "localField": "currency", "foreignField": "_id", "as": "cur" } } ],
                } },
            ], "cursor": {} },
            &b1,
        )
        .await
        .expect("allowed");
    let facet = &batch(&reply)[0];
    let total = facet.get_array("total").expect("total")[0]
        .as_document()
        .expect("doc")
        .get_i64("sum");
    assert_eq!(total.ok(), Some(1500), "100+200+300+400+500");
    for d in facet.get_array("withCurrency").expect("joined") {
        let d = d.as_document().expect("doc");
        assert_eq!(
            d.get_array("cur").expect("currency joined").len(),
            1,
            "global collection is readable: {d:?}"
        );
    }

    // $group over everything the tenant can see
    let reply = f
        .run(rawdoc! { "aggregate": "payments", "pipeline": [ { "$group": { "_id": "$tenantId", "n": { "$sum": 1 } } } ], "cursor": {} }, &b1)
        .await
        .expect("allowed");
    assert_eq!(batch(&reply), vec![doc! { "_id": "bank1", "n": 5 }]);
    f.drop().await;
}

#[tokio::test]
async fn writes_stay_in_the_tenant_and_deletes_are_soft() {
    let f = Fixture::new("pol_writes").await;
    let b1 = bank(1);

    // insert without a tenant id: it gets bank1's
    let reply = f
        .run(rawdoc! { "insert": "payments", "documents": [ { "_id": "p9", "amount": 900_i64, "status": "pending" } ] }, &b1)
        .await
        .expect("allowed");
    assert_eq!(reply.get_i32("n").ok(), Some(1));
    assert_eq!(
        f.direct("payments", doc! { "_id": "p9" }).await[0]
            .get_str("tenantId")
            .ok(),
        Some("bank1")
    );

    // an update of "everything" changes only bank1's live documents
    let reply = f
        .run(rawdoc! { "update": "payments", "updates": [ { "q": {}, "u": { "$set": { "flag": true } }, "multi": true } ] }, &b1)
        .await
        .expect("allowed");
    assert_eq!(reply.get_i32("n").ok(), Some(6));
    assert!(
        f.direct("payments", doc! { "tenantId": "bank2", "flag": true })
            .await
            .is_empty()
    );
    assert!(
        f.direct("payments", doc! { "_id": "p6", "flag": true })
            .await
            .is_empty(),
        "deleted docs untouched"
    );

    // upsert inserts with the tenant id from the scoped filter
    f.run(
        rawdoc! { "update": "payments", "updates": [ { "q": { "_id": "p10" }, "u": { "$set": { "amount": 1_i64 } }, "upsert": true } ] },
        &b1,
    )
    .await
    .expect("allowed");
    let up = f.direct("payments", doc! { "_id": "p10" }).await;
    assert_eq!(up[0].get_str("tenantId").ok(), Some("bank1"), "{up:?}");

    // delete is soft: n counts deleted documents, the document stays upstream with deletedAt
    let reply = f
        .run(rawdoc! { "delete": "payments", "deletes": [ { "q": { "status": "failed" }, "limit": 0 } ] }, &b1)
        .await
        .expect("allowed");
    assert_eq!(reply.get_i32("n").ok(), Some(1), "{reply:?}");
    assert!(
        reply.get("nModified").is_none(),
        "reply keeps the delete shape"
    );
    let p4 = f.direct("payments", doc! { "_id": "p4" }).await;
    assert_eq!(
        p4[0].get_datetime("deletedAt").ok(),
        Some(&DateTime::from_millis(NOW))
    );
    let reply = f
        .run(
            rawdoc! { "find": "payments", "filter": { "_id": "p4" } },
            &b1,
        )
        .await
        .expect("allowed");
    assert!(
        batch(&reply).is_empty(),
        "soft-deleted documents are invisible"
    );
    // bank2's failed payment was not touched
    assert!(
        f.direct("payments", doc! { "_id": "q4" }).await[0]
            .get("deletedAt")
            .is_none()
    );

    // ...visible with includeDeleted, and restorable
    let reply = f
        .run(rawdoc! { "find": "payments", "filter": { "_id": "p4" }, "comment": "tenantgate:includeDeleted" }, &b1)
        .await
        .expect("allowed");
    assert_eq!(ids(&batch(&reply)), ["p4"]);
    f.run(
        rawdoc! { "update": "payments", "updates": [ { "q": { "_id": "p4" }, "u": { "$unset": { "deletedAt": "" } } } ], "comment": { "tenantgate": { "includeDeleted": true } } },
        &b1,
    )
    .await
    .expect("restore allowed");
    let reply = f
        .run(
            rawdoc! { "find": "payments", "filter": { "_id": "p4" } },
            &b1,
        )
        .await
        .expect("allowed");
    assert_eq!(ids(&batch(&reply)), ["p4"], "restored");

    // findAndModify remove is soft too and returns the document
    let reply = f
        .run(
            rawdoc! { "findAndModify": "payments", "query": { "_id": "p1" }, "remove": true },
            &b1,
        )
        .await
        .expect("allowed");
    assert_eq!(
        reply
            .get_document("value")
            .and_then(|v| v.get_str("_id"))
            .ok(),
        Some("p1")
    );
    assert!(
        f.direct("payments", doc! { "_id": "p1" }).await[0]
            .get("deletedAt")
            .is_some()
    );
    // and a tenant cannot reach bank2's document through findAndModify
    let reply = f
        .run(rawdoc! { "findAndModify": "payments", "query": { "_id": "q1" }, "update": { "$set": { "x": 1 } } }, &b1)
        .await
        .expect("allowed");
    assert!(
        matches!(reply.get("value"), Some(Bson::Null) | None),
        "{reply:?}"
    );
    assert!(
        f.direct("payments", doc! { "_id": "q1", "x": 1 })
            .await
            .is_empty()
    );

    // global collections are read-only for tenants
    let err = f
        .run(
            rawdoc! { "insert": "currencies", "documents": [ { "_id": "XXX" } ] },
            &b1,
        )
        .await
        .expect_err("global write refused");
    assert_eq!(err.rule, Rule::GlobalWrite);
    f.drop().await;
}

#[tokio::test]
async fn super_admin_bypasses_and_hard_deletes() {
    let f = Fixture::new("pol_admin").await;
    let admin = Principal::super_admin("platform-admin");
    let reply = f
        .run(
            rawdoc! { "find": "payments", "filter": {}, "batchSize": 100 },
            &admin,
        )
        .await
        .expect("allowed");
    assert_eq!(
        batch(&reply).len(),
        13,
        "every document, deleted ones included"
    );
    let reply = f
        .run(
            rawdoc! { "delete": "payments", "deletes": [ { "q": { "_id": "q6" }, "limit": 1 } ] },
            &admin,
        )
        .await
        .expect("allowed");
    assert_eq!(reply.get_i32("n").ok(), Some(1));
    assert!(
        f.direct("payments", doc! { "_id": "q6" }).await.is_empty(),
        "hard delete"
    );
    // acting as a tenant applies the tenant rules
    let reply = f
        .run(
            rawdoc! { "find": "payments", "filter": {}, "comment": "tenantgate:actAs=bank2" },
            &admin,
        )
        .await
        .expect("allowed");
    assert_eq!(ids(&batch(&reply)), ["q1", "q2", "q3", "q4", "q5"]);
    assert!(
        matches!(f.decide(rawdoc! { "find": "audit_secrets" }, &bank(1)), Decision::Reject(r) if r.rule == Rule::CollectionNotAllowed)
    );
    assert!(matches!(
        f.decide(rawdoc! { "delete": "payments", "deletes": [ { "q": {}, "limit": 0 } ] }, &bank(1)),
        Decision::Forward(fw) if fw.reply == ReplyShape::DeleteFromUpdate
    ));
    f.drop().await;
}
