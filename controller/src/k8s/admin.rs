//! The controller's admin listener: `/healthz` (the process serves), `/readyz` (every
//! watch has listed and a pass has run; a standby replica is ready too, it only does
//! not write) and `/metrics` (Prometheus text format).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What `/readyz` reports, updated by the controller loop.
pub struct Health {
    ready: AtomicBool,
    revision: Mutex<Option<String>>,
    leader: watch::Receiver<bool>,
}

impl Health {
    /// Not ready, no revision yet.
    pub fn new(leader: watch::Receiver<bool>) -> Self {
        Health {
            ready: AtomicBool::new(false),
            revision: Mutex::new(None),
            leader,
        }
    }

    /// A pass completed and translated to `revision`.
    pub fn passed(&self, revision: &str) {
        *self.revision.lock().expect("health lock is never poisoned") = Some(revision.to_owned());
        self.ready.store(true, Ordering::Release);
    }

    /// Whether a pass has completed.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn body(&self) -> serde_json::Value {
        let revision = self
            .revision
            .lock()
            .expect("health lock is never poisoned")
            .clone();
        serde_json::json!({
            "ready": self.is_ready(),
            "leader": *self.leader.borrow(),
            "revision": revision,
        })
    }
}

/// Serve admin requests until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "Admin accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let health = health.clone();
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = respond(&health, &registry, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = gatehouse_proxy::server::limits::admin_http1()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(health: &Health, registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n", "text/plain"),
        "/readyz" => {
            let status = if health.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            text(status, health.body().to_string(), "application/json")
        }
        "/metrics" => {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, registry) {
                Ok(()) => text(
                    StatusCode::OK,
                    out,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                    "text/plain",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n", "text/plain"),
    }
}

fn text(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
