//! The proxy against hostile and legacy clients, over raw TCP.
//!
//! Each case opens its own connection to a proxy on `127.0.0.1:0` and sends bytes no driver
//! would: garbage, impossible lengths, truncated frames, legacy opcodes. A framing error must
//! close that one connection promptly — without waiting for, or buffering, what a hostile length
//! announces — and the proxy must go on serving everyone else, which each test checks with an
//! authenticated driver client opened before the attack and a fresh one opened after it.

mod common;

use std::time::Duration;

use bson::{Document, doc, rawdoc};
use bytes::{BufMut, BytesMut};
use common::TestProxy;
use futures::{SinkExt, StreamExt};
use mongodb::Collection;
use tenantgate_wire::codec::MessageCodec;
use tenantgate_wire::{
    Compressor, Limits, Message, OpMsg, OpQuery, Payload, QueryFlags, RawDoc, ReplyFlags,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Every test finishes well within this, or fails instead of hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A refused connection must be closed within this; far below the proxy's frame timeout (30 s)
/// and idle timeout (600 s), so a proxy that waits for the announced bytes fails the test.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

type Conn = Framed<TcpStream, MessageCodec>;

/// A proxy over a fresh two-bank database, with a bank1 client connected before any attack.
struct Scene {
    proxy: TestProxy,
    db: String,
    /// Opened first; must keep working through everything.
    survivor: Collection<Document>,
}

impl Scene {
    async fn new(prefix: &str) -> Scene {
        Scene::with_config(prefix, |c| c).await
    }

    async fn with_config(prefix: &str, edit: impl FnOnce(String) -> String) -> Scene {
        let db = common::fresh_db_name(prefix);
        let proxy = TestProxy::start(&edit(common::two_bank_config(&db))).await;
        let survivor = proxy
            .client("svc-bank1", "bank1-secret")
            .await
            .database(&db)
            .collection::<Document>("payments");
        survivor
            .insert_one(doc! { "_id": "before", "amount": 1_i64 })
            .await
            .expect("the proxy serves before the attack");
        Scene {
            proxy,
            db,
            survivor,
        }
    }

    async fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.proxy.addr)
            .await
            .expect("connect to the proxy");
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    async fn framed(&self) -> Conn {
        Framed::new(self.raw().await, MessageCodec::new(Limits::default()))
    }

    /// The proxy still serves: the long-lived client, and a fresh login as bank2.
    async fn assert_serves(&self, after: &str) {
        let n = self
            .survivor
            .count_documents(doc! {})
            .await
            .unwrap_or_else(|e| panic!("after {after}: the existing client fails: {e}"));
        assert_eq!(n, 1, "after {after}: bank1 sees its one document");
        let fresh = self
            .proxy
            .client("svc-bank2", "bank2-secret")
            .await
            .database(&self.db);
        fresh
            .run_command(doc! { "ping": 1 })
            .await
            .unwrap_or_else(|e| panic!("after {after}: a new client cannot ping: {e}"));
        let seen = fresh
            .collection::<Document>("payments")
            .find_one(doc! {})
            .await
            .unwrap_or_else(|e| panic!("after {after}: a new client cannot find: {e}"));
        assert!(seen.is_none(), "after {after}: bank2 sees bank1's document");
    }

    /// Nothing but `_id: "before"` reached the upstream collection.
    async fn assert_upstream_untouched(&self, after: &str) {
        let direct = common::mongo_client()
            .await
            .database(&self.db)
            .collection::<Document>("payments");
        let n = direct.count_documents(doc! {}).await.expect("direct count");
        assert_eq!(n, 1, "after {after}: something reached the upstream");
    }

    async fn finish(self) {
        common::mongo_client()
            .await
            .database(&self.db)
            .drop()
            .await
            .expect("drop the test database");
        self.proxy.stop().await;
    }
}

/// Runs a test body under [`TEST_TIMEOUT`].
async fn bounded<F: std::future::Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

/// The proxy closes the connection within [`CLOSE_WITHIN`] without sending anything.
async fn expect_closed(stream: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(CLOSE_WITHIN, stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("{what}: the proxy kept the connection open"));
    match read {
        Ok(0) => {}
        Ok(n) => panic!(
            "{what}: expected the connection closed, got {n} bytes: {:?}",
            &buf[..n]
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: unexpected read error {e}"),
    }
}

/// A 16-byte header.
fn header(buf: &mut BytesMut, length: i32, request_id: i32, op_code: i32) {
    buf.put_i32_le(length);
    buf.put_i32_le(request_id);
    buf.put_i32_le(0);
    buf.put_i32_le(op_code);
}

/// `{a: {a: … {} …}}`, `depth` documents deep, as bytes.
fn nested(depth: usize) -> Vec<u8> {
    let mut doc = vec![5, 0, 0, 0, 0];
    for _ in 1..depth {
        let len = i32::try_from(4 + 1 + 2 + doc.len() + 1).expect("small");
        let mut outer = len.to_le_bytes().to_vec();
        outer.extend_from_slice(&[0x03, b'a', 0]);
        outer.extend_from_slice(&doc);
        outer.push(0);
        doc = outer;
    }
    doc
}

fn raw(d: bson::RawDocumentBuf) -> RawDoc {
    RawDoc::from_buf(d).expect("valid document")
}

async fn send(conn: &mut Conn, msg: Message) {
    tokio::time::timeout(CLOSE_WITHIN, conn.send(msg))
        .await
        .expect("send within the timeout")
        .expect("send");
}

async fn next_reply(conn: &mut Conn, request_id: i32) -> Message {
    let reply = tokio::time::timeout(CLOSE_WITHIN, conn.next())
        .await
        .expect("a reply within the timeout")
        .expect("the connection stays open")
        .expect("the reply decodes");
    assert_eq!(
        reply.response_to, request_id,
        "the reply answers our request"
    );
    reply
}

fn op_msg_body(reply: Message) -> Document {
    let (reply, _) = reply
        .decompressed(&Limits::default())
        .expect("decompresses");
    reply
        .as_op_msg()
        .unwrap_or_else(|| panic!("an OP_MSG reply, got {:?}", reply.op_code()))
        .body()
        .to_document()
        .expect("the body decodes")
}

/// The one document of an OP_REPLY, and its flags.
fn op_reply_doc(reply: Message) -> (Document, u32) {
    let Payload::Reply(r) = reply.payload else {
        panic!("an OP_REPLY, got {:?}", reply.op_code());
    };
    assert_eq!(r.documents.len(), 1, "one reply document");
    (
        r.documents[0].to_document().expect("decodes"),
        r.flags.bits(),
    )
}

fn op_query(collection: &str, query: bson::RawDocumentBuf) -> Payload {
    Payload::Query(OpQuery {
        flags: QueryFlags::from_bits(0).expect("no flags"),
        full_collection_name: collection.into(),
        number_to_skip: 0,
        number_to_return: -1,
        query: raw(query),
        return_fields_selector: None,
    })
}

fn code(reply: &Document) -> Option<i32> {
    reply.get_i32("code").ok()
}

fn ok(reply: &Document) -> Option<f64> {
    match reply.get("ok") {
        Some(bson::Bson::Double(v)) => Some(*v),
        Some(bson::Bson::Int32(v)) => Some(f64::from(*v)),
        _ => None,
    }
}

#[tokio::test]
async fn garbage_bytes_close_only_that_connection() {
    bounded("garbage_bytes_close_only_that_connection", async {
        let scene = Scene::new("hostile_garbage").await;

        // An HTTP request: "GET " read as a length is 542 MB.
        let mut s = scene.raw().await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: tenantgate\r\n\r\n")
            .await
            .expect("write");
        expect_closed(&mut s, "an HTTP request").await;
        scene.assert_serves("an HTTP request").await;

        // A plausible length and opcode followed by noise.
        let mut s = scene.raw().await;
        let mut frame = BytesMut::new();
        header(&mut frame, 96, 7, 2013);
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..80 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            frame.put_u8((x & 0xff) as u8);
        }
        s.write_all(&frame).await.expect("write");
        expect_closed(&mut s, "an OP_MSG of noise").await;
        scene.assert_serves("an OP_MSG of noise").await;

        // An unknown opcode.
        let mut s = scene.raw().await;
        let mut frame = BytesMut::new();
        header(&mut frame, 21, 8, 9999);
        frame.put_slice(&[0; 5]);
        s.write_all(&frame).await.expect("write");
        expect_closed(&mut s, "opcode 9999").await;
        scene.assert_serves("opcode 9999").await;

        // Compressed frames that lie: a declared size over the limit, and a small declared size
        // for a megabyte of zeros (a decompression bomb).
        let zeros = Compressor::Zlib
            .compress(&vec![0u8; 1 << 20])
            .expect("compresses");
        for (declared, what) in [
            (100_000_000, "OP_COMPRESSED declaring 100 MB"),
            (64, "OP_COMPRESSED inflating past its declared size"),
        ] {
            let mut s = scene.raw().await;
            let mut frame = BytesMut::new();
            header(
                &mut frame,
                16 + 9 + i32::try_from(zeros.len()).expect("small"),
                9,
                2012,
            );
            frame.put_i32_le(2013);
            frame.put_i32_le(declared);
            frame.put_u8(Compressor::Zlib.id());
            frame.put_slice(&zeros);
            s.write_all(&frame).await.expect("write");
            expect_closed(&mut s, what).await;
            scene.assert_serves(what).await;
        }

        // A body nested far deeper than BSON's 200 levels.
        let mut s = scene.raw().await;
        let body = nested(1_000);
        let mut frame = BytesMut::new();
        header(
            &mut frame,
            16 + 4 + 1 + i32::try_from(body.len()).expect("small"),
            10,
            2013,
        );
        frame.put_u32_le(0);
        frame.put_u8(0);
        frame.put_slice(&body);
        s.write_all(&frame).await.expect("write");
        expect_closed(&mut s, "a body nested 1000 deep").await;
        scene.assert_serves("a body nested 1000 deep").await;

        scene.assert_upstream_untouched("garbage").await;
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn impossible_lengths_are_refused_before_buffering() {
    bounded("impossible_lengths_are_refused_before_buffering", async {
        let scene = Scene::new("hostile_length").await;
        for (length, what) in [
            (-1, "a negative length"),
            (i32::MIN, "the most negative length"),
            (0, "a zero length"),
            (15, "a length shorter than the header"),
            (100_000_000, "a 100 MB length"),
            (48_000_001, "one byte over maxMessageSizeBytes"),
            (i32::MAX, "a 2 GB length"),
        ] {
            let mut s = scene.raw().await;
            let mut frame = BytesMut::new();
            header(&mut frame, length, 1, 2013);
            s.write_all(&frame).await.expect("write");
            // Closed at once: the proxy neither waits for nor reserves the announced bytes.
            expect_closed(&mut s, what).await;
            scene.assert_serves(what).await;
        }
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn truncated_frames_are_dropped() {
    bounded("truncated_frames_are_dropped", async {
        let scene = Scene::new("hostile_trunc").await;
        let find = Message::new(
            3,
            0,
            Payload::Msg(OpMsg::new(raw(
                rawdoc! { "find": "payments", "filter": {}, "$db": scene.db.as_str() },
            ))),
        )
        .to_bytes()
        .expect("encodes");

        // Half a frame, then the client closes its side.
        let mut s = scene.raw().await;
        s.write_all(&find[..find.len() / 2]).await.expect("write");
        s.shutdown().await.expect("half-close");
        expect_closed(&mut s, "a truncated frame followed by close").await;
        scene
            .assert_serves("a truncated frame followed by close")
            .await;

        // Only the header, then the client closes.
        let mut s = scene.raw().await;
        s.write_all(&find[..16]).await.expect("write");
        s.shutdown().await.expect("half-close");
        expect_closed(&mut s, "a header without a body").await;

        scene.assert_serves("truncated frames").await;
        scene.finish().await;
    })
    .await;
}

/// The scene for the stalled-frame tests: `frame_timeout_secs = 1`, and an unauthenticated
/// `find` to send (its reply is a short `Unauthorized`).
async fn stalled_scene(prefix: &str) -> (Scene, bytes::Bytes) {
    let scene = Scene::with_config(prefix, |c| {
        c.replace(
            "[proxy]\nlisten = \"127.0.0.1:0\"",
            "[proxy]\nlisten = \"127.0.0.1:0\"\nframe_timeout_secs = 1",
        )
    })
    .await;
    let find = Message::new(
        3,
        0,
        Payload::Msg(OpMsg::new(raw(
            rawdoc! { "find": "payments", "filter": {}, "$db": scene.db.as_str() },
        ))),
    )
    .to_bytes()
    .expect("encodes");
    (scene, find)
}

#[tokio::test]
async fn a_frame_stalled_after_a_complete_one_is_dropped_after_the_frame_timeout() {
    bounded("a_frame_stalled_after_a_complete_one", async {
        let (scene, find) = stalled_scene("hostile_stall2").await;
        // One whole frame and most of a second, in one write, then silence.
        let mut s = scene.raw().await;
        let mut bytes = BytesMut::from(&find[..]);
        bytes.put_slice(&find[..find.len() - 1]);
        s.write_all(&bytes).await.expect("write");
        let mut conn = Framed::new(s, MessageCodec::new(Limits::default()));
        let reply = op_msg_body(next_reply(&mut conn, 3).await);
        assert_eq!(code(&reply), Some(13), "{reply:?}");
        let mut s = conn.into_inner();
        expect_closed(&mut s, "a frame stalled after a complete one").await;
        scene.assert_serves("a stalled frame").await;
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn a_stalled_first_frame_is_dropped_after_the_frame_timeout() {
    bounded("a_stalled_first_frame", async {
        let (scene, find) = stalled_scene("hostile_stall1").await;
        // Most of a frame, then silence: `frame_timeout_secs` (1 s) applies, not the 600 s idle
        // timeout, or slow senders could hold connections (and permits) for ten minutes each.
        let mut s = scene.raw().await;
        s.write_all(&find[..find.len() - 1]).await.expect("write");
        expect_closed(&mut s, "a stalled first frame").await;
        scene.assert_serves("a stalled frame").await;
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn op_query_is_only_the_handshake() {
    bounded("op_query_is_only_the_handshake", async {
        let scene = Scene::new("hostile_query").await;
        let mut conn = scene.framed().await;
        let cmd_ns = format!("{}.$cmd", scene.db);
        let coll_ns = format!("{}.payments", scene.db);
        for (id, (ns, query, what)) in [
            (
                cmd_ns.as_str(),
                rawdoc! { "find": "payments", "filter": {} },
                "a find command over OP_QUERY",
            ),
            (
                cmd_ns.as_str(),
                rawdoc! { "insert": "payments", "documents": [ { "_id": "via-op-query" } ] },
                "an insert command over OP_QUERY",
            ),
            (
                coll_ns.as_str(),
                rawdoc! { "$query": { "tenantId": "bank2" } },
                "a legacy OP_QUERY find on a collection",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let id = 100 + i32::try_from(id).expect("small");
            send(&mut conn, Message::new(id, 0, op_query(ns, query))).await;
            let (reply, flags) = op_reply_doc(next_reply(&mut conn, id).await);
            assert_eq!(ok(&reply), Some(0.0), "{what}: {reply:?}");
            assert_eq!(
                code(&reply),
                Some(352),
                "{what}: UnsupportedOpQueryCommand: {reply:?}"
            );
            assert_ne!(
                flags & ReplyFlags::QUERY_FAILURE,
                0,
                "{what}: QueryFailure is set"
            );
        }
        // The connection stays usable for the handshake.
        send(
            &mut conn,
            Message::new(200, 0, op_query("admin.$cmd", rawdoc! { "isMaster": 1 })),
        )
        .await;
        let (reply, _) = op_reply_doc(next_reply(&mut conn, 200).await);
        assert_eq!(reply.get_bool("ismaster").ok(), Some(true), "{reply:?}");
        drop(conn);
        scene.assert_serves("OP_QUERY commands").await;
        scene.assert_upstream_untouched("OP_QUERY commands").await;
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn legacy_op_insert_2002_is_refused_where_op_query_2004_is_answered() {
    bounded(
        "legacy_op_insert_2002_is_refused_where_op_query_2004_is_answered",
        async {
            let scene = Scene::new("hostile_2002").await;

            // OP_QUERY (2004) isMaster: the legacy handshake is answered.
            let mut conn = scene.framed().await;
            send(
                &mut conn,
                Message::new(1, 0, op_query("admin.$cmd", rawdoc! { "isMaster": 1 })),
            )
            .await;
            let (reply, _) = op_reply_doc(next_reply(&mut conn, 1).await);
            assert_eq!(reply.get_bool("ismaster").ok(), Some(true));
            drop(conn);

            // OP_INSERT (2002), removed in MongoDB 6.0: never forwarded; the connection closes.
            let mut s = scene.raw().await;
            let document = rawdoc! { "_id": "via-op-insert", "tenantId": "bank2" };
            let document = document.as_bytes();
            let ns = format!("{}.payments\0", scene.db);
            let length = 16 + 4 + ns.len() + document.len();
            let mut frame = BytesMut::new();
            header(&mut frame, i32::try_from(length).expect("small"), 2, 2002);
            frame.put_i32_le(0);
            frame.put_slice(ns.as_bytes());
            frame.put_slice(document);
            s.write_all(&frame).await.expect("write");
            expect_closed(&mut s, "OP_INSERT").await;
            scene.assert_serves("OP_INSERT").await;
            scene.assert_upstream_untouched("OP_INSERT").await;
            scene.finish().await;
        },
    )
    .await;
}

#[tokio::test]
async fn legacy_is_master_handshake_hides_the_topology() {
    bounded("legacy_is_master_handshake_hides_the_topology", async {
        let scene = Scene::new("hostile_ismaster").await;
        for (id, query) in [
            (11, rawdoc! { "isMaster": 1, "helloOk": true }),
            (12, rawdoc! { "ismaster": 1 }),
            (
                13,
                rawdoc! { "$query": { "isMaster": 1 }, "$readPreference": { "mode": "primary" } },
            ),
        ] {
            let mut conn = scene.framed().await;
            send(
                &mut conn,
                Message::new(id, 0, op_query("admin.$cmd", query)),
            )
            .await;
            let (reply, flags) = op_reply_doc(next_reply(&mut conn, id).await);
            assert_eq!(ok(&reply), Some(1.0), "{reply:?}");
            assert_eq!(flags & ReplyFlags::QUERY_FAILURE, 0);
            assert_eq!(reply.get_bool("ismaster").ok(), Some(true), "{reply:?}");
            for hidden in [
                "hosts",
                "setName",
                "primary",
                "me",
                "passives",
                "arbiters",
                "topologyVersion",
            ] {
                assert!(
                    reply.get(hidden).is_none(),
                    "isMaster reveals {hidden}: {reply:?}"
                );
            }
            assert!(
                reply.get_i32("maxWireVersion").expect("maxWireVersion") >= 13,
                "{reply:?}"
            );
            assert_eq!(reply.get_i32("maxMessageSizeBytes").ok(), Some(48_000_000));
        }
        scene.finish().await;
    })
    .await;
}

#[tokio::test]
async fn unauthenticated_commands_are_unauthorized() {
    bounded("unauthenticated_commands_are_unauthorized", async {
        let scene = Scene::new("hostile_unauth").await;
        let mut conn = scene.framed().await;
        let db = scene.db.as_str();

        send(
            &mut conn,
            Message::new(
                1,
                0,
                Payload::Msg(OpMsg::new(raw(
                    rawdoc! { "find": "payments", "filter": {}, "$db": db },
                ))),
            ),
        )
        .await;
        let reply = op_msg_body(next_reply(&mut conn, 1).await);
        assert_eq!(ok(&reply), Some(0.0), "{reply:?}");
        assert_eq!(code(&reply), Some(13), "{reply:?}");
        assert_eq!(reply.get_str("codeName").ok(), Some("Unauthorized"));
        assert!(reply.get("cursor").is_none(), "no data: {reply:?}");

        // An insert in a document sequence, the way drivers send it.
        let doc = raw(rawdoc! { "_id": "anonymous", "tenantId": "bank1" });
        let insert = OpMsg::new(raw(rawdoc! { "insert": "payments", "$db": db }))
            .with_sequence("documents", vec![doc]);
        send(&mut conn, Message::new(2, 0, Payload::Msg(insert))).await;
        let reply = op_msg_body(next_reply(&mut conn, 2).await);
        assert_eq!(code(&reply), Some(13), "{reply:?}");

        // Compressed both ways: hello agrees zlib, then a compressed find gets a compressed no.
        let hello = rawdoc! { "hello": 1, "compression": ["bogus", "zlib"], "$db": "admin" };
        send(
            &mut conn,
            Message::new(3, 0, Payload::Msg(OpMsg::new(raw(hello)))),
        )
        .await;
        let reply = op_msg_body(next_reply(&mut conn, 3).await);
        let agreed: Vec<&str> = reply
            .get_array("compression")
            .unwrap_or_else(|_| panic!("compression agreed: {reply:?}"))
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        assert_eq!(agreed, ["zlib"]);
        let find = Message::new(
            4,
            0,
            Payload::Msg(OpMsg::new(raw(
                rawdoc! { "find": "payments", "filter": {}, "$db": db },
            ))),
        )
        .compressed(Compressor::Zlib)
        .expect("compresses");
        send(&mut conn, find).await;
        let reply = next_reply(&mut conn, 4).await;
        let (reply, used) = reply
            .decompressed(&Limits::default())
            .expect("decompresses");
        assert_eq!(used, Some(Compressor::Zlib), "the reply is compressed too");
        let body = op_msg_body(reply);
        assert_eq!(code(&body), Some(13), "{body:?}");

        drop(conn);
        scene.assert_serves("unauthenticated commands").await;
        scene
            .assert_upstream_untouched("unauthenticated commands")
            .await;
        scene.finish().await;
    })
    .await;
}
