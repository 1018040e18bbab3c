//! The admin listener: `/healthz` (the process serves), `/readyz` (a configuration is
//! loaded and the token store answers) and `/metrics` (Prometheus text format).

use std::convert::Infallible;
use std::sync::Arc;

use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::{full, ProxyBody};
use crate::compiled::CompiledRx;
use crate::store::TokenStore;

/// What the admin endpoints report on.
pub struct AdminState {
    pub compiled: CompiledRx,
    pub store: Arc<dyn TokenStore>,
    pub registry: Registry,
    pub metrics: crate::metrics::Metrics,
}

/// Serve admin requests until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
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
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(state: &AdminState, req: Request<Incoming>) -> Response<ProxyBody> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readiness(state).await,
        "/metrics" => {
            let current = state.compiled.borrow().clone();
            if let Some(compiled) = current {
                state
                    .metrics
                    .config_loaded(&compiled.snapshot.revision, compiled.loaded_at);
            }
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
                Ok(()) => {
                    let mut resp = text(StatusCode::OK, out);
                    resp.headers_mut().insert(
                        CONTENT_TYPE,
                        HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    resp
                }
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                ),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn readiness(state: &AdminState) -> Response<ProxyBody> {
    let revision = state
        .compiled
        .borrow()
        .as_ref()
        .map(|c| c.snapshot.revision.clone());
    let (status, body) = match revision {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "reason": "no configuration loaded"}),
        ),
        Some(revision) => match state.store.ping().await {
            Ok(()) => (
                StatusCode::OK,
                serde_json::json!({"ready": true, "revision": revision}),
            ),
            Err(error) => {
                tracing::warn!(%error, "Readiness: token store ping failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"ready": false, "reason": "token store unavailable", "revision": revision}),
                )
            }
        },
    };
    let mut resp = text(status, body.to_string());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp
}
