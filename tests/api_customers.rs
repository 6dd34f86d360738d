//! The customers API end to end, against the real upstream and the real Redis.
//!
//! What this file proves: `POST /v1/customers` validates every field (naming each one at fault,
//! unknown fields included), normalises the email and stores the customer in the tenant's
//! `customers` collection stamped with the tenant; `GET /v1/customers` lists newest first and
//! pages exactly with `limit` and `starting_after`; `PATCH` changes only the fields it names
//! (`email: null` clears); `DELETE` is a soft delete done by the policy engine (the stored
//! document keeps existing with `deletedAt`), after which the customer is gone from reads,
//! lists, updates and `$lookup` joins on the proxy, unless a read asks with `include_deleted`;
//! `POST …/restore` brings it back and refuses a live one; `DELETE ?hard=true` is for
//! `super_admin` only, really removes the document, is audited as a bypass and stays inside the
//! tenant the request names; another tenant's customer is a 404 for every route; and tenant data
//! needs a token.
//!
//! Stored documents are read straight from the upstream, never only through the code under
//! test. Every test has its own databases and Redis key prefix.

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use bson::{Bson, Document, doc};
use futures::TryStreamExt;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use common::{TestApi, api_config, fresh_db_name, jwt, mongo_client};

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The tenant collection of customers.
const CUSTOMERS: &str = "customers";

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

// ----- HTTP -----------------------------------------------------------------------------------

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        let value = self.headers.get(name).and_then(|v| v.to_str().ok());
        value.unwrap_or("")
    }

    /// The problem `code`.
    fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// The `field` of each of a 422's `errors`.
    fn error_fields(&self) -> BTreeSet<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The ids of a list's `data`, in order.
    fn ids(&self) -> Vec<String> {
        self.body["data"]
            .as_array()
            .unwrap_or_else(|| panic!("a list: {}", self.body))
            .iter()
            .map(|c| c["id"].as_str().expect("an id").to_owned())
            .collect()
    }
}

/// The API under test and who calls it.
struct Caller<'a> {
    api: &'a TestApi,
    http: reqwest::Client,
}

impl Caller<'_> {
    fn new(api: &TestApi) -> Caller<'_> {
        Caller {
            api,
            http: reqwest::Client::new(),
        }
    }

    /// A request naming `tenant` by `X-Tenant-ID`, without a token.
    fn anonymous(&self, method: Method, path: &str, tenant: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.api.url(path))
            .header("x-tenant-id", tenant)
    }

    /// A request of a clerk of `tenant`: `X-Tenant-ID` and a token naming the same tenant.
    fn tenant(&self, method: Method, path: &str, tenant: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path, tenant)
            .bearer_auth(jwt(json!({ "sub": "alice", "tenantId": tenant })))
    }

    /// A request of a `super_admin` (no tenant in the token) acting as `tenant`.
    fn root(&self, method: Method, path: &str, tenant: &str) -> reqwest::RequestBuilder {
        self.anonymous(method, path, tenant)
            .bearer_auth(jwt(json!({ "sub": "root", "roles": ["super_admin"] })))
    }

    /// Creates a customer for `tenant` and returns it, asserting the 201.
    async fn create(&self, tenant: &str, body: Value) -> Value {
        let r = send(
            self.tenant(Method::POST, "/v1/customers", tenant)
                .json(&body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "create {body}: {}", r.body);
        r.body
    }

    /// `GET /v1/customers<query>` as a clerk of `tenant`, asserting the 200.
    async fn list(&self, tenant: &str, query: &str) -> Reply {
        let r = send(self.tenant(Method::GET, &format!("/v1/customers{query}"), tenant)).await;
        assert_eq!(r.status, StatusCode::OK, "list {query}: {}", r.body);
        assert_eq!(r.body["object"], "list", "{}", r.body);
        r
    }
}

async fn send(request: reqwest::RequestBuilder) -> Reply {
    let r = request.send().await.expect("the API answers");
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn id_of(customer: &Value) -> String {
    customer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a customer: {customer}"))
        .to_owned()
}

/// A timestamp of the API, parsed; panics unless it is RFC 3339.
fn instant(v: &Value) -> bson::DateTime {
    let s = v.as_str().unwrap_or_else(|| panic!("a timestamp, not {v}"));
    bson::DateTime::parse_rfc3339_str(s).unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"))
}

// ----- fixtures -------------------------------------------------------------------------------

/// The API over a fresh database; returns it and the database's name.
async fn start(prefix: &str) -> (TestApi, String) {
    let db = fresh_db_name(prefix);
    let api = TestApi::start(&api_config(&db)).await;
    (api, db)
}

/// `<db>.<collection>` on the upstream itself.
async fn upstream(db: &str, collection: &str) -> mongodb::Collection<Document> {
    mongo_client().await.database(db).collection(collection)
}

/// The stored customer `id`, read from the upstream (soft-deleted or not).
async fn stored(db: &str, id: &str) -> Option<Document> {
    upstream(db, CUSTOMERS)
        .await
        .find_one(doc! { "_id": id })
        .await
        .expect("read the upstream")
}

/// Every stored customer, read from the upstream.
async fn stored_count(db: &str) -> u64 {
    upstream(db, CUSTOMERS)
        .await
        .count_documents(doc! {})
        .await
        .expect("count the upstream")
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
        let found: Vec<Document> = coll
            .find(filter.clone())
            .await
            .expect("find audit events")
            .try_collect()
            .await
            .expect("read audit events");
        if found.len() >= min || started.elapsed() > Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ----- create and read ------------------------------------------------------------------------

#[tokio::test]
async fn create_stores_a_normalised_customer_and_returns_it_with_a_location() {
    bounded(
        "create_stores_a_normalised_customer_and_returns_it_with_a_location",
        async {
            let (api, db) = start("cus_create").await;
            let c = Caller::new(&api);
            let r = send(
                c.tenant(Method::POST, "/v1/customers", "bank1")
                    .json(&json!({
                        "name": "Ada Lovelace",
                        "email": "Ada.Lovelace@Example.COM",
                        "metadata": { "segment": "retail", "crm": "A-17" },
                    })),
            )
            .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            let id = id_of(&r.body);
            let hex = id.strip_prefix("cus_").expect("the id starts with cus_");
            assert!(
                hex.len() == 24 && hex.chars().all(|ch| matches!(ch, '0'..='9' | 'a'..='f')),
                "cus_ and 24 lower-case hex digits: {id}"
            );
            assert_eq!(r.header("location"), format!("/v1/customers/{id}"));
            let body = &r.body;
            assert_eq!(body["object"], "customer");
            assert_eq!(body["name"], "Ada Lovelace");
            assert_eq!(body["email"], "ada.lovelace@example.com", "lower case");
            assert_eq!(
                body["metadata"],
                json!({ "segment": "retail", "crm": "A-17" })
            );
            assert_eq!(body["tenantId"], "bank1");
            assert_eq!(body["deletedAt"], Value::Null);
            let created = instant(&body["createdAt"]);
            assert_eq!(instant(&body["updatedAt"]), created, "{body}");
            let age = bson::DateTime::now().timestamp_millis() - created.timestamp_millis();
            assert!((0..60_000).contains(&age), "createdAt is now: {body}");
            let keys: BTreeSet<&str> = body
                .as_object()
                .expect("an object")
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                BTreeSet::from([
                    "id",
                    "object",
                    "name",
                    "email",
                    "metadata",
                    "tenantId",
                    "createdAt",
                    "updatedAt",
                    "deletedAt"
                ]),
                "exactly the documented members"
            );

            // What the upstream holds, read directly.
            let doc = stored(&db, &id).await.expect("the customer is stored");
            assert_eq!(doc.get_str("tenantId").ok(), Some("bank1"), "{doc:?}");
            assert_eq!(doc.get_str("name").ok(), Some("Ada Lovelace"));
            assert_eq!(doc.get_str("email").ok(), Some("ada.lovelace@example.com"));
            assert_eq!(
                doc.get_document("metadata").ok(),
                Some(&doc! { "segment": "retail", "crm": "A-17" })
            );
            assert!(
                matches!(doc.get("deletedAt"), None | Some(Bson::Null)),
                "a new customer is live: {doc:?}"
            );
            assert_eq!(stored_count(&db).await, 1);

            // The Location reads it back.
            let got = send(c.tenant(Method::GET, r.header("location"), "bank1")).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.body);
            assert_eq!(&got.body, body, "GET returns what POST returned");

            // Only `name` is required; the rest have empty defaults.
            let minimal = c.create("bank1", json!({ "name": "Bo" })).await;
            assert_eq!(minimal["email"], Value::Null, "{minimal}");
            assert_eq!(minimal["metadata"], json!({}), "{minimal}");
            assert_ne!(id_of(&minimal), id, "every customer has its own id");
        },
    )
    .await;
}

#[tokio::test]
async fn create_names_every_invalid_field_and_stores_nothing() {
    bounded(
        "create_names_every_invalid_field_and_stores_nothing",
        async {
            let (api, db) = start("cus_invalid").await;
            let c = Caller::new(&api);
            let create =
                |body: Value| send(c.tenant(Method::POST, "/v1/customers", "bank1").json(&body));

            // No name, a bad email, a non-string metadata value and three unknown fields, one
            // of which tries to pick the tenant.
            let r = create(json!({
                "email": "not-an-email",
                "metadata": { "ok": "fine", "n": 7 },
                "tenantId": "bank2",
                "id": "cus_000000000000000000000000",
                "phone": "+44 20 7946 0000",
            }))
            .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert_eq!(r.code(), "validation_failed", "{}", r.body);
            assert_eq!(
                r.error_fields(),
                BTreeSet::from(
                    ["name", "email", "metadata.n", "tenantId", "id", "phone"].map(String::from)
                ),
                "{}",
                r.body
            );

            // Names: 1 to 200 characters (characters, not bytes).
            let long = "é".repeat(200);
            let ok = c.create("bank1", json!({ "name": long })).await;
            assert_eq!(ok["name"], long);
            for bad in [json!(""), json!("x".repeat(201)), json!(42), json!(null)] {
                let r = create(json!({ "name": bad })).await;
                assert_eq!(
                    (r.status, r.error_fields()),
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        BTreeSet::from(["name".to_owned()])
                    ),
                    "name {bad}: {}",
                    r.body
                );
            }

            // Emails that are plainly not addresses.
            for bad in ["plain", "a@b", "@example.com", "a@.com", "a b@example.com"] {
                let r = create(json!({ "name": "E", "email": bad })).await;
                assert_eq!(
                    (r.status, r.error_fields()),
                    (
                        StatusCode::UNPROCESSABLE_ENTITY,
                        BTreeSet::from(["email".to_owned()])
                    ),
                    "email {bad:?}: {}",
                    r.body
                );
            }

            // Metadata: at most 20 string values.
            let twenty: Map<String, Value> = (0..20)
                .map(|i| (format!("k{i}"), Value::String(format!("v{i}"))))
                .collect();
            let ok = c
                .create("bank1", json!({ "name": "M", "metadata": twenty }))
                .await;
            assert_eq!(ok["metadata"].as_object().map(Map::len), Some(20));
            let mut twenty_one = twenty.clone();
            twenty_one.insert("k20".into(), "v20".into());
            let r = create(json!({ "name": "M", "metadata": twenty_one })).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert!(r.error_fields().contains("metadata"), "{}", r.body);
            let r = create(json!({ "name": "M", "metadata": ["a"] })).await;
            assert_eq!(
                (r.status, r.error_fields()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    BTreeSet::from(["metadata".to_owned()])
                ),
                "{}",
                r.body
            );

            assert_eq!(
                stored_count(&db).await,
                2,
                "only the two valid customers were stored"
            );
        },
    )
    .await;
}

/// `email()` accepts anything with one `@` split off, so a second `@` in the domain passes.
#[tokio::test]
async fn create_refuses_an_email_with_two_at_signs() {
    bounded("create_refuses_an_email_with_two_at_signs", async {
        let (api, db) = start("cus_email_at").await;
        let c = Caller::new(&api);
        for bad in ["a@@example.com", "a@b@example.com"] {
            let r = send(
                c.tenant(Method::POST, "/v1/customers", "bank1")
                    .json(&json!({ "name": "E", "email": bad })),
            )
            .await;
            assert_eq!(
                (r.status, r.error_fields()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    BTreeSet::from(["email".to_owned()])
                ),
                "email {bad:?}: {}",
                r.body
            );
        }
        assert_eq!(stored_count(&db).await, 0);
    })
    .await;
}

/// The metadata key check counts bytes (`k.len()`) while its message promises characters.
#[tokio::test]
async fn metadata_keys_are_limited_by_characters_not_bytes() {
    bounded("metadata_keys_are_limited_by_characters_not_bytes", async {
        let (api, db) = start("cus_meta_key").await;
        let c = Caller::new(&api);
        let key = "é".repeat(21);
        let r = send(
            c.tenant(Method::POST, "/v1/customers", "bank1")
                .json(&json!({ "name": "K", "metadata": { key.as_str(): "v" } })),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "a 21-character key: {}",
            r.body
        );
        assert_eq!(r.body["metadata"], json!({ key.as_str(): "v" }));
        assert_eq!(stored_count(&db).await, 1);
    })
    .await;
}

#[tokio::test]
async fn metadata_keys_with_control_characters_and_oversized_bodies_are_refused() {
    bounded("metadata_control_and_size", async {
        let (api, db) = start("cus_meta_ctl").await;
        let c = Caller::new(&api);
        let r = send(
            c.tenant(Method::POST, "/v1/customers", "bank1")
                .json(&json!({ "name": "K", "metadata": { "a\u{7}b": "v" } })),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.body["errors"][0]["field"], "metadata.a\u{7}b",
            "{}",
            r.body
        );
        // A body over the 2 MiB limit is 413, in the API's error shape.
        let big = json!({ "name": "K", "metadata": { "x": "y".repeat(3 << 20) } });
        let r = send(c.tenant(Method::POST, "/v1/customers", "bank1").json(&big)).await;
        assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
        assert_eq!(r.body["code"], "payload_too_large", "{}", r.body);
        assert_eq!(stored_count(&db).await, 0);
    })
    .await;
}

// ----- list -----------------------------------------------------------------------------------

#[tokio::test]
async fn the_list_names_unknown_parameters_and_a_bad_cursor() {
    bounded("list_parameters", async {
        let (api, _db) = start("cus_list_params").await;
        let c = Caller::new(&api);
        for (query, field) in [
            ("?colour=red", "colour"),
            ("?starting_after=nope", "starting_after"),
            ("?starting_after=cus_zz", "starting_after"),
        ] {
            let r = send(c.tenant(Method::GET, &format!("/v1/customers{query}"), "bank1")).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{query}: {}",
                r.body
            );
            assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
        }
        c.list("bank1", "?starting_after=cus_000000000000000000000000")
            .await;
    })
    .await;
}

#[tokio::test]
async fn the_list_is_newest_first_and_pages_exactly() {
    bounded("the_list_is_newest_first_and_pages_exactly", async {
        let (api, _db) = start("cus_list").await;
        let c = Caller::new(&api);
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(id_of(
                &c.create("bank1", json!({ "name": format!("c{i}") })).await,
            ));
        }
        let newest_first: Vec<String> = created.iter().rev().cloned().collect();

        let all = c.list("bank1", "").await;
        assert_eq!(all.ids(), newest_first, "the default limit (10) holds all");
        assert_eq!(all.body["has_more"], false);
        let names: Vec<&str> = all.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| d["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["c4", "c3", "c2", "c1", "c0"]);

        // Exactly `limit` left: no more; one more than `limit`: more.
        let r = c.list("bank1", "?limit=5").await;
        assert_eq!(
            (r.ids(), &r.body["has_more"]),
            (newest_first.clone(), &json!(false))
        );
        let r = c.list("bank1", "?limit=4").await;
        assert_eq!(
            (r.ids(), &r.body["has_more"]),
            (newest_first[..4].to_vec(), &json!(true))
        );

        // Pages of two.
        let p1 = c.list("bank1", "?limit=2").await;
        assert_eq!(
            (p1.ids(), &p1.body["has_more"]),
            (newest_first[..2].to_vec(), &json!(true))
        );
        let p2 = c
            .list(
                "bank1",
                &format!("?limit=2&starting_after={}", newest_first[1]),
            )
            .await;
        assert_eq!(
            (p2.ids(), &p2.body["has_more"]),
            (newest_first[2..4].to_vec(), &json!(true))
        );
        let p3 = c
            .list(
                "bank1",
                &format!("?limit=2&starting_after={}", newest_first[3]),
            )
            .await;
        assert_eq!(
            (p3.ids(), &p3.body["has_more"]),
            (newest_first[4..].to_vec(), &json!(false))
        );
        let past = c
            .list("bank1", &format!("?starting_after={}", newest_first[4]))
            .await;
        assert_eq!(
            (past.ids(), &past.body["has_more"]),
            (Vec::new(), &json!(false))
        );

        // Walking one at a time visits every customer once.
        let mut walked = Vec::new();
        let mut query = "?limit=1".to_owned();
        loop {
            let page = c.list("bank1", &query).await;
            walked.extend(page.ids());
            if page.body["has_more"] == false {
                break;
            }
            let last = walked.last().expect("a page with more has an item");
            query = format!("?limit=1&starting_after={last}");
            assert!(walked.len() <= 5, "the walk ends: {walked:?}");
        }
        assert_eq!(walked, newest_first);

        // Bad parameters are named.
        for (query, field) in [
            ("?limit=0", "limit"),
            ("?limit=101", "limit"),
            ("?limit=ten", "limit"),
            ("?include_deleted=yes", "include_deleted"),
        ] {
            let r = send(c.tenant(Method::GET, &format!("/v1/customers{query}"), "bank1")).await;
            assert_eq!(
                (r.status, r.code(), r.error_fields()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    BTreeSet::from([field.to_owned()])
                ),
                "{query}: {}",
                r.body
            );
        }
        let r = c.list("bank1", "?limit=100").await;
        assert_eq!(r.ids().len(), 5);

        // bank2 sees none of them.
        let theirs = c.list("bank2", "?include_deleted=true").await;
        assert_eq!(
            (theirs.ids(), &theirs.body["has_more"]),
            (Vec::new(), &json!(false))
        );
    })
    .await;
}

// ----- update ---------------------------------------------------------------------------------

#[tokio::test]
async fn patch_changes_only_the_fields_it_names() {
    bounded("patch_changes_only_the_fields_it_names", async {
        let (api, db) = start("cus_patch").await;
        let c = Caller::new(&api);
        let original = c
            .create(
                "bank1",
                json!({ "name": "Grace", "email": "grace@navy.mil", "metadata": { "rank": "rear admiral" } }),
            )
            .await;
        let id = id_of(&original);
        let path = format!("/v1/customers/{id}");
        let patch = |body: Value| send(c.tenant(Method::PATCH, &path, "bank1").json(&body));
        tokio::time::sleep(Duration::from_millis(20)).await;

        let r = patch(json!({ "name": "Grace Hopper" })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["name"], "Grace Hopper");
        assert_eq!(r.body["email"], "grace@navy.mil", "untouched");
        assert_eq!(r.body["metadata"], original["metadata"], "untouched");
        assert_eq!(r.body["createdAt"], original["createdAt"], "untouched");
        assert_eq!(r.body["tenantId"], "bank1");
        assert_eq!(r.body["deletedAt"], Value::Null);
        assert!(
            instant(&r.body["updatedAt"]) > instant(&original["updatedAt"]),
            "updatedAt moves: {} then {}",
            original["updatedAt"],
            r.body["updatedAt"]
        );

        let r = patch(json!({ "email": "Grace@Example.ORG", "metadata": { "ship": "USS Hopper" } })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["email"], "grace@example.org", "normalised on update too");
        assert_eq!(r.body["metadata"], json!({ "ship": "USS Hopper" }));
        assert_eq!(r.body["name"], "Grace Hopper");

        let r = patch(json!({ "email": null })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["email"], Value::Null, "null clears the email");
        assert_eq!(r.body["name"], "Grace Hopper");
        let doc = stored(&db, &id).await.expect("stored");
        assert!(
            matches!(doc.get("email"), None | Some(Bson::Null)),
            "the stored email is cleared: {doc:?}"
        );
        assert_eq!(doc.get_str("name").ok(), Some("Grace Hopper"));
        assert_eq!(doc.get_str("tenantId").ok(), Some("bank1"));

        // Invalid patches name every field and change nothing.
        let before = stored(&db, &id).await.expect("stored");
        let r = patch(json!({ "name": "", "email": "nope", "tenantId": "bank2", "deletedAt": "2020-01-01T00:00:00Z" })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(
            r.error_fields(),
            BTreeSet::from(["name", "email", "tenantId", "deletedAt"].map(String::from)),
            "{}",
            r.body
        );
        assert_eq!(stored(&db, &id).await, Some(before), "nothing changed");

        // The GET agrees with the last successful PATCH.
        let got = send(c.tenant(Method::GET, &path, "bank1")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body["name"], "Grace Hopper");
        assert_eq!(got.body["email"], Value::Null);

        let r = send(
            c.tenant(Method::PATCH, "/v1/customers/cus_ffffffffffffffffffffffff", "bank1")
                .json(&json!({ "name": "Nobody" })),
        )
        .await;
        assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "customer_not_found"), "{}", r.body);
        assert_eq!(stored_count(&db).await, 1, "a PATCH never upserts");
    })
    .await;
}

// ----- tenancy --------------------------------------------------------------------------------

#[tokio::test]
async fn another_tenants_customer_is_a_404_for_every_route() {
    bounded("another_tenants_customer_is_a_404_for_every_route", async {
        let (api, db) = start("cus_other").await;
        let c = Caller::new(&api);
        let live = id_of(
            &c.create(
                "bank1",
                json!({ "name": "Live", "email": "live@bank1.example" }),
            )
            .await,
        );
        let gone = id_of(&c.create("bank1", json!({ "name": "Gone" })).await);
        let r = send(c.tenant(Method::DELETE, &format!("/v1/customers/{gone}"), "bank1")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let live_before = stored(&db, &live).await.expect("stored");
        let gone_before = stored(&db, &gone).await.expect("stored");

        let not_found = |r: &Reply, what: &str| {
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "bank2 {what}: {}",
                r.body
            );
        };
        for id in [&live, &gone] {
            let path = format!("/v1/customers/{id}");
            not_found(&send(c.tenant(Method::GET, &path, "bank2")).await, "GET");
            not_found(
                &send(c.tenant(
                    Method::GET,
                    &format!("{path}?include_deleted=true"),
                    "bank2",
                ))
                .await,
                "GET include_deleted",
            );
            not_found(
                &send(
                    c.tenant(Method::PATCH, &path, "bank2")
                        .json(&json!({ "name": "Stolen", "email": null })),
                )
                .await,
                "PATCH",
            );
            not_found(
                &send(c.tenant(Method::DELETE, &path, "bank2")).await,
                "DELETE",
            );
            not_found(
                &send(c.tenant(Method::POST, &format!("{path}/restore"), "bank2")).await,
                "restore",
            );
        }
        let theirs = c.list("bank2", "?include_deleted=true").await;
        assert_eq!(theirs.ids(), Vec::<String>::new(), "{}", theirs.body);

        assert_eq!(
            stored(&db, &live).await,
            Some(live_before),
            "bank1's live customer is untouched"
        );
        assert_eq!(
            stored(&db, &gone).await,
            Some(gone_before),
            "bank1's deleted customer stays deleted"
        );
        let r = send(c.tenant(Method::GET, &format!("/v1/customers/{live}"), "bank1")).await;
        assert_eq!(
            (r.status, &r.body["name"]),
            (StatusCode::OK, &json!("Live"))
        );
    })
    .await;
}

#[tokio::test]
async fn tenant_data_needs_a_token_naming_the_tenant() {
    bounded("tenant_data_needs_a_token_naming_the_tenant", async {
        let (api, db) = start("cus_auth").await;
        let c = Caller::new(&api);
        let id = id_of(&c.create("bank1", json!({ "name": "Kept" })).await);
        let path = format!("/v1/customers/{id}");
        let before = stored(&db, &id).await.expect("stored");

        let attempts = [
            (
                Method::POST,
                "/v1/customers".to_owned(),
                Some(json!({ "name": "Anon" })),
            ),
            (Method::GET, "/v1/customers".to_owned(), None),
            (Method::GET, path.clone(), None),
            (Method::PATCH, path.clone(), Some(json!({ "name": "Anon" }))),
            (Method::DELETE, path.clone(), None),
            (Method::DELETE, format!("{path}?hard=true"), None),
            (Method::POST, format!("{path}/restore"), None),
        ];
        for (method, path, body) in attempts {
            let mut request = c.anonymous(method.clone(), &path, "bank1");
            if let Some(body) = &body {
                request = request.json(body);
            }
            let r = send(request).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::UNAUTHORIZED, "authentication_required"),
                "{method} {path} without a token: {}",
                r.body
            );
            // Nothing naming a tenant either (the API's bare address): still 401, not
            // 400 tenant_required.
            let mut request = c.http.request(method.clone(), api.url(&path));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let r = send(request).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::UNAUTHORIZED, "authentication_required"),
                "{method} {path} without a token or a tenant: {}",
                r.body
            );
        }

        // A bank2 token naming bank1 by header is refused too.
        let r = send(
            c.anonymous(Method::GET, &path, "bank1")
                .bearer_auth(jwt(json!({ "sub": "mallory", "tenantId": "bank2" }))),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

        assert_eq!(stored(&db, &id).await, Some(before), "untouched");
        assert_eq!(stored_count(&db).await, 1, "nothing was created");
    })
    .await;
}

// ----- soft delete and restore ----------------------------------------------------------------

#[tokio::test]
async fn delete_is_soft_and_hides_the_customer_unless_asked() {
    bounded(
        "delete_is_soft_and_hides_the_customer_unless_asked",
        async {
            let (api, db) = start("cus_soft").await;
            let c = Caller::new(&api);
            let doomed = c
                .create(
                    "bank1",
                    json!({ "name": "Doomed", "email": "d@example.com" }),
                )
                .await;
            let id = id_of(&doomed);
            let kept = id_of(&c.create("bank1", json!({ "name": "Kept" })).await);
            let path = format!("/v1/customers/{id}");

            let r = send(c.tenant(Method::DELETE, &path, "bank1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body["id"], id.as_str());
            assert_eq!(r.body["object"], "customer");
            assert_eq!(r.body["name"], "Doomed", "the object, not a receipt");
            assert_eq!(r.body["email"], "d@example.com");
            let deleted_at = instant(&r.body["deletedAt"]);
            assert!(deleted_at >= instant(&doomed["createdAt"]), "{}", r.body);

            // The document is still stored, marked by the policy engine.
            let doc = stored(&db, &id)
                .await
                .expect("a soft delete keeps the document");
            let marked = doc
                .get_datetime("deletedAt")
                .unwrap_or_else(|_| panic!("deletedAt is a date: {doc:?}"));
            assert_eq!(*marked, deleted_at, "the API shows the stored deletedAt");
            assert_eq!(doc.get_str("tenantId").ok(), Some("bank1"));
            assert_eq!(doc.get_str("name").ok(), Some("Doomed"));
            assert_eq!(stored_count(&db).await, 2);

            // Gone from reads and lists…
            let r = send(c.tenant(Method::GET, &path, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            assert_eq!(c.list("bank1", "").await.ids(), vec![kept.clone()]);
            assert_eq!(
                c.list("bank1", "?include_deleted=false").await.ids(),
                vec![kept.clone()]
            );

            // …unless asked for.
            let r = send(c.tenant(
                Method::GET,
                &format!("{path}?include_deleted=true"),
                "bank1",
            ))
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(instant(&r.body["deletedAt"]), deleted_at);
            let all = c.list("bank1", "?include_deleted=true").await;
            assert_eq!(
                all.ids(),
                vec![kept.clone(), id.clone()],
                "newest first, deleted included"
            );
            assert_eq!(all.body["data"][0]["deletedAt"], Value::Null);
            assert_eq!(instant(&all.body["data"][1]["deletedAt"]), deleted_at);

            // A deleted customer cannot be deleted or changed again.
            let r = send(c.tenant(Method::DELETE, &path, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            let r = send(
                c.tenant(Method::PATCH, &path, "bank1")
                    .json(&json!({ "name": "Zombie" })),
            )
            .await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            let after = stored(&db, &id).await.expect("still stored");
            assert_eq!(
                after, doc,
                "neither the second delete nor the PATCH changed it"
            );

            let r = send(c.tenant(Method::DELETE, &format!("{path}?hard=maybe"), "bank1")).await;
            assert_eq!(
                (r.status, r.error_fields()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    BTreeSet::from(["hard".to_owned()])
                ),
                "{}",
                r.body
            );
        },
    )
    .await;
}

#[tokio::test]
async fn restore_brings_a_deleted_customer_back_and_refuses_a_live_one() {
    bounded(
        "restore_brings_a_deleted_customer_back_and_refuses_a_live_one",
        async {
            let (api, db) = start("cus_restore").await;
            let c = Caller::new(&api);
            let id = id_of(
                &c.create(
                    "bank1",
                    json!({ "name": "Phoenix", "metadata": { "k": "v" } }),
                )
                .await,
            );
            let path = format!("/v1/customers/{id}");
            let restore = format!("{path}/restore");

            let r = send(c.tenant(Method::POST, &restore, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::CONFLICT, "customer_not_deleted"),
                "a live customer: {}",
                r.body
            );

            let deleted = send(c.tenant(Method::DELETE, &path, "bank1")).await;
            assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
            tokio::time::sleep(Duration::from_millis(20)).await;

            // Another tenant cannot restore it.
            let r = send(c.tenant(Method::POST, &restore, "bank2")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            let doc = stored(&db, &id).await.expect("stored");
            assert!(
                doc.get_datetime("deletedAt").is_ok(),
                "still deleted: {doc:?}"
            );

            let r = send(c.tenant(Method::POST, &restore, "bank1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body["id"], id.as_str());
            assert_eq!(r.body["deletedAt"], Value::Null, "{}", r.body);
            assert_eq!(r.body["name"], "Phoenix");
            assert_eq!(r.body["metadata"], json!({ "k": "v" }));
            assert!(
                instant(&r.body["updatedAt"]) > instant(&deleted.body["deletedAt"]),
                "updatedAt moves: {}",
                r.body
            );
            let doc = stored(&db, &id).await.expect("stored");
            assert!(
                matches!(doc.get("deletedAt"), None | Some(Bson::Null)),
                "live again: {doc:?}"
            );

            let got = send(c.tenant(Method::GET, &path, "bank1")).await;
            assert_eq!(got.status, StatusCode::OK, "{}", got.body);
            assert_eq!(got.body["deletedAt"], Value::Null);
            assert_eq!(c.list("bank1", "").await.ids(), vec![id.clone()]);

            let r = send(c.tenant(Method::POST, &restore, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::CONFLICT, "customer_not_deleted"),
                "twice: {}",
                r.body
            );
            let r = send(c.tenant(
                Method::POST,
                "/v1/customers/cus_ffffffffffffffffffffffff/restore",
                "bank1",
            ))
            .await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );

            // It can be deleted again once restored.
            let r = send(c.tenant(Method::DELETE, &path, "bank1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert!(r.body["deletedAt"].is_string(), "{}", r.body);
        },
    )
    .await;
}

#[tokio::test]
async fn soft_deleted_customers_disappear_from_lookups_on_the_proxy() {
    bounded("soft_deleted_customers_disappear_from_lookups_on_the_proxy", async {
        let (api, db) = start("cus_lookup").await;
        let c = Caller::new(&api);
        let mine = id_of(&c.create("bank1", json!({ "name": "Joined" })).await);
        let foreign = id_of(&c.create("bank2", json!({ "name": "Foreign" })).await);
        upstream(&db, "payments")
            .await
            .insert_many([
                doc! { "_id": "pay_mine", "tenantId": "bank1", "amount": 500, "customer": &mine },
                doc! { "_id": "pay_foreign", "tenantId": "bank1", "amount": 700, "customer": &foreign },
            ])
            .await
            .expect("seed payments");

        let client = api.proxy_client("svc-bank1", "bank1-secret").await;
        let payments = client.database(&db).collection::<Document>("payments");
        let joined = || async {
            let docs: Vec<Document> = payments
                .aggregate([
                    doc! { "$lookup": { "from": CUSTOMERS, "localField": "customer", "foreignField": "_id", "as": "c" } },
                    doc! { "$sort": { "_id": 1 } },
                ])
                .await
                .expect("aggregate through the proxy")
                .try_collect()
                .await
                .expect("read the aggregate");
            docs.iter()
                .map(|d| {
                    let names: Vec<String> = d
                        .get_array("c")
                        .unwrap_or_else(|_| panic!("a lookup array: {d:?}"))
                        .iter()
                        .map(|c| {
                            c.as_document()
                                .and_then(|c| c.get_str("name").ok())
                                .unwrap_or_default()
                                .to_owned()
                        })
                        .collect();
                    (d.get_str("_id").expect("_id").to_owned(), names)
                })
                .collect::<Vec<_>>()
        };

        assert_eq!(
            joined().await,
            vec![
                ("pay_foreign".to_owned(), Vec::new()),
                ("pay_mine".to_owned(), vec!["Joined".to_owned()]),
            ],
            "the join finds bank1's customer and never bank2's"
        );

        let r = send(c.tenant(Method::DELETE, &format!("/v1/customers/{mine}"), "bank1")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(stored(&db, &mine).await.is_some(), "soft: still stored");
        assert_eq!(
            joined().await,
            vec![
                ("pay_foreign".to_owned(), Vec::new()),
                ("pay_mine".to_owned(), Vec::new()),
            ],
            "a soft-deleted customer is gone from the join"
        );

        let r = send(c.tenant(Method::POST, &format!("/v1/customers/{mine}/restore"), "bank1")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(
            joined().await[1],
            ("pay_mine".to_owned(), vec!["Joined".to_owned()]),
            "a restored customer joins again"
        );
    })
    .await;
}

// ----- hard delete ----------------------------------------------------------------------------

#[tokio::test]
async fn hard_delete_is_for_super_admin_removes_the_document_and_is_audited() {
    bounded(
        "hard_delete_is_for_super_admin_removes_the_document_and_is_audited",
        async {
            let (api, db) = start("cus_hard").await;
            let c = Caller::new(&api);
            let id = id_of(&c.create("bank1", json!({ "name": "Erased" })).await);
            let kept = id_of(&c.create("bank1", json!({ "name": "Kept" })).await);
            let path = format!("/v1/customers/{id}?hard=true");

            let r = send(c.tenant(Method::DELETE, &path, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::FORBIDDEN, "role_required"),
                "{}",
                r.body
            );
            let doc = stored(&db, &id)
                .await
                .expect("a refused hard delete removes nothing");
            assert!(
                matches!(doc.get("deletedAt"), None | Some(Bson::Null)),
                "nor soft-deletes: {doc:?}"
            );

            let r = send(c.root(Method::DELETE, &path, "bank1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.body["deleted"], true, "{}", r.body);
            assert_eq!(r.body["hard"], true, "{}", r.body);
            assert_eq!(r.body["id"], id.as_str(), "{}", r.body);
            let request_id = r.header("x-request-id").to_owned();
            assert!(!request_id.is_empty(), "the response has a request id");

            assert_eq!(
                stored(&db, &id).await,
                None,
                "the document is gone from the upstream"
            );
            assert!(stored(&db, &kept).await.is_some(), "only that one");
            assert_eq!(stored_count(&db).await, 1);

            // The request is audited as acting as bank1, and the delete as a bypass whose
            // (redacted) filter names the tenant.
            let acting = audit_events(
                &api,
                doc! { "requestId": &request_id, "kind": "bypass", "rule": "act_as" },
                1,
            )
            .await;
            assert_eq!(acting.len(), 1, "{acting:?}");
            assert_eq!(
                acting[0].get_str("tenant").ok(),
                Some("bank1"),
                "{acting:?}"
            );
            let events = audit_events(
                &api,
                doc! { "requestId": &request_id, "kind": "bypass", "rule": "bypass" },
                1,
            )
            .await;
            assert_eq!(
                events.len(),
                1,
                "one bypass event for the one command: {events:?}"
            );
            let e = &events[0];
            assert_eq!(e.get_str("source").ok(), Some("api"), "{e:?}");
            assert_eq!(e.get_str("collection").ok(), Some(CUSTOMERS), "{e:?}");
            assert_eq!(e.get_str("command").ok(), Some("delete"), "{e:?}");
            assert_eq!(e.get_str("principal").ok(), Some("jwt:root"), "{e:?}");
            assert_eq!(e.get_str("database").ok(), Some(db.as_str()), "{e:?}");
            let filter = e
                .get_document("shape")
                .and_then(|s| s.get_array("deletes"))
                .ok()
                .and_then(|d| d.first())
                .and_then(Bson::as_document)
                .and_then(|d| d.get_document("q").ok())
                .unwrap_or_else(|| panic!("a delete shape: {e:?}"));
            assert!(
                filter.contains_key("_id") && filter.contains_key("tenantId"),
                "the hard delete filters by tenant: {e:?}"
            );

            // Not there any more, even for include_deleted or a second hard delete.
            let r = send(c.root(
                Method::GET,
                &format!("/v1/customers/{id}?include_deleted=true"),
                "bank1",
            ))
            .await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            let r = send(c.root(Method::DELETE, &path, "bank1")).await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );

            // A soft-deleted customer can be erased too.
            let r = send(c.tenant(Method::DELETE, &format!("/v1/customers/{kept}"), "bank1")).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let r = send(c.root(
                Method::DELETE,
                &format!("/v1/customers/{kept}?hard=true"),
                "bank1",
            ))
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(stored_count(&db).await, 0);
        },
    )
    .await;
}

#[tokio::test]
async fn a_hard_delete_naming_bank1_cannot_erase_bank2s_customer() {
    bounded(
        "a_hard_delete_naming_bank1_cannot_erase_bank2s_customer",
        async {
            let (api, db) = start("cus_hard_other").await;
            let c = Caller::new(&api);
            let theirs = id_of(&c.create("bank2", json!({ "name": "Safe" })).await);
            let before = stored(&db, &theirs).await.expect("stored");

            let r = send(c.root(
                Method::DELETE,
                &format!("/v1/customers/{theirs}?hard=true"),
                "bank1",
            ))
            .await;
            assert_eq!(
                (r.status, r.code()),
                (StatusCode::NOT_FOUND, "customer_not_found"),
                "{}",
                r.body
            );
            let request_id = r.header("x-request-id").to_owned();
            assert_eq!(
                stored(&db, &theirs).await,
                Some(before),
                "bank2's customer is untouched"
            );

            // The attempt went through the bypass handle, so it is on the record too.
            let events =
                audit_events(&api, doc! { "requestId": &request_id, "rule": "bypass" }, 1).await;
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(
                events[0].get_str("command").ok(),
                Some("delete"),
                "{events:?}"
            );

            let r = send(c.tenant(Method::GET, &format!("/v1/customers/{theirs}"), "bank2")).await;
            assert_eq!(
                (r.status, &r.body["name"]),
                (StatusCode::OK, &json!("Safe")),
                "{}",
                r.body
            );

            // Naming bank2 erases it.
            let r = send(c.root(
                Method::DELETE,
                &format!("/v1/customers/{theirs}?hard=true"),
                "bank2",
            ))
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(stored(&db, &theirs).await, None);
        },
    )
    .await;
}
