//! The OAuth2 authorization server endpoints under each protected route:
//! `/oauth2/authorize`, `/oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` and
//! `/.well-known/oauth-authorization-server`.
//!
//! The pipeline (crate::server::pipeline) matches the route and calls [`serve`], which
//! reads the body (bounded), builds the [`OAuthRequest`] and answers; this module owns
//! parameter parsing, every OAuth2 decision and the exact response (status, headers,
//! JSON body).
//!
//! Layout: [`params`] reads the request, [`clients`] finds the client a request names
//! (configured, [`client_metadata`] documents or [`register`]ed ones),
//! [`client_auth`] authenticates it, [`scope`], [`pkce`], [`redirect`] and
//! [`resource`] hold the shared rules, one module per endpoint decides, and [`error`]
//! is the single place a failure becomes an answer (built, like every answer, by
//! [`crate::respond`]). [`well_known`] serves the discovery documents at the
//! locations RFC 8414 and RFC 9728 insert before the route's path.

pub mod authorize;
pub mod client_auth;
pub mod client_metadata;
pub mod clients;
pub mod error;
mod grace;
pub mod introspect;
pub mod limit;
mod lookup;
pub mod metadata;
pub mod params;
pub mod pkce;
pub mod redirect;
pub mod register;
pub mod resource;
pub mod revoke;
pub mod scope;
pub mod token;
pub mod well_known;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, HeaderName, Method, Response, StatusCode};

pub use crate::binding::valid_on_route;
use crate::body::{read_limited, ProxyBody};
use crate::catalog::Catalog;
use crate::config::{GrantType, OAuth2Client, Route, RouteOAuth2};
use crate::error::Rejection;
use crate::forwarded::{ConnInfo, X_FORWARDED_HOST};
use crate::router::Routed;
use crate::server::limits::BodyLimit;
use crate::store::{Digest, TokenStore, UnixTime};
use client_metadata::MetadataDocuments;
use clients::Directory;
use error::OAuthError;
use params::Params;

/// Which endpoint a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Token,
    Introspect,
    Revoke,
    Metadata,
    /// RFC 7591 registration and RFC 7592 client configuration (`/oauth2/register[/id]`).
    Register,
}

impl Endpoint {
    /// Map the request path *after* the matched route prefix (for route `/stepon`
    /// and request `/stepon/oauth2/token`, the suffix is `/oauth2/token`).
    /// One trailing slash is tolerated (`/oauth2/token/`), as Kong does.
    pub fn from_suffix(suffix: &str) -> Option<Endpoint> {
        let suffix = match suffix.strip_suffix('/') {
            Some(s) if !s.is_empty() => s,
            _ => suffix,
        };
        match suffix {
            "/oauth2/authorize" => Some(Endpoint::Authorize),
            "/oauth2/token" => Some(Endpoint::Token),
            "/oauth2/introspect" => Some(Endpoint::Introspect),
            "/oauth2/revoke" => Some(Endpoint::Revoke),
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration" => {
                Some(Endpoint::Metadata)
            }
            "/oauth2/register" => Some(Endpoint::Register),
            s if s.starts_with("/oauth2/register/") => Some(Endpoint::Register),
            _ => None,
        }
    }

    /// Whether a route with `oauth` serves this endpoint (registration only when
    /// `client_registration.dynamic` is on; otherwise the path is the upstream's).
    pub fn served_by(self, oauth: &RouteOAuth2) -> bool {
        self != Endpoint::Register || oauth.client_registration.dynamic
    }

    /// Name used in messages ("… is invalid for the token endpoint").
    fn name(self) -> &'static str {
        match self {
            Endpoint::Authorize => "authorize",
            Endpoint::Token => "token",
            Endpoint::Introspect => "introspection",
            Endpoint::Revoke => "revocation",
            Endpoint::Metadata => "metadata",
            Endpoint::Register => "registration",
        }
    }
}

/// The raw parts of an OAuth2 endpoint request.
#[derive(Debug, Clone)]
pub struct OAuthRequest {
    pub endpoint: Endpoint,
    pub method: Method,
    /// Raw query string (without `?`).
    pub query: Option<String>,
    /// `Content-Type` header value.
    pub content_type: Option<String>,
    /// Raw `Authorization` header value (for HTTP Basic client authentication).
    pub authorization: Option<String>,
    /// Whole request body; the server has already enforced the size limit.
    pub body: Bytes,
    /// The connection itself is TLS.
    pub tls: bool,
    /// A trusted peer sent `X-Forwarded-Proto: https`.
    pub forwarded_https: bool,
    /// Externally visible base URL of the route (`https://host/stepon`), used as the
    /// issuer in metadata: the route's configured `issuer`, else built from a host the
    /// route lists. `None` on a route answering any host without an `issuer`: a
    /// client's `Host` is no identity to announce.
    pub issuer: Option<String>,
    /// The client's address (the TCP peer), for the audit log.
    pub peer: Option<std::net::IpAddr>,
    /// Where security events of this request are recorded.
    pub audit: AuditLog,
    /// Rate-limit and client-authentication failure counters.
    pub counters: crate::metrics::OAuthCounters,
    /// The request path after the route prefix (`/oauth2/register/<id>`).
    pub suffix: String,
}

use crate::audit::{AuditLog, Event};
/// A complete response produced by an endpoint.
pub use crate::respond::Reply as OAuthResponse;

/// Everything an endpoint decision needs, for one request.
pub(crate) struct Ctx<'a> {
    pub req: &'a OAuthRequest,
    pub route: &'a Route,
    pub oauth: &'a RouteOAuth2,
    pub catalog: &'a Catalog,
    pub store: &'a dyn TokenStore,
    pub documents: &'a MetadataDocuments,
    pub now: UnixTime,
    pub params: Params,
}

impl Ctx<'_> {
    /// Where this request's clients are looked up.
    pub fn clients(&self) -> Directory<'_> {
        Directory {
            catalog: self.catalog,
            store: self.store,
            route: self.route,
            oauth: self.oauth,
            documents: self.documents,
            now: self.now,
        }
    }

    /// Record a security event of this request in the audit log.
    pub fn audit(&self, event: Event<'_>) {
        self.req.audit.record(&self.route.id, self.req.peer, event);
    }

    /// The `client_id` parameter, when one was sent (an identifier, never a secret).
    pub fn client_id_param(&self) -> Option<&str> {
        self.params.get("client_id").ok().flatten()
    }

    /// The client's `state`, echoed in responses (a malformed one is not echoed).
    pub fn state(&self) -> Option<&str> {
        self.params.get("state").ok().flatten()
    }
}

/// The protected route an OAuth2 request arrived on, and what its answer may consult.
pub struct Site<'a> {
    pub audit: &'a AuditLog,
    pub counters: &'a crate::metrics::OAuthCounters,
    pub route: &'a Route,
    pub oauth: &'a RouteOAuth2,
    pub catalog: &'a Catalog,
    pub store: &'a dyn TokenStore,
    /// Client ID metadata documents (fetcher and cache).
    pub documents: &'a MetadataDocuments,
    pub now: UnixTime,
}

/// Serve an OAuth2 endpoint request of the pipeline: read the body (at most
/// `body_limit`), build the [`OAuthRequest`] and answer it.
pub async fn serve(
    site: &Site<'_>,
    endpoint: Endpoint,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    parts: &Parts,
    body: ProxyBody,
    body_limit: BodyLimit,
) -> Result<Response<ProxyBody>, Rejection> {
    let body = read_limited(&parts.headers, body, body_limit).await?;
    let request = OAuthRequest {
        endpoint,
        method: parts.method.clone(),
        query: parts.uri.query().map(str::to_owned),
        content_type: header_string(&parts.headers, CONTENT_TYPE),
        authorization: header_string(&parts.headers, AUTHORIZATION),
        body,
        tls: conn.tls,
        forwarded_https: conn.forwarded_https(&parts.headers),
        issuer: issuer(site.route, site.oauth, routed, conn, &parts.headers),
        peer: Some(conn.peer.ip()),
        audit: site.audit.clone(),
        counters: site.counters.clone(),
        suffix: routed.suffix().to_owned(),
    };
    let out = handle(request, site).await;
    Ok(out.into_response())
}

/// The issuer the metadata document announces: the route's configured
/// `oauth2.issuer`, else the [base URL](base_url) when the route lists its hosts
/// (routing matched the host against that list). `None` on a route answering any host
/// without an `issuer`: a client's `Host` is no identity to announce.
pub fn issuer(
    route: &Route,
    oauth: &RouteOAuth2,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> Option<String> {
    match &oauth.issuer {
        Some(issuer) => Some(issuer.clone()),
        None if !route.hosts.is_empty() => Some(base_url(oauth, routed, conn, headers)),
        None => None,
    }
}

/// The route's externally visible base URL (`https://host/stepon`): the configured
/// `oauth2.issuer` when set, else built from the request; `iss` in sign-in
/// authorization responses and the base of sign-in URLs.
pub fn base_url(
    oauth: &RouteOAuth2,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    headers: &HeaderMap,
) -> String {
    if let Some(issuer) = &oauth.issuer {
        return issuer.trim_end_matches('/').to_owned();
    }
    let scheme = conn.client_scheme(headers);
    let public_host = match headers.get(X_FORWARDED_HOST).filter(|_| conn.trusted) {
        Some(h) => h.to_str().ok(),
        None => routed.host_str(),
    }
    .unwrap_or("localhost");
    format!("{scheme}://{public_host}{}", routed.prefix())
}

fn header_string(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Serve one OAuth2 endpoint request on `site`'s route.
pub async fn handle(req: OAuthRequest, site: &Site<'_>) -> OAuthResponse {
    let (route, oauth) = (site.route, site.oauth);
    let endpoint = req.endpoint;
    if endpoint == Endpoint::Metadata {
        if req.method != Method::GET {
            return deny(
                route,
                endpoint,
                OAuthError::invalid_method(&req.method, endpoint.name(), "GET"),
            );
        }
        return metadata::respond(&req, oauth);
    }
    if req.method != Method::POST && endpoint != Endpoint::Register {
        return deny(
            route,
            endpoint,
            OAuthError::invalid_method(&req.method, endpoint.name(), "POST"),
        );
    }
    let parsed = if endpoint == Endpoint::Register {
        // A JSON client metadata document, read by the registration endpoint itself.
        Ok(Params::default())
    } else {
        Params::parse(req.query.as_deref(), req.content_type.as_deref(), &req.body)
    };
    // Kong's HTTPS rule: real TLS, or a trusted proxy that terminated TLS when the
    // route accepts that. Checked before anything else is looked at.
    let https = req.tls || (req.forwarded_https && oauth.accept_http_if_already_terminated);
    if !https {
        let state = parsed
            .as_ref()
            .ok()
            .and_then(|p| p.get("state").ok().flatten())
            .map(str::to_owned);
        return deny(
            route,
            endpoint,
            OAuthError::https_required().with_state(state.as_deref()),
        );
    }
    let params = match parsed {
        Ok(p) => p,
        Err(e) => return deny(route, endpoint, e),
    };
    let ctx = Ctx {
        req: &req,
        route,
        oauth,
        catalog: site.catalog,
        store: site.store,
        documents: site.documents,
        now: site.now,
        params,
    };
    if limit::limited(endpoint) {
        if let Some(refused) = limit::check(&ctx, endpoint).await {
            if endpoint == Endpoint::Token {
                // 429, or 503 when the store cannot count.
                let result = match refused.status {
                    StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
                    _ => "temporarily_unavailable",
                };
                count_token_request(&ctx, Some(result));
            }
            return refused;
        }
    }
    let result = match endpoint {
        Endpoint::Authorize => authorize::respond(&ctx).await,
        Endpoint::Token => token::respond(&ctx).await,
        Endpoint::Introspect => introspect::respond(&ctx).await,
        Endpoint::Revoke => revoke::respond(&ctx).await,
        Endpoint::Register => {
            let id = req
                .suffix
                .trim_end_matches('/')
                .strip_prefix("/oauth2/register/")
                .filter(|id| !id.is_empty());
            Ok(register::respond(&ctx, id).await)
        }
        // Answered above; kept total so a new endpoint cannot be forgotten here.
        Endpoint::Metadata => Ok(metadata::respond(&req, oauth)),
    };
    if endpoint == Endpoint::Token {
        count_token_request(&ctx, result.as_ref().err().map(|e| e.code.as_str()));
    }
    match result {
        Ok(resp) => resp,
        Err(e) => {
            audit_refusal(&ctx, endpoint, &e);
            deny(route, endpoint, e.with_state(ctx.state()))
        }
    }
}

/// Count a token request by its `grant_type` and `error` (none: a token was issued).
fn count_token_request(ctx: &Ctx<'_>, error: Option<&'static str>) {
    let grant = ctx.params.get("grant_type").ok().flatten();
    let grant = grant.map(|g| token::parse_grant(Some(g)).map_or("other", token::grant_name));
    ctx.req.counters.token_request(grant, error);
}

/// Audit a refused token, authorization or client authentication (introspection and
/// revocation refusals other than client authentication are not security events).
pub(crate) fn audit_refusal(ctx: &Ctx<'_>, endpoint: Endpoint, e: &OAuthError) {
    let client_id = ctx.client_id_param();
    if e.code == error::ErrorCode::InvalidClient {
        ctx.req.counters.client_auth_failed();
        ctx.audit(Event::ClientAuthFailed {
            client_id,
            reason: &e.description,
        });
        return;
    }
    let grant = match endpoint {
        Endpoint::Token => ctx.params.get("grant_type").ok().flatten(),
        Endpoint::Authorize => ctx.params.get("response_type").ok().flatten(),
        _ => return,
    };
    ctx.audit(Event::TokenRefused {
        client_id,
        grant,
        error: e.code.as_str(),
        reason: &e.description,
    });
}

/// Log a refused request (never with secrets) and render the error.
fn deny(route: &Route, endpoint: Endpoint, e: OAuthError) -> OAuthResponse {
    tracing::info!(
        route.name = %route.id,
        endpoint = endpoint.name(),
        error = e.code.as_str(),
        "OAuth2 request denied"
    );
    e.into_response()
}

/// Whether `client` may use `grant`. An empty `grant_types` allows every grant the
/// route enables. Refreshing is allowed to any client that can obtain a refresh
/// token (authorization code, password) unless its list says otherwise.
pub fn client_allows(client: &OAuth2Client, grant: GrantType) -> bool {
    let g = &client.grant_types;
    g.is_empty()
        || g.contains(&grant)
        || (grant == GrantType::RefreshToken
            && (g.contains(&GrantType::AuthorizationCode) || g.contains(&GrantType::Password)))
}

/// Check the login app's `provision_key` against the route's digest in constant
/// time. A route without a provision key refuses every request that needs one.
pub(crate) fn check_provision_key(params: &Params, oauth: &RouteOAuth2) -> error::Result<()> {
    let expected = oauth
        .provision_key_sha256
        .as_deref()
        .and_then(Digest::from_hex);
    let presented = params.get("provision_key").ok().flatten();
    match (expected, presented) {
        (Some(expected), Some(p)) if Digest::of(p.as_bytes()).ct_eq(&expected) => Ok(()),
        _ => Err(OAuthError::invalid_provision_key()),
    }
}

#[cfg(test)]
mod tests;
