//! The tokio codec over a real byte stream: frames split across arbitrary reads come out whole,
//! and a protocol violation surfaces as an error instead of a hang or a panic.
#![cfg(feature = "codec")]

use bson::rawdoc;
use futures::{SinkExt, StreamExt};
use tenantgate_wire::codec::{CodecError, FrameCodec, MessageCodec};
use tenantgate_wire::{Limits, Message, OpMsg, Payload, RawDoc, WireError};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

fn ping(id: i32) -> Message {
    let body =
        RawDoc::from_buf(rawdoc! { "ping": 1, "$db": "admin", "pad": "x".repeat(id as usize * 7) })
            .expect("valid");
    Message::new(id, 0, Payload::Msg(OpMsg::new(body)))
}

#[tokio::test]
async fn messages_written_one_byte_at_a_time_arrive_whole() {
    let (client, server) = tokio::io::duplex(64);
    let sent: Vec<Message> = (1..=20).map(ping).collect();
    let bytes: Vec<u8> = sent
        .iter()
        .flat_map(|m| m.to_bytes().expect("encodes").to_vec())
        .collect();
    let writer = tokio::spawn(async move {
        let mut client = client;
        for b in bytes {
            client.write_all(&[b]).await.expect("write");
        }
    });
    let received: Vec<Message> = FramedRead::new(server, MessageCodec::new(Limits::default()))
        .map(|m| m.expect("decodes"))
        .collect()
        .await;
    writer.await.expect("writer finished");
    assert_eq!(received, sent);
}

#[tokio::test]
async fn framed_writer_and_frame_codec_agree() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut sink = FramedWrite::new(client, MessageCodec::default());
    for id in 1..=5 {
        sink.send(ping(id)).await.expect("send");
    }
    drop(sink);
    let frames: Vec<_> = FramedRead::new(server, FrameCodec::default())
        .map(|f| f.expect("frame"))
        .collect()
        .await;
    assert_eq!(frames.len(), 5);
    for (i, f) in frames.into_iter().enumerate() {
        assert_eq!(f, ping(i as i32 + 1).to_bytes().expect("encodes"));
    }
}

#[tokio::test]
async fn an_impossible_length_is_an_error_not_a_wait() {
    let (mut client, server) = tokio::io::duplex(64);
    client
        .write_all(&(-5i32).to_le_bytes())
        .await
        .expect("write");
    let mut reader = FramedRead::new(server, MessageCodec::default());
    let first = reader.next().await.expect("an item");
    assert!(
        matches!(
            first,
            Err(CodecError::Wire(WireError::MessageTooShort { .. }))
        ),
        "{first:?}"
    );
}

#[tokio::test]
async fn the_encoder_refuses_messages_over_the_limit() {
    let (client, _server) = tokio::io::duplex(64);
    let limits = Limits {
        max_message_size: 64,
        ..Limits::default()
    };
    let mut sink = FramedWrite::new(client, MessageCodec::new(limits));
    let err = sink.send(ping(20)).await.expect_err("too large");
    assert!(
        matches!(err, CodecError::Wire(WireError::MessageTooLarge { .. })),
        "{err}"
    );
}
