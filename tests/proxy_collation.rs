//! A tenant collection created with a non-simple default collation would loosen the tenant
//! equality for every command; the proxy finds such collections at start-up and closes them to
//! tenants.

mod common;

use bson::doc;

#[tokio::test]
async fn collections_with_a_loose_default_collation_are_closed_to_tenants() {
    let db = common::fresh_db_name("proxy_coll");
    let direct = common::mongo_client().await;
    direct
        .database(&db)
        .run_command(doc! { "create": "loose", "collation": { "locale": "en", "strength": 2 } })
        .await
        .expect("the upstream creates a collection with a collation");
    direct
        .database(&db)
        .run_command(doc! { "create": "strict" })
        .await
        .expect("plain collection");

    let proxy = common::TestProxy::start(&common::two_bank_config(&db)).await;
    let bank1 = proxy.client("svc-bank1", "bank1-secret").await;
    let err = bank1
        .database(&db)
        .collection::<bson::Document>("loose")
        .find_one(doc! {})
        .await
        .expect_err("closed to tenants");
    assert!(err.to_string().contains("collection_not_allowed"), "{err}");
    bank1
        .database(&db)
        .collection::<bson::Document>("strict")
        .find_one(doc! {})
        .await
        .expect("a simple-collation collection stays open");
    direct.database(&db).drop().await.expect("cleanup");
    proxy.stop().await;
}
