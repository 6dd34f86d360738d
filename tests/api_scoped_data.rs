//! API handlers reach data only through the tenant-scoped handle, end to end against the real
//! upstream.
//!
//! The routes below are deliberately careless or hostile handlers mounted among the tenant
//! routes (`TestApi::start_with`): they read, write, update and delete with an empty filter and
//! never mention `tenantId`, name another tenant, or poke at cursors they did not open. What
//! this file proves: through [`TenantDb`] such handlers still see and change only the request's
//! tenant (reads exclude soft-deleted documents, inserts are stamped, deletes are soft, cursors
//! are drained across batches without leaving the tenant); naming another tenant is refused with
//! [`DbError::Rejected`] and audited with the request's id; cursors are owned by the handle that
//! opened them; and [`BypassDb`] is only for `super_admin`, sees every tenant, and audits each
//! command. What was stored is checked by reading the upstream directly, not through the handle.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use bson::{Bson, Document, doc};
use common::{TestApi, api_config, fresh_db_name, jwt, mongo_client};
use futures::TryStreamExt;
use serde_json::{Value, json};
use tenantgate_api::ApiState;
use tenantgate_api::extract::{BypassDb, TenantDb};
use tenantgate_api::problem::Problem;
use tenantgate_proxy::audit::Origin;
use tenantgate_proxy::scoped::DbError;
use tenantgate_proxy::scoped_collection::FindOptions;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The collection the handlers use.
const PAYMENTS: &str = "payments";

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

// ----- the handlers ---------------------------------------------------------------------------

type Answer = Result<Json<Value>, Problem>;

/// A refusal as a 403 problem whose `code` is the rule; any other error as a 500 that says why
/// (a test wants to see it).
fn failed(e: DbError) -> Problem {
    match e {
        DbError::Rejected { rule, message } => Problem::forbidden(rule.as_str(), message),
        other => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "db_error",
            "Database error",
            other.to_string(),
        ),
    }
}

fn docs_json(docs: Vec<Document>) -> Value {
    Value::Array(
        docs.into_iter()
            .map(|d| Bson::Document(d).into_relaxed_extjson())
            .collect(),
    )
}

/// Lists every payment: no filter at all.
async fn careless_list(db: TenantDb) -> Answer {
    let docs = db
        .collection(PAYMENTS)
        .find(doc! {}, FindOptions::default())
        .await
        .map_err(failed)?;
    Ok(Json(
        json!({ "count": docs.len(), "docs": docs_json(docs) }),
    ))
}

/// Inserts `{ref, amount}` without a tenant.
async fn careless_insert(db: TenantDb, Query(q): Query<HashMap<String, String>>) -> Answer {
    let reference = q.get("ref").cloned().unwrap_or_default();
    db.collection(PAYMENTS)
        .insert_one(doc! { "ref": reference, "amount": 5 })
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "inserted": 1 })))
}

/// Flags every payment: an empty filter again.
async fn careless_update(db: TenantDb) -> Answer {
    let r = db
        .collection(PAYMENTS)
        .update_many(doc! {}, doc! { "$set": { "flagged": true } })
        .await
        .map_err(failed)?;
    Ok(Json(
        json!({ "matched": r.matched, "modified": r.modified }),
    ))
}

/// Deletes every payment.
async fn careless_delete(db: TenantDb) -> Answer {
    let n = db
        .collection(PAYMENTS)
        .delete(doc! {}, true)
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "deleted": n })))
}

/// Counts and sums every payment, by `count` and by a `$group` pipeline.
async fn careless_totals(db: TenantDb) -> Answer {
    let payments = db.collection(PAYMENTS);
    let count = payments.count(doc! {}).await.map_err(failed)?;
    let groups = payments
        .aggregate(vec![
            doc! { "$group": { "_id": Bson::Null, "n": { "$sum": 1 }, "amount": { "$sum": "$amount" } } },
        ])
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "count": count, "groups": docs_json(groups) })))
}

/// Reads another tenant's payments by naming it (`?tenant=`).
async fn sneaky_read(db: TenantDb, Query(q): Query<HashMap<String, String>>) -> Answer {
    let other = q.get("tenant").cloned().unwrap_or_default();
    let docs = db
        .collection(PAYMENTS)
        .find(doc! { "tenantId": other }, FindOptions::default())
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "docs": docs_json(docs) })))
}

/// Writes a payment into another tenant (`?tenant=`).
async fn sneaky_insert(db: TenantDb, Query(q): Query<HashMap<String, String>>) -> Answer {
    let other = q.get("tenant").cloned().unwrap_or_default();
    db.collection(PAYMENTS)
        .insert_one(doc! { "ref": "planted", "tenantId": other })
        .await
        .map_err(failed)?;
    Ok(Json(json!({ "inserted": 1 })))
}

/// `getMore` on a cursor id it was handed (`?id=`), not one it opened.
async fn cursor_probe(db: TenantDb, Query(q): Query<HashMap<String, String>>) -> Answer {
    let id: i64 = q.get("id").and_then(|i| i.parse().ok()).unwrap_or(12345);
    let reply = db
        .run(doc! { "getMore": id, "collection": PAYMENTS })
        .await
        .map_err(failed)?;
    Ok(Json(
        json!({ "reply": Bson::Document(reply).into_relaxed_extjson() }),
    ))
}

/// Every payment of every tenant, plus a count: two audited commands.
async fn admin_all(db: BypassDb) -> Answer {
    let payments = db.collection(PAYMENTS);
    let docs = payments
        .find(doc! {}, FindOptions::default())
        .await
        .map_err(failed)?;
    let count = payments.count(doc! {}).await.map_err(failed)?;
    Ok(Json(
        json!({ "count": count, "docs": docs_json(docs), "tenant": db.tenant() }),
    ))
}

fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route(
            "/v1/careless",
            get(careless_list)
                .post(careless_insert)
                .patch(careless_update)
                .delete(careless_delete),
        )
        .route("/v1/careless/totals", get(careless_totals))
        .route("/v1/sneaky", get(sneaky_read).post(sneaky_insert))
        .route("/v1/cursor-probe", get(cursor_probe))
        .route("/v1/admin-all", get(admin_all))
}

// ----- fixtures -------------------------------------------------------------------------------

/// The API with the routes above over a fresh database; returns it and the database's name.
async fn start(prefix: &str) -> (TestApi, String) {
    let db = fresh_db_name(prefix);
    let api = TestApi::start_with(&api_config(&db), routes()).await;
    (api, db)
}

/// `<db>.payments` on the upstream itself.
async fn upstream(db: &str) -> mongodb::Collection<Document> {
    mongo_client().await.database(db).collection(PAYMENTS)
}

async fn all(coll: &mongodb::Collection<Document>, filter: Document) -> Vec<Document> {
    coll.find(filter)
        .await
        .expect("find upstream")
        .try_collect()
        .await
        .expect("read upstream")
}

/// Seeds `live` payments per tenant (`ref` = `<tenant>-<i>`, amount 10) and one soft-deleted
/// bank1 payment (`bank1-gone`).
async fn seed(db: &str, live: &[(&str, usize)]) {
    let mut docs = Vec::new();
    for (tenant, n) in live {
        for i in 0..*n {
            docs.push(doc! { "ref": format!("{tenant}-{i}"), "tenantId": *tenant, "amount": 10 });
        }
    }
    docs.push(doc! {
        "ref": "bank1-gone", "tenantId": "bank1", "amount": 10,
        "deletedAt": bson::DateTime::from_millis(1_700_000_000_000),
    });
    upstream(db)
        .await
        .insert_many(docs)
        .await
        .expect("seed payments");
}

/// A request with `X-Tenant-ID: tenant` and no token.
fn with_tenant_header(
    http: &reqwest::Client,
    method: reqwest::Method,
    api: &TestApi,
    path: &str,
    tenant: &str,
) -> reqwest::RequestBuilder {
    http.request(method, api.url(path))
        .header("x-tenant-id", tenant)
}

/// A request of a teller of `tenant`: `X-Tenant-ID` and a token naming the same tenant (tenant
/// data needs a token that names the tenant).
fn as_tenant(
    http: &reqwest::Client,
    method: reqwest::Method,
    api: &TestApi,
    path: &str,
    tenant: &str,
) -> reqwest::RequestBuilder {
    with_tenant_header(http, method, api, path, tenant)
        .bearer_auth(jwt(json!({ "sub": "teller", "tenantId": tenant })))
}

/// The status, `X-Request-Id` and JSON body of a response.
async fn read(r: reqwest::RequestBuilder) -> (StatusCode, String, Value) {
    let r = r.send().await.expect("request");
    let status = StatusCode::from_u16(r.status().as_u16()).expect("a status");
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, id, r.json().await.unwrap_or(Value::Null))
}

/// The `ref`s in a handler's `docs`.
fn refs(body: &Value) -> BTreeSet<String> {
    body["docs"]
        .as_array()
        .expect("docs")
        .iter()
        .map(|d| d["ref"].as_str().expect("ref").to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Audit events matching `filter`, waiting (the sink writes in batches every ~200 ms) until
/// at least `min` are there.
async fn audit_events(api: &TestApi, filter: Document, min: usize) -> Vec<Document> {
    let coll = mongo_client()
        .await
        .database(&api.services.config.policy.internal_database)
        .collection::<Document>("tenantgate_audit");
    let started = Instant::now();
    loop {
        let found = all(&coll, filter.clone()).await;
        if found.len() >= min || started.elapsed() > Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_careless_read_sees_only_the_request_tenants_live_documents() {
    bounded(
        "a_careless_read_sees_only_the_request_tenants_live_documents",
        async {
            let (api, db) = start("scoped_read").await;
            seed(&db, &[("bank1", 3), ("bank2", 2)]).await;
            let http = reqwest::Client::new();

            let (status, _, body) = read(as_tenant(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/careless",
                "bank1",
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(refs(&body), set(&["bank1-0", "bank1-1", "bank1-2"]));

            for d in body["docs"].as_array().expect("docs") {
                assert_eq!(d["tenantId"], "bank1", "{d}");
            }

            // Tenant data needs a token naming the tenant: a header alone, or a token of
            // another kind, reaches nothing.
            let (status, _, body) = read(with_tenant_header(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/careless",
                "bank1",
            ))
            .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("authentication_required")),
                "{body}"
            );
            let auditor = jwt(json!({ "sub": "audit", "roles": ["security_auditor"] }));
            let (status, _, body) = read(
                with_tenant_header(&http, reqwest::Method::GET, &api, "/v1/careless", "bank1")
                    .bearer_auth(&auditor),
            )
            .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("tenant_access_denied")),
                "{body}"
            );

            // The same handler for bank2, named by its token this time.
            let token = jwt(json!({ "sub": "teller", "tenantId": "bank2" }));
            let (status, _, body) =
                read(http.get(api.url("/v1/careless")).bearer_auth(&token)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(refs(&body), set(&["bank2-0", "bank2-1"]));

            // Counting and grouping without a filter are scoped the same way.
            let (status, _, body) = read(as_tenant(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/careless/totals",
                "bank1",
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["count"], 3, "{body}");
            assert_eq!(body["groups"][0]["n"], 3, "{body}");
            assert_eq!(body["groups"][0]["amount"], 30, "{body}");
            let (_, _, body) =
                read(http.get(api.url("/v1/careless/totals")).bearer_auth(&token)).await;
            assert_eq!(body["count"], 2, "{body}");
            assert_eq!(body["groups"][0]["amount"], 20, "{body}");
        },
    )
    .await;
}

#[tokio::test]
async fn careless_writes_stay_inside_the_request_tenant() {
    bounded("careless_writes_stay_inside_the_request_tenant", async {
        let (api, db) = start("scoped_write").await;
        seed(&db, &[("bank1", 2), ("bank2", 2)]).await;
        let http = reqwest::Client::new();
        let coll = upstream(&db).await;

        // An insert that never mentions a tenant is stamped with the request's.
        for (tenant, reference) in [("bank1", "w1"), ("bank2", "w2")] {
            let (status, _, body) = read(as_tenant(
                &http,
                reqwest::Method::POST,
                &api,
                &format!("/v1/careless?ref={reference}"),
                tenant,
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let stored = all(&coll, doc! { "ref": reference }).await;
            assert_eq!(stored.len(), 1);
            assert_eq!(
                stored[0].get_str("tenantId").ok(),
                Some(tenant),
                "{:?}",
                stored[0]
            );
        }

        // An update with an empty filter touches bank1's live documents only.
        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::PATCH,
            &api,
            "/v1/careless",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["matched"], 3, "bank1-0, bank1-1, w1: {body}");
        let flagged = all(&coll, doc! { "flagged": true }).await;
        let flagged: BTreeSet<String> = flagged
            .iter()
            .map(|d| d.get_str("ref").expect("ref").to_owned())
            .collect();
        assert_eq!(flagged, set(&["bank1-0", "bank1-1", "w1"]));

        // A delete with an empty filter soft-deletes bank1's live documents only.
        let gone_before = all(&coll, doc! { "ref": "bank1-gone" }).await[0]
            .get_datetime("deletedAt")
            .copied()
            .expect("seeded deletedAt");
        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::DELETE,
            &api,
            "/v1/careless",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["deleted"], 3, "{body}");
        let everything = all(&coll, doc! {}).await;
        assert_eq!(everything.len(), 7, "nothing was removed for real");
        for d in &everything {
            let reference = d.get_str("ref").expect("ref");
            match d.get_str("tenantId").expect("tenantId") {
                "bank1" => assert!(d.get_datetime("deletedAt").is_ok(), "{d:?}"),
                _ => assert!(!d.contains_key("deletedAt"), "bank2 untouched: {d:?}"),
            }
            if reference == "bank1-gone" {
                assert_eq!(
                    d.get_datetime("deletedAt").ok(),
                    Some(&gone_before),
                    "an already deleted document is not deleted again"
                );
            }
        }

        let (_, _, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/careless",
            "bank1",
        ))
        .await;
        assert_eq!(refs(&body), set(&[]), "bank1 now sees nothing");
        let (_, _, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/careless",
            "bank2",
        ))
        .await;
        assert_eq!(refs(&body), set(&["bank2-0", "bank2-1", "w2"]));
    })
    .await;
}

#[tokio::test]
async fn naming_another_tenant_is_refused_and_audited() {
    bounded("naming_another_tenant_is_refused_and_audited", async {
        let (api, db) = start("scoped_sneaky").await;
        seed(&db, &[("bank1", 1), ("bank2", 2)]).await;
        let http = reqwest::Client::new();

        let (status, request_id, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/sneaky?tenant=bank2",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "tenant_override", "{body}");
        assert!(body.get("docs").is_none(), "no documents leak: {body}");
        assert!(!request_id.is_empty(), "the response carries a request id");

        let events = audit_events(
            &api,
            doc! { "requestId": &request_id, "kind": "rejection" },
            1,
        )
        .await;
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e.get_str("source").ok(), Some("api"), "{e:?}");
        assert_eq!(e.get_str("rule").ok(), Some("tenant_override"), "{e:?}");
        assert_eq!(e.get_str("tenant").ok(), Some("bank1"), "{e:?}");
        assert_eq!(e.get_str("collection").ok(), Some(PAYMENTS), "{e:?}");
        assert_eq!(e.get_str("command").ok(), Some("find"), "{e:?}");
        let shape = format!("{:?}", e.get_document("shape"));
        assert!(
            !shape.contains("bank2"),
            "values are redacted from the audit: {shape}"
        );

        // Planting a document in the other tenant is refused as well, and stores nothing.
        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::POST,
            &api,
            "/v1/sneaky?tenant=bank2",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "tenant_field_write", "{body}");
        assert!(
            all(&upstream(&db).await, doc! { "ref": "planted" })
                .await
                .is_empty()
        );

        // Naming its own tenant is fine.
        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/sneaky?tenant=bank1",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(refs(&body), set(&["bank1-0"]));
    })
    .await;
}

#[tokio::test]
async fn the_bypass_handle_is_for_super_admin_only_and_audits_every_command() {
    bounded(
        "the_bypass_handle_is_for_super_admin_only_and_audits_every_command",
        async {
            let (api, db) = start("scoped_bypass").await;
            seed(&db, &[("bank1", 2), ("bank2", 1)]).await;
            let http = reqwest::Client::new();
            // `/v1/admin-all` is mounted among the tenant routes, so the tenancy middleware runs
            // before `BypassDb`: a request naming no tenant never reaches the role check.
            let (status, _, body) = read(http.get(api.url("/v1/admin-all"))).await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::BAD_REQUEST, Some("tenant_required")),
                "{body}"
            );

            let (status, _, body) = read(with_tenant_header(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/admin-all",
                "bank1",
            ))
            .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("authentication_required")),
                "no token: {body}"
            );

            let teller = jwt(json!({ "sub": "teller", "tenantId": "bank1" }));
            let (status, _, body) = read(
                with_tenant_header(&http, reqwest::Method::GET, &api, "/v1/admin-all", "bank1")
                    .bearer_auth(&teller),
            )
            .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::FORBIDDEN, Some("role_required")),
                "a tenant token: {body}"
            );

            let root = jwt(json!({ "sub": "root", "roles": ["super_admin"] }));
            let (status, request_id, body) = read(
                with_tenant_header(&http, reqwest::Method::GET, &api, "/v1/admin-all", "bank1")
                    .bearer_auth(&root),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                body["tenant"],
                Value::Null,
                "the handle is bound to no tenant"
            );
            assert_eq!(
                refs(&body),
                set(&["bank1-0", "bank1-1", "bank1-gone", "bank2-0"]),
                "unscoped: every tenant, soft-deleted documents included"
            );
            assert_eq!(body["count"], 4, "{body}");

            let acting =
                audit_events(&api, doc! { "requestId": &request_id, "rule": "act_as" }, 1).await;
            assert_eq!(
                acting.len(),
                1,
                "the super_admin's tenant route is audited as acting as bank1: {acting:?}"
            );
            let events =
                audit_events(&api, doc! { "requestId": &request_id, "rule": "bypass" }, 2).await;
            assert_eq!(
                events.len(),
                2,
                "one event per command (find, aggregate): {events:?}"
            );
            let mut commands = BTreeSet::new();
            for e in &events {
                assert_eq!(e.get_str("kind").ok(), Some("bypass"), "{e:?}");
                assert_eq!(e.get_str("source").ok(), Some("api"), "{e:?}");
                assert_eq!(e.get_str("principal").ok(), Some("jwt:root"), "{e:?}");
                assert_eq!(e.get_str("collection").ok(), Some(PAYMENTS), "{e:?}");
                commands.insert(e.get_str("command").expect("command").to_owned());
            }
            assert_eq!(commands, set(&["aggregate", "find"]));

            // The refused attempts left no bypass event behind.
            let bypasses = audit_events(&api, doc! { "kind": "bypass", "rule": "bypass" }, 2).await;
            assert_eq!(bypasses.len(), 2, "{bypasses:?}");
        },
    )
    .await;
}

#[tokio::test]
async fn a_cursor_the_handle_did_not_open_is_refused() {
    bounded("a_cursor_the_handle_did_not_open_is_refused", async {
        let (api, db) = start("scoped_cursor").await;
        seed(&db, &[("bank1", 1), ("bank2", 10)]).await;
        let http = reqwest::Client::new();

        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/cursor-probe?id=12345",
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "cursor_not_owned", "{body}");

        // A real, open cursor of bank2's is no different.
        let bank2 = api
            .services
            .engine
            .for_tenant("bank2", "test", &db, api_origin());
        let opened = bank2
            .run(doc! { "find": PAYMENTS, "filter": {}, "batchSize": 2 })
            .await
            .expect("bank2 opens a cursor");
        let id = opened
            .get_document("cursor")
            .and_then(|c| c.get_i64("id"))
            .expect("cursor id");
        assert_ne!(id, 0, "10 documents in batches of 2 leave the cursor open");
        let (status, _, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            &format!("/v1/cursor-probe?id={id}"),
            "bank1",
        ))
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["code"], "cursor_not_owned", "{body}");

        // Its owner can still read on.
        let more = bank2
            .run(doc! { "getMore": id, "collection": PAYMENTS, "batchSize": 2 })
            .await
            .expect("the owner continues its cursor");
        let batch = more
            .get_document("cursor")
            .and_then(|c| c.get_array("nextBatch"))
            .expect("nextBatch");
        assert_eq!(batch.len(), 2);
    })
    .await;
}

/// An API origin for handles made in the test itself.
fn api_origin() -> Origin {
    Origin::Api {
        peer: None,
        request_id: "test".into(),
    }
}

#[tokio::test]
async fn a_handle_cannot_kill_another_tenants_cursor() {
    bounded("a_handle_cannot_kill_another_tenants_cursor", async {
        let (api, db) = start("scoped_kill").await;
        seed(&db, &[("bank1", 1), ("bank2", 10)]).await;
        let engine = &api.services.engine;
        let bank2 = engine.for_tenant("bank2", "owner", &db, api_origin());
        let bank1 = engine.for_tenant("bank1", "intruder", &db, api_origin());
        let opened = bank2
            .run(doc! { "find": PAYMENTS, "filter": {}, "batchSize": 2 })
            .await
            .expect("bank2 opens a cursor");
        let id = opened
            .get_document("cursor")
            .and_then(|c| c.get_i64("id"))
            .expect("cursor id");
        assert_ne!(id, 0);

        let killed = bank1
            .run(doc! { "killCursors": PAYMENTS, "cursors": [id] })
            .await;
        match &killed {
            Err(DbError::Rejected { rule, .. }) => assert_eq!(rule.as_str(), "cursor_not_owned"),
            other => panic!("bank1 killed bank2's cursor {id}: {other:?}"),
        }
        bank2
            .run(doc! { "getMore": id, "collection": PAYMENTS, "batchSize": 2 })
            .await
            .expect("bank2's cursor is still alive");
    })
    .await;
}

#[tokio::test]
async fn a_foreign_cursor_probe_is_audited() {
    bounded("a_foreign_cursor_probe_is_audited", async {
        let (api, _db) = start("scoped_probe_audit").await;
        let http = reqwest::Client::new();
        let (status, request_id, body) = read(as_tenant(
            &http,
            reqwest::Method::GET,
            &api,
            "/v1/cursor-probe?id=12345",
            "bank1",
        ))
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("cursor_not_owned")),
            "{body}"
        );
        let events = audit_events(&api, doc! { "requestId": &request_id }, 1).await;
        assert_eq!(
            events.len(),
            1,
            "the refused getMore is in the audit trail, as it is when it arrives on the proxy"
        );
        assert_eq!(events[0].get_str("kind").ok(), Some("rejection"));
        assert_eq!(events[0].get_str("rule").ok(), Some("cursor_not_owned"));
        assert_eq!(events[0].get_str("source").ok(), Some("api"));
    })
    .await;
}

#[tokio::test]
async fn a_careless_read_drains_every_batch_and_stays_scoped() {
    bounded(
        "a_careless_read_drains_every_batch_and_stays_scoped",
        async {
            let (api, db) = start("scoped_pages").await;
            let mut docs: Vec<Document> = (0..250)
                .map(|i| doc! { "ref": format!("p1-{i:03}"), "tenantId": "bank1", "amount": 1 })
                .collect();
            docs.extend((0..10).map(|i| doc! { "ref": format!("p2-{i}"), "tenantId": "bank2" }));
            upstream(&db).await.insert_many(docs).await.expect("seed");
            let http = reqwest::Client::new();

            let (status, _, body) = read(as_tenant(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/careless",
                "bank1",
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["count"], 250, "more than one batch (101) was read");
            let seen = refs(&body);
            assert_eq!(seen.len(), 250, "no duplicates");
            assert!(seen.iter().all(|r| r.starts_with("p1-")), "only bank1's");

            let (status, _, body) = read(as_tenant(
                &http,
                reqwest::Method::GET,
                &api,
                "/v1/careless",
                "bank2",
            ))
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["count"], 10, "{body}");
        },
    )
    .await;
}
