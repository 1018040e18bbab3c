//! Every reason the proxy answers a request itself instead of proxying it, and the one
//! place where each reason becomes a response (status, headers, JSON body).
//!
//! Bodies follow Kong's wire contract: `{"message": ...}` for routing and upstream
//! failures, RFC 6749/6750 `{"error", "error_description"}` for token denials, with a
//! `WWW-Authenticate: Bearer` challenge on 401 and 403.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

use crate::body::{full, ProxyBody};

/// Why a request was not proxied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// No snapshot has been loaded yet.
    #[error("no configuration loaded")]
    NotReady,
    /// No route matches host and path.
    #[error("no route matched")]
    NoRoute,
    /// Protected route, no token presented (and no anonymous consumer).
    #[error("access token missing")]
    TokenMissing { realm: String },
    /// Unknown, expired, revoked token, or one issued for another route.
    #[error("access token invalid")]
    TokenInvalid { realm: String },
    /// The token lacks a scope a gateway rule requires.
    #[error("insufficient scope")]
    InsufficientScope { realm: String, scope: String },
    /// The token store failed: fail closed.
    #[error("token store unavailable")]
    StoreUnavailable,
    /// A body the proxy must read was larger than allowed.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request could not be read or rewritten.
    #[error("bad request")]
    BadRequest,
    /// The route has no upstream endpoint right now.
    #[error("no upstream endpoint")]
    NoEndpoints,
    /// Connecting to the upstream failed or timed out, or it broke the exchange.
    #[error("upstream unreachable")]
    UpstreamUnavailable,
    /// The upstream did not send response headers in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The endpoint already has as many requests in flight as the route allows.
    #[error("upstream connection limit reached")]
    UpstreamOverloaded,
}

impl Rejection {
    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::NotReady => "not_ready",
            Rejection::NoRoute => "no_route",
            Rejection::TokenMissing { .. } => "token_missing",
            Rejection::TokenInvalid { .. } => "token_invalid",
            Rejection::InsufficientScope { .. } => "insufficient_scope",
            Rejection::StoreUnavailable => "store_unavailable",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::BadRequest => "bad_request",
            Rejection::NoEndpoints => "no_endpoints",
            Rejection::UpstreamUnavailable => "upstream_unavailable",
            Rejection::UpstreamTimeout => "upstream_timeout",
            Rejection::UpstreamOverloaded => "upstream_overloaded",
        }
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<ProxyBody> {
        match self {
            Rejection::NotReady => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No configuration loaded yet",
            ),
            Rejection::NoRoute => {
                message(StatusCode::NOT_FOUND, "no Route matched with those values")
            }
            Rejection::TokenMissing { realm } => bearer_error(
                StatusCode::UNAUTHORIZED,
                &realm,
                "invalid_request",
                "The access token is missing",
                None,
            ),
            Rejection::TokenInvalid { realm } => bearer_error(
                StatusCode::UNAUTHORIZED,
                &realm,
                "invalid_token",
                "The access token is invalid or has expired",
                None,
            ),
            Rejection::InsufficientScope { realm, scope } => bearer_error(
                StatusCode::FORBIDDEN,
                &realm,
                "insufficient_scope",
                "The access token does not grant the scope this request requires",
                Some(&scope),
            ),
            Rejection::StoreUnavailable => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({
                    "error": "temporarily_unavailable",
                    "error_description": "The token store is unavailable, try again later",
                }),
            ),
            Rejection::BodyTooLarge => {
                message(StatusCode::PAYLOAD_TOO_LARGE, "Request size limit exceeded")
            }
            Rejection::BadRequest => message(StatusCode::BAD_REQUEST, "Bad request"),
            Rejection::NoEndpoints => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No upstream endpoint available",
            ),
            Rejection::UpstreamUnavailable => message(
                StatusCode::BAD_GATEWAY,
                "An invalid response was received from the upstream server",
            ),
            Rejection::UpstreamTimeout => message(
                StatusCode::GATEWAY_TIMEOUT,
                "The upstream server is timing out",
            ),
            Rejection::UpstreamOverloaded => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many requests in flight to the upstream server",
            ),
        }
    }
}

fn message(status: StatusCode, text: &str) -> Response<ProxyBody> {
    json(status, &serde_json::json!({ "message": text }))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// RFC 6750 §3 error with its `WWW-Authenticate` challenge.
fn bearer_error(
    status: StatusCode,
    realm: &str,
    error: &str,
    description: &str,
    scope: Option<&str>,
) -> Response<ProxyBody> {
    let mut resp = json(
        status,
        &serde_json::json!({ "error": error, "error_description": description }),
    );
    let mut challenge = format!(
        "Bearer realm=\"{}\", error=\"{error}\", error_description=\"{description}\"",
        quoted(realm)
    );
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{}\"", quoted(scope)));
    }
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Escape for an RFC 7230 quoted-string.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(resp: Response<ProxyBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn missing_token_is_a_401_with_a_bearer_challenge() {
        let resp = Rejection::TokenMissing {
            realm: "service".into(),
        }
        .into_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"service\", error=\"invalid_request\", error_description=\"The access token is missing\""
        );
        let body = body_json(resp).await;
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["error_description"], "The access token is missing");
    }

    #[tokio::test]
    async fn insufficient_scope_names_the_scope_in_the_challenge() {
        let resp = Rejection::InsufficientScope {
            realm: "r".into(),
            scope: "a b".into(),
        }
        .into_response();
        assert_eq!(resp.status(), 403);
        let challenge = resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer realm=\"r\", error=\"insufficient_scope\""));
        assert!(challenge.ends_with("scope=\"a b\""));
        assert_eq!(body_json(resp).await["error"], "insufficient_scope");
    }

    #[tokio::test]
    async fn no_route_uses_kongs_message() {
        let resp = Rejection::NoRoute.into_response();
        assert_eq!(resp.status(), 404);
        assert_eq!(
            body_json(resp).await["message"],
            "no Route matched with those values"
        );
    }

    #[tokio::test]
    async fn upstream_failures_map_to_gateway_statuses() {
        assert_eq!(Rejection::UpstreamUnavailable.into_response().status(), 502);
        assert_eq!(Rejection::UpstreamTimeout.into_response().status(), 504);
        assert_eq!(Rejection::NoEndpoints.into_response().status(), 503);
        let resp = Rejection::StoreUnavailable.into_response();
        assert_eq!(resp.status(), 503);
        assert_eq!(body_json(resp).await["error"], "temporarily_unavailable");
    }
}
