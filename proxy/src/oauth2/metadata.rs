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
    document(req.issuer.as_deref(), oauth)
}

/// The answer where a route cannot name its issuer.
pub(crate) fn no_issuer() -> OAuthResponse {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({
            "error": "not_found",
            "error_description": "This route answers any host and names no issuer: set oauth2.issuer to publish metadata",
        }),
    )
}

/// The metadata document of the authorization server at `issuer`.
pub(crate) fn document(issuer: Option<&str>, oauth: &RouteOAuth2) -> OAuthResponse {
    let Some(issuer) = issuer.map(|i| i.trim_end_matches('/')) else {
        return no_issuer();
    };
    let endpoint = |p: &str| format!("{issuer}{p}");

    let mut response_types = Vec::new();
    let mut grant_types = Vec::new();
    if oauth.enable_authorization_code {
        response_types.push("code");
        grant_types.push("authorization_code");
    }
    if oauth.implicit_enabled() {
        response_types.push("token");
        grant_types.push("implicit");
    }
    if oauth.enable_client_credentials {
        grant_types.push("client_credentials");
    }
    if oauth.password_enabled() {
        grant_types.push("password");
    }
    // Refresh tokens come from the authorization code and password grants, and
    // only when access tokens expire.
    if oauth.token_expiration > 0 && (oauth.enable_authorization_code || oauth.password_enabled()) {
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
    // Built-in sign-in sends `iss` with every authorization response (RFC 9207).
    body.insert(
        "authorization_response_iss_parameter_supported".into(),
        oauth.login.is_some().into(),
    );
    let open = &oauth.client_registration;
    body.insert(
        "client_id_metadata_document_supported".into(),
        open.metadata_documents.into(),
    );
    if open.dynamic {
        body.insert(
            "registration_endpoint".into(),
            endpoint("/oauth2/register").into(),
        );
    }
    if !oauth.scopes.is_empty() {
        body.insert("scopes_supported".into(), json!(oauth.scopes));
    }
    json_response(StatusCode::OK, &Value::Object(body))
}
