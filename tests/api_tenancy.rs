//! The HTTP API ties every tenant request to exactly one active tenant, and lets a
//! `super_admin` manage the registry, against the real upstream and the real Redis.
//!
//! What this file proves, end to end: the resolution order (JWT `tenantId` > `X-Tenant-ID` >
//! host, with subdomains, `www.`, custom domains, port / case / trailing-dot normalisation and
//! `X-Forwarded-Host` believed only from trusted peers); conflicts between the token and the
//! header or host are refused and audited; unknown, inactive and malformed tenants and bad tokens
//! get the right status and `code`; every error is an `application/problem+json` document
//! carrying the request id; and the admin tenant endpoints validate, conflict, page, and change
//! what resolution sees at once (no cache TTL to wait for).
//!
//! Every test has its own registry database (and so its own Redis namespace); tests that change
//! a tenant still change one they created with a unique slug and domain, and only read bank1
//! and bank2, so a failure points at one test.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bson::{Document, doc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use common::{TestApi, api_config, fresh_db_name, jwt};

/// Request headers, as (name, value) pairs.
type Headers<'a> = &'a [(&'a str, &'a str)];

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

    /// The `field` of each of a 422's `errors`.
    fn error_fields(&self) -> Vec<&str> {
        let errors = self.body["errors"].as_array().map(Vec::as_slice);
        let fields = errors.unwrap_or_default().iter();
        fields.filter_map(|e| e["field"].as_str()).collect()
    }
}

/// Sends `method path` with `headers` and, unless `body` is null, `body` as JSON.
async fn send(api: &TestApi, method: &str, path: &str, headers: Headers<'_>, body: Value) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = reqwest::Client::new().request(method, api.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    read(request.send().await.expect("the API answers")).await
}

async fn read(response: reqwest::Response) -> Reply {
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("a readable body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply {
        status,
        headers,
        body,
    }
}

/// The slugs of a tenant list.
fn slugs(r: &Reply) -> Vec<&str> {
    let data = r.body["data"].as_array().map(Vec::as_slice);
    let tenants = data.unwrap_or_default().iter();
    tenants.filter_map(|t| t["slug"].as_str()).collect()
}

/// `GET /v1/tenant`: which tenant the request resolves to.
async fn whoami(api: &TestApi, headers: Headers<'_>) -> Reply {
    send(api, "GET", "/v1/tenant", headers, Value::Null).await
}

/// An admin call with a `super_admin` token.
async fn admin(api: &TestApi, method: &str, path: &str, body: Value) -> Reply {
    send(api, method, path, &[("authorization", &admin_auth())], body).await
}

fn now_secs() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH);
    now.map(|d| d.as_secs()).unwrap_or(0)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `Authorization` for a tenant token.
fn tenant_auth(tenant: &str) -> String {
    bearer(&jwt(json!({ "sub": "alice", "tenantId": tenant })))
}

/// `Authorization` for a `super_admin` token.
fn admin_auth() -> String {
    bearer(&jwt(json!({ "sub": "root", "roles": ["super_admin"] })))
}

/// A slug (and domain label) no other test or run uses.
fn unique_slug() -> String {
    fresh_db_name("t").replace('_', "-")
}

/// Creates a tenant only this test knows (see the module docs); returns its slug.
async fn own_tenant(api: &TestApi, settings: Value) -> String {
    let slug = unique_slug();
    let body = json!({ "slug": slug, "name": "Own Test Bank", "settings": settings });
    let r = admin(api, "POST", "/v1/admin/tenants", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "create {slug}: {}", r.body);
    slug
}

#[track_caller]
fn assert_resolved(r: &Reply, tenant: &str, by: &str) {
    assert_eq!(r.status, StatusCode::OK, "{tenant}/{by}: {}", r.body);
    assert_eq!(r.body["tenantId"], tenant, "{}", r.body);
    assert_eq!(r.body["resolvedBy"], by, "{}", r.body);
}

/// The problem+json shape every error shares.
#[track_caller]
fn assert_problem(r: &Reply, status: u16, code: &str, path: &str) {
    assert_eq!(r.status.as_u16(), status, "{path}: {}", r.body);
    let content_type = r.header("content-type");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{path}: content-type {content_type:?}"
    );
    assert_eq!(r.body["code"], code, "{path}: {}", r.body);
    assert_eq!(r.body["type"], format!("urn:tenantgate:problem:{code}"));
    assert_eq!(r.body["status"], status);
    assert_eq!(r.body["instance"], path);
    for member in ["title", "detail"] {
        let text = r.body[member].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "{path}: no {member} in {}", r.body);
    }
    let id = r.header("x-request-id");
    assert!(!id.is_empty(), "{path}: no x-request-id");
    assert_eq!(r.body["requestId"], id);
}

/// Waits (up to 5 s: the sink batches every 200 ms) for an audit document matching `filter`
/// and checks its `expected` string fields.
async fn assert_audited(api: &TestApi, filter: Document, expected: &[(&str, &str)]) {
    let database = &api.services.config.policy.internal_database;
    let client = common::mongo_client().await;
    let audit: mongodb::Collection<Document> = client.database(database).collection(AUDIT);
    let deadline = Instant::now() + Duration::from_secs(5);
    let event = loop {
        if let Some(event) = audit.find_one(filter.clone()).await.expect("audit query") {
            break event;
        }
        assert!(Instant::now() < deadline, "no audit {filter} in {database}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (key, value) in expected {
        assert_eq!(event.get_str(key).ok(), Some(*value), "{key} of {event}");
    }
}

/// The audit collection in the registry database.
const AUDIT: &str = "tenantgate_audit";

async fn start() -> TestApi {
    TestApi::start(&api_config(&fresh_db_name("api_tenancy"))).await
}

#[tokio::test]
async fn health_ready_and_metrics_need_no_tenant_or_token() {
    let api = start().await;
    for path in ["/health", "/ready", "/metrics"] {
        let r = send(&api, "GET", path, &[("host", "localhost")], Value::Null).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        if path == "/ready" {
            assert_eq!(r.body["checks"]["upstream"], "ok", "{}", r.body);
        }
    }
}

#[tokio::test]
async fn the_token_then_the_header_then_the_host_name_the_tenant() {
    let api = start().await;
    let bank1 = tenant_auth("bank1");
    let r = whoami(&api, &[("authorization", &bank1)]).await;
    assert_resolved(&r, "bank1", "jwt");
    assert_eq!(r.body["name"], "First National Bank");
    assert!(r.body["tier"].is_string() && r.body["settings"].is_object());

    let r = whoami(&api, &[("x-tenant-id", "bank2")]).await;
    assert_resolved(&r, "bank2", "header");
    let same = [("authorization", bank1.as_str()), ("x-tenant-id", "bank1")];
    assert_resolved(&whoami(&api, &same).await, "bank1", "jwt");
    let header_over_host = [("host", "bank1.financeops.com"), ("x-tenant-id", "bank2")];
    assert_resolved(&whoami(&api, &header_over_host).await, "bank2", "header");

    for host in [
        "bank1.financeops.com",
        "www.bank1.financeops.com",
        "BANK1.FinanceOps.com:8443",
        "bank1.financeops.com.",
    ] {
        assert_resolved(&whoami(&api, &[("host", host)]).await, "bank1", "subdomain");
    }
    let r = whoami(&api, &[("host", "bank2.financeops.com")]).await;
    assert_resolved(&r, "bank2", "subdomain");
}

#[tokio::test]
async fn custom_domains_resolve_whatever_their_port_case_or_trailing_dot() {
    let api = start().await;
    for host in [
        "payments.firstnational.example",
        "payments.firstnational.example:443",
        "Payments.FirstNational.EXAMPLE",
        "payments.firstnational.example.",
    ] {
        assert_resolved(&whoami(&api, &[("host", host)]).await, "bank1", "domain");
    }
}

#[tokio::test]
async fn hosts_naming_no_tenant_need_a_token_or_header() {
    let api = start().await;
    let root = admin_auth();
    for host in [
        "financeops.com",
        "www.financeops.com",
        "a.b.financeops.com",
        "localhost",
        "127.0.0.1",
        "127.0.0.1:8080",
    ] {
        let r = whoami(&api, &[("host", host)]).await;
        assert_problem(&r, 400, "tenant_required", "/v1/tenant");
        let r = whoami(&api, &[("host", host), ("authorization", &root)]).await;
        assert_problem(&r, 400, "tenant_required", "/v1/tenant");
    }
}

#[tokio::test]
async fn forwarded_host_from_a_trusted_peer_names_the_tenant() {
    let config = api_config(&fresh_db_name("api_tenancy")).replace(
        r#"trusted_proxies = ["10.0.0.0/8"]"#,
        r#"trusted_proxies = ["127.0.0.1/32"]"#,
    );
    assert!(config.contains("127.0.0.1/32"), "loopback is trusted");
    let api = TestApi::start(&config).await;
    let (bank1, bank2) = ("bank1.financeops.com", "bank2.financeops.com");
    let appended = "evil.example, bank2.financeops.com:443";
    let domain = "Payments.FirstNational.example";
    for (host, forwarded, tenant, by) in [
        ("lb.internal", bank2, "bank2", "subdomain"),
        (bank1, appended, "bank2", "subdomain"),
        ("localhost", domain, "bank1", "domain"),
    ] {
        let r = whoami(&api, &[("host", host), ("x-forwarded-host", forwarded)]).await;
        assert_resolved(&r, tenant, by);
    }
}

#[tokio::test]
async fn forwarded_host_from_an_untrusted_peer_is_ignored() {
    let api = start().await;
    let forwarded = ("x-forwarded-host", "bank1.financeops.com");
    let r = whoami(&api, &[("host", "localhost"), forwarded]).await;
    assert_problem(&r, 400, "tenant_required", "/v1/tenant");
    let r = whoami(&api, &[("host", "bank2.financeops.com"), forwarded]).await;
    assert_resolved(&r, "bank2", "subdomain");
}

#[tokio::test]
async fn a_token_naming_another_tenant_than_the_header_or_host_is_refused_and_audited() {
    let api = start().await;
    let bank1 = tenant_auth("bank1");
    let auth = ("authorization", bank1.as_str());
    for (request_id, other) in [
        ("conflict-header", ("x-tenant-id", "bank2")),
        ("conflict-host", ("host", "bank2.financeops.com")),
    ] {
        let r = whoami(&api, &[auth, other, ("x-request-id", request_id)]).await;
        assert_problem(&r, 403, "tenant_conflict", "/v1/tenant");
        assert_eq!(r.header("x-request-id"), request_id);
        let expected = [
            ("rule", "tenant_conflict"),
            ("kind", "rejection"),
            ("source", "api"),
            ("tenant", "bank1"),
            ("principal", "jwt:alice"),
        ];
        assert_audited(&api, doc! { "requestId": request_id }, &expected).await;
    }
}

#[tokio::test]
async fn consistent_or_tenantless_hosts_and_super_admins_are_not_conflicts() {
    let api = start().await;
    let bank1 = tenant_auth("bank1");
    // bank1's own domain, a subdomain naming no tenant, a domain of no tenant.
    for host in [
        "payments.firstnational.example",
        "api.financeops.com",
        "pay.unknown.example",
    ] {
        let r = whoami(&api, &[("authorization", &bank1), ("host", host)]).await;
        assert_resolved(&r, "bank1", "jwt");
    }
    let root = admin_auth();
    let bank2 = ("x-tenant-id", "bank2");
    let r = whoami(&api, &[("authorization", &root), bank2]).await;
    assert_resolved(&r, "bank2", "header");
    let claims = json!({ "sub": "root", "roles": ["super_admin"], "tenantId": "bank1" });
    let root_of_bank1 = bearer(&jwt(claims));
    let r = whoami(&api, &[("authorization", &root_of_bank1), bank2]).await;
    assert_resolved(&r, "bank2", "header");
    let host = ("host", "bank1.financeops.com");
    let r = whoami(&api, &[("authorization", &root), host]).await;
    assert_resolved(&r, "bank1", "subdomain");
}

#[tokio::test]
async fn unknown_tenants_are_not_found() {
    let api = start().await;
    let bank9 = tenant_auth("bank9");
    for header in [
        ("x-tenant-id", "bank9"),
        ("host", "bank9.financeops.com"),
        ("host", "pay.unknown.example"),
        ("authorization", bank9.as_str()),
    ] {
        let r = whoami(&api, &[header]).await;
        assert_problem(&r, 404, "tenant_not_found", "/v1/tenant");
    }
}

#[tokio::test]
async fn malformed_tenant_headers_are_rejected() {
    let api = start().await;
    let bank1 = tenant_auth("bank1");
    for value in ["BANK1", "../x", "", "bank_1", "-bank1"] {
        let r = whoami(&api, &[("x-tenant-id", value)]).await;
        assert_problem(&r, 400, "invalid_tenant_id", "/v1/tenant");
        let r = whoami(&api, &[("x-tenant-id", value), ("authorization", &bank1)]).await;
        assert_problem(&r, 400, "invalid_tenant_id", "/v1/tenant");
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_even_with_a_valid_header_and_audited() {
    let api = start().await;
    let claims = |extra: Value| {
        let mut claims = json!({ "sub": "alice", "tenantId": "bank1" });
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        claims
    };
    let expired = jwt(claims(json!({ "exp": now_secs() - 3600 })));
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({ "iss": "https://idp.test", "exp": now_secs() + 600 })),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-api-secret"),
    )
    .expect("a token encodes");
    let wrong_issuer = jwt(claims(json!({ "iss": "https://evil.test" })));
    let cases = [
        ("auth-expired", bearer(&expired), "token_expired"),
        ("auth-forged", bearer(&forged), "invalid_token"),
        ("auth-issuer", bearer(&wrong_issuer), "invalid_token"),
        ("auth-basic", "Basic xyz".to_owned(), "invalid_token"),
        ("auth-empty", "Bearer ".to_owned(), "invalid_token"),
        ("auth-garbage", bearer("not.a.jwt"), "invalid_token"),
    ];
    for (request_id, authorization, code) in &cases {
        let headers = [
            ("authorization", authorization.as_str()),
            ("x-tenant-id", "bank1"),
            ("x-request-id", request_id),
        ];
        let r = whoami(&api, &headers).await;
        assert_problem(&r, 401, code, "/v1/tenant");
        let challenge = r.header("www-authenticate");
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
    }
    for (request_id, _, _) in &cases {
        let expected = [("kind", "auth_failure"), ("source", "api")];
        assert_audited(&api, doc! { "requestId": *request_id }, &expected).await;
    }
    let lower_case = format!("bearer {}", jwt(claims(json!({}))));
    let r = whoami(&api, &[("authorization", &lower_case)]).await;
    assert_resolved(&r, "bank1", "jwt");
}

#[tokio::test]
async fn every_error_is_a_problem_document_with_the_request_id() {
    let api = start().await;
    let r = send(&api, "GET", "/nope", &[], Value::Null).await;
    assert_problem(&r, 404, "route_not_found", "/nope");
    let bank1 = [("x-tenant-id", "bank1")];
    let r = send(&api, "GET", "/v1/nope", &bank1, Value::Null).await;
    assert_problem(&r, 404, "route_not_found", "/v1/nope");
    let r = send(&api, "DELETE", "/v1/tenant", &bank1, Value::Null).await;
    assert_problem(&r, 405, "method_not_allowed", "/v1/tenant");
    assert!(r.header("allow").contains("GET"), "{:?}", r.headers);

    let r = whoami(&api, &[("x-request-id", "abc-123")]).await;
    assert_problem(&r, 400, "tenant_required", "/v1/tenant");
    assert_eq!(r.body["requestId"], "abc-123");
    let r = whoami(&api, &[bank1[0], ("x-request-id", "abc-123")]).await;
    assert_eq!(r.header("x-request-id"), "abc-123");
    let r = whoami(&api, &[("x-request-id", "no spaces allowed")]).await;
    assert_ne!(r.header("x-request-id"), "no spaces allowed");
    assert_problem(&r, 400, "tenant_required", "/v1/tenant");
}

/// A wrong method is a property of the route, not of the caller: it must not ask for a tenant.
#[tokio::test]
async fn a_wrong_method_is_405_whatever_names_the_tenant() {
    let api = start().await;
    for header in [("host", "localhost"), ("x-tenant-id", "bank9")] {
        let r = send(&api, "DELETE", "/v1/tenant", &[header], Value::Null).await;
        assert_problem(&r, 405, "method_not_allowed", "/v1/tenant");
    }
}

#[tokio::test]
async fn a_deactivated_tenant_is_refused_until_reactivated_at_once() {
    let api = start().await;
    let slug = own_tenant(&api, json!({})).await;
    let path = format!("/v1/admin/tenants/{slug}");
    let (host, token) = (format!("{slug}.financeops.com"), tenant_auth(&slug));
    let by_header = ("x-tenant-id", slug.as_str());
    let ways = [by_header, ("host", &host), ("authorization", &token)];
    for way in ways {
        assert_eq!(whoami(&api, &[way]).await.status, StatusCode::OK, "{way:?}");
    }
    let r = admin(&api, "PATCH", &path, json!({ "isActive": false })).await;
    assert_eq!(r.body["isActive"], false, "{}", r.body);
    for way in ways {
        let r = whoami(&api, &[way]).await;
        assert_problem(&r, 403, "tenant_inactive", "/v1/tenant");
    }
    let r = admin(&api, "PATCH", &path, json!({ "isActive": true })).await;
    assert_eq!(r.body["isActive"], true, "{}", r.body);
    for way in ways {
        assert_eq!(whoami(&api, &[way]).await.status, StatusCode::OK, "{way:?}");
    }
    let filter = doc! { "tenant": &slug, "message": { "$regex": "deactivated" } };
    let admin_event = [("kind", "admin"), ("rule", "tenant_admin")];
    assert_audited(&api, filter, &admin_event).await;
}

#[tokio::test]
async fn admin_routes_need_a_super_admin() {
    let api = start().await;
    let bank1 = tenant_auth("bank1");
    let (none, bank3) = (Value::Null, json!({ "slug": "bank3", "name": "Third" }));
    let tier = json!({ "tier": "enterprise" });
    let domain = json!({ "domain": "x.example" });
    let held = "/v1/admin/tenants/bank1/domains/payments.firstnational.example";
    for (method, path, body) in [
        ("GET", "/v1/admin/tenants", &none),
        ("POST", "/v1/admin/tenants", &bank3),
        ("GET", "/v1/admin/tenants/bank1", &none),
        ("PATCH", "/v1/admin/tenants/bank1", &tier),
        ("GET", "/v1/admin/tenants/bank1/domains", &none),
        ("POST", "/v1/admin/tenants/bank1/domains", &domain),
        ("DELETE", held, &none),
    ] {
        let r = send(&api, method, path, &[], body.clone()).await;
        assert_problem(&r, 401, "authentication_required", path);
        assert!(r.header("www-authenticate").starts_with("Bearer"), "{path}");
        let auth = [("authorization", bank1.as_str())];
        let r = send(&api, method, path, &auth, body.clone()).await;
        assert_problem(&r, 403, "role_required", path);
    }
    let r = admin(&api, "GET", "/v1/admin/tenants/bank1", Value::Null).await;
    assert_eq!(r.body["tier"], "professional", "unchanged: {}", r.body);
    assert_eq!(r.body["domains"], json!(["payments.firstnational.example"]));
    let r = admin(&api, "GET", "/v1/admin/tenants/bank3", Value::Null).await;
    assert_problem(&r, 404, "tenant_not_found", "/v1/admin/tenants/bank3");
}

#[tokio::test]
async fn a_created_tenant_resolves_at_once_even_after_a_cached_miss() {
    let api = start().await;
    let slug = unique_slug();
    let domain = format!("pay.{slug}.example");
    let r = whoami(&api, &[("host", &domain)]).await;
    assert_problem(&r, 404, "tenant_not_found", "/v1/tenant");

    let body = json!({
        "slug": slug, "name": "Third Bank",
        "domains": [format!("Pay.{}.Example.", slug.to_uppercase())],
        "settings": { "brandColor": "#AABBCC", "currency": "CHF" },
        "limits": { "requestsPerMinute": 1200 },
    });
    let r = admin(&api, "POST", "/v1/admin/tenants", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.header("location"), format!("/v1/admin/tenants/{slug}"));
    let b = &r.body;
    assert_eq!((&b["id"], &b["slug"]), (&json!(slug), &json!(slug)), "{b}");
    assert_eq!(b["name"], "Third Bank");
    assert_eq!(b["tier"], "starter", "the default tier");
    assert_eq!(b["domains"], json!([domain]));
    let settings = json!({ "brandColor": "#aabbcc", "currency": "CHF" });
    assert_eq!(b["settings"], settings);
    assert_eq!(b["limits"], json!({ "requestsPerMinute": 1200 }));
    assert_eq!(b["isActive"], true);
    for stamp in ["createdAt", "updatedAt"] {
        let s = b[stamp].as_str().unwrap_or_default();
        let rfc3339_utc = s.len() >= 20 && s.contains('T') && s.ends_with('Z');
        assert!(rfc3339_utc, "{stamp}: {s:?}");
    }

    let r = whoami(&api, &[("host", &domain)]).await;
    assert_resolved(&r, &slug, "domain");
    assert_eq!(r.body["settings"]["currency"], "CHF");
    let path = format!("/v1/admin/tenants/{slug}");
    let r = admin(&api, "GET", &path, Value::Null).await;
    assert_eq!(r.body["domains"], json!([domain]), "{}", r.body);
    let expected = [("rule", "tenant_admin"), ("principal", "jwt:root")];
    assert_audited(&api, doc! { "kind": "admin", "tenant": &slug }, &expected).await;
}

#[tokio::test]
async fn creating_a_taken_slug_or_domain_is_a_conflict() {
    let api = start().await;
    let path = "/v1/admin/tenants";
    let again = json!({ "slug": "bank1", "name": "Again" });
    let r = admin(&api, "POST", path, again).await;
    assert_problem(&r, 409, "conflict", path);
    let domains = json!(["Payments.FirstNational.example"]);
    let body = json!({ "slug": unique_slug(), "name": "Squatter", "domains": domains });
    let r = admin(&api, "POST", path, body).await;
    assert_problem(&r, 409, "conflict", path);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("bank1"), "names the holder: {detail}");
}

#[tokio::test]
async fn invalid_tenant_bodies_name_every_bad_field() {
    let api = start().await;
    let path = "/v1/admin/tenants";
    let body = json!({
        "slug": "Bank 3", "name": "Third", "tier": "gold", "domains": ["x.financeops.com"],
        "settings": { "brandColor": "red", "logoUrl": "javascript:alert(1)", "currency": "EURO" },
        "limits": { "requestsPerMinute": 0 }, "colour": "blue",
    });
    let r = admin(&api, "POST", path, body).await;
    assert_problem(&r, 422, "validation_failed", path);
    let fields = r.error_fields();
    for field in [
        "slug",
        "tier",
        "domains[0]",
        "settings.brandColor",
        "settings.logoUrl",
        "settings.currency",
        "limits.requestsPerMinute",
        "colour",
    ] {
        assert!(fields.contains(&field), "{field} not in {fields:?}");
    }
    assert_eq!(fields.len(), 8, "only the bad fields: {fields:?}");
    let message = r.body["errors"][0]["message"].as_str();
    assert!(message.is_some_and(|m| !m.is_empty()), "{}", r.body);

    let valid = r#"{"slug":"bank3","name":"Third"}"#;
    const JSON: &str = "application/json";
    for (body, content_type, status, code) in [
        (r#"{"slug": "#, Some(JSON), 400, "invalid_json"),
        (valid, None, 415, "unsupported_media_type"),
        (valid, Some("text/plain"), 415, "unsupported_media_type"),
    ] {
        let mut request = reqwest::Client::new().post(api.url(path)).body(body);
        request = request.header("authorization", admin_auth());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let r = read(request.send().await.expect("the API answers")).await;
        assert_problem(&r, status, code, path);
    }
    let r = admin(&api, "GET", path, Value::Null).await;
    assert_eq!(slugs(&r), ["bank1", "bank2"], "none created");
}

#[tokio::test]
async fn admins_page_through_and_read_tenants() {
    let api = start().await;
    let path = "/v1/admin/tenants";
    let r = admin(&api, "GET", &format!("{path}?limit=1"), Value::Null).await;
    let page = |r: &Reply| (slugs(r).join(","), r.body["has_more"].as_bool());
    assert_eq!(page(&r), ("bank1".into(), Some(true)));
    let next = format!("{path}?limit=1&starting_after=bank1");
    let r = admin(&api, "GET", &next, Value::Null).await;
    assert_eq!(page(&r), ("bank2".into(), Some(false)));
    let r = admin(&api, "GET", path, Value::Null).await;
    assert_eq!(page(&r), ("bank1,bank2".into(), Some(false)));
    for limit in ["0", "101", "ten"] {
        let r = admin(&api, "GET", &format!("{path}?limit={limit}"), Value::Null).await;
        assert_problem(&r, 422, "validation_failed", path);
        assert_eq!(r.error_fields(), ["limit"]);
    }

    let r = admin(&api, "GET", "/v1/admin/tenants/bank1", Value::Null).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "First National Bank", "{}", r.body);
    assert_eq!(r.body["tier"], "professional", "{}", r.body);
    let r = admin(&api, "GET", "/v1/admin/tenants/nope", Value::Null).await;
    assert_problem(&r, 404, "tenant_not_found", "/v1/admin/tenants/nope");
}

#[tokio::test]
async fn patches_merge_and_resolution_sees_them_at_once() {
    let api = start().await;
    let slug = own_tenant(&api, json!({ "timeZone": "Europe/Zurich" })).await;
    let path = format!("/v1/admin/tenants/{slug}");
    let as_tenant = [("x-tenant-id", slug.as_str())];
    assert_eq!(whoami(&api, &as_tenant).await.body["tier"], "starter");

    let patch = json!({ "settings": { "brandColor": "#112233", "currency": "EUR" } });
    let r = admin(&api, "PATCH", &path, patch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let settings = whoami(&api, &as_tenant).await.body["settings"].clone();
    let merged = json!({ "brandColor": "#112233", "currency": "EUR", "timeZone": "Europe/Zurich" });
    assert_eq!(settings, merged);
    let patch = json!({ "settings": { "currency": null } });
    let r = admin(&api, "PATCH", &path, patch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let settings = whoami(&api, &as_tenant).await.body["settings"].clone();
    let merged = json!({ "brandColor": "#112233", "timeZone": "Europe/Zurich" });
    assert_eq!(settings, merged, "only the currency is gone");

    let r = admin(&api, "PATCH", &path, json!({ "tier": "enterprise" })).await;
    assert_eq!(r.body["tier"], "enterprise", "{}", r.body);
    assert_eq!(whoami(&api, &as_tenant).await.body["tier"], "enterprise");
    let host = format!("{slug}.financeops.com");
    let r = whoami(&api, &[("host", &host)]).await;
    assert_eq!(r.body["tier"], "enterprise");

    for (bad, field) in [
        (json!({ "slug": "x" }), "slug"),
        (json!({ "tier": "gold" }), "tier"),
        (json!({ "isActive": "no" }), "isActive"),
        (json!({ "settings": { "logoUrl": 1 } }), "settings.logoUrl"),
        (json!({ "createdAt": "2020-01-01T00:00:00Z" }), "createdAt"),
    ] {
        let r = admin(&api, "PATCH", &path, bad).await;
        assert_problem(&r, 422, "validation_failed", &path);
        assert_eq!(r.error_fields(), [field], "{}", r.body);
    }
    assert_eq!(whoami(&api, &as_tenant).await.body["tier"], "enterprise");
    let nope = "/v1/admin/tenants/nope";
    let r = admin(&api, "PATCH", nope, json!({ "tier": "starter" })).await;
    assert_problem(&r, 404, "tenant_not_found", nope);
    let filter = doc! { "kind": "admin", "tenant": &slug, "message": { "$regex": "tier" } };
    assert_audited(&api, filter, &[("rule", "tenant_admin")]).await;
}

#[tokio::test]
async fn custom_domains_are_added_listed_and_removed() {
    let api = start().await;
    let label = unique_slug();
    let domain = format!("pay.{label}.example");
    let domains = "/v1/admin/tenants/bank2/domains";
    let body = json!({ "domain": format!("Pay.{}.Example", label.to_uppercase()) });
    let r = admin(&api, "POST", domains, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["domain"], domain.as_str());
    assert_eq!(r.body["tenantId"], "bank2");
    assert_resolved(&whoami(&api, &[("host", &domain)]).await, "bank2", "domain");
    let r = admin(&api, "GET", domains, Value::Null).await;
    assert_eq!(r.body["data"], json!([domain]), "{}", r.body);

    let held = json!({ "domain": "payments.firstnational.example" });
    let r = admin(&api, "POST", domains, held).await;
    assert_problem(&r, 409, "conflict", domains);
    let detail = r.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("bank1"), "names the holder: {detail}");
    let inside_base = json!({ "domain": "pay.financeops.com" });
    let r = admin(&api, "POST", domains, inside_base).await;
    assert_problem(&r, 422, "validation_failed", domains);
    let nobody = "/v1/admin/tenants/nope/domains";
    let r = admin(&api, "POST", nobody, json!({ "domain": "a.example" })).await;
    assert_problem(&r, 404, "tenant_not_found", nobody);

    let one = format!("{domains}/{domain}");
    let r = admin(&api, "DELETE", &one, Value::Null).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = whoami(&api, &[("host", &domain)]).await;
    assert_problem(&r, 404, "tenant_not_found", "/v1/tenant");
    let r = admin(&api, "DELETE", &one, Value::Null).await;
    assert_problem(&r, 404, "domain_not_found", &one);
    let filter = doc! { "kind": "admin", "tenant": "bank2", "message": { "$regex": "removed" } };
    assert_audited(&api, filter, &[("rule", "tenant_admin")]).await;
}

/// Findings of the security review, each pinned: two `X-Tenant-ID` headers, reserved and
/// base-label slugs, proxy limits beyond their 32-bit range, an empty PATCH, the domain cap, and
/// token failure reasons kept from the client.
#[tokio::test]
async fn review_findings_stay_fixed() {
    let api = start().await;

    let r = whoami(&api, &[("x-tenant-id", "bank1"), ("x-tenant-id", "bank2")]).await;
    assert_problem(&r, 400, "invalid_tenant_id", "/v1/tenant");

    let path = "/v1/admin/tenants";
    for slug in ["api", "admin", "www"] {
        let r = admin(
            &api,
            "POST",
            path,
            json!({ "slug": slug, "name": "Platform" }),
        )
        .await;
        assert_problem(&r, 422, "validation_failed", path);
        assert_eq!(r.error_fields(), ["slug"], "{slug}: {}", r.body);
    }

    // 5e9 connections would not fit the stored 32-bit field: refused, never written.
    let slug = own_tenant(&api, json!({})).await;
    let tenant_path = format!("/v1/admin/tenants/{slug}");
    let r = admin(
        &api,
        "PATCH",
        &tenant_path,
        json!({ "limits": { "connections": 5_000_000_000_u64 } }),
    )
    .await;
    assert_problem(&r, 422, "validation_failed", &tenant_path);
    assert_eq!(r.error_fields(), ["limits.connections"], "{}", r.body);
    let r = admin(&api, "GET", &tenant_path, Value::Null).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the tenant is still readable: {}",
        r.body
    );

    // An empty merge patch changes nothing, not even updatedAt.
    let before = r.body["updatedAt"].clone();
    let r = admin(&api, "PATCH", &tenant_path, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["updatedAt"], before);

    // At most 20 custom domains.
    let domains: Vec<String> = (0..20).map(|i| format!("d{i}.{slug}.example")).collect();
    let r = admin(&api, "PATCH", &tenant_path, json!({ "domains": domains })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let domains_path = format!("{tenant_path}/domains");
    let r = admin(
        &api,
        "POST",
        &domains_path,
        json!({ "domain": format!("one-more.{slug}.example") }),
    )
    .await;
    assert_problem(&r, 422, "validation_failed", &domains_path);

    // A forged token is refused without saying why (the audit trail has the reason).
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "mallory", "tenantId": "bank1", "iss": "https://idp.test", "exp": now_secs() + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-at-all"),
    )
    .expect("encodes");
    let r = whoami(&api, &[("authorization", &bearer(&forged))]).await;
    assert_problem(&r, 401, "invalid_token", "/v1/tenant");
    assert_eq!(r.body["detail"], "the bearer token is invalid");
    let no_issuer = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "alice", "tenantId": "bank1", "exp": now_secs() + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(common::JWT_SECRET.as_bytes()),
    )
    .expect("encodes");
    let r = whoami(&api, &[("authorization", &bearer(&no_issuer))]).await;
    assert_problem(&r, 401, "invalid_token", "/v1/tenant");
}
