//! The API starts over the proxy and resolves a tenant (the fixture other API tests build on).

mod common;

use common::{TestApi, api_config, fresh_db_name};

#[tokio::test]
async fn the_api_resolves_a_subdomain() {
    let api = TestApi::start(&api_config(&fresh_db_name("api_smoke"))).await;
    let http = reqwest::Client::new();
    let r = http
        .get(api.url("/v1/tenant"))
        .header("host", "bank1.financeops.com")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["tenantId"], "bank1");
    assert_eq!(body["resolvedBy"], "subdomain");
}
