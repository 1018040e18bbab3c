//! The three ways a fronting proxy describes the request it wants a decision on, read
//! into one [`Original`]: method, host, path and query exactly as the client sent them.
//!
//! - [`Dialect::AuthRequest`] — nginx `auth_request` and ingress-nginx `auth-url`:
//!   `X-Original-URL` (absolute, or origin-form with the host in `X-Forwarded-Host`) and
//!   `X-Original-Method`.
//! - [`Dialect::ForwardAuth`] — Traefik ForwardAuth: `X-Forwarded-Method`,
//!   `X-Forwarded-Host` and `X-Forwarded-Uri` (path and query).
//! - [`Dialect::ExtAuthz`] — Envoy ext_authz HTTP service and Gateway API `ExternalAuth`
//!   (HTTP): the check request itself carries the original method and `Host`, and its
//!   path is the configured prefix followed by the original path and query.
//!
//! Every field that selects the route or the scope rule is required: a missing or
//! ambiguous one (sent twice) is a 400, never a guess such as "GET" or "any host",
//! because a guess could pick a weaker route or rule than the real request meets.

use std::str::FromStr;

use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, HeaderName, Method, Uri};

pub const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
pub const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Reserved path prefix of the external authorization endpoints.
pub const PREFIX: &str = "/_gatehouse/authz/";
const AUTH_REQUEST: &str = "auth-request";
const FORWARD_AUTH: &str = "forward-auth";
const EXT_AUTHZ: &str = "ext-authz";

/// Which fronting proxy's protocol a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// `GET|HEAD /_gatehouse/authz/auth-request` (nginx, ingress-nginx).
    AuthRequest,
    /// `ANY /_gatehouse/authz/forward-auth` (Traefik).
    ForwardAuth,
    /// `ANY /_gatehouse/authz/ext-authz/<original path>` (Envoy, Gateway API).
    ExtAuthz,
}

impl Dialect {
    /// The dialect a path under [`PREFIX`] addresses, or `None` for an unknown endpoint.
    /// `path` is the raw request path.
    pub fn from_path(path: &str) -> Option<Dialect> {
        let rest = path.strip_prefix(PREFIX)?;
        match rest {
            AUTH_REQUEST => Some(Dialect::AuthRequest),
            FORWARD_AUTH => Some(Dialect::ForwardAuth),
            _ if ext_authz_path(path).is_some() => Some(Dialect::ExtAuthz),
            _ => None,
        }
    }

    /// Bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Dialect::AuthRequest => AUTH_REQUEST,
            Dialect::ForwardAuth => FORWARD_AUTH,
            Dialect::ExtAuthz => EXT_AUTHZ,
        }
    }

    /// Whether the decision request may use `method`. nginx's `auth_request` always
    /// sends the subrequest as GET (HEAD when the original is HEAD); the other two
    /// dialects carry or may carry the original method.
    pub fn accepts(self, method: &Method) -> bool {
        match self {
            Dialect::AuthRequest => *method == Method::GET || *method == Method::HEAD,
            Dialect::ForwardAuth | Dialect::ExtAuthz => true,
        }
    }

    /// Read the original request out of a decision request.
    pub fn original(self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Original> {
        match self {
            Dialect::AuthRequest => auth_request(headers),
            Dialect::ForwardAuth => forward_auth(headers),
            Dialect::ExtAuthz => ext_authz(method, uri, headers),
        }
    }
}

/// The request the fronting proxy received from its client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Original {
    pub method: Method,
    /// Host as the client sent it (port allowed); never empty.
    pub host: String,
    /// Path as the client sent it (not yet normalized); starts with `/`.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: Option<String>,
}

/// Why a decision request could not be read. Each names the header (or part) at fault,
/// so the operator of the fronting proxy can fix its configuration from the 400 body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("the {0} header is sent more than once")]
    Repeated(&'static str),
    #[error("the {0} header is not valid: {1}")]
    Invalid(&'static str, &'static str),
}

pub type Result<T, E = DialectError> = std::result::Result<T, E>;

fn auth_request(headers: &HeaderMap) -> Result<Original> {
    let method = method_header(headers, &X_ORIGINAL_METHOD, "X-Original-Method")?;
    let url = single(headers, &X_ORIGINAL_URL, "X-Original-URL")?
        .ok_or(DialectError::Missing("X-Original-URL"))?;
    let uri =
        Uri::from_str(url).map_err(|_| DialectError::Invalid("X-Original-URL", "not a URL"))?;
    let host = match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(authority)) => checked_host(authority.as_str())
            .ok_or(DialectError::Invalid("X-Original-URL", "bad host"))?,
        (Some(_), _) => {
            return Err(DialectError::Invalid(
                "X-Original-URL",
                "the scheme must be http or https",
            ))
        }
        // Origin-form (`/path?query`), as some nginx configurations send it: the host
        // must then come from X-Forwarded-Host, never from this request's own Host
        // (that is Gatehouse's address, not the client's).
        (None, _) => forwarded_host(headers)?,
    };
    let pq = uri
        .path_and_query()
        .filter(|pq| pq.path().starts_with('/'))
        .ok_or(DialectError::Invalid("X-Original-URL", "no path"))?;
    Ok(original(method, host, pq))
}

fn forward_auth(headers: &HeaderMap) -> Result<Original> {
    let method = method_header(headers, &X_FORWARDED_METHOD, "X-Forwarded-Method")?;
    let host = forwarded_host(headers)?;
    let raw = single(headers, &X_FORWARDED_URI, "X-Forwarded-Uri")?
        .ok_or(DialectError::Missing("X-Forwarded-Uri"))?;
    let pq = origin_form(raw).ok_or(DialectError::Invalid(
        "X-Forwarded-Uri",
        "not a path starting with /",
    ))?;
    Ok(original(method, host, &pq))
}

fn ext_authz(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Original> {
    let path = ext_authz_path(uri.path()).ok_or(DialectError::Invalid(
        "request path",
        "not under the ext-authz prefix",
    ))?;
    // HTTP/2 carries the original `:authority` in the URI, HTTP/1.1 in `Host`.
    let host = match uri.authority() {
        Some(authority) => checked_host(authority.as_str()),
        None => single(headers, &http::header::HOST, "Host")?.and_then(checked_host),
    }
    .ok_or(DialectError::Missing("Host"))?;
    Ok(Original {
        method: method.clone(),
        host,
        path: path.to_owned(),
        query: uri.query().map(str::to_owned),
    })
}

/// The original path inside an ext-authz request path: whatever follows
/// `/_gatehouse/authz/ext-authz` (`/` when nothing does).
fn ext_authz_path(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix(EXT_AUTHZ)?;
    match rest {
        "" => Some("/"),
        r if r.starts_with('/') => Some(r),
        _ => None,
    }
}

fn original(method: Method, host: String, pq: &PathAndQuery) -> Original {
    Original {
        method,
        host,
        path: pq.path().to_owned(),
        query: pq.query().map(str::to_owned),
    }
}

fn method_header(headers: &HeaderMap, name: &HeaderName, label: &'static str) -> Result<Method> {
    let raw = single(headers, name, label)?.ok_or(DialectError::Missing(label))?;
    // Methods are case-sensitive tokens (RFC 9110 §9.1); `get` is not GET and would
    // miss a method-specific scope rule, so refuse it rather than guess.
    Method::from_bytes(raw.trim().as_bytes())
        .ok()
        .filter(|m| {
            m.as_str()
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'-')
        })
        .ok_or(DialectError::Invalid(label, "not an HTTP method"))
}

fn forwarded_host(headers: &HeaderMap) -> Result<String> {
    let raw = single(headers, &X_FORWARDED_HOST, "X-Forwarded-Host")?
        .ok_or(DialectError::Missing("X-Forwarded-Host"))?;
    checked_host(raw).ok_or(DialectError::Invalid(
        "X-Forwarded-Host",
        "not a single host name",
    ))
}

/// `raw` if it is one `host[:port]` (no user info, no list, no path).
fn checked_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.contains(['@', ',', '/']) {
        return None;
    }
    Authority::from_str(raw).ok().map(|a| a.as_str().to_owned())
}

fn origin_form(raw: &str) -> Option<PathAndQuery> {
    let raw = raw.trim();
    if !raw.starts_with('/') {
        return None;
    }
    PathAndQuery::from_str(raw).ok()
}

/// The one value of `name` as text; `None` when absent. Two values are refused: the
/// fronting proxy sets these headers itself, so a second copy can only come from the
/// client and nobody could say which one describes the request.
fn single<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    label: &'static str,
) -> Result<Option<&'h str>> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(DialectError::Repeated(label));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| DialectError::Invalid(label, "not visible ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn mk_original(method: Method, host: &str, path: &str, query: Option<&str>) -> Original {
        Original {
            method,
            host: host.into(),
            path: path.into(),
            query: query.map(str::to_owned),
        }
    }

    fn parse(dialect: Dialect, method: Method, uri: &str, h: &[(&str, &str)]) -> Result<Original> {
        dialect.original(&method, &uri.parse().unwrap(), &mk_headers(h))
    }

    #[test]
    fn endpoints_are_recognised_by_exact_path() {
        assert_eq!(
            Dialect::from_path("/_gatehouse/authz/auth-request"),
            Some(Dialect::AuthRequest)
        );
        assert_eq!(
            Dialect::from_path("/_gatehouse/authz/forward-auth"),
            Some(Dialect::ForwardAuth)
        );
        assert_eq!(
            Dialect::from_path("/_gatehouse/authz/ext-authz"),
            Some(Dialect::ExtAuthz)
        );
        assert_eq!(
            Dialect::from_path("/_gatehouse/authz/ext-authz/stepon/x"),
            Some(Dialect::ExtAuthz)
        );
        assert_eq!(Dialect::from_path("/_gatehouse/authz/ext-authzx"), None);
        assert_eq!(Dialect::from_path("/_gatehouse/authz/auth-request/"), None);
        assert_eq!(Dialect::from_path("/_gatehouse/authz/"), None);
        assert_eq!(Dialect::from_path("/stepon"), None);
    }

    #[test]
    fn only_get_and_head_reach_the_auth_request_endpoint() {
        assert!(Dialect::AuthRequest.accepts(&Method::GET));
        assert!(Dialect::AuthRequest.accepts(&Method::HEAD));
        assert!(!Dialect::AuthRequest.accepts(&Method::POST));
        assert!(Dialect::ForwardAuth.accepts(&Method::DELETE));
        assert!(Dialect::ExtAuthz.accepts(&Method::PATCH));
    }

    #[test]
    fn auth_request_reads_the_ingress_nginx_headers() {
        let got = parse(
            Dialect::AuthRequest,
            Method::GET,
            "/_gatehouse/authz/auth-request",
            &[
                (
                    "x-original-url",
                    "https://api.example.com:8443/stepon/counts?x=1&y=%2F",
                ),
                ("x-original-method", "POST"),
                ("x-forwarded-host", "ignored.example.com"),
            ],
        );
        assert_eq!(
            got,
            Ok(mk_original(
                Method::POST,
                "api.example.com:8443",
                "/stepon/counts",
                Some("x=1&y=%2F")
            ))
        );
    }

    #[test]
    fn an_origin_form_original_url_takes_its_host_from_x_forwarded_host() {
        let got = parse(
            Dialect::AuthRequest,
            Method::GET,
            "/_gatehouse/authz/auth-request",
            &[
                ("x-original-url", "/stepon/a"),
                ("x-original-method", "GET"),
                ("x-forwarded-host", "api.example.com"),
                ("host", "gatehouse.internal"),
            ],
        );
        assert_eq!(
            got,
            Ok(mk_original(
                Method::GET,
                "api.example.com",
                "/stepon/a",
                None
            ))
        );
        let no_host = parse(
            Dialect::AuthRequest,
            Method::GET,
            "/_gatehouse/authz/auth-request",
            &[
                ("x-original-url", "/stepon/a"),
                ("x-original-method", "GET"),
                ("host", "gatehouse.internal"),
            ],
        );
        assert_eq!(no_host, Err(DialectError::Missing("X-Forwarded-Host")));
    }

    #[test]
    fn auth_request_refuses_to_guess_a_missing_or_doubled_field() {
        let ok_url = ("x-original-url", "http://h/p");
        let cases: Vec<(Vec<(&str, &str)>, DialectError)> = vec![
            (vec![ok_url], DialectError::Missing("X-Original-Method")),
            (
                vec![("x-original-method", "GET")],
                DialectError::Missing("X-Original-URL"),
            ),
            (
                vec![ok_url, ok_url, ("x-original-method", "GET")],
                DialectError::Repeated("X-Original-URL"),
            ),
            (
                vec![ok_url, ("x-original-method", "get")],
                DialectError::Invalid("X-Original-Method", "not an HTTP method"),
            ),
            (
                vec![
                    ("x-original-url", "ftp://h/p"),
                    ("x-original-method", "GET"),
                ],
                DialectError::Invalid("X-Original-URL", "the scheme must be http or https"),
            ),
            (
                vec![
                    ("x-original-url", "http://u@h/p"),
                    ("x-original-method", "GET"),
                ],
                DialectError::Invalid("X-Original-URL", "bad host"),
            ),
            (
                vec![
                    ("x-original-url", "not a url"),
                    ("x-original-method", "GET"),
                ],
                DialectError::Invalid("X-Original-URL", "not a URL"),
            ),
        ];
        for (headers, want) in cases {
            let got = parse(
                Dialect::AuthRequest,
                Method::GET,
                "/_gatehouse/authz/auth-request",
                &headers,
            );
            assert_eq!(got, Err(want), "{headers:?}");
        }
    }

    #[test]
    fn forward_auth_reads_traefiks_headers() {
        let got = parse(
            Dialect::ForwardAuth,
            Method::GET,
            "/_gatehouse/authz/forward-auth",
            &[
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "api.example.com"),
                ("x-forwarded-uri", "/stepon/x?access_token=t"),
            ],
        );
        assert_eq!(
            got,
            Ok(mk_original(
                Method::DELETE,
                "api.example.com",
                "/stepon/x",
                Some("access_token=t")
            ))
        );
    }

    #[test]
    fn forward_auth_needs_method_host_and_uri() {
        let all = [
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "h"),
            ("x-forwarded-uri", "/p"),
        ];
        for skip in 0..all.len() {
            let headers: Vec<_> = all
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            let got = parse(Dialect::ForwardAuth, Method::GET, "/", &headers);
            assert!(
                matches!(got, Err(DialectError::Missing(_))),
                "{headers:?}: {got:?}"
            );
        }
        let list_host = parse(
            Dialect::ForwardAuth,
            Method::GET,
            "/",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "a.example.com, b.example.com"),
                ("x-forwarded-uri", "/p"),
            ],
        );
        assert!(matches!(
            list_host,
            Err(DialectError::Invalid("X-Forwarded-Host", _))
        ));
        let relative = parse(
            Dialect::ForwardAuth,
            Method::GET,
            "/",
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-host", "h"),
                ("x-forwarded-uri", "p"),
            ],
        );
        assert!(matches!(
            relative,
            Err(DialectError::Invalid("X-Forwarded-Uri", _))
        ));
    }

    #[test]
    fn ext_authz_takes_method_host_and_the_path_after_the_prefix() {
        let got = parse(
            Dialect::ExtAuthz,
            Method::PUT,
            "/_gatehouse/authz/ext-authz/stepon/x?y=1",
            &[("host", "API.example.com"), ("content-length", "0")],
        );
        assert_eq!(
            got,
            Ok(mk_original(
                Method::PUT,
                "API.example.com",
                "/stepon/x",
                Some("y=1")
            ))
        );
        let root = parse(
            Dialect::ExtAuthz,
            Method::GET,
            "/_gatehouse/authz/ext-authz",
            &[("host", "h")],
        );
        assert_eq!(root, Ok(mk_original(Method::GET, "h", "/", None)));
        // HTTP/2: the authority is part of the URI.
        let h2 = parse(
            Dialect::ExtAuthz,
            Method::GET,
            "http://api.example.com/_gatehouse/authz/ext-authz/a",
            &[],
        );
        assert_eq!(
            h2,
            Ok(mk_original(Method::GET, "api.example.com", "/a", None))
        );
        let no_host = parse(
            Dialect::ExtAuthz,
            Method::GET,
            "/_gatehouse/authz/ext-authz/a",
            &[],
        );
        assert_eq!(no_host, Err(DialectError::Missing("Host")));
    }
}
