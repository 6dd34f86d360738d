//! A body wrapper that counts the bytes that actually pass through it, for `bandwidth_bytes`:
//! request bodies as the handler reads them, response bodies as they are sent. The count is
//! reported once, when the body is dropped (fully sent, or abandoned by a client that went
//! away — what was sent until then is what is billed).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use http_body::{Frame, SizeHint};

/// Counts bytes and reports them when dropped.
pub struct Counting {
    inner: Body,
    bytes: u64,
    report: Option<Box<dyn FnOnce(u64) + Send>>,
}

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Counting {
    /// Wraps `inner`; `report` receives the byte count.
    pub fn wrap(inner: Body, report: impl FnOnce(u64) + Send + 'static) -> Body {
        Body::new(Counting {
            inner,
            bytes: 0,
            report: Some(Box::new(report)),
        })
    }
}

impl http_body::Body for Counting {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if let Some(report) = self.report.take() {
            report(self.bytes);
        }
    }
}
