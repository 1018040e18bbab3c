//! The OAuth2 authorization server endpoints under each protected route:
//! `/oauth2/authorize`, `/oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke` and
//! `/.well-known/oauth-authorization-server`.
//!
//! The server (crate::server) matches the route, checks the body size, and hands the
//! raw request parts here; this module owns parameter parsing, every OAuth2 decision
//! and the exact response (status, headers, JSON body).

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};

use crate::catalog::Catalog;
use crate::config::{Route, RouteOAuth2};
use crate::store::{TokenStore, UnixTime};

/// Which endpoint a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Token,
    Introspect,
    Revoke,
    Metadata,
}

impl Endpoint {
    /// Map the request path *after* the matched route prefix (for route `/stepon`
    /// and request `/stepon/oauth2/token`, the suffix is `/oauth2/token`).
    pub fn from_suffix(suffix: &str) -> Option<Endpoint> {
        match suffix {
            "/oauth2/authorize" => Some(Endpoint::Authorize),
            "/oauth2/token" => Some(Endpoint::Token),
            "/oauth2/introspect" => Some(Endpoint::Introspect),
            "/oauth2/revoke" => Some(Endpoint::Revoke),
            "/.well-known/oauth-authorization-server" => Some(Endpoint::Metadata),
            _ => None,
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
    /// issuer in metadata.
    pub issuer: String,
}

/// A complete response produced by an endpoint.
#[derive(Debug, Clone)]
pub struct OAuthResponse {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// Serve one OAuth2 endpoint request for `route`.
pub async fn handle(
    req: OAuthRequest,
    route: &Route,
    oauth: &RouteOAuth2,
    catalog: &Catalog,
    store: &dyn TokenStore,
    now: UnixTime,
) -> OAuthResponse {
    let _ = (req, route, oauth, catalog, store, now);
    OAuthResponse {
        status: StatusCode::NOT_IMPLEMENTED,
        headers: Vec::new(),
        body: Bytes::from_static(b"{\"error\":\"server_error\"}"),
    }
}
