//! The one small HTTP/1.1 server behind the admin listeners of the proxy and the
//! controller (`/healthz`, `/readyz`, `/metrics`): accept until shutdown, one task per
//! connection, and a short back-off when accepting fails instead of a busy loop.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Pause after a failed accept (usually EMFILE: out of file descriptors) so the loop
/// does not spin while connections close and free some.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serve `service` on `listener` until `shutdown` turns true (or its sender is gone).
pub async fn serve_http1<S, Fut, B>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    service: S,
) where
    S: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "Admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = service(req);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
