//! A minimal MongoDB-wire responder, used only by `benches/proxy_overhead.rs`.
//!
//! It answers the handshake, returns one canned document for every `find`, and `ok: 1` for
//! anything else (the proxy's start-up index builds, registry seeding and audit inserts). It
//! does no storage work, so what the benchmark measures through tenantgate is tenantgate.
//! The `tenants` collection gets a canned enterprise tenant `bank1` with limits high enough
//! never to throttle the benchmark. A `find` on the collection `stall` is never answered
//! (tests/proxy_timeouts.rs uses that to make the upstream hang).
#![allow(dead_code)]

use bson::{RawDocumentBuf, rawdoc};
use bytes::BytesMut;
use tenantgate_wire::{Limits, Message, OpMsg, OpReply, Payload, RawDoc, ReplyFlags, split_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn hello() -> RawDocumentBuf {
    rawdoc! {
        "helloOk": true, "ismaster": true, "isWritablePrimary": true,
        "maxBsonObjectSize": 16_777_216, "maxMessageSizeBytes": 48_000_000,
        "maxWriteBatchSize": 100_000, "localTime": bson::DateTime::now(),
        "logicalSessionTimeoutMinutes": 30, "connectionId": 1,
        "minWireVersion": 0, "maxWireVersion": 21, "readOnly": false, "ok": 1.0,
    }
}

fn tenant() -> RawDocumentBuf {
    rawdoc! {
        "_id": bson::oid::ObjectId::from_bytes([9; 12]),
        "slug": "bank1", "name": "First National Bank", "tier": "enterprise",
        "domains": [], "settings": {},
        "limits": { "commandsPerSecond": 1_000_000_000, "connections": 100_000, "inFlight": 100_000 },
        "isActive": true,
        "createdAt": bson::DateTime::from_millis(1_700_000_000_000),
        "updatedAt": bson::DateTime::from_millis(1_700_000_000_000),
    }
}

fn payment() -> RawDocumentBuf {
    rawdoc! {
        "_id": bson::oid::ObjectId::from_bytes([1; 12]),
        "tenantId": "bank1", "amount": 12_550_i64, "currency": "EUR", "status": "succeeded",
        "customerId": "cus_0001", "description": "Invoice 2026-11",
        "createdAt": bson::DateTime::from_millis(1_790_000_000_000),
        "updatedAt": bson::DateTime::from_millis(1_790_000_000_000),
        "deletedAt": bson::RawBson::Null,
    }
}

fn cursor(ns: &str, doc: RawDocumentBuf) -> RawDocumentBuf {
    rawdoc! { "cursor": { "firstBatch": [doc], "id": 0_i64, "ns": ns }, "ok": 1.0 }
}

/// Serves on `listener` forever.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let limits = Limits::default();
            let (mut rd, mut wr) = stream.into_split();
            let mut buf = BytesMut::with_capacity(16 * 1024);
            let canned_find = cursor("payments.payments", payment());
            let canned_tenant = cursor("tenantgate.tenants", tenant());
            loop {
                let frame = match split_frame(&mut buf, &limits) {
                    Ok(Some(f)) => f,
                    Ok(None) => match rd.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => continue,
                    },
                    Err(_) => return,
                };
                let Ok(msg) = Message::decode(frame, &limits) else {
                    return;
                };
                let reply = match &msg.payload {
                    Payload::Query(_) => Message::new(
                        1,
                        msg.request_id,
                        Payload::Reply(OpReply {
                            flags: ReplyFlags::default(),
                            cursor_id: 0,
                            starting_from: 0,
                            documents: vec![RawDoc::from_buf(hello()).expect("valid")],
                        }),
                    ),
                    Payload::Msg(m) => {
                        if m.flags().more_to_come() {
                            continue;
                        }
                        let body = match m.command_name().unwrap_or("") {
                            "hello" | "isMaster" | "ismaster" => hello(),
                            "find" => {
                                let coll = m.body().as_raw().get_str("find").unwrap_or("");
                                if coll == "stall" {
                                    // Hold the connection open and never answer.
                                    std::future::pending::<()>().await;
                                    return;
                                }
                                if coll == "tenants" {
                                    canned_tenant.clone()
                                } else {
                                    canned_find.clone()
                                }
                            }
                            _ => rawdoc! { "n": 1, "nModified": 0, "ok": 1.0 },
                        };
                        Message::new(
                            1,
                            msg.request_id,
                            Payload::Msg(OpMsg::new(RawDoc::from_buf(body).expect("valid"))),
                        )
                    }
                    _ => return,
                };
                let Ok(bytes) = reply.to_bytes() else {
                    return;
                };
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}
