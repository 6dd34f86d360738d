//! Writing a reply to a client that may not be reading.
//!
//! The connection task writes each reply before it reads the next command, so a client that
//! stops reading (by accident or to pin resources) would park the task in `write_all` for ever.
//! [`write_reply`] bounds how long a write may go without progress.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Writes a whole reply, closing the connection (`TimedOut`) when the client accepts no bytes
/// for `stall`. A client that never reads would otherwise park this task in `write_all` for
/// ever, holding its tenant's connection slot and the encoded reply (up to
/// `max_message_size`). The bound is on progress, not on the whole write, so a slow reader
/// of a large reply is not cut off while it keeps reading.
pub(super) async fn write_reply<S>(
    stream: &mut S,
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncWrite + Unpin,
{
    let timed_out = || std::io::Error::from(std::io::ErrorKind::TimedOut);
    while !bytes.is_empty() {
        let n = tokio::time::timeout(stall, stream.write(bytes))
            .await
            .map_err(|_| timed_out())??;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = bytes.get(n..).unwrap_or_default();
    }
    // TLS streams may hold the last record until flushed.
    tokio::time::timeout(stall, stream.flush())
        .await
        .map_err(|_| timed_out())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_reader_that_never_reads_times_out() {
        // The pipe holds 64 bytes; the other 960 can never be written.
        let (mut proxy_side, _client_side) = tokio::io::duplex(64);
        let reply = vec![7u8; 1024];
        let started = std::time::Instant::now();
        let err = write_reply(&mut proxy_side, &reply, Duration::from_millis(100))
            .await
            .expect_err("a write nobody reads must not succeed");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bounded by the stall time"
        );
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_gets_the_whole_reply() {
        let (mut proxy_side, mut client_side) = tokio::io::duplex(64);
        let reply: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
        let expected = reply.clone();
        // 32 reads of 64 bytes, 10 ms apart: about 320 ms in all, each step well inside the
        // 150 ms stall bound, the whole far beyond it.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0u8; 64];
            while got.len() < 2048 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let n = client_side.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the writer closed early");
                got.extend_from_slice(&chunk[..n]);
            }
            got
        });
        write_reply(&mut proxy_side, &reply, Duration::from_millis(150))
            .await
            .expect("progress within the stall bound is enough");
        assert_eq!(reader.await.expect("reader"), expected);
    }
}
