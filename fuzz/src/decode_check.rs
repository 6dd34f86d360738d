//! The decode fuzz target's body: any byte string, split into frames as a socket read would
//! deliver it, decoded and (for OP_COMPRESSED) decompressed. It must never panic, hang or
//! allocate without bound, and whatever decodes must re-encode to the bytes it came from.
//!
//! The file compiles both in the cargo-fuzz crate and, through `#[path]`, in
//! `wire/tests/fuzz_regressions.rs`, so the checked-in corpus replays in an ordinary `cargo test`.

use bytes::{Bytes, BytesMut};
use tenantgate_wire::{Limits, Message, split_frame};

/// Runs one fuzz input.
pub fn run(data: &[u8]) {
    let limits = Limits {
        max_message_size: 1 << 20,
        ..Limits::default()
    };
    // As one frame handed straight to the decoder.
    check(Bytes::copy_from_slice(data), &limits);
    // As a stream: frames cut off the front of a read buffer until it needs more bytes.
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = split_frame(&mut buf, &limits) {
        check(frame, &limits);
    }
}

fn check(frame: Bytes, limits: &Limits) {
    if let Ok(msg) = Message::decode(frame.clone(), limits) {
        let again = msg.to_bytes().expect("a decoded message encodes");
        assert_eq!(again, frame, "decode -> encode must reproduce the frame");
        if let Ok((inner, _)) = msg.decompressed(limits) {
            let _ = inner.to_bytes();
        }
    }
}
