//! The security team's audit API: events from the API and the proxy are found by tenant, rule,
//! source and time, paged newest first, counted per day; only `security_auditor` and
//! `super_admin` may read them.

mod common;

use std::time::Duration;

use common::{TestApi, api_config, fresh_db_name, jwt};
use serde_json::{Value, json};

async fn get(api: &TestApi, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut r = reqwest::Client::new().get(api.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.expect("the API answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls the audit API until `path` returns at least `n` events (the sink batches writes).
async fn events(api: &TestApi, path: &str, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..50 {
        let (status, body) = get(api, path, Some(token)).await;
        assert_eq!(status, 200, "{body}");
        let data = body["data"].as_array().cloned().unwrap_or_default();
        if data.len() >= n {
            return data;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} events at {path}");
}

#[tokio::test]
async fn auditors_find_api_and_proxy_events_by_tenant_rule_and_source() {
    let api = TestApi::start(&api_config(&fresh_db_name("audit_api"))).await;
    let auditor = jwt(json!({ "sub": "sec", "roles": ["security_auditor"] }));

    // An API tenant conflict and a proxy rejection, both naming bank1.
    let bank1 = jwt(json!({ "sub": "alice", "tenantId": "bank1" }));
    let r = reqwest::Client::new()
        .get(api.url("/v1/tenant"))
        .bearer_auth(&bank1)
        .header("x-tenant-id", "bank2")
        .send()
        .await
        .expect("the API answers");
    assert_eq!(r.status(), 403);
    let client = api.proxy_client("svc-bank1", "bank1-secret").await;
    let db_name = api.services.config.policy.databases[0].clone();
    let refused = client
        .database(&db_name)
        .collection::<bson::Document>("payments")
        .find_one(bson::doc! { "tenantId": "bank2" })
        .await;
    assert!(refused.is_err(), "the proxy refuses naming another tenant");

    let conflicts = events(
        &api,
        "/v1/admin/audit?rule=tenant_conflict&source=api",
        &auditor,
        1,
    )
    .await;
    assert!(
        conflicts
            .iter()
            .all(|e| e["rule"] == "tenant_conflict" && e["source"] == "api")
    );
    assert_eq!(conflicts[0]["tenant"], "bank1");
    assert!(
        conflicts[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("evt_"))
    );

    let proxy = events(
        &api,
        "/v1/admin/audit?tenant=bank1&source=proxy",
        &auditor,
        1,
    )
    .await;
    assert!(
        proxy
            .iter()
            .all(|e| e["source"] == "proxy" && e["tenant"] == "bank1")
    );
    assert!(
        proxy.iter().any(|e| e["kind"] == "rejection"),
        "the proxy's rejection is there: {proxy:?}"
    );
    let shape = proxy
        .iter()
        .find(|e| e["kind"] == "rejection")
        .map(|e| e["shape"].to_string())
        .unwrap_or_default();
    assert!(!shape.contains("bank2"), "values stay redacted: {shape}");

    // A time range that ends before everything finds nothing.
    let (status, body) = get(
        &api,
        "/v1/admin/audit?to=2000-01-01T00:00:00Z",
        Some(&auditor),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]));

    // Paging: one at a time, newest first, each event once.
    let all = events(&api, "/v1/admin/audit?limit=100", &auditor, 2).await;
    let mut seen = Vec::new();
    let mut path = "/v1/admin/audit?limit=1".to_owned();
    loop {
        let (_, body) = get(&api, &path, Some(&auditor)).await;
        let page = body["data"].as_array().cloned().unwrap_or_default();
        assert!(page.len() <= 1);
        seen.extend(page.iter().map(|e| e["id"].clone()));
        if body["has_more"] != true {
            break;
        }
        path = format!(
            "/v1/admin/audit?limit=1&starting_after={}",
            page[0]["id"].as_str().expect("an id")
        );
    }
    let ids: Vec<Value> = all.iter().map(|e| e["id"].clone()).collect();
    assert!(
        seen.len() >= ids.len(),
        "{} pages for {} events",
        seen.len(),
        ids.len()
    );
    assert_eq!(&seen[..ids.len()], &ids[..], "same order, nothing skipped");

    // The summary counts per day, tenant and rule.
    let (status, body) = get(&api, "/v1/admin/audit/summary?tenant=bank1", Some(&auditor)).await;
    assert_eq!(status, 200, "{body}");
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    let conflict_row = rows
        .iter()
        .find(|r| r["rule"] == "tenant_conflict")
        .expect("a tenant_conflict row");
    assert!(conflict_row["count"].as_i64().is_some_and(|n| n >= 1));
    assert!(conflict_row["day"].as_str().is_some_and(|d| d.len() == 10));
}

#[tokio::test]
async fn only_auditors_and_super_admins_read_the_trail() {
    let api = TestApi::start(&api_config(&fresh_db_name("audit_roles"))).await;
    let (status, body) = get(&api, "/v1/admin/audit", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("authentication_required"))
    );
    let tenant = jwt(json!({ "sub": "alice", "tenantId": "bank1" }));
    let (status, body) = get(&api, "/v1/admin/audit", Some(&tenant)).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("role_required"))
    );
    let admin = jwt(json!({ "sub": "root", "roles": ["super_admin"] }));
    let (status, _) = get(&api, "/v1/admin/audit/summary", Some(&admin)).await;
    assert_eq!(status, 200);
    let auditor = jwt(json!({ "sub": "sec", "roles": ["security_auditor"] }));
    for bad in [
        "/v1/admin/audit?limit=0",
        "/v1/admin/audit?from=yesterday",
        "/v1/admin/audit?starting_after=x",
        "/v1/admin/audit?colour=red",
    ] {
        let (status, body) = get(&api, bad, Some(&auditor)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (422, Some("validation_failed")),
            "{bad}"
        );
    }
}
