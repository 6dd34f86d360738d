//! Cutting complete frames out of a connection's read buffer.
//!
//! The length prefix is checked as soon as its four bytes arrive — before the rest of the
//! message is waited for or any space is reserved — so a hostile length never makes the proxy
//! buffer more than the configured maximum.

use bytes::{Bytes, BytesMut};

use crate::error::WireError;
use crate::header::HEADER_LEN;
use crate::limits::Limits;

/// Splits the next complete message off the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (having reserved room for the rest of the frame),
/// `Ok(Some(frame))` with the whole message, header included, or an error when the declared length
/// is impossible; after an error the stream position is unknown and the connection must close.
pub fn split_frame(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Bytes>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let declared = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if declared < HEADER_LEN as i32 {
        return Err(WireError::MessageTooShort {
            length: i64::from(declared),
        });
    }
    let len = declared as usize;
    if len > limits.max_message_size {
        return Err(WireError::MessageTooLarge {
            length: len as u64,
            max: limits.max_message_size,
        });
    }
    if buf.len() < len {
        buf.reserve(len - buf.len());
        return Ok(None);
    }
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_the_whole_frame_then_splits_exactly() {
        let mut buf = BytesMut::new();
        let limits = Limits::default();
        assert_eq!(split_frame(&mut buf, &limits), Ok(None));
        buf.extend_from_slice(&20i32.to_le_bytes());
        buf.extend_from_slice(&[0; 10]);
        assert_eq!(split_frame(&mut buf, &limits), Ok(None));
        buf.extend_from_slice(&[1, 2, 3, 4, 5, 6, 9, 9]);
        let frame = split_frame(&mut buf, &limits)
            .expect("valid length")
            .expect("complete");
        assert_eq!(frame.len(), 20);
        assert_eq!(&buf[..], &[9, 9]);
    }

    #[test]
    fn refuses_short_negative_and_oversized_lengths_before_buffering() {
        let limits = Limits::default();
        for bad in [-1i32, 0, 15, i32::MIN] {
            let mut buf = BytesMut::from(&bad.to_le_bytes()[..]);
            assert!(matches!(
                split_frame(&mut buf, &limits),
                Err(WireError::MessageTooShort { .. })
            ));
        }
        let mut buf = BytesMut::from(&48_000_001i32.to_le_bytes()[..]);
        assert!(matches!(
            split_frame(&mut buf, &limits),
            Err(WireError::MessageTooLarge { .. })
        ));
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for a refused frame"
        );
    }
}
