//! Captures real wire traffic between the official Rust driver and a MongoDB-wire server, and
//! writes the frames the wire crate's round-trip tests use (`wire/tests/fixtures/`).
//!
//! ```text
//! MONGODB_URI=mongodb://127.0.0.1:27017/ cargo run --example capture_wire_fixtures -- wire/tests/fixtures
//! ```
//!
//! It starts a relay on 127.0.0.1:0 in front of the server, points the driver at the relay, runs
//! a handshake, a `find`, an `insert` (which the driver sends as a document sequence) and
//! compressed `find`s with zstd, zlib and snappy, and saves the first frame of each kind together
//! with the server's reply. Client frames are recorded exactly as the driver sent them.
//!
//! Two servers need help, and the relay gives it only on the compressed connections: a server
//! that does not implement OP_COMPRESSED (SecantusDB does not) gets `compression: [<name>]`
//! added to its `hello` replies so the driver negotiates it, and the driver's compressed frames
//! are decompressed before they are forwarded. The recorded client frames are unchanged.
//!
//! The Rust driver (3.x), like pymongo 4.x, sends even its first handshake as OP_MSG. The legacy
//! OP_QUERY `isMaster` that older drivers and tools send is therefore written here by hand in the
//! documented form (`admin.$cmd`, `numberToReturn: -1`) and sent through the relay, so the
//! server's OP_REPLY to it is a real capture.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use mongodb::bson::doc;
use tenantgate_wire::{Limits, Message, Payload, split_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dir {
    ToServer,
    ToClient,
}

type Log = Arc<Mutex<Vec<(Dir, Bytes)>>>;

/// Adjusts a frame in flight on a compressed connection (see the module docs).
fn assist(frame: Bytes, dir: Dir, compressor: &str) -> Bytes {
    let limits = Limits::default();
    let Ok(msg) = Message::decode(frame.clone(), &limits) else {
        return frame;
    };
    let out = match (dir, &msg.payload) {
        (Dir::ToServer, Payload::Compressed(_)) => msg.decompressed(&limits).ok().map(|(m, _)| m),
        (Dir::ToClient, Payload::Msg(m))
            if m.body()
                .as_raw()
                .get("isWritablePrimary")
                .ok()
                .flatten()
                .is_some() =>
        {
            let mut body = m.body().to_document().ok();
            if let Some(b) = body.as_mut() {
                b.insert("compression", vec![compressor.to_owned()]);
            }
            body.and_then(|b| tenantgate_wire::RawDoc::try_from(&b).ok())
                .map(|b| {
                    let mut m = m.clone();
                    m.set_body(b);
                    Message::new(msg.request_id, msg.response_to, Payload::Msg(m))
                })
        }
        _ => None,
    };
    out.and_then(|m| m.to_bytes().ok()).unwrap_or(frame)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    dir: Dir,
    log: Log,
    compressor: Option<&'static str>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Ok(Some(frame)) = split_frame(&mut buf, &Limits::default()) {
            if let Ok(mut l) = log.lock() {
                l.push((dir, frame.clone()));
            }
            let frame = match compressor {
                Some(c) => assist(frame, dir, c),
                None => frame,
            };
            if to.write_all(&frame).await.is_err() {
                return;
            }
        }
    }
}

async fn relay(upstream: String, log: Log, compressor: Option<&'static str>) -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, Dir::ToServer, log.clone(), compressor));
            tokio::spawn(pump(sr, cw, Dir::ToClient, log.clone(), compressor));
        }
    });
    Ok(port)
}

fn host_port(uri: &str) -> Result<String> {
    let rest = uri
        .strip_prefix("mongodb://")
        .context("MONGODB_URI must be a mongodb:// URI")?;
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let host = hosts
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .split(',')
        .next()
        .unwrap_or_default();
    if host.is_empty() {
        bail!("no host in MONGODB_URI");
    }
    Ok(host.to_owned())
}

fn command_of(frame: &Bytes) -> Option<(String, Option<String>)> {
    let msg = Message::decode(frame.clone(), &Limits::default()).ok()?;
    match &msg.payload {
        Payload::Msg(m) => Some((m.command_name()?.to_owned(), None)),
        Payload::Query(q) => Some((q.command_name()?.to_owned(), None)),
        Payload::Compressed(c) => {
            let (inner, _) = msg.clone().decompressed(&Limits::default()).ok()?;
            let name = inner.as_op_msg()?.command_name()?.to_owned();
            Some((name, Some(c.compressor.name().to_owned())))
        }
        Payload::Reply(_) => None,
    }
}

/// Sends the legacy OP_QUERY handshake and waits for the OP_REPLY.
async fn legacy_handshake(port: u16) -> Result<()> {
    use tenantgate_wire::{OpQuery, QueryFlags, RawDoc};
    let query = mongodb::bson::rawdoc! {
        "isMaster": 1, "helloOk": true,
        "client": { "driver": { "name": "tenantgate-fixture", "version": "0.1.0" }, "os": { "type": "Linux" } },
    };
    let msg = Message::new(
        1,
        0,
        Payload::Query(OpQuery {
            flags: QueryFlags::from_bits(0)?,
            full_collection_name: "admin.$cmd".into(),
            number_to_skip: 0,
            number_to_return: -1,
            query: RawDoc::from_buf(query).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            return_fields_selector: None,
        }),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream.write_all(&msg.to_bytes()?).await?;
    let mut buf = BytesMut::new();
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("server closed the legacy handshake connection");
        }
        if split_frame(&mut buf, &Limits::default())?.is_some() {
            return Ok(());
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "wire/tests/fixtures".into()),
    );
    let uri =
        std::env::var("MONGODB_URI").context("set MONGODB_URI to the server to capture against")?;
    let log: Log = Arc::default();
    let upstream = host_port(&uri)?;
    let port = relay(upstream.clone(), log.clone(), None).await?;

    let plain =
        mongodb::Client::with_uri_str(format!("mongodb://127.0.0.1:{port}/?directConnection=true"))
            .await?;
    let coll = plain
        .database("fixtures")
        .collection::<mongodb::bson::Document>("payments");
    coll.drop().await?;
    let docs: Vec<_> = (0..3)
        .map(|i| doc! { "tenantId": "bank1", "amount": 1_000_i64 * (i + 1), "currency": "EUR", "status": "pending" })
        .collect();
    coll.insert_many(docs).await?;
    coll.find_one(doc! { "tenantId": "bank1", "amount": { "$gte": 2_000_i64 } })
        .await?;
    for compressor in ["zstd", "zlib", "snappy"] {
        let cport = relay(upstream.clone(), log.clone(), Some(compressor)).await?;
        let client = mongodb::Client::with_uri_str(format!(
            "mongodb://127.0.0.1:{cport}/?directConnection=true&compressors={compressor}"
        ))
        .await?;
        client
            .database("fixtures")
            .collection::<mongodb::bson::Document>("payments")
            .find_one(doc! { "currency": "EUR" })
            .await?;
    }
    legacy_handshake(port).await?;
    plain.database("fixtures").drop().await?;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let frames = log
        .lock()
        .map_err(|_| anyhow::anyhow!("relay log poisoned"))?
        .clone();
    // (file, opcode, command name, compressor) of the first client frame to keep.
    let wanted: [(&str, i32, &[&str], Option<&str>); 7] = [
        ("handshake_op_query.bin", 2004, &["isMaster", "hello"], None),
        ("handshake_op_msg.bin", 2013, &["isMaster", "hello"], None),
        ("find_op_msg.bin", 2013, &["find"], None),
        ("insert_sequence_op_msg.bin", 2013, &["insert"], None),
        ("find_zstd_op_compressed.bin", 2012, &["find"], Some("zstd")),
        ("find_zlib_op_compressed.bin", 2012, &["find"], Some("zlib")),
        (
            "find_snappy_op_compressed.bin",
            2012,
            &["find"],
            Some("snappy"),
        ),
    ];
    let matches = |d: Dir, f: &Bytes, op: i32, names: &[&str], comp: Option<&str>| {
        d == Dir::ToServer
            && f[12..16] == op.to_le_bytes()
            && matches!(command_of(f), Some((n, c)) if names.contains(&n.as_str()) && c.as_deref() == comp)
    };
    std::fs::create_dir_all(&out)?;
    for (name, op, names, comp) in wanted {
        let Some(index) = frames
            .iter()
            .position(|(d, f)| matches(*d, f, op, names, comp))
        else {
            bail!("no frame captured for {name}")
        };
        std::fs::write(out.join(name), &frames[index].1)?;
        println!("{name}: {} bytes", frames[index].1.len());
        // The server's answer to it: the next frame to the client whose responseTo is its id.
        let request_id = i32::from_le_bytes([
            frames[index].1[4],
            frames[index].1[5],
            frames[index].1[6],
            frames[index].1[7],
        ]);
        if let Some((_, reply)) = frames.iter().skip(index).find(|(d, f)| {
            *d == Dir::ToClient && i32::from_le_bytes([f[8], f[9], f[10], f[11]]) == request_id
        }) {
            let reply_name = name.replace(".bin", ".reply.bin");
            std::fs::write(out.join(&reply_name), reply)?;
            println!("{reply_name}: {} bytes", reply.len());
        }
    }
    Ok(())
}
