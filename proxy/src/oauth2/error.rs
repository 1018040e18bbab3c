//! Every way an OAuth2 endpoint request can fail, and the one place where a failure
//! becomes a response: RFC 6749 §5.2 JSON `{"error", "error_description"}` (plus
//! `state` when the client sent one), Kong's status codes, `Cache-Control: no-store`
//! and `Pragma: no-cache`, and `WWW-Authenticate: Basic` when HTTP Basic client
//! authentication failed (RFC 6749 §5.2, `invalid_client`).

use std::borrow::Cow;

use http::{header, HeaderName, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use super::OAuthResponse;
use crate::respond::Reply;

/// The `error` codes Gatehouse answers with. Kong's own codes
/// (`invalid_provision_key`, `invalid_authenticated_userid`, `invalid_method`) are
/// kept so that login apps written against Kong keep working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    InvalidProvisionKey,
    InvalidAuthenticatedUserid,
    InvalidMethod,
    TemporarilyUnavailable,
    /// RFC 8707 §2: a `resource` this server does not issue tokens for.
    InvalidTarget,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    /// RFC 7591 §3.2.2.
    InvalidClientMetadata,
}

impl ErrorCode {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidProvisionKey => "invalid_provision_key",
            ErrorCode::InvalidAuthenticatedUserid => "invalid_authenticated_userid",
            ErrorCode::InvalidMethod => "invalid_method",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
        }
    }

    /// Kong's status for this error (all 400 except the ones below).
    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidMethod => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// `WWW-Authenticate` sent with `invalid_client` after HTTP Basic (Kong's realm).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"OAuth2.0\"";

/// A failed OAuth2 endpoint request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    pub status: StatusCode,
    /// Extra response headers (`WWW-Authenticate`, `Allow`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
}

/// Shorthand for endpoint results.
pub type Result<T, E = OAuthError> = std::result::Result<T, E>;

impl OAuthError {
    /// An error with Kong's status for `code`.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            status: code.status(),
            headers: Vec::new(),
            state: None,
        }
    }

    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, description)
    }

    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    /// Kong's `invalid_client`; after HTTP Basic it is a 401 with a Basic challenge.
    pub fn invalid_client(via_basic: bool) -> Self {
        let mut e = Self::new(ErrorCode::InvalidClient, "Invalid client authentication");
        if via_basic {
            e.status = StatusCode::UNAUTHORIZED;
            e.headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            ));
        }
        e
    }

    pub fn unsupported_grant_type() -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, "Invalid grant_type")
    }

    pub fn invalid_provision_key() -> Self {
        Self::new(ErrorCode::InvalidProvisionKey, "Invalid provision_key")
    }

    pub fn invalid_authenticated_userid() -> Self {
        Self::new(
            ErrorCode::InvalidAuthenticatedUserid,
            "Missing authenticated_userid parameter",
        )
    }

    /// The HTTPS rule (Kong: `access_denied` / "You must use HTTPS").
    pub fn https_required() -> Self {
        Self::new(ErrorCode::AccessDenied, "You must use HTTPS")
    }

    /// Wrong HTTP method for `endpoint` (which only accepts `allow`).
    pub fn invalid_method(method: &http::Method, endpoint: &str, allow: &'static str) -> Self {
        let mut e = Self::new(
            ErrorCode::InvalidMethod,
            format!("The HTTP method {method} is invalid for the {endpoint} endpoint"),
        );
        e.headers
            .push((header::ALLOW, HeaderValue::from_static(allow)));
        e
    }

    /// The token store failed: fail closed.
    pub fn store_unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            crate::respond::STORE_UNAVAILABLE,
        )
    }

    /// Echo the client's `state` in the error body.
    pub fn with_state(mut self, state: Option<&str>) -> Self {
        if self.state.is_none() {
            self.state = state.map(str::to_owned);
        }
        self
    }

    /// Render as the JSON error response.
    pub fn into_response(self) -> OAuthResponse {
        let mut body = Map::new();
        body.insert("error".into(), self.code.as_str().into());
        body.insert(
            "error_description".into(),
            Value::String(self.description.into_owned()),
        );
        if let Some(state) = self.state {
            body.insert("state".into(), Value::String(state));
        }
        let mut resp = json_response(self.status, &Value::Object(body));
        resp.headers.extend(self.headers);
        resp
    }
}

impl From<crate::store::StoreError> for OAuthError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::warn!(error = %e, "Token store failed");
        OAuthError::store_unavailable()
    }
}

/// A JSON response with the headers every OAuth2 endpoint response carries
/// (RFC 6749 §5.1: tokens must never be cached).
pub fn json_response(status: StatusCode, body: &Value) -> OAuthResponse {
    Reply::json(status, body).no_store()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &OAuthResponse) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn header<'a>(r: &'a OAuthResponse, name: &HeaderName) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn an_error_renders_as_rfc6749_json_with_no_store_headers() {
        let r = OAuthError::invalid_request("Invalid code")
            .with_state(Some("wot"))
            .into_response();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body(&r),
            serde_json::json!({"error": "invalid_request", "error_description": "Invalid code", "state": "wot"})
        );
        assert_eq!(header(&r, &header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(header(&r, &header::PRAGMA), Some("no-cache"));
    }

    #[test]
    fn invalid_client_after_basic_is_a_401_with_a_basic_challenge() {
        let r = OAuthError::invalid_client(true).into_response();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            header(&r, &header::WWW_AUTHENTICATE),
            Some("Basic realm=\"OAuth2.0\"")
        );
        let r = OAuthError::invalid_client(false).into_response();
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(header(&r, &header::WWW_AUTHENTICATE), None);
    }
}
