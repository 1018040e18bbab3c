//! The per-request pipeline, in named steps: [`route`](crate::router::route) → either
//! [`oauth2::serve`] (an OAuth2 endpoint of a protected route) or [`enforce::check`] (a
//! proxied request on a protected route) → [`upstream::forward`]. Every rejection
//! becomes a response in one place ([`Rejection::into_response`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;

use super::observe::{Observed, Record};
use crate::access_log::AccessLog;
use crate::authz;
use crate::body::ProxyBody;
use crate::compiled::{Compiled, CompiledRx};
use crate::error::Rejection;
use crate::forwarded::ConnInfo;
use crate::headers::{
    drop_connection_listed, strip_identity, X_CONSUMER_ID, X_CREDENTIAL_IDENTIFIER,
};
use crate::metrics::Metrics;
use crate::store::{TokenStore, UnixTime};
use crate::{enforce, filters, grpc, login, oauth2, router, upstream};

/// Headers the proxy may add to a request before forwarding it: `X-Request-Id`,
/// four `X-Forwarded-*`, up to six identity headers, `Host`.
const HEADERS_ADDED: usize = 12;

/// Request limits from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bound on bodies read for `/oauth2/*` requests and form-encoded token lookups.
    pub body: super::limits::BodyLimit,
}

/// What every request of one worker shares (one instance per worker, so reference
/// counting on it never bounces between cores).
pub struct Shared {
    pub compiled: CompiledRx,
    pub store: Arc<dyn TokenStore>,
    pub limits: Limits,
    pub metrics: Metrics,
    pub access_log: AccessLog,
    /// Security events (`--audit-log`).
    pub audit: crate::audit::AuditLog,
    /// Built-in sign-in (`oauth2.login`): login key and provider cache.
    pub signin: Arc<login::Signin>,
}

/// Serve one request; never fails (every failure is a response). gRPC calls get the
/// proxy's refusals as gRPC statuses.
pub async fn handle(
    shared: &Arc<Shared>,
    conn: &ConnInfo,
    mut req: Request<Incoming>,
) -> Response<Observed> {
    // Room for what the proxy adds (`X-Request-Id`, `X-Forwarded-*`, identity
    // headers), so the map grows at most once; at the size limit it grows as it goes.
    let _ = req.headers_mut().try_reserve(HEADERS_ADDED);
    let mut record = Record::start(shared, conn, &mut req);
    let is_grpc = grpc::is_grpc(req.headers());
    let resp = match serve(shared, conn, req, &mut record).await {
        Ok(resp) => resp,
        Err(rejection) => {
            shared.metrics.rejected(&rejection);
            record.outcome = rejection.reason();
            tracing::debug!(peer = %conn.peer, reason = rejection.reason(), "Request rejected");
            if is_grpc {
                grpc::reply(&rejection)
            } else {
                rejection.reply()
            }
            .into_response()
        }
    };
    record.finish(resp)
}

async fn serve(
    shared: &Shared,
    conn: &ConnInfo,
    req: Request<Incoming>,
    record: &mut Record,
) -> Result<Response<ProxyBody>, Rejection> {
    // Clone the Arc out of the watch at once: the borrow guard must not live across
    // an await, and the request keeps this config to its end even if a new one lands.
    let compiled: Arc<Compiled> = shared
        .compiled
        .borrow()
        .clone()
        .ok_or(Rejection::NotReady)?;
    let (mut parts, body) = req.into_parts();
    // Before anything can set them: identity headers only ever come from us, and a
    // client's `Connection` list may name only headers the client sent.
    strip_identity(&mut parts.headers);
    drop_connection_listed(&mut parts.headers);
    // External authorization answers for a proxy in front; never routed or proxied.
    if authz::is_authz_path(parts.uri.path()) {
        record.outcome = "authz";
        let store = shared.store.as_ref();
        let now = unix_now();
        // Boxed, as every branch below that a proxied request does not take: an
        // inline future would make the request's future (moved and copied at every
        // step of every request) as large as the largest of them.
        return Ok(Box::pin(authz::serve(
            &compiled,
            store,
            &shared.signin,
            &shared.metrics,
            conn,
            &parts,
            now,
        ))
        .await);
    }
    // Discovery documents whose location sits outside the route's path (RFC 8414,
    // RFC 9728); a path naming no OAuth2 route goes on to normal routing.
    if let Some((document, target)) = oauth2::well_known::split(parts.uri.path()) {
        if let Some(reply) = oauth2::well_known::serve(&compiled, document, target, conn, &parts) {
            record.outcome = "oauth2";
            shared.metrics.oauth2();
            return Ok(reply.into_response());
        }
    }
    let uri = parts.uri.clone();
    let routed = router::route(&compiled.router, &parts.method, &uri, &parts.headers)?;
    let route = &compiled.snapshot.routes[routed.index];
    record.route = Some((compiled.clone(), routed.index));
    let mut body = Either::Left(body);
    // A redirect route answers before OAuth2: an HTTP→HTTPS redirect needs no token.
    if let Some(redirect) = &route.filters.redirect {
        record.outcome = "redirect";
        let scheme = if conn.tls { "https" } else { "http" };
        let host = routed.host_str().unwrap_or("localhost");
        let reply = filters::redirect(
            redirect,
            scheme,
            host,
            routed.path.matched(),
            routed.prefix_len,
            uri.query(),
        );
        return Ok(reply.into_response());
    }

    if let Some(oauth) = &route.oauth2 {
        let now = unix_now();
        let body_limit = shared.limits.body;
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
                let bytes =
                    Box::pin(crate::body::read_limited(&parts.headers, body, body_limit)).await?;
                let issuer = oauth2::base_url(oauth, &routed, conn, &parts.headers);
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
                record.outcome = "oauth2";
                record.log_query = false;
                let out = Box::pin(login::serve(&ctx, request)).await;
                shared.metrics.oauth2();
                return Ok(out.into_response());
            }
            let gate = if route.auth_only {
                Ok(login::gate::Gate::Enforce)
            } else {
                Box::pin(login::gate::check(&ctx, &mut parts, routed.prefix())).await
            };
            match gate {
                Ok(login::gate::Gate::Enforce) => {}
                Ok(login::gate::Gate::Pass) => signed_in = true,
                Ok(login::gate::Gate::SignIn(resp)) => return Ok(resp.into_response()),
                Err(login::LoginError::Store(_)) => return Err(Rejection::StoreUnavailable),
                Err(_) => return Err(Rejection::BadRequest),
            }
        }
        let endpoint =
            oauth2::Endpoint::from_suffix(routed.suffix()).filter(|e| e.served_by(oauth));
        if let Some(endpoint) = endpoint {
            record.outcome = "oauth2";
            record.log_query = false;
            let site = oauth2::Site {
                audit: &shared.audit,
                counters: &shared.metrics.oauth_counters,
                route,
                oauth,
                catalog: &compiled.catalog,
                store: shared.store.as_ref(),
                documents: &shared.signin.documents,
                now,
            };
            let resp = Box::pin(oauth2::serve(
                &site, endpoint, &routed, conn, &parts, body, body_limit,
            ))
            .await?;
            shared.metrics.oauth2();
            return Ok(resp);
        }
        // Auth-only routes answer their endpoints (above) and external authorization;
        // translate only makes routes with OAuth2 auth-only, so nothing else reaches here.
        if route.auth_only {
            return Err(Rejection::NoRoute);
        }
        let ctx = enforce::Context {
            route,
            oauth,
            rules: &compiled.rules[routed.index],
            catalog: &compiled.catalog,
            store: shared.store.as_ref(),
            suffix: routed.suffix(),
            slashes_are_separators_too: routed.path.encoded_slash(),
            now,
            body_limit,
        };
        if !signed_in {
            body = match enforce::check(&ctx, &mut parts, body).await {
                Ok(body) => body,
                Err(rejection) => {
                    tracing::info!(route.id = %route.id, peer = %conn.peer, reason = rejection.reason(), "Request denied");
                    return Err(rejection.with_resource_metadata(|| {
                        oauth2::well_known::resource_metadata_for(
                            route, oauth, &routed, conn, &parts,
                        )
                    }));
                }
            };
        }
        if record.logging() {
            record.consumer = header_string(&parts.headers, X_CONSUMER_ID);
            record.client_id = header_string(&parts.headers, X_CREDENTIAL_IDENTIFIER);
        }
    }

    let upstreams = &compiled.upstreams[routed.index];
    let mut trace = upstream::Trace::default();
    let result = upstream::forward(
        upstreams,
        route,
        &routed,
        conn,
        parts,
        body,
        &shared.metrics.tunnels,
        &mut trace,
    )
    .await;
    record.upstream = trace.address;
    record.upstream_time = trace.elapsed;
    if trace.upgraded {
        record.outcome = "upgraded";
    }
    let resp = result?;
    shared.metrics.proxied();
    Ok(resp)
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
