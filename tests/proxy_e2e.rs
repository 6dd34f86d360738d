//! The proxy end to end: the official Rust driver → tenantgate → the real upstream.
//!
//! Each test starts its own proxy on `127.0.0.1:0` over a fresh database and talks to it exactly
//! as an application would, changing nothing but the connection string. What the tenants wrote
//! is then checked by reading the upstream directly, bypassing the proxy, so a rewrite that
//! stored the wrong `tenantId` cannot hide behind a matching rewrite on the way back.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use bson::{Bson, Document, doc};
use common::TestProxy;
use futures::TryStreamExt;
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::{Client, Collection, Database};

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

/// A proxy over a fresh two-bank database, and the database's name.
async fn two_banks(prefix: &str) -> (TestProxy, String) {
    let db = common::fresh_db_name(prefix);
    let proxy = TestProxy::start(&common::two_bank_config(&db)).await;
    (proxy, db)
}

async fn bank(proxy: &TestProxy, n: u8, db: &str) -> Database {
    proxy
        .client(&format!("svc-bank{n}"), &format!("bank{n}-secret"))
        .await
        .database(db)
}

/// The upstream database itself, not through the proxy.
async fn upstream(db: &str) -> Database {
    common::mongo_client().await.database(db)
}

async fn all(coll: &Collection<Document>, filter: Document) -> Vec<Document> {
    coll.find(filter)
        .await
        .unwrap_or_else(|e| panic!("find on {}: {e}", coll.name()))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("iterating {}: {e}", coll.name()))
}

fn ids(docs: &[Document]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            d.get_str("_id")
                .unwrap_or_else(|_| panic!("string _id: {d:?}"))
                .to_owned()
        })
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

/// Every document carries `tenant`.
fn all_belong_to(docs: &[Document], tenant: &str) {
    for d in docs {
        assert_eq!(
            d.get_str("tenantId").ok(),
            Some(tenant),
            "a document of another tenant leaked to {tenant}: {d:?}"
        );
    }
}

/// The server error code and message of a failed command or write.
fn server_error(e: &mongodb::error::Error) -> (i32, String) {
    match e.kind.as_ref() {
        ErrorKind::Command(c) => (c.code, c.message.clone()),
        ErrorKind::Write(WriteFailure::WriteError(w)) => (w.code, w.message.clone()),
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// A policy rejection: `Unauthorized` (13) naming `rule`.
fn assert_rejected<T: std::fmt::Debug>(result: mongodb::error::Result<T>, rule: &str, what: &str) {
    let e = match result {
        Ok(v) => panic!("{what} must be rejected by rule {rule}, but it succeeded: {v:?}"),
        Err(e) => e,
    };
    let (code, message) = server_error(&e);
    assert_eq!(code, 13, "{what}: {message}");
    assert!(
        message.contains(&format!("'{rule}'")),
        "{what}: the message names the rule {rule}: {message}"
    );
}

fn payment(id: &str, amount: i64, status: &str, customer: &str) -> Document {
    doc! { "_id": id, "amount": amount, "status": status, "customerCode": customer }
}

#[tokio::test]
async fn tenants_share_collections_and_see_only_their_own() {
    bounded("tenants_share_collections_and_see_only_their_own", async {
        let (proxy, name) = two_banks("e2e_share").await;
        let (b1, b2) = (bank(&proxy, 1, &name).await, bank(&proxy, 2, &name).await);
        let (p1, p2) = (
            b1.collection::<Document>("payments"),
            b2.collection::<Document>("payments"),
        );

        // Both tenants write into the same collections, without naming a tenant.
        p1.insert_many([
            payment("a1", 100, "succeeded", "C1"),
            payment("a2", 200, "failed", "C2"),
            payment("a3", 300, "succeeded", "C1"),
            payment("a4", 400, "pending", "C2"),
        ])
        .await
        .expect("bank1 inserts");
        p2.insert_many([
            payment("b1", 1_000, "succeeded", "C1"),
            payment("b2", 2_000, "failed", "C1"),
            payment("b3", 3_000, "succeeded", "C2"),
        ])
        .await
        .expect("bank2 inserts");
        // The same customer codes exist in both tenants: a $lookup must join its own only.
        b1.collection::<Document>("customers")
            .insert_many([
                doc! { "_id": "a-c1", "code": "C1", "name": "Ada" },
                doc! { "_id": "a-c2", "code": "C2", "name": "Grace" },
            ])
            .await
            .expect("bank1 inserts customers");
        b2.collection::<Document>("customers")
            .insert_many([
                doc! { "_id": "b-c1", "code": "C1", "name": "Alan" },
                doc! { "_id": "b-c2", "code": "C2", "name": "Edsger" },
            ])
            .await
            .expect("bank2 inserts customers");

        // The upstream holds every document with the writer's tenant id.
        let direct = upstream(&name).await;
        let stored = all(&direct.collection("payments"), doc! {}).await;
        assert_eq!(stored.len(), 7, "{stored:?}");
        for d in &stored {
            let id = d.get_str("_id").expect("string _id");
            let expected = if id.starts_with('a') { "bank1" } else { "bank2" };
            assert_eq!(d.get_str("tenantId").ok(), Some(expected), "stored: {d:?}");
        }
        let customers = all(&direct.collection("customers"), doc! {}).await;
        assert_eq!(customers.len(), 4);
        for d in &customers {
            let expected = if d.get_str("_id").expect("id").starts_with('a') {
                "bank1"
            } else {
                "bank2"
            };
            assert_eq!(d.get_str("tenantId").ok(), Some(expected), "stored: {d:?}");
        }

        // Reads, with and without filters.
        let mine = all(&p1, doc! {}).await;
        all_belong_to(&mine, "bank1");
        assert_eq!(ids(&mine), set(&["a1", "a2", "a3", "a4"]));
        let theirs = all(&p2, doc! {}).await;
        all_belong_to(&theirs, "bank2");
        assert_eq!(ids(&theirs), set(&["b1", "b2", "b3"]));
        let ok1 = all(&p1, doc! { "status": "succeeded" }).await;
        assert_eq!(ids(&ok1), set(&["a1", "a3"]));
        let big = all(&p1, doc! { "amount": { "$gte": 300_i64 } }).await;
        assert_eq!(ids(&big), set(&["a3", "a4"]), "bank2's large payments stay hidden");
        assert!(
            all(&p1, doc! { "_id": "b1" }).await.is_empty(),
            "bank1 cannot fetch bank2's document by _id"
        );
        let found = p2
            .find_one(doc! { "_id": { "$in": ["a1", "b3"] } })
            .await
            .expect("find_one");
        assert_eq!(
            found.as_ref().and_then(|d| d.get_str("_id").ok()),
            Some("b3")
        );

        // update_many over "everything" reaches the caller's documents only.
        let updated = p1
            .update_many(doc! {}, doc! { "$set": { "reviewed": true } })
            .await
            .expect("bank1 updates");
        assert_eq!(updated.matched_count, 4);
        assert_eq!(updated.modified_count, 4);
        let flagged = all(&direct.collection("payments"), doc! { "reviewed": true }).await;
        all_belong_to(&flagged, "bank1");
        assert_eq!(flagged.len(), 4);

        // $group sums only the caller's payments.
        let groups: Vec<Document> = p1
            .aggregate([
                doc! { "$group": { "_id": "$status", "total": { "$sum": "$amount" }, "n": { "$sum": 1 } } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .await
            .expect("aggregate")
            .try_collect()
            .await
            .expect("aggregate cursor");
        assert_eq!(
            groups,
            vec![
                doc! { "_id": "failed", "total": 200_i64, "n": 1 },
                doc! { "_id": "pending", "total": 400_i64, "n": 1 },
                doc! { "_id": "succeeded", "total": 400_i64, "n": 2 },
            ]
        );
        let everything: Vec<Document> = p2
            .aggregate([doc! { "$group": { "_id": null, "total": { "$sum": "$amount" } } }])
            .await
            .expect("aggregate")
            .try_collect()
            .await
            .expect("aggregate cursor");
        assert_eq!(everything, vec![doc! { "_id": Bson::Null, "total": 6_000_i64 }]);

        // $lookup joins the caller's customers only, though both tenants use the same codes.
        let joined: Vec<Document> = p1
            .aggregate([
                doc! { "$lookup": { "from": "customers", "localField": "customerCode", "foreignField": "code", "as": "customer" } },
                doc! { "$sort": { "_id": 1 } },
            ])
            .await
            .expect("$lookup")
            .try_collect()
            .await
            .expect("$lookup cursor");
        assert_eq!(joined.len(), 4);
        all_belong_to(&joined, "bank1");
        for d in &joined {
            let customers = d.get_array("customer").expect("joined array");
            assert_eq!(customers.len(), 1, "exactly bank1's customer joins: {d:?}");
            let c = customers[0].as_document().expect("a document");
            assert_eq!(c.get_str("tenantId").ok(), Some("bank1"), "{d:?}");
            assert!(c.get_str("_id").expect("id").starts_with("a-"), "{d:?}");
        }

        // Counts, both the exact and the estimated one.
        assert_eq!(p1.count_documents(doc! {}).await.expect("count"), 4);
        assert_eq!(p2.count_documents(doc! {}).await.expect("count"), 3);
        assert_eq!(
            p1.count_documents(doc! { "status": "failed" })
                .await
                .expect("count"),
            1
        );
        assert_eq!(p1.estimated_document_count().await.expect("estimate"), 4);
        assert_eq!(p2.estimated_document_count().await.expect("estimate"), 3);
        let distinct = p2
            .distinct("tenantId", doc! {})
            .await
            .expect("distinct");
        assert_eq!(distinct, vec![Bson::from("bank2")]);

        direct.drop().await.expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cross_tenant_attempts_are_rejected_with_the_rule() {
    bounded("cross_tenant_attempts_are_rejected_with_the_rule", async {
        let (proxy, name) = two_banks("e2e_reject").await;
        let (b1, b2) = (bank(&proxy, 1, &name).await, bank(&proxy, 2, &name).await);
        let (p1, p2) = (
            b1.collection::<Document>("payments"),
            b2.collection::<Document>("payments"),
        );
        p1.insert_one(payment("a1", 100, "succeeded", "C1"))
            .await
            .expect("bank1 inserts");
        p2.insert_many([
            payment("b1", 1_000, "succeeded", "C1"),
            payment("b2", 2_000, "failed", "C2"),
        ])
        .await
        .expect("bank2 inserts");

        assert_rejected(
            p1.find(doc! { "tenantId": "bank2" }).await,
            "tenant_override",
            "find {tenantId: bank2} as bank1",
        );
        assert_rejected(
            p1.find(doc! { "$or": [ { "tenantId": "bank2" }, { "status": "failed" } ] })
                .await,
            "tenant_override",
            "find {$or: [{tenantId: bank2}, …]} as bank1",
        );
        assert_rejected(
            p1.count_documents(doc! { "tenantId": { "$in": ["bank1", "bank2"] } })
                .await,
            "tenant_override",
            "count {tenantId: {$in: [bank1, bank2]}} as bank1",
        );
        assert_rejected(
            p1.update_many(doc! {}, doc! { "$set": { "tenantId": "bank2" } })
                .await,
            "tenant_field_write",
            "update {$set: {tenantId: bank2}} as bank1",
        );
        assert_rejected(
            p1.insert_one(doc! { "_id": "planted", "tenantId": "bank2" })
                .await,
            "tenant_field_write",
            "insert {tenantId: bank2} as bank1",
        );
        assert_rejected(
            p1.aggregate([doc! { "$out": "stolen" }]).await,
            "stage_not_allowed",
            "aggregate [$out] as bank1",
        );

        // A rejection leaves the connection usable...
        assert_eq!(p1.count_documents(doc! {}).await.expect("count"), 1);
        // ...and nothing reached the upstream.
        let direct = upstream(&name).await;
        let stored = all(&direct.collection("payments"), doc! {}).await;
        assert_eq!(ids(&stored), set(&["a1", "b1", "b2"]));
        for d in &stored {
            let expected = if d.get_str("_id").expect("id") == "a1" {
                "bank1"
            } else {
                "bank2"
            };
            assert_eq!(d.get_str("tenantId").ok(), Some(expected), "{d:?}");
        }
        let collections = direct
            .list_collection_names()
            .await
            .expect("list collections");
        assert!(
            !collections.iter().any(|c| c == "stolen"),
            "$out created a collection: {collections:?}"
        );

        direct.drop().await.expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deletes_are_soft_and_restorable_with_include_deleted() {
    bounded(
        "deletes_are_soft_and_restorable_with_include_deleted",
        async {
            let (proxy, name) = two_banks("e2e_soft").await;
            let b1 = bank(&proxy, 1, &name).await;
            let p1 = b1.collection::<Document>("payments");
            p1.insert_many([
                payment("a1", 100, "succeeded", "C1"),
                payment("a2", 200, "failed", "C1"),
            ])
            .await
            .expect("bank1 inserts");
            let include_deleted = Bson::from("tenantgate:includeDeleted");

            let deleted = p1
                .delete_one(doc! { "_id": "a2" })
                .await
                .expect("bank1 deletes");
            assert_eq!(deleted.deleted_count, 1);

            // Still upstream, stamped.
            let direct = upstream(&name).await;
            let a2 = direct
                .collection::<Document>("payments")
                .find_one(doc! { "_id": "a2" })
                .await
                .expect("direct find")
                .expect("a soft-deleted document stays upstream");
            assert!(
                matches!(a2.get("deletedAt"), Some(Bson::DateTime(_))),
                "deletedAt is set: {a2:?}"
            );
            assert_eq!(a2.get_str("tenantId").ok(), Some("bank1"));

            // Invisible to ordinary reads and counts...
            assert_eq!(ids(&all(&p1, doc! {}).await), set(&["a1"]));
            assert!(all(&p1, doc! { "_id": "a2" }).await.is_empty());
            assert_eq!(p1.count_documents(doc! {}).await.expect("count"), 1);
            // ...a second delete finds nothing to delete...
            assert_eq!(
                p1.delete_one(doc! { "_id": "a2" })
                    .await
                    .expect("delete")
                    .deleted_count,
                0
            );
            // ...and visible with includeDeleted.
            let bin: Vec<Document> = p1
                .find(doc! { "_id": "a2" })
                .comment(include_deleted.clone())
                .await
                .expect("find with includeDeleted")
                .try_collect()
                .await
                .expect("cursor");
            assert_eq!(ids(&bin), set(&["a2"]));
            assert!(bin[0].get("deletedAt").is_some(), "{bin:?}");
            // bank2 does not see bank1's bin even when asking for deleted documents.
            let b2 = bank(&proxy, 2, &name).await;
            let other: Vec<Document> = b2
                .collection::<Document>("payments")
                .find(doc! {})
                .comment(include_deleted.clone())
                .await
                .expect("find with includeDeleted")
                .try_collect()
                .await
                .expect("cursor");
            assert!(other.is_empty(), "bank2 saw bank1's documents: {other:?}");

            // Restore.
            let restored = p1
                .update_one(doc! { "_id": "a2" }, doc! { "$unset": { "deletedAt": "" } })
                .comment(include_deleted)
                .await
                .expect("restore");
            assert_eq!(restored.matched_count, 1);
            assert_eq!(restored.modified_count, 1);
            assert_eq!(ids(&all(&p1, doc! {}).await), set(&["a1", "a2"]));
            let a2 = direct
                .collection::<Document>("payments")
                .find_one(doc! { "_id": "a2" })
                .await
                .expect("direct find")
                .expect("present");
            assert!(
                matches!(a2.get("deletedAt"), None | Some(Bson::Null)),
                "restored: {a2:?}"
            );

            direct.drop().await.expect("drop the test database");
            proxy.stop().await;
        },
    )
    .await;
}

fn cursor_id(reply: &Document) -> i64 {
    reply
        .get_document("cursor")
        .and_then(|c| c.get_i64("id"))
        .unwrap_or_else(|_| panic!("a cursor reply: {reply:?}"))
}

#[tokio::test]
async fn cursors_continue_for_their_owner_only() {
    bounded("cursors_continue_for_their_owner_only", async {
        let (proxy, name) = two_banks("e2e_cursor").await;
        let b1 = bank(&proxy, 1, &name).await;
        let b2 = bank(&proxy, 2, &name).await;
        let p1 = b1.collection::<Document>("payments");
        let docs: Vec<Document> = (0..10)
            .map(|i| payment(&format!("a{i:02}"), 100 * i, "succeeded", "C1"))
            .collect();
        p1.insert_many(docs).await.expect("bank1 inserts");
        b2.collection::<Document>("payments")
            .insert_one(payment("b1", 1, "succeeded", "C1"))
            .await
            .expect("bank2 inserts");

        // The driver's getMores go through the proxy.
        let mut cursor = p1
            .find(doc! {})
            .batch_size(2)
            .sort(doc! { "_id": 1 })
            .await
            .expect("find");
        let mut seen = Vec::new();
        while let Some(d) = cursor.try_next().await.expect("getMore through the proxy") {
            seen.push(d);
        }
        assert_eq!(seen.len(), 10, "all ten in batches of two");
        all_belong_to(&seen, "bank1");

        // bank1 opens a cursor; bank2 tries to continue it.
        let client1 = b1.client().clone();
        let mut session = client1.start_session().await.expect("a session");
        let first = b1
            .run_command(
                doc! { "find": "payments", "filter": {}, "batchSize": 1, "sort": { "_id": 1 } },
            )
            .session(&mut session)
            .await
            .expect("find as bank1");
        let id = cursor_id(&first);
        assert_ne!(id, 0, "a live cursor: {first:?}");

        let stolen = b2
            .run_command(doc! { "getMore": id, "collection": "payments" })
            .await;
        let e = stolen.expect_err("bank2 must not continue bank1's cursor");
        let (code, message) = server_error(&e);
        assert_eq!(code, 43, "CursorNotFound: {message}");
        // Audited under the database the command named (read from the request only when a
        // refusal is audited; connection.rs `check_cursors`).
        let trail = upstream("tenantgate")
            .await
            .collection::<Document>("tenantgate_audit");
        let probe = doc! { "rule": "cursor_not_owned", "database": &name, "command": "getMore" };
        let mut events = Vec::new();
        for _ in 0..50 {
            events = all(&trail, probe.clone()).await;
            if !events.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(events.len(), 1, "one audited probe in {name}: {events:?}");
        assert_eq!(
            events[0].get_str("tenant").ok(),
            Some("bank2"),
            "{events:?}"
        );

        // The owner still can: the failed attempt neither served nor killed the cursor.
        let more = b1
            .run_command(doc! { "getMore": id, "collection": "payments", "batchSize": 100 })
            .session(&mut session)
            .await
            .expect("getMore as the owner");
        let next = more
            .get_document("cursor")
            .and_then(|c| c.get_array("nextBatch"))
            .unwrap_or_else(|_| panic!("nextBatch: {more:?}"));
        assert_eq!(next.len(), 9, "the other nine: {more:?}");
        for d in next {
            let d = d.as_document().expect("documents");
            assert_eq!(d.get_str("tenantId").ok(), Some("bank1"), "{d:?}");
        }

        // killCursors on someone else's cursor is refused the same way.
        let second = b1
            .run_command(doc! { "find": "payments", "filter": {}, "batchSize": 1 })
            .session(&mut session)
            .await
            .expect("find as bank1");
        let id = cursor_id(&second);
        let e = b2
            .run_command(doc! { "killCursors": "payments", "cursors": [id] })
            .await
            .expect_err("bank2 must not kill bank1's cursor");
        assert_eq!(server_error(&e).0, 43);
        let more = b1
            .run_command(doc! { "getMore": id, "collection": "payments" })
            .session(&mut session)
            .await
            .expect("the cursor survived bank2's killCursors");
        assert!(more.get_document("cursor").is_ok(), "{more:?}");

        drop(session);
        upstream(&name)
            .await
            .drop()
            .await
            .expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_topology_is_hidden_from_an_ordinary_connection_string() {
    bounded(
        "the_topology_is_hidden_from_an_ordinary_connection_string",
        async {
            let (proxy, name) = two_banks("e2e_topo").await;
            // No directConnection: the driver discovers the deployment from the proxy's hello.
            let uri = format!(
                "mongodb://svc-bank1:bank1-secret@{}/?authSource=admin",
                proxy.addr
            );
            let client = common::driver_client(&uri).await;
            let db = client.database(&name);
            db.collection::<Document>("payments")
                .insert_one(payment("a1", 1, "succeeded", "C1"))
                .await
                .expect("insert through the discovered topology");
            assert_eq!(
                db.collection::<Document>("payments")
                    .count_documents(doc! {})
                    .await
                    .expect("count"),
                1
            );
            let hello = db.run_command(doc! { "hello": 1 }).await.expect("hello");
            for hidden in ["hosts", "setName", "primary", "me", "passives", "arbiters"] {
                assert!(
                    hello.get(hidden).is_none(),
                    "hello reveals {hidden}: {hello:?}"
                );
            }
            assert_eq!(
                hello.get_bool("isWritablePrimary").ok(),
                Some(true),
                "{hello:?}"
            );
            let legacy = db
                .run_command(doc! { "isMaster": 1 })
                .await
                .expect("isMaster");
            assert_eq!(legacy.get_bool("ismaster").ok(), Some(true), "{legacy:?}");
            for hidden in ["hosts", "setName", "primary", "me"] {
                assert!(legacy.get(hidden).is_none(), "isMaster reveals {hidden}");
            }
            upstream(&name)
                .await
                .drop()
                .await
                .expect("drop the test database");
            proxy.stop().await;
        },
    )
    .await;
}

#[tokio::test]
async fn failed_and_missing_authentication_are_refused() {
    bounded("failed_and_missing_authentication_are_refused", async {
        let (proxy, name) = two_banks("e2e_auth").await;
        let good = bank(&proxy, 1, &name).await;
        good.collection::<Document>("payments")
            .insert_one(payment("a1", 1, "succeeded", "C1"))
            .await
            .expect("bank1 inserts");

        for (user, password) in [
            ("svc-bank1", "wrong-secret"),
            ("svc-bank1", "bank2-secret"),
            ("nobody", "bank1-secret"),
        ] {
            let client = proxy.client(user, password).await;
            let e = client
                .database(&name)
                .collection::<Document>("payments")
                .find_one(doc! {})
                .await
                .expect_err("wrong credentials must fail");
            assert!(
                matches!(e.kind.as_ref(), ErrorKind::Authentication { .. }),
                "{user}/{password}: an authentication error, got {e:?}"
            );
            // Other clients are still served.
            assert_eq!(
                good.collection::<Document>("payments")
                    .count_documents(doc! {})
                    .await
                    .expect("the proxy keeps serving"),
                1
            );
        }

        // No credentials at all: the handshake works, commands do not.
        let anonymous = common::driver_client(&format!("mongodb://{}/", proxy.addr)).await;
        let e = anonymous
            .database(&name)
            .collection::<Document>("payments")
            .find(doc! {})
            .await
            .expect_err("an unauthenticated find must fail");
        let (code, message) = server_error(&e);
        assert_eq!(code, 13, "Unauthorized: {message}");
        let e = anonymous
            .database(&name)
            .collection::<Document>("payments")
            .insert_one(doc! { "_id": "anon" })
            .await
            .expect_err("an unauthenticated insert must fail");
        assert_eq!(server_error(&e).0, 13);
        assert!(
            upstream(&name)
                .await
                .collection::<Document>("payments")
                .find_one(doc! { "_id": "anon" })
                .await
                .expect("direct find")
                .is_none(),
            "the anonymous insert reached the upstream"
        );
        // A fresh correct login still works after the failures.
        let again = bank(&proxy, 1, &name).await;
        assert_eq!(
            again
                .collection::<Document>("payments")
                .count_documents(doc! {})
                .await
                .expect("count"),
            1
        );
        upstream(&name)
            .await
            .drop()
            .await
            .expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

#[tokio::test]
async fn compressed_clients_are_served() {
    bounded("compressed_clients_are_served", async {
        let (proxy, name) = two_banks("e2e_zip").await;
        for compressor in ["zstd", "zlib", "snappy"] {
            let uri = proxy.uri(
                "svc-bank1",
                "bank1-secret",
                &format!("compressors={compressor}"),
            );
            let client = common::driver_client(&uri).await;
            let db = client.database(&name);
            // The proxy agrees to the compressor (the driver asked for it in its handshake).
            let hello = db
                .run_command(doc! { "hello": 1, "compression": [compressor] })
                .await
                .unwrap_or_else(|e| panic!("hello with {compressor}: {e}"));
            let agreed: Vec<&str> = hello
                .get_array("compression")
                .unwrap_or_else(|_| panic!("{compressor} is agreed: {hello:?}"))
                .iter()
                .filter_map(Bson::as_str)
                .collect();
            assert_eq!(agreed, [compressor]);
            let coll = db.collection::<Document>("payments");
            // Large enough that the driver really compresses it.
            let note = format!("{compressor} ").repeat(2_000);
            coll.insert_one(doc! { "_id": compressor, "note": note.clone() })
                .await
                .unwrap_or_else(|e| panic!("insert with {compressor}: {e}"));
            let back = coll
                .find_one(doc! { "_id": compressor })
                .await
                .unwrap_or_else(|e| panic!("find with {compressor}: {e}"))
                .unwrap_or_else(|| panic!("the {compressor} document is found"));
            assert_eq!(back.get_str("note").ok(), Some(note.as_str()));
            assert_eq!(back.get_str("tenantId").ok(), Some("bank1"));
            let all_docs = all(&coll, doc! {}).await;
            all_belong_to(&all_docs, "bank1");
        }
        let stored = all(&upstream(&name).await.collection("payments"), doc! {}).await;
        assert_eq!(ids(&stored), set(&["snappy", "zlib", "zstd"]));
        upstream(&name)
            .await
            .drop()
            .await
            .expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

#[tokio::test]
async fn super_admin_sees_everything_or_acts_as_a_tenant() {
    bounded("super_admin_sees_everything_or_acts_as_a_tenant", async {
        let (proxy, name) = two_banks("e2e_admin").await;
        let (b1, b2) = (bank(&proxy, 1, &name).await, bank(&proxy, 2, &name).await);
        b1.collection::<Document>("payments")
            .insert_many([
                payment("a1", 1, "succeeded", "C1"),
                payment("a2", 2, "succeeded", "C1"),
            ])
            .await
            .expect("bank1 inserts");
        b2.collection::<Document>("payments")
            .insert_many([
                payment("b1", 1, "succeeded", "C1"),
                payment("b2", 2, "succeeded", "C1"),
                payment("b3", 3, "succeeded", "C1"),
            ])
            .await
            .expect("bank2 inserts");
        let admin = proxy
            .client("platform-admin", "admin-secret")
            .await
            .database(&name)
            .collection::<Document>("payments");

        assert_eq!(admin.count_documents(doc! {}).await.expect("count"), 5);
        let everyone = all(&admin, doc! {}).await;
        let tenants: BTreeSet<&str> = everyone
            .iter()
            .filter_map(|d| d.get_str("tenantId").ok())
            .collect();
        assert_eq!(tenants, BTreeSet::from(["bank1", "bank2"]));

        let act_as = Bson::from("tenantgate:actAs=bank2");
        assert_eq!(
            admin
                .count_documents(doc! {})
                .comment(act_as.clone())
                .await
                .expect("count as bank2"),
            3
        );
        let as_bank2: Vec<Document> = admin
            .find(doc! {})
            .comment(act_as.clone())
            .await
            .expect("find as bank2")
            .try_collect()
            .await
            .expect("cursor");
        all_belong_to(&as_bank2, "bank2");
        assert_eq!(ids(&as_bank2), set(&["b1", "b2", "b3"]));
        // Acting as a tenant applies that tenant's rules too.
        assert_rejected(
            admin
                .find(doc! { "tenantId": "bank1" })
                .comment(act_as)
                .await,
            "tenant_override",
            "find {tenantId: bank1} as platform-admin acting as bank2",
        );
        // Only super_admin may act as someone.
        assert_rejected(
            b1.collection::<Document>("payments")
                .count_documents(doc! {})
                .comment(Bson::from("tenantgate:actAs=bank2"))
                .await,
            "act_as_not_allowed",
            "bank1 acting as bank2",
        );

        upstream(&name)
            .await
            .drop()
            .await
            .expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}

/// Ten tenants `t0`..`t9` with principals `svc-tN` / `pw-N`.
fn ten_tenant_config(db: &str) -> String {
    let mut config = format!(
        "[upstream]\nuri = \"{}\"\ntimeout_ms = 20000\n\n[proxy]\nlisten = \"127.0.0.1:0\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n[policy]\ndatabases = [\"{db}\"]\n",
        common::mongodb_uri()
    );
    for n in 0..10 {
        config.push_str(&format!(
            "\n[[tenants]]\nslug = \"t{n}\"\nname = \"Tenant {n}\"\n\n\
             [[principals]]\nusername = \"svc-t{n}\"\npassword = \"pw-{n}\"\ntenant = \"t{n}\"\n"
        ));
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_clients_stay_in_their_tenants() {
    bounded(
        "a_hundred_concurrent_clients_stay_in_their_tenants",
        async {
            let name = common::fresh_db_name("e2e_many");
            let proxy = TestProxy::start(&ten_tenant_config(&name)).await;
            let mut tasks = tokio::task::JoinSet::new();
            for task in 0..100_u32 {
                let tenant = task % 10;
                let uri = proxy.uri(&format!("svc-t{tenant}"), &format!("pw-{tenant}"), "");
                let name = name.clone();
                tasks.spawn(async move {
                    let client: Client = common::driver_client(&uri).await;
                    let coll = client.database(&name).collection::<Document>("events");
                    let marker = format!("task-{task}");
                    let docs: Vec<Document> =
                        (0..5).map(|i| doc! { "marker": &marker, "i": i }).collect();
                    coll.insert_many(docs)
                        .await
                        .unwrap_or_else(|e| panic!("{marker} inserts: {e}"));
                    let seen = all(&coll, doc! {}).await;
                    let own_tenant = format!("t{tenant}");
                    let foreign = seen
                        .iter()
                        .filter(|d| d.get_str("tenantId").ok() != Some(own_tenant.as_str()))
                        .count();
                    let mine = seen
                        .iter()
                        .filter(|d| d.get_str("marker").ok() == Some(marker.as_str()))
                        .count();
                    (tenant, foreign, mine, seen.len())
                });
            }
            let mut foreign_total = 0;
            while let Some(done) = tasks.join_next().await {
                let (tenant, foreign, mine, seen) = done.expect("a client task panicked");
                foreign_total += foreign;
                assert_eq!(mine, 5, "t{tenant}: a task sees its own five documents");
                assert!(
                    seen <= 50,
                    "t{tenant} saw {seen} documents, at most 50 are its own"
                );
            }
            assert_eq!(foreign_total, 0, "cross-tenant documents were read");

            // Afterwards each tenant has exactly its fifty, through the proxy and upstream.
            let direct = upstream(&name).await.collection::<Document>("events");
            let stored = all(&direct, doc! {}).await;
            assert_eq!(stored.len(), 500);
            let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
            for d in &stored {
                let tenant = d.get_str("tenantId").expect("every document has a tenant");
                let task: u32 = d
                    .get_str("marker")
                    .expect("marker")
                    .trim_start_matches("task-")
                    .parse()
                    .expect("a task number");
                assert_eq!(
                    tenant,
                    format!("t{}", task % 10),
                    "stored under the writer's tenant"
                );
                *per_tenant.entry(tenant.to_owned()).or_default() += 1;
            }
            assert_eq!(per_tenant.len(), 10);
            assert!(per_tenant.values().all(|n| *n == 50), "{per_tenant:?}");
            for n in 0..10 {
                let client = proxy.client(&format!("svc-t{n}"), &format!("pw-{n}")).await;
                let count = client
                    .database(&name)
                    .collection::<Document>("events")
                    .count_documents(doc! {})
                    .await
                    .expect("count");
                assert_eq!(count, 50, "t{n} counts its own fifty");
            }
            upstream(&name)
                .await
                .drop()
                .await
                .expect("drop the test database");
            proxy.stop().await;
        },
    )
    .await;
}

/// The virtualenv python `scripts/test` creates (`TENANTGATE_VENV`, else `<repo>/.venv`).
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("TENANTGATE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin").join("python");
    let imports = std::process::Command::new(&python)
        .args(["-c", "import pymongo"])
        .output();
    match imports {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "\n\n*** {} cannot import pymongo: {} ***\n*** run the tests through scripts/test, which creates the virtualenv ***\n\n",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "\n\n*** no python at {} ({e}) ***\n*** run the tests through scripts/test, which creates the virtualenv, or set TENANTGATE_VENV ***\n\n",
            python.display()
        ),
    }
}

#[tokio::test]
async fn the_pymongo_example_shows_isolation() {
    bounded("the_pymongo_example_shows_isolation", async {
        let python = venv_python();
        let (proxy, name) = two_banks("e2e_pymongo").await;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join("pymongo_isolation.py");
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .arg(proxy.addr.to_string())
            .arg(&name)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the script") {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the pymongo example did not finish within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let out = child.wait_with_output().expect("the script's output");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            status.success(),
            "the pymongo example failed ({status}):\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains("isolation holds"), "{stdout}\n{stderr}");

        // What it wrote is stored under the right tenants.
        let stored = all(&upstream(&name).await.collection("payments"), doc! {}).await;
        let mut per_tenant: BTreeMap<String, usize> = BTreeMap::new();
        for d in &stored {
            let tenant = d.get_str("tenantId").expect("a tenant id").to_owned();
            let owner = d.get_str("owner").expect("owner");
            assert_eq!(tenant, owner, "stored under the writer's tenant: {d:?}");
            *per_tenant.entry(tenant).or_default() += 1;
        }
        assert_eq!(
            per_tenant,
            BTreeMap::from([("bank1".to_owned(), 3), ("bank2".to_owned(), 2)])
        );
        upstream(&name)
            .await
            .drop()
            .await
            .expect("drop the test database");
        proxy.stop().await;
    })
    .await;
}
