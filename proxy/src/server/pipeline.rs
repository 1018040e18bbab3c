//! The per-request pipeline, in named steps: [`route`](crate::router::route) → either
//! [`oauth2::serve`] (an OAuth2 endpoint of a protected route) or [`enforce::check`] (a
//! proxied request on a protected route) → [`upstream::forward`]. Every rejection
//! becomes a response in one place ([`Rejection::into_response`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::body::ProxyBody;
use crate::compiled::{Compiled, CompiledRx};
use crate::error::Rejection;
use crate::forwarded::ConnInfo;
use crate::headers::strip_identity;
use crate::metrics::Metrics;
use crate::store::{TokenStore, UnixTime};
use crate::{enforce, login, oauth2, router, upstream};

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
    // Before anything can set them: identity headers only ever come from us.
    strip_identity(&mut parts.headers);
    let uri = parts.uri.clone();
    let routed = router::route(&compiled.router, &uri, &parts.headers).ok_or(Rejection::NoRoute)?;
    let route = &compiled.snapshot.routes[routed.index];
    let mut body = Either::Left(body);

    if let Some(oauth) = &route.oauth2 {
        let now = unix_now();
        let max_body_bytes = shared.limits.max_oauth_body_bytes;
        let mut signed_in = false;
        if let Some(login) = &oauth.login {
            let ctx = login::Ctx {
                signin: &shared.signin,
                route,
                oauth,
                login,
                catalog: &compiled.catalog,
                store: shared.store.as_ref(),
                now,
            };
            if let Some(endpoint) = login::Endpoint::from_request(&parts.method, routed.suffix()) {
                let bytes = crate::body::read_limited(&parts.headers, body, max_body_bytes).await?;
                let issuer = oauth2::issuer(&routed, conn, &parts.headers);
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
                return Ok(out.into_response());
            }
            match login::gate::check(&ctx, &mut parts, routed.prefix()).await {
                Ok(login::gate::Gate::Enforce) => {}
                Ok(login::gate::Gate::Pass) => signed_in = true,
                Ok(login::gate::Gate::SignIn(resp)) => return Ok(resp.into_response()),
                Err(login::LoginError::Store(_)) => return Err(Rejection::StoreUnavailable),
                Err(_) => return Err(Rejection::BadRequest),
            }
        }
        if let Some(endpoint) = oauth2::Endpoint::from_suffix(routed.suffix()) {
            let site = oauth2::Site {
                route,
                oauth,
                catalog: &compiled.catalog,
                store: shared.store.as_ref(),
                now,
            };
            let resp =
                oauth2::serve(&site, endpoint, &routed, conn, &parts, body, max_body_bytes).await?;
            shared.metrics.oauth2();
            return Ok(resp);
        }
        let ctx = enforce::Context {
            route,
            oauth,
            rules: &compiled.rules[routed.index],
            catalog: &compiled.catalog,
            store: shared.store.as_ref(),
            suffix: routed.suffix(),
            now,
            max_body_bytes,
        };
        if !signed_in {
            body = enforce::check(&ctx, &mut parts, body).await.inspect_err(|rejection| {
                tracing::info!(route.id = %route.id, peer = %conn.peer, reason = rejection.reason(), "Request denied");
            })?;
        }
    }

    let upstreams = &compiled.upstreams[routed.index];
    let resp = upstream::forward(upstreams, route, &routed, conn, parts, body).await?;
    shared.metrics.proxied();
    Ok(resp)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
