//! `GET <route>/.well-known/oauth-authorization-server`: RFC 8414 metadata for the
//! authorization server a route embodies, derived from the route's settings so it
//! always tells the truth about what is enabled.

use serde_json::{json, Map, Value};

use super::error::json_response;
use super::{OAuthRequest, OAuthResponse};
use crate::config::RouteOAuth2;
use http::StatusCode;

/// Client authentication methods every client-authenticated endpoint accepts.
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

pub(crate) fn respond(req: &OAuthRequest, oauth: &RouteOAuth2) -> OAuthResponse {
    let Some(issuer) = req.issuer.as_deref().map(|i| i.trim_end_matches('/')) else {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({
                "error": "not_found",
                "error_description": "This route answers any host and names no issuer: set oauth2.issuer to publish metadata",
            }),
        );
    };
    let endpoint = |p: &str| format!("{issuer}{p}");

    let mut response_types = Vec::new();
    let mut grant_types = Vec::new();
    if oauth.enable_authorization_code {
        response_types.push("code");
        grant_types.push("authorization_code");
    }
    if oauth.enable_implicit_grant {
        response_types.push("token");
        grant_types.push("implicit");
    }
    if oauth.enable_client_credentials {
        grant_types.push("client_credentials");
    }
    if oauth.enable_password_grant {
        grant_types.push("password");
    }
    // Refresh tokens come from the authorization code and password grants, and
    // only when access tokens expire.
    if oauth.token_expiration > 0
        && (oauth.enable_authorization_code || oauth.enable_password_grant)
    {
        grant_types.push("refresh_token");
    }

    let mut body = Map::new();
    body.insert("issuer".into(), issuer.into());
    body.insert(
        "authorization_endpoint".into(),
        endpoint("/oauth2/authorize").into(),
    );
    body.insert("token_endpoint".into(), endpoint("/oauth2/token").into());
    body.insert(
        "introspection_endpoint".into(),
        endpoint("/oauth2/introspect").into(),
    );
    body.insert(
        "revocation_endpoint".into(),
        endpoint("/oauth2/revoke").into(),
    );
    body.insert("response_types_supported".into(), json!(response_types));
    body.insert("grant_types_supported".into(), json!(grant_types));
    body.insert(
        "token_endpoint_auth_methods_supported".into(),
        json!(AUTH_METHODS),
    );
    body.insert(
        "introspection_endpoint_auth_methods_supported".into(),
        json!(AUTH_METHODS),
    );
    body.insert(
        "revocation_endpoint_auth_methods_supported".into(),
        json!(AUTH_METHODS),
    );
    body.insert("code_challenge_methods_supported".into(), json!(["S256"]));
    if !oauth.scopes.is_empty() {
        body.insert("scopes_supported".into(), json!(oauth.scopes));
    }
    json_response(StatusCode::OK, &Value::Object(body))
}
