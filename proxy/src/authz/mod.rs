//! External authorization: Gatehouse answers "may this request pass?" for another proxy
//! in front (nginx `auth_request`, ingress-nginx `auth-url`, Traefik ForwardAuth, Envoy
//! ext_authz / Gateway API `ExternalAuth`), under the reserved prefix
//! `/_gatehouse/authz/`.
//!
//! One decision, three dialects: [`dialect`] reads the original method, host, path and
//! query; the route is then chosen by the same router as a proxied request, and the
//! same enforcement code decides. Allowed → 200 with the identity headers for the
//! fronting proxy to copy upstream; denied → the very 401/403 inline enforcement
//! answers; no route → 404; store down → 503. No request body is ever read (a token in
//! a form body is not seen here), and a token-cache hit does no store round trip,
//! exactly as inline.
//!
//! Only peers in `--trusted-proxies` may ask: anyone else could otherwise probe which
//! tokens are valid, or read the identity of a stolen token, at no risk.

pub mod dialect;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use crate::body::{empty, ProxyBody};
use crate::compiled::Compiled;
use crate::enforce;
use crate::error::Rejection;
use crate::forwarded::ConnInfo;
use crate::headers::IDENTITY_HEADERS;
use crate::login::{self, gate::Gate, Signin};
use crate::metrics::Metrics;
use crate::respond::Reply;
use crate::router;
use crate::store::{TokenStore, UnixTime};

pub use dialect::{Dialect, DialectError, Original, PREFIX};

/// A request that is allowed: the identity headers to send upstream (empty for a route
/// without OAuth2, which lets every request pass inline too).
#[derive(Debug, Default)]
pub struct Allowed {
    pub identity: HeaderMap,
}

/// Why no "allowed" answer was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The peer is not in `--trusted-proxies`.
    #[error("peer is not a trusted proxy")]
    Untrusted,
    /// A path under the prefix that names no endpoint.
    #[error("unknown external authorization endpoint")]
    UnknownEndpoint,
    /// `auth-request` called with something other than GET or HEAD.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The decision request does not describe an original request.
    #[error(transparent)]
    BadRequest(#[from] DialectError),
    /// The original host and path match no route.
    #[error("no route matches the original request")]
    NoRoute,
    /// Enforcement said no (or could not decide): the same answer as inline.
    #[error("{0}")]
    Denied(Rejection),
    /// A browser without a sign-in session on a `requireSession` route: sent to sign in
    /// (`302` where the fronting proxy passes it on, `401` with `Location` for nginx's
    /// `auth_request`, which only passes 401 and 403).
    #[error("sign-in required")]
    SignIn {
        status: StatusCode,
        location: HeaderValue,
    },
}

impl Refusal {
    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Untrusted => "authz_untrusted",
            Refusal::UnknownEndpoint => "authz_unknown_endpoint",
            Refusal::MethodNotAllowed => "authz_method",
            Refusal::BadRequest(_) => "authz_bad_request",
            Refusal::NoRoute => "authz_no_route",
            Refusal::SignIn { .. } => "authz_sign_in",
            // Kept apart from inline denials, so a dashboard can tell the two paths apart.
            Refusal::Denied(r) => match r {
                Rejection::TokenMissing { .. } => "authz_token_missing",
                Rejection::TokenInvalid { .. } => "authz_token_invalid",
                Rejection::InsufficientScope { .. } => "authz_insufficient_scope",
                Rejection::StoreUnavailable => "authz_store_unavailable",
                _ => "authz_error",
            },
        }
    }
}

/// Whether a request path is under the reserved prefix (checked before routing, so no
/// route can shadow the endpoints, and no endpoint request is ever proxied).
pub fn is_authz_path(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// Answer one external authorization request: decide, count, log a refusal, respond.
pub async fn serve(
    compiled: &Compiled,
    store: &dyn TokenStore,
    signin: &Signin,
    metrics: &Metrics,
    conn: &ConnInfo,
    parts: &Parts,
    now: UnixTime,
) -> Response<ProxyBody> {
    let decision = decide(compiled, store, signin, conn, parts, now).await;
    match &decision {
        Ok(_) => metrics.outcome("authz_allowed"),
        Err(refusal) => {
            metrics.outcome(refusal.reason());
            tracing::info!(peer = %conn.peer, reason = refusal.reason(), "Authorization denied");
        }
    }
    into_response(decision)
}

/// Decide one external authorization request. `parts` are the decision request's,
/// with client-sent identity headers already removed.
pub async fn decide(
    compiled: &Compiled,
    store: &dyn TokenStore,
    signin: &Signin,
    conn: &ConnInfo,
    parts: &Parts,
    now: UnixTime,
) -> Result<Allowed, Refusal> {
    if !conn.trusted {
        return Err(Refusal::Untrusted);
    }
    let dialect = Dialect::from_path(parts.uri.path()).ok_or(Refusal::UnknownEndpoint)?;
    if !dialect.accepts(&parts.method) {
        return Err(Refusal::MethodNotAllowed);
    }
    let original = dialect.original(&parts.method, &parts.uri, &parts.headers)?;
    // The original request as routing and enforcement see it: its method, host and
    // path+query, with the decision request's other headers (the fronting proxy copies
    // the client's, so the token header is among them). The body is never read:
    // without a content type, enforcement does not look for a form-encoded token.
    let mut original_parts = original_parts(&original, &parts.headers)?;
    let uri = original_parts.uri.clone();
    let routed = router::route(
        &compiled.router,
        &original_parts.method,
        &uri,
        &original_parts.headers,
    )
    .map_err(|u| match u {
        router::Unrouted::NoRoute => Refusal::NoRoute,
        // The path inline traffic would be refused with: the same 400.
        bad => Refusal::Denied(bad.into()),
    })?;
    let route = &compiled.snapshot.routes[routed.index];
    let Some(oauth) = &route.oauth2 else {
        return Ok(Allowed::default());
    };
    if let Some(login) = &oauth.login {
        // Sign-in-only protection (the traefik-forward-auth pattern): a live session
        // passes as its user, a browser without one is sent to sign in.
        let ctx = login::Ctx {
            signin,
            route,
            oauth,
            login,
            catalog: &compiled.catalog,
            store,
            now,
        };
        match login::gate::check(&ctx, &mut original_parts, routed.prefix()).await {
            Ok(Gate::Enforce) => {}
            Ok(Gate::Pass) => return Ok(identity_of(&original_parts)),
            Ok(Gate::SignIn(resp)) => {
                let location = resp
                    .headers
                    .into_iter()
                    .find_map(|(n, v)| (n == LOCATION).then_some(v))
                    .ok_or(Refusal::Denied(Rejection::BadRequest))?;
                let status = match dialect {
                    Dialect::AuthRequest => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::FOUND,
                };
                return Err(Refusal::SignIn { status, location });
            }
            Err(login::LoginError::Store(_)) => {
                return Err(Refusal::Denied(Rejection::StoreUnavailable))
            }
            Err(_) => return Err(Refusal::Denied(Rejection::BadRequest)),
        }
    }
    let ctx = enforce::Context {
        route,
        oauth,
        rules: &compiled.rules[routed.index],
        catalog: &compiled.catalog,
        store,
        suffix: routed.suffix(),
        slashes_are_separators_too: routed.path.encoded_slash(),
        now,
        // Decisions never read a body (the copied body headers are dropped).
        body_limit: crate::server::limits::BodyLimit::size_only(0),
    };
    if let Err(rejection) = enforce::check(&ctx, &mut original_parts, empty()).await {
        // The same challenge as inline traffic, naming the route's resource metadata.
        return Err(Refusal::Denied(rejection.with_resource_metadata(|| {
            crate::oauth2::well_known::resource_metadata_for(
                route,
                oauth,
                &routed,
                conn,
                &original_parts,
            )
        })));
    }
    Ok(identity_of(&original_parts))
}

/// The identity headers enforcement (or a sign-in session) set on the original request.
fn identity_of(parts: &Parts) -> Allowed {
    let mut identity = HeaderMap::new();
    for name in &IDENTITY_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            identity.insert(name.clone(), value.clone());
        }
    }
    Allowed { identity }
}

fn original_parts(original: &Original, headers: &HeaderMap) -> Result<Parts, Refusal> {
    let pq = match &original.query {
        Some(q) => format!("{}?{q}", original.path),
        None => original.path.clone(),
    };
    let host = HeaderValue::from_str(&original.host)
        .map_err(|_| Refusal::BadRequest(DialectError::Invalid("original request", "bad host")))?;
    let (mut parts, ()) = Request::builder()
        .method(original.method.clone())
        .uri(pq)
        .body(())
        .map_err(|_| Refusal::BadRequest(DialectError::Invalid("original request", "no URI")))?
        .into_parts();
    parts.headers = headers.clone();
    parts.headers.insert(HOST, host);
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(CONTENT_LENGTH);
    Ok(parts)
}

/// The answer the fronting proxy gets.
pub fn into_response(result: Result<Allowed, Refusal>) -> Response<ProxyBody> {
    let refusal = match result {
        Ok(allowed) => {
            let reply = Reply {
                status: StatusCode::OK,
                headers: allowed
                    .identity
                    .into_iter()
                    .filter_map(|(n, v)| Some((n?, v)))
                    .collect(),
                body: Bytes::new(),
            };
            return reply.no_store().into_response();
        }
        Err(refusal) => refusal,
    };
    let reply = match &refusal {
        Refusal::Denied(rejection) => return rejection.clone().into_response(),
        Refusal::Untrusted => Reply::message(
            StatusCode::FORBIDDEN,
            "External authorization is only answered to trusted proxies (--trusted-proxies)",
        ),
        Refusal::UnknownEndpoint => Reply::message(
            StatusCode::NOT_FOUND,
            "Unknown external authorization endpoint",
        ),
        Refusal::MethodNotAllowed => {
            Reply::message(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
                .header(ALLOW, HeaderValue::from_static("GET, HEAD"))
        }
        Refusal::BadRequest(e) => Reply::message(StatusCode::BAD_REQUEST, &e.to_string()),
        Refusal::NoRoute => Reply::message(
            StatusCode::NOT_FOUND,
            "No route matches the original request's host and path",
        ),
        Refusal::SignIn { status, location } => {
            Reply::message(*status, "Sign in first").header(LOCATION, location.clone())
        }
    };
    reply.into_response()
}

#[cfg(test)]
mod tests;
