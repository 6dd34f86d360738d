//! The proxy's upstream side against a server that demands TLS and SCRAM: a second tenantgate
//! (TLS on, principals required) stands in for a secured MongoDB, and the first proxy reaches it
//! with `tls=true&tlsCAFile=…` and the credentials in `upstream.uri`. Isolation must hold through
//! the chain.

mod common;

use bson::doc;

#[tokio::test]
async fn upstream_tls_and_credentials_from_the_uri() {
    let (dir, cert_path, key_path) = common::self_signed("chain", &["localhost"]);
    let db = common::fresh_db_name("proxy_chain");
    // The "secured upstream": TLS only, and only principals may connect.
    let inner_config = common::with_tls(&common::two_bank_config(&db), &cert_path, &key_path);
    let inner = common::TestProxy::start(&inner_config).await;

    // The proxy under test logs in to it as the platform's super_admin, over TLS.
    let upstream_uri = format!(
        "mongodb://platform-admin:admin-secret@localhost:{}/?authSource=admin&tls=true&tlsCAFile={}",
        inner.addr.port(),
        cert_path.display()
    );
    let outer_config = common::two_bank_config(&db).replace(
        &format!("uri = \"{}\"", common::mongodb_uri()),
        &format!("uri = \"{upstream_uri}\""),
    );
    assert!(
        outer_config.contains("tls=true"),
        "the upstream URI was replaced"
    );
    let outer = common::TestProxy::start(&outer_config).await;

    let bank1 = outer.client("svc-bank1", "bank1-secret").await;
    let bank2 = outer.client("svc-bank2", "bank2-secret").await;
    bank1
        .database(&db)
        .collection::<bson::Document>("payments")
        .insert_one(doc! { "n": 1 })
        .await
        .expect("bank1 insert");
    bank2
        .database(&db)
        .collection::<bson::Document>("payments")
        .insert_one(doc! { "n": 2 })
        .await
        .expect("bank2 insert");
    let seen = bank1
        .database(&db)
        .collection::<bson::Document>("payments")
        .count_documents(doc! {})
        .await
        .expect("bank1 count through two proxies");
    assert_eq!(
        seen, 1,
        "bank1 sees only its own document through the chain"
    );
    let stored = common::mongo_client()
        .await
        .database(&db)
        .collection::<bson::Document>("payments")
        .find_one(doc! { "n": 2 })
        .await
        .expect("direct read")
        .expect("bank2's document");
    assert_eq!(stored.get_str("tenantId").ok(), Some("bank2"));

    // Wrong upstream credentials are a clear start-up error, not a hang.
    let wrong = outer_config.replace("admin-secret@", "not-the-password@");
    let env = std::collections::BTreeMap::<String, String>::new();
    let config = tenantgate_proxy::Config::from_toml(&wrong, &env).expect("valid config");
    let err = tenantgate_proxy::Proxy::bind(config, &env)
        .await
        .expect_err("refused credentials");
    assert!(err.to_string().contains("upstream"), "{err}");

    common::mongo_client()
        .await
        .database(&db)
        .drop()
        .await
        .expect("cleanup");
    outer.stop().await;
    inner.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
