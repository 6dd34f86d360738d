//! TLS on the client side: with `tls_cert_file` / `tls_key_file` the proxy speaks only TLS, the
//! official driver connects with `tls=true` and the certificate's CA, and a plaintext client is
//! refused.

mod common;

use std::time::Duration;

use bson::doc;

#[tokio::test]
async fn clients_must_use_tls_when_it_is_configured() {
    let (dir, cert_path, key_path) = common::self_signed("tls", &["localhost", "127.0.0.1"]);
    let db = common::fresh_db_name("proxy_tls");
    let config = common::with_tls(&common::two_bank_config(&db), &cert_path, &key_path);
    let proxy = common::TestProxy::start(&config).await;
    let port = proxy.addr.port();

    let tls_uri = format!(
        "mongodb://svc-bank1:bank1-secret@localhost:{port}/?authSource=admin&tls=true&tlsCAFile={}",
        cert_path.display()
    );
    let client = common::driver_client(&tls_uri).await;
    let coll = client
        .database(&db)
        .collection::<bson::Document>("payments");
    coll.insert_one(doc! { "amount": 1_i64 })
        .await
        .expect("insert over TLS");
    let found = coll
        .find_one(doc! {})
        .await
        .expect("find over TLS")
        .expect("a document");
    assert_eq!(found.get_str("tenantId").ok(), Some("bank1"));

    let mut options =
        mongodb::options::ClientOptions::parse(proxy.uri("svc-bank1", "bank1-secret", ""))
            .await
            .expect("uri");
    options.server_selection_timeout = Some(Duration::from_secs(2));
    let plain = mongodb::Client::with_options(options).expect("client");
    let refused = plain.database(&db).run_command(doc! { "ping": 1 }).await;
    assert!(
        refused.is_err(),
        "a plaintext client must not be served when TLS is configured"
    );

    client.database(&db).drop().await.ok();
    common::mongo_client()
        .await
        .database(&db)
        .drop()
        .await
        .expect("cleanup");
    proxy.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
