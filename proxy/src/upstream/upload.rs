//! The request body on its way upstream, watched so the response timeout starts when
//! the client has finished uploading: a slow upload is not the upstream being slow.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::body::ProxyBody;

/// A request body that reports when it has been sent completely.
pub struct UpstreamBody {
    inner: ProxyBody,
    done: Option<oneshot::Sender<()>>,
}

impl UpstreamBody {
    /// Wrap `inner`; the receiver fires once its last byte has been handed to the
    /// connection (or when the body is dropped unsent). An empty body is sent
    /// already: no receiver (and no channel) then.
    pub fn new(inner: ProxyBody) -> (UpstreamBody, Option<oneshot::Receiver<()>>) {
        if inner.is_end_stream() {
            return (UpstreamBody { inner, done: None }, None);
        }
        let (tx, rx) = oneshot::channel();
        (
            UpstreamBody {
                inner,
                done: Some(tx),
            },
            Some(rx),
        )
    }

    /// Whether the body is empty, so the request can be sent again as it is.
    pub fn is_empty(&self) -> bool {
        self.inner.is_end_stream()
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = <ProxyBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(poll, Poll::Ready(None)) || self.inner.is_end_stream() {
            if let Some(done) = self.done.take() {
                let _ = done.send(());
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
