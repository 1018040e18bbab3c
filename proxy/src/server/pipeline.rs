//! The per-request pipeline: route, then either an OAuth2 endpoint or (enforcement
//! then) the upstream call. Every rejection is turned into a response in one place
//! ([`Rejection::into_response`]).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::body::{full, ProxyBody};
use crate::compiled::{Compiled, CompiledRx};
use crate::enforce;
use crate::error::Rejection;
use crate::forwarded::{ConnInfo, X_FORWARDED_HOST};
use crate::headers::{strip_hop_by_hop, strip_identity};
use crate::login;
use crate::metrics::Metrics;
use crate::oauth2::{self, OAuthRequest};
use crate::router::RouteMatch;
use crate::store::{TokenStore, UnixTime};
use gatehouse_config::path::normalize_path;

/// Request limits from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body read for `/oauth2/*` requests and form-encoded token lookups.
    pub max_oauth_body_bytes: usize,
}

/// What every request of one worker shares (one instance per worker, so reference
/// counting on it never bounces between cores).
pub struct Shared {
    pub compiled: CompiledRx,
    pub store: Arc<dyn TokenStore>,
    pub limits: Limits,
    pub metrics: Metrics,
    /// Built-in sign-in (`oauth2.login`): login key and provider cache.
    pub signin: Arc<login::Signin>,
}

/// Serve one request; never fails (every failure is a response).
pub async fn handle(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    match serve(shared, conn, req).await {
        Ok(resp) => resp,
        Err(rejection) => {
            shared.metrics.rejected(&rejection);
            tracing::debug!(peer = %conn.peer, reason = rejection.reason(), "Request rejected");
            rejection.into_response()
        }
    }
}

async fn serve(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Rejection> {
    // Clone the Arc out of the watch at once: the borrow guard must not live across
    // an await, and the request keeps this config to its end even if a new one lands.
    let compiled: Arc<Compiled> = shared
        .compiled
        .borrow()
        .clone()
        .ok_or(Rejection::NotReady)?;
    let (mut parts, body) = req.into_parts();
    strip_identity(&mut parts.headers);

    let uri = parts.uri.clone();
    let host_value: Option<HeaderValue> = match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => parts.headers.get(HOST).cloned(),
    };
    let host = host_value.as_ref().and_then(|h| h.to_str().ok());
    let path: Cow<str> = normalize_path(uri.path());
    let matched: RouteMatch = compiled
        .router
        .lookup(host, &path)
        .ok_or(Rejection::NoRoute)?;
    let route = &compiled.snapshot.routes[matched.index];
    let suffix = matched.suffix(&path);
    let mut body = Either::Left(body);

    if let Some(oauth) = &route.oauth2 {
        // The route's externally visible base URL: the issuer in metadata and `iss`.
        // Built only for endpoint requests, never on the proxied hot path.
        let issuer_of = |headers: &http::HeaderMap| {
            let scheme = conn.client_scheme(headers);
            let public_host = match headers.get(X_FORWARDED_HOST).filter(|_| conn.trusted) {
                Some(h) => h.to_str().ok(),
                None => host,
            }
            .unwrap_or("localhost");
            format!("{scheme}://{public_host}{}", &path[..matched.prefix_len])
        };
        let mut signed_in = false;
        if let Some(login) = &oauth.login {
            let ctx = login::Ctx {
                signin: &shared.signin,
                route,
                oauth,
                login,
                catalog: &compiled.catalog,
                store: shared.store.as_ref(),
                now: unix_now(),
            };
            if let Some(endpoint) = login::Endpoint::from_request(&parts.method, suffix) {
                let bytes =
                    enforce::read_limited(&parts.headers, body, shared.limits.max_oauth_body_bytes)
                        .await?;
                let issuer = issuer_of(&parts.headers);
                let request = login::LoginRequest {
                    endpoint,
                    headers: &parts.headers,
                    query: uri.query(),
                    body: &bytes,
                    https: conn.tls
                        || (conn.forwarded_https(&parts.headers)
                            && oauth.accept_http_if_already_terminated),
                    base: &issuer,
                };
                let out = login::serve(&ctx, request).await;
                shared.metrics.oauth2();
                return Ok(oauth_response(out));
            }
            match login::gate::check(&ctx, &mut parts, &path[..matched.prefix_len]).await {
                Ok(login::gate::Gate::Enforce) => {}
                Ok(login::gate::Gate::Pass) => signed_in = true,
                Ok(login::gate::Gate::SignIn(resp)) => return Ok(oauth_response(resp)),
                Err(login::LoginError::Store(_)) => return Err(Rejection::StoreUnavailable),
                Err(_) => return Err(Rejection::BadRequest),
            }
        }
        if let Some(endpoint) = oauth2::Endpoint::from_suffix(suffix) {
            let bytes =
                enforce::read_limited(&parts.headers, body, shared.limits.max_oauth_body_bytes)
                    .await?;
            let request = OAuthRequest {
                endpoint,
                method: parts.method.clone(),
                query: uri.query().map(str::to_owned),
                content_type: header_string(&parts.headers, CONTENT_TYPE),
                authorization: header_string(&parts.headers, AUTHORIZATION),
                body: bytes,
                tls: conn.tls,
                forwarded_https: conn.forwarded_https(&parts.headers),
                issuer: issuer_of(&parts.headers),
            };
            let out = oauth2::handle(
                request,
                route,
                oauth,
                &compiled.catalog,
                shared.store.as_ref(),
                unix_now(),
            )
            .await;
            shared.metrics.oauth2();
            return Ok(oauth_response(out));
        }
        let ctx = enforce::Context {
            route,
            oauth,
            catalog: &compiled.catalog,
            store: shared.store.as_ref(),
            suffix,
            now: unix_now(),
            max_body_bytes: shared.limits.max_oauth_body_bytes,
        };
        if !signed_in {
            body = enforce::enforce(&ctx, &mut parts, body).await.inspect_err(|rejection| {
                tracing::info!(route.id = %route.id, peer = %conn.peer, reason = rejection.reason(), "Request denied");
            })?;
        }
    }

    // Build the upstream request.
    let upstreams = &compiled.upstreams[matched.index];
    let endpoint = upstreams.pick()?;
    let upstream_path = if route.strip_path { suffix } else { &path };
    // Enforcement may have rewritten the query (hide_credentials), so read it again.
    let target = endpoint.origin_uri(upstream_path, parts.uri.query())?;
    strip_hop_by_hop(&mut parts.headers);
    conn.set_forwarded_headers(&mut parts.headers, host_value.as_ref());
    let upstream_host = match (&host_value, route.preserve_host) {
        (Some(h), true) => h.clone(),
        _ => endpoint.host().clone(),
    };
    parts.headers.insert(HOST, upstream_host);
    parts.uri = target;
    let mut resp = upstreams
        .send(endpoint, Request::from_parts(parts, body))
        .await?;
    strip_hop_by_hop(resp.headers_mut());
    shared.metrics.proxied();
    Ok(resp.map(Either::Left))
}

fn oauth_response(out: oauth2::OAuthResponse) -> Response<ProxyBody> {
    let mut resp = Response::new(full(out.body));
    *resp.status_mut() = out.status;
    for (name, value) in out.headers {
        resp.headers_mut().append(name, value);
    }
    resp
}

fn header_string(headers: &http::HeaderMap, name: http::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
