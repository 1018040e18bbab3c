//! The controller's admin listener: `/healthz` (the process serves), `/readyz` (every
//! watch has listed and a pass has run; a standby replica is ready too, it only does
//! not write) and `/metrics` (Prometheus text format).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use gatehouse_proxy::admin::{OPENMETRICS, TEXT};
use gatehouse_proxy::http1::serve_http1;
use gatehouse_proxy::respond::Reply;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
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
    shutdown: watch::Receiver<bool>,
) {
    serve_http1(listener, shutdown, move |req| {
        let response = respond(&health, &registry, &req);
        async move { response }
    })
    .await
}

fn respond(health: &Health, registry: &Registry, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = match req.uri().path() {
        "/healthz" => Reply::text(StatusCode::OK, "ok\n", TEXT),
        "/readyz" => {
            let status = if health.is_ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Reply::text(status, health.body().to_string(), "application/json")
        }
        "/metrics" => {
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, registry) {
                Ok(()) => Reply::text(StatusCode::OK, out, OPENMETRICS),
                Err(_) => Reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                    TEXT,
                ),
            }
        }
        _ => Reply::text(StatusCode::NOT_FOUND, "not found\n", TEXT),
    };
    reply.into_full()
}
