//! The admin listener: `/healthz` (the process serves), `/readyz` (a configuration is
//! loaded and the token store answers) and `/metrics` (Prometheus text format).

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::compiled::CompiledRx;
use crate::http1::serve_http1;
use crate::respond::Reply;
use crate::store::TokenStore;

/// `Content-Type` of the admin pages that are plain text.
pub const TEXT: &str = "text/plain";
/// `Content-Type` of `/metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the admin endpoints report on.
pub struct AdminState {
    pub compiled: CompiledRx,
    pub store: Arc<dyn TokenStore>,
    pub registry: Registry,
    pub metrics: crate::metrics::Metrics,
    /// Whether a TLS listener serves certificates (else none is reported).
    pub serves_tls: bool,
    /// Expiry of `--tls-cert` (or standalone's generated certificate), when serving TLS.
    pub default_certificate: Option<crate::metrics::CertificateExpiry>,
}

/// Serve admin requests until `shutdown` turns true.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: watch::Receiver<bool>) {
    serve_http1(listener, shutdown, move |req| {
        let state = state.clone();
        async move { respond(&state, req).await }
    })
    .await
}

async fn respond(state: &AdminState, req: Request<Incoming>) -> Response<ProxyBody> {
    match req.uri().path() {
        "/healthz" => Reply::text(StatusCode::OK, "ok\n", TEXT).into_response(),
        "/readyz" => readiness(state).await,
        "/metrics" => {
            let current = state.compiled.borrow().clone();
            if let Some(compiled) = &current {
                state.metrics.config_loaded(
                    &compiled.snapshot.revision,
                    compiled.loaded_at,
                    compiled.compile_time,
                );
            }
            let snapshot_certificates = current
                .iter()
                .filter(|_| state.serves_tls)
                .flat_map(|c| c.certs.expiries());
            state.metrics.certificates(
                state
                    .default_certificate
                    .iter()
                    .chain(snapshot_certificates),
            );
            let mut out = String::new();
            match prometheus_client::encoding::text::encode(&mut out, &state.registry) {
                Ok(()) => Reply::text(StatusCode::OK, out, OPENMETRICS).into_response(),
                Err(_) => Reply::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "metrics encoding failed\n",
                    TEXT,
                )
                .into_response(),
            }
        }
        _ => Reply::text(StatusCode::NOT_FOUND, "not found\n", TEXT).into_response(),
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
    Reply::text(status, body.to_string(), "application/json").into_response()
}
