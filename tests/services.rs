//! Proves the test harness is real: the services `scripts/test` starts answer,
//! and data written to them can be read back.

mod common;

use mongodb::bson::{Bson, Document, doc};

fn reply_is_ok(reply: &Document) -> bool {
    match reply.get("ok") {
        Some(Bson::Double(v)) => *v == 1.0,
        Some(Bson::Int32(v)) => *v == 1,
        Some(Bson::Int64(v)) => *v == 1,
        Some(Bson::Boolean(v)) => *v,
        _ => false,
    }
}

#[tokio::test]
async fn upstream_answers_ping_and_round_trips_a_document() {
    let client = common::mongo_client().await;

    let reply = client
        .database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .unwrap_or_else(|e| panic!("ping to {} failed: {e}", common::mongodb_uri()));
    assert!(reply_is_ok(&reply), "ping reply is not ok: {reply:?}");

    let db_name = common::fresh_db_name("services");
    let db = client.database(&db_name);
    let items = db.collection::<Document>("items");
    let marker = format!("marker-{db_name}");
    items
        .insert_one(doc! { "_id": 1, "marker": &marker, "n": 42 })
        .await
        .unwrap_or_else(|e| panic!("insert into {db_name}.items failed: {e}"));

    let found = items
        .find_one(doc! { "_id": 1 })
        .await
        .unwrap_or_else(|e| panic!("find in {db_name}.items failed: {e}"))
        .unwrap_or_else(|| panic!("the document inserted into {db_name}.items is missing"));
    assert_eq!(
        found.get_str("marker").ok(),
        Some(marker.as_str()),
        "{found:?}"
    );
    assert_eq!(found.get_i32("n").ok(), Some(42), "{found:?}");

    let count = items
        .count_documents(doc! {})
        .await
        .unwrap_or_else(|e| panic!("count in {db_name}.items failed: {e}"));
    assert_eq!(
        count, 1,
        "a fresh database should hold exactly our document"
    );

    let names = client
        .list_database_names()
        .await
        .unwrap_or_else(|e| panic!("listDatabases failed: {e}"));
    assert!(names.contains(&db_name), "{db_name} not in {names:?}");

    db.drop()
        .await
        .unwrap_or_else(|e| panic!("dropping {db_name} failed: {e}"));
    let names = client
        .list_database_names()
        .await
        .unwrap_or_else(|e| panic!("listDatabases failed: {e}"));
    assert!(
        !names.contains(&db_name),
        "{db_name} survived dropDatabase: {names:?}"
    );
}

#[tokio::test]
async fn redis_answers_ping_and_round_trips_a_key_with_expiry() {
    let mut conn = common::redis_connection().await;

    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("PING to {} failed: {e}", common::redis_url()));
    assert_eq!(pong, "PONG");

    let key = format!("tenantgate:test:{}", common::fresh_db_name("services"));
    let value = format!("value-for-{key}");
    let set: String = redis::cmd("SET")
        .arg(&key)
        .arg(&value)
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("SET {key} failed: {e}"));
    assert_eq!(set, "OK");

    let got: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("GET {key} failed: {e}"));
    assert_eq!(got.as_deref(), Some(value.as_str()));

    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("TTL {key} failed: {e}"));
    assert!(
        (1..=60).contains(&ttl),
        "TTL of {key} is {ttl}, expected 1..=60"
    );

    let deleted: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("DEL {key} failed: {e}"));
    assert_eq!(deleted, 1);
    let gone: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("GET {key} failed: {e}"));
    assert_eq!(gone, None, "{key} still exists after DEL");
}

#[test]
fn fresh_db_names_are_valid_and_distinct() {
    let long = "A Very-Long.Prefix/with$odd chars, ünïcode and more and more";
    let names: Vec<String> = (0..200)
        .map(|i| common::fresh_db_name(if i % 2 == 0 { "t" } else { long }))
        .chain([common::fresh_db_name("")])
        .collect();
    for name in &names {
        assert!(!name.is_empty() && name.len() <= 38, "bad length: {name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "bad character in {name}"
        );
    }
    assert!(names[1].starts_with("a_very_long_prefix"), "{}", names[1]);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "duplicate names: {names:?}");
}
