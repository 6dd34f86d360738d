//! JWT authentication end to end with the official Rust driver: `MONGODB-OIDC` (machine
//! callback) and `PLAIN` with username `_` on `authSource=$external`; tokens verified for
//! signature, expiry and issuer; claims bind the tenant; PLAIN refused without TLS unless allowed.

mod common;

use std::time::Duration;

use bson::doc;
use futures::FutureExt;
use mongodb::options::{AuthMechanism, ClientOptions, Credential};

const SECRET: &str = "a-test-secret-for-hs256";

fn token(tenant: &str, exp_offset: i64, issuer: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = serde_json::json!({ "sub": format!("app-{tenant}"), "tenantId": tenant, "iss": issuer, "exp": now + exp_offset });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token encodes")
}

fn config(db: &str, allow_plain: bool) -> String {
    let base = common::two_bank_config(db).replace(
        "[proxy]\nlisten = \"127.0.0.1:0\"",
        &format!("[proxy]\nlisten = \"127.0.0.1:0\"\nallow_plain_without_tls = {allow_plain}"),
    );
    format!("{base}\n[jwt]\nhs256_secret = \"{SECRET}\"\nissuer = \"https://idp.test\"\n")
}

async fn client(addr: std::net::SocketAddr, credential: Credential) -> mongodb::Client {
    let mut options = ClientOptions::parse(format!("mongodb://{addr}/"))
        .await
        .expect("uri");
    options.credential = Some(credential);
    options.server_selection_timeout = Some(Duration::from_secs(5));
    mongodb::Client::with_options(options).expect("client")
}

#[tokio::test]
async fn oidc_and_plain_tokens_bind_their_tenant() {
    let db = common::fresh_db_name("proxy_jwt");
    let proxy = common::TestProxy::start(&config(&db, true)).await;

    let t = token("bank1", 600, "https://idp.test");
    let oidc = Credential::builder()
        .mechanism(AuthMechanism::MongoDbOidc)
        .oidc_callback(mongodb::options::oidc::Callback::machine(move |_| {
            let t = t.clone();
            async move {
                Ok(mongodb::options::oidc::IdpServerResponse::builder()
                    .access_token(t)
                    .build())
            }
            .boxed()
        }))
        .build();
    let bank1 = client(proxy.addr, oidc).await;
    let coll = bank1.database(&db).collection::<bson::Document>("payments");
    coll.insert_one(doc! { "via": "oidc" })
        .await
        .expect("insert as bank1 via OIDC");

    let plain = Credential::builder()
        .mechanism(AuthMechanism::Plain)
        .username("_".to_owned())
        .password(token("bank2", 600, "https://idp.test"))
        .source("$external".to_owned())
        .build();
    let bank2 = client(proxy.addr, plain).await;
    let coll2 = bank2.database(&db).collection::<bson::Document>("payments");
    coll2
        .insert_one(doc! { "via": "plain" })
        .await
        .expect("insert as bank2 via PLAIN");

    let mine = coll
        .find_one(doc! {})
        .await
        .expect("find")
        .expect("one document");
    assert_eq!(
        (mine.get_str("via").ok(), mine.get_str("tenantId").ok()),
        (Some("oidc"), Some("bank1"))
    );
    assert_eq!(
        coll2.count_documents(doc! {}).await.expect("count"),
        1,
        "bank2 sees only its own"
    );

    for (what, bad) in [
        ("expired", token("bank1", -3600, "https://idp.test")),
        ("wrong issuer", token("bank1", 600, "https://evil.test")),
        ("not a token", "garbage".to_owned()),
    ] {
        let cred = Credential::builder()
            .mechanism(AuthMechanism::Plain)
            .username("_".to_owned())
            .password(bad)
            .source("$external".to_owned())
            .build();
        let c = client(proxy.addr, cred).await;
        assert!(
            c.database(&db)
                .run_command(doc! { "count": "payments" })
                .await
                .is_err(),
            "{what} must be refused"
        );
    }
    common::mongo_client()
        .await
        .database(&db)
        .drop()
        .await
        .expect("cleanup");
    proxy.stop().await;
}

#[tokio::test]
async fn plain_needs_tls_unless_allowed() {
    let db = common::fresh_db_name("proxy_jwt_tls");
    let proxy = common::TestProxy::start(&config(&db, false)).await;
    let plain = Credential::builder()
        .mechanism(AuthMechanism::Plain)
        .username("_".to_owned())
        .password(token("bank1", 600, "https://idp.test"))
        .source("$external".to_owned())
        .build();
    let c = client(proxy.addr, plain).await;
    assert!(
        c.database(&db)
            .run_command(doc! { "count": "payments" })
            .await
            .is_err(),
        "a token in the clear over plaintext must be refused"
    );
    proxy.stop().await;
}

/// A token with `sub` `shared` for `tenant`.
fn token_with_sub(tenant: &str, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let claims = serde_json::json!({ "sub": sub, "tenantId": tenant, "iss": "https://idp.test", "exp": now + 600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("token encodes")
}

fn plain(token: String) -> Credential {
    Credential::builder()
        .mechanism(AuthMechanism::Plain)
        .username("_".to_owned())
        .password(token)
        .source("$external".to_owned())
        .build()
}

/// Cursor ownership is keyed on the tenant as well as the principal's name: two tenants whose
/// identity providers issue the same `sub` (both principals are `jwt:svc`) must not continue,
/// or kill, each other's cursors.
#[tokio::test]
async fn the_same_sub_in_two_tenants_does_not_share_cursors() {
    let db = common::fresh_db_name("proxy_jwt_sub");
    let proxy = common::TestProxy::start(&config(&db, true)).await;
    let bank1 = client(proxy.addr, plain(token_with_sub("bank1", "svc"))).await;
    let bank2 = client(proxy.addr, plain(token_with_sub("bank2", "svc"))).await;
    let coll = bank1.database(&db).collection::<bson::Document>("payments");
    let docs: Vec<bson::Document> = (0..10)
        .map(|i| doc! { "n": i, "secret": "bank1" })
        .collect();
    coll.insert_many(docs).await.expect("bank1 inserts");
    let first = bank1
        .database(&db)
        .run_command(doc! { "find": "payments", "batchSize": 2 })
        .await
        .expect("bank1 opens a cursor");
    let id = first
        .get_document("cursor")
        .and_then(|c| c.get_i64("id"))
        .expect("a cursor id");
    assert_ne!(id, 0, "the cursor stays open");
    let stolen = bank2
        .database(&db)
        .run_command(doc! { "getMore": id, "collection": "payments" })
        .await;
    let message = format!("{stolen:?}");
    assert!(stolen.is_err(), "bank2 continued bank1's cursor: {message}");
    assert!(
        message.contains("CursorNotFound") || message.contains("43"),
        "{message}"
    );
    // killCursors for a cursor bank2 does not own: refused (43) or nothing killed.
    match bank2
        .database(&db)
        .run_command(doc! { "killCursors": "payments", "cursors": [id] })
        .await
    {
        Ok(reply) => {
            let killed = reply
                .get_array("cursorsKilled")
                .map(|a| a.len())
                .unwrap_or(0);
            assert_eq!(killed, 0, "bank2 killed bank1's cursor: {reply}");
        }
        Err(e) => assert!(format!("{e:?}").contains("CursorNotFound"), "{e:?}"),
    }
    // The owner still can.
    let more = bank1
        .database(&db)
        .run_command(doc! { "getMore": id, "collection": "payments" })
        .await
        .expect("bank1 continues its own cursor");
    assert!(more.get_document("cursor").is_ok());
    common::mongo_client()
        .await
        .database(&db)
        .drop()
        .await
        .expect("cleanup");
    proxy.stop().await;
}
