//! Sign-in-only protection (`login.requireSession`), the oauth2-proxy /
//! traefik-forward-auth use case: a request without a bearer token but with a live
//! session passes as its user; a browser without one is sent to sign in and back.
//!
//! A request that carries a bearer token is left to token enforcement untouched, so
//! API clients and browsers can share a route. Anything that is not a browser
//! navigation (no `text/html` in `Accept`, or not GET/HEAD) gets the usual 401 from
//! enforcement instead of a redirect it could not follow.

use http::request::Parts;
use http::{header, HeaderValue, Method};

use super::{flow, Ctx, LoginError};
use crate::enforce::find_token;
use crate::headers::{X_AUTHENTICATED_EMAIL, X_AUTHENTICATED_USERID};
use crate::oauth2::OAuthResponse;

/// What sign-in-only protection decided.
pub enum Gate {
    /// The route does not require a session, or the request carries a token, or
    /// it cannot follow a redirect: token enforcement decides.
    Enforce,
    /// A live session: identity headers are set, the request goes upstream.
    Pass,
    /// A browser without a session: this redirect sends it to sign in.
    SignIn(OAuthResponse),
}

/// Decide for a request to a non-endpoint path of a login route. `prefix` is the
/// matched route prefix as the client sees it (for the sign-in URL).
pub async fn check(ctx: &Ctx<'_>, parts: &mut Parts, prefix: &str) -> Result<Gate, LoginError> {
    if !ctx.login.require_session {
        return Ok(Gate::Enforce);
    }
    if find_token(
        &parts.headers,
        &ctx.oauth.auth_header_name,
        parts.uri.query(),
    )
    .is_some()
    {
        return Ok(Gate::Enforce);
    }
    let Some(key) = ctx.signin.key.as_ref() else {
        return Ok(Gate::Enforce);
    };
    if let Some((_, session)) = flow::session_from_headers(ctx, key, &parts.headers).await? {
        let user = HeaderValue::from_str(&session.user)
            .map_err(|_| LoginError::BadRequest("the user id cannot be sent in a header".into()))?;
        parts.headers.insert(X_AUTHENTICATED_USERID, user);
        if let Some(email) = session
            .email
            .as_deref()
            .and_then(|e| HeaderValue::from_str(e).ok())
        {
            parts.headers.insert(X_AUTHENTICATED_EMAIL, email);
        }
        return Ok(Gate::Pass);
    }
    let navigation = (parts.method == Method::GET || parts.method == Method::HEAD)
        && parts
            .headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"));
    if !navigation {
        return Ok(Gate::Enforce);
    }
    let here = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let rd: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    let location = format!("{}/oauth2/signin?rd={rd}", prefix.trim_end_matches('/'));
    let mut headers = super::pages::security_headers();
    headers.push((
        header::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| LoginError::BadRequest("unusable request path".into()))?,
    ));
    Ok(Gate::SignIn(OAuthResponse {
        status: http::StatusCode::FOUND,
        headers,
        body: bytes::Bytes::new(),
    }))
}
