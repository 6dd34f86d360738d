//! The wire codec against the real upstream over TCP: messages encoded by `tenantgate-wire` are
//! accepted by the server, and its replies decode. This is the codec's contract with MongoDB,
//! checked without any driver in between.

mod common;

use std::time::Duration;

use bson::{doc, rawdoc};
use futures::{SinkExt, StreamExt};
use tenantgate_wire::codec::MessageCodec;
use tenantgate_wire::{Limits, Message, MsgFlags, OpMsg, OpQuery, Payload, QueryFlags, RawDoc};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

type Conn = Framed<TcpStream, MessageCodec>;

fn raw(d: bson::RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(d).expect("valid document")
}

async fn connect() -> Conn {
    let uri = common::mongodb_uri();
    let options = mongodb::options::ClientOptions::parse(&uri)
        .await
        .expect("valid MONGODB_URI");
    let addr = options
        .hosts
        .first()
        .expect("a host in MONGODB_URI")
        .to_string();
    let stream = TcpStream::connect(&addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).expect("nodelay");
    Framed::new(stream, MessageCodec::new(Limits::default()))
}

async fn next_reply(conn: &mut Conn) -> Message {
    tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("reply within 10 s")
        .expect("connection open")
        .expect("reply decodes")
}

/// Sends an OP_MSG command and returns the reply body.
async fn command(conn: &mut Conn, id: i32, msg: OpMsg) -> bson::Document {
    conn.send(Message::new(id, 0, Payload::Msg(msg)))
        .await
        .expect("send");
    let reply = next_reply(conn).await;
    assert_eq!(reply.response_to, id, "reply answers our request");
    let (reply, _) = reply
        .decompressed(&Limits::default())
        .expect("decompresses");
    reply
        .as_op_msg()
        .expect("OP_MSG reply")
        .body()
        .to_document()
        .expect("decodes")
}

fn ok(reply: &bson::Document) -> bool {
    reply
        .get("ok")
        .and_then(|v| v.as_f64().or_else(|| v.as_i32().map(f64::from)))
        == Some(1.0)
}

#[tokio::test]
async fn hello_over_op_msg() {
    let mut conn = connect().await;
    let reply = command(
        &mut conn,
        1,
        OpMsg::new(raw(rawdoc! { "hello": 1, "$db": "admin" })),
    )
    .await;
    assert!(ok(&reply), "{reply:?}");
    assert!(
        reply.get_i32("maxWireVersion").expect("maxWireVersion") >= 13,
        "a 5.0+ wire version"
    );
    assert_eq!(reply.get_i32("maxMessageSizeBytes").ok(), Some(48_000_000));
}

#[tokio::test]
async fn legacy_op_query_handshake_gets_an_op_reply() {
    let mut conn = connect().await;
    let query = OpQuery {
        flags: QueryFlags::from_bits(0).expect("no flags"),
        full_collection_name: "admin.$cmd".into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: raw(rawdoc! { "isMaster": 1, "helloOk": true }),
        return_fields_selector: None,
    };
    conn.send(Message::new(41, 0, Payload::Query(query)))
        .await
        .expect("send");
    let reply = next_reply(&mut conn).await;
    assert_eq!(reply.response_to, 41);
    let Payload::Reply(r) = reply.payload else {
        panic!("expected OP_REPLY, got {:?}", reply.op_code())
    };
    assert_eq!(r.documents.len(), 1);
    let body = r.documents[0].to_document().expect("decodes");
    assert!(ok(&body), "{body:?}");
    assert_eq!(body.get_bool("ismaster").ok(), Some(true));
}

#[tokio::test]
async fn insert_in_a_document_sequence_then_find() {
    let db = common::fresh_db_name("wire_seq");
    let mut conn = connect().await;
    let docs: Vec<RawDoc> = (0..50)
        .map(|i| RawDoc::try_from(&doc! { "_id": i, "tenantId": "bank1", "amount": i64::from(i) * 100, "currency": "EUR" }).expect("valid"))
        .collect();
    let insert = OpMsg::new(raw(
        rawdoc! { "insert": "payments", "ordered": true, "$db": db.as_str() },
    ))
    .with_sequence("documents", docs);
    let reply = command(&mut conn, 2, insert).await;
    assert!(ok(&reply), "{reply:?}");
    assert_eq!(reply.get_i32("n").ok(), Some(50));

    let find = OpMsg::new(raw(rawdoc! {
        "find": "payments", "filter": { "amount": { "$gte": 2_500_i64 } }, "sort": { "_id": 1 }, "batchSize": 100, "$db": db.as_str()
    }));
    let reply = command(&mut conn, 3, find).await;
    let batch = reply
        .get_document("cursor")
        .and_then(|c| c.get_array("firstBatch"))
        .expect("firstBatch");
    assert_eq!(batch.len(), 25);
    assert_eq!(
        batch[0].as_document().and_then(|d| d.get_i32("_id").ok()),
        Some(25)
    );

    command(
        &mut conn,
        4,
        OpMsg::new(raw(rawdoc! { "dropDatabase": 1, "$db": db.as_str() })),
    )
    .await;
}

#[tokio::test]
async fn checksummed_op_msg_is_accepted() {
    let mut conn = connect().await;
    let mut ping = OpMsg::new(raw(rawdoc! { "ping": 1, "$db": "admin" }));
    ping.set_flags(MsgFlags::default().with(MsgFlags::CHECKSUM_PRESENT, true))
        .expect("known flag");
    let reply = command(&mut conn, 5, ping).await;
    assert!(ok(&reply), "{reply:?}");
}

#[tokio::test]
async fn more_to_come_write_gets_no_reply_and_lands() {
    let db = common::fresh_db_name("wire_mtc");
    let mut conn = connect().await;
    let mut insert = OpMsg::new(raw(rawdoc! {
        "insert": "payments", "writeConcern": { "w": 0 }, "$db": db.as_str()
    }))
    .with_sequence(
        "documents",
        vec![raw(rawdoc! { "_id": 1, "tenantId": "bank1" })],
    );
    insert
        .set_flags(MsgFlags::default().with(MsgFlags::MORE_TO_COME, true))
        .expect("known flag");
    conn.send(Message::new(10, 0, Payload::Msg(insert)))
        .await
        .expect("send");
    // The next reply on the connection must answer the count, not the unacknowledged insert.
    let count = OpMsg::new(raw(rawdoc! { "count": "payments", "$db": db.as_str() }));
    let reply = command(&mut conn, 11, count).await;
    assert_eq!(reply.get_i32("n").ok(), Some(1), "{reply:?}");
    command(
        &mut conn,
        12,
        OpMsg::new(raw(rawdoc! { "dropDatabase": 1, "$db": db.as_str() })),
    )
    .await;
}

/// MongoDB's documented behaviour: a `hello` listing compressors gets back the subset the server
/// supports, and from then on compressed requests get (possibly compressed) replies.
///
/// DIVERGENCE: SecantusDB 0.7.0b3 does not implement OP_COMPRESSED and omits `compression`
/// from its `hello` reply, so this runs only against a real mongod:
/// `MONGODB_URI=mongodb://… cargo test --test wire_upstream -- --ignored`.
/// The codec's compression itself is covered by `wire/tests/fixtures.rs` (frames captured from
/// the Rust driver) and the property tests.
#[tokio::test]
#[ignore = "SecantusDB 0.7.0b3 does not implement OP_COMPRESSED; run with --ignored against mongod"]
async fn compressed_commands_against_mongod() {
    let mut conn = connect().await;
    let hello = OpMsg::new(raw(
        rawdoc! { "hello": 1, "compression": ["zstd", "snappy", "zlib"], "$db": "admin" },
    ));
    let reply = command(&mut conn, 20, hello).await;
    let offered = reply
        .get_array("compression")
        .expect("server lists its compressors");
    for (i, name) in offered.iter().filter_map(|v| v.as_str()).enumerate() {
        let compressor = tenantgate_wire::Compressor::from_name(name).expect("a known compressor");
        let ping = Message::new(
            21 + i as i32,
            0,
            Payload::Msg(OpMsg::new(raw(rawdoc! { "ping": 1, "$db": "admin" }))),
        );
        conn.send(ping.compressed(compressor).expect("compresses"))
            .await
            .expect("send");
        let reply = next_reply(&mut conn)
            .await
            .decompressed(&Limits::default())
            .expect("decompresses")
            .0;
        let body = reply
            .as_op_msg()
            .expect("OP_MSG")
            .body()
            .to_document()
            .expect("decodes");
        assert!(ok(&body), "{name}: {body:?}");
    }
}
