//! Every reason the proxy answers a request itself instead of proxying it, and which
//! answer ([`Reply`], built by [`crate::respond`]) each reason gets.
//!
//! Bodies follow Kong's wire contract: `{"message": ...}` for routing and upstream
//! failures, RFC 6749/6750 `{"error", "error_description"}` for token denials, with a
//! `WWW-Authenticate: Bearer` challenge on 401 and 403.

use http::{Response, StatusCode};

use crate::body::ProxyBody;
use crate::respond::Reply;

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
    TokenMissing {
        realm: String,
        /// RFC 9728 metadata URL named in the challenge (see [`Rejection::with_resource_metadata`]).
        resource_metadata: Option<String>,
    },
    /// Unknown, expired, revoked token, or one issued for another route.
    #[error("access token invalid")]
    TokenInvalid {
        realm: String,
        resource_metadata: Option<String>,
    },
    /// The token lacks a scope a gateway rule requires.
    #[error("insufficient scope")]
    InsufficientScope {
        realm: String,
        scope: String,
        resource_metadata: Option<String>,
    },
    /// The token store failed: fail closed.
    #[error("token store unavailable")]
    StoreUnavailable,
    /// A body the proxy must read was larger than allowed.
    #[error("request body too large")]
    BodyTooLarge,
    /// A body the proxy must read arrived slower than the minimum rate.
    #[error("request body too slow")]
    BodyTimeout,
    /// The request could not be read or rewritten.
    #[error("bad request")]
    BadRequest,
    /// The path is refused by the path policy (see [`gatehouse_config::path`]).
    #[error("refused path: {0}")]
    BadPath(gatehouse_config::path::PathError),
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

impl From<crate::router::Unrouted> for Rejection {
    fn from(u: crate::router::Unrouted) -> Self {
        match u {
            crate::router::Unrouted::BadPath(e) => Rejection::BadPath(e),
            crate::router::Unrouted::NoRoute => Rejection::NoRoute,
        }
    }
}

impl Rejection {
    /// A missing token on a route with `realm`.
    pub fn token_missing(realm: &str) -> Self {
        Rejection::TokenMissing {
            realm: realm.to_owned(),
            resource_metadata: None,
        }
    }

    /// An unusable token on a route with `realm`.
    pub fn token_invalid(realm: &str) -> Self {
        Rejection::TokenInvalid {
            realm: realm.to_owned(),
            resource_metadata: None,
        }
    }

    /// A token without the `scope` a rule requires.
    pub fn insufficient_scope(realm: &str, scope: String) -> Self {
        Rejection::InsufficientScope {
            realm: realm.to_owned(),
            scope,
            resource_metadata: None,
        }
    }

    /// Name the route's protected resource metadata in a token challenge (RFC 9728
    /// §5.1), so a client can discover how to get a token. `url` is only computed
    /// for token rejections: refusals are rare, successes must not pay for it.
    pub fn with_resource_metadata(mut self, url: impl FnOnce() -> Option<String>) -> Self {
        if let Rejection::TokenMissing {
            resource_metadata, ..
        }
        | Rejection::TokenInvalid {
            resource_metadata, ..
        }
        | Rejection::InsufficientScope {
            resource_metadata, ..
        } = &mut self
        {
            *resource_metadata = url();
        }
        self
    }

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
            Rejection::BodyTimeout => "body_timeout",
            Rejection::BadRequest => "bad_request",
            Rejection::BadPath(_) => "bad_path",
            Rejection::NoEndpoints => "no_endpoints",
            Rejection::UpstreamUnavailable => "upstream_unavailable",
            Rejection::UpstreamTimeout => "upstream_timeout",
            Rejection::UpstreamOverloaded => "upstream_overloaded",
        }
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<ProxyBody> {
        self.reply().into_response()
    }

    /// The answer for this reason.
    pub fn reply(self) -> Reply {
        match self {
            Rejection::NotReady => Reply::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No configuration loaded yet",
            ),
            Rejection::NoRoute => {
                Reply::message(StatusCode::NOT_FOUND, "no Route matched with those values")
            }
            Rejection::TokenMissing {
                realm,
                resource_metadata,
            } => Reply::bearer_challenge(
                StatusCode::UNAUTHORIZED,
                &realm,
                "invalid_request",
                "The access token is missing",
                None,
                resource_metadata.as_deref(),
            ),
            Rejection::TokenInvalid {
                realm,
                resource_metadata,
            } => Reply::bearer_challenge(
                StatusCode::UNAUTHORIZED,
                &realm,
                "invalid_token",
                "The access token is invalid or has expired",
                None,
                resource_metadata.as_deref(),
            ),
            Rejection::InsufficientScope {
                realm,
                scope,
                resource_metadata,
            } => Reply::bearer_challenge(
                StatusCode::FORBIDDEN,
                &realm,
                "insufficient_scope",
                "The access token does not grant the scope this request requires",
                Some(&scope),
                resource_metadata.as_deref(),
            ),
            Rejection::StoreUnavailable => Reply::store_unavailable(),
            Rejection::BodyTooLarge => {
                Reply::message(StatusCode::PAYLOAD_TOO_LARGE, "Request size limit exceeded")
            }
            Rejection::BodyTimeout => {
                Reply::message(StatusCode::REQUEST_TIMEOUT, "Request body read timed out")
            }
            Rejection::BadRequest => Reply::message(StatusCode::BAD_REQUEST, "Bad request"),
            Rejection::BadPath(e) => {
                Reply::message(StatusCode::BAD_REQUEST, &format!("Bad request: {e}"))
            }
            Rejection::NoEndpoints => Reply::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No upstream endpoint available",
            ),
            Rejection::UpstreamUnavailable => Reply::message(
                StatusCode::BAD_GATEWAY,
                "An invalid response was received from the upstream server",
            ),
            Rejection::UpstreamTimeout => Reply::message(
                StatusCode::GATEWAY_TIMEOUT,
                "The upstream server is timing out",
            ),
            Rejection::UpstreamOverloaded => Reply::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many requests in flight to the upstream server",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::WWW_AUTHENTICATE;
    use http_body_util::BodyExt;

    async fn body_json(resp: Response<ProxyBody>) -> serde_json::Value {
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn missing_token_is_a_401_with_a_bearer_challenge() {
        let resp = Rejection::token_missing("service").into_response();
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
        let resp = Rejection::insufficient_scope("r", "a b".into())
            .with_resource_metadata(|| {
                Some("https://gw.example/.well-known/oauth-protected-resource/mcp".into())
            })
            .into_response();
        assert_eq!(resp.status(), 403);
        let challenge = resp.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.starts_with("Bearer realm=\"r\", error=\"insufficient_scope\""));
        assert!(challenge.contains(", scope=\"a b\""), "{challenge}");
        assert!(
            challenge.ends_with(", resource_metadata=\"https://gw.example/.well-known/oauth-protected-resource/mcp\""),
            "{challenge}"
        );
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
