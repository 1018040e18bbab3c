//! Every response the proxy makes itself (routing and upstream failures, token denials
//! with their bearer challenge, OAuth2 endpoint answers, gRPC statuses, admin pages,
//! redirects) is built here, so each shape has one definition and "the token store is unavailable"
//! is said one way everywhere.
//!
//! A [`Reply`] is status, headers and a small body; it becomes an HTTP response at the
//! edge ([`Reply::into_response`] for the proxy's listeners, [`Reply::into_full`] for
//! the admin servers).

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::body::{full, ProxyBody};

/// `Content-Type` of every JSON body the proxy writes.
const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-message` is percent-encoded (gRPC over HTTP/2 spec, "Responses").
const GRPC_MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// The one description of a failed token store, for enforcement and OAuth2 endpoints.
pub const STORE_UNAVAILABLE: &str = "The token store is temporarily unavailable";

/// A complete response the proxy built itself.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Reply {
    /// `body` as JSON.
    pub fn json(status: StatusCode, body: &serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![(CONTENT_TYPE, JSON)],
            body: Bytes::from(
                serde_json::to_vec(body).expect("a serde_json::Value always serializes"),
            ),
        }
    }

    /// Kong's `{"message": ...}` body, for routing and upstream failures.
    pub fn message(status: StatusCode, text: &str) -> Self {
        Self::json(status, &serde_json::json!({ "message": text }))
    }

    /// An RFC 6749 / 6750 error body: `{"error", "error_description"}`.
    pub fn error(status: StatusCode, error: &str, description: &str) -> Self {
        Self::json(
            status,
            &serde_json::json!({ "error": error, "error_description": description }),
        )
    }

    /// The token store failed: fail closed with 503 `temporarily_unavailable`.
    pub fn store_unavailable() -> Self {
        Self::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            STORE_UNAVAILABLE,
        )
        .no_store()
    }

    /// A token denial (RFC 6750 §3): the error body plus a `WWW-Authenticate: Bearer`
    /// challenge naming the realm, the error, for `insufficient_scope` the scope, and
    /// where the protected resource metadata is (RFC 9728 §5.1).
    pub fn bearer_challenge(
        status: StatusCode,
        realm: &str,
        error: &str,
        description: &str,
        scope: Option<&str>,
        resource_metadata: Option<&str>,
    ) -> Self {
        let mut challenge = format!(
            "Bearer realm=\"{}\", error=\"{error}\", error_description=\"{description}\"",
            quoted(realm)
        );
        if let Some(scope) = scope {
            challenge.push_str(&format!(", scope=\"{}\"", quoted(scope)));
        }
        if let Some(url) = resource_metadata {
            challenge.push_str(&format!(", resource_metadata=\"{}\"", quoted(url)));
        }
        let mut reply = Self::error(status, error, description);
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            reply = reply.header(WWW_AUTHENTICATE, value);
        }
        reply.header(CACHE_CONTROL, HeaderValue::from_static("no-store"))
    }

    /// Plain text (admin pages) with its content type.
    pub fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Self {
        Reply {
            status,
            headers: vec![(CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body: body.into(),
        }
    }

    /// A trailers-only gRPC answer (gRPC over HTTP/2, "Responses"): HTTP 200 with
    /// `grpc-status` and, when it is a valid header value, the percent-encoded
    /// `grpc-message`, no body.
    pub fn grpc(code: u16, message: &str) -> Self {
        let mut reply = Reply {
            status: StatusCode::OK,
            headers: vec![
                (CONTENT_TYPE, HeaderValue::from_static("application/grpc")),
                (GRPC_STATUS, HeaderValue::from(code)),
            ],
            body: Bytes::new(),
        };
        let message = utf8_percent_encode(message, GRPC_MESSAGE_ESCAPES).to_string();
        if let Ok(value) = HeaderValue::from_str(&message) {
            reply = reply.header(GRPC_MESSAGE, value);
        }
        reply
    }

    /// A `302 Found` to `location`, never cached (it may carry a code or state).
    pub fn redirect(location: HeaderValue) -> Self {
        Reply {
            status: StatusCode::FOUND,
            headers: vec![(LOCATION, location)],
            body: Bytes::new(),
        }
        .no_store()
    }

    /// Forbid caching (RFC 6749 §5.1: token responses must never be cached).
    pub fn no_store(self) -> Self {
        self.header(CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .header(PRAGMA, HeaderValue::from_static("no-cache"))
    }

    /// One more header (appended: a name may repeat).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// As a response of the proxy's listeners.
    pub fn into_response(self) -> Response<ProxyBody> {
        self.into_http(full)
    }

    /// As a response of an admin server.
    pub fn into_full(self) -> Response<Full<Bytes>> {
        self.into_http(Full::new)
    }

    fn into_http<B>(self, body: impl FnOnce(Bytes) -> B) -> Response<B> {
        let mut resp = Response::new(body(self.body));
        *resp.status_mut() = self.status;
        for (name, value) in self.headers {
            resp.headers_mut().append(name, value);
        }
        resp
    }
}

/// A quoted-string value of a challenge parameter.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
