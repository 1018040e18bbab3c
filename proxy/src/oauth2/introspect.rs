//! `POST /oauth2/introspect` (RFC 7662), beyond Kong.
//!
//! The caller must authenticate as a client. A client marked `resource_server` may
//! introspect any token valid on this route; every other client only its own tokens
//! (a client application has no business reading another's). Anything else — unknown, expired, revoked, other route,
//! someone else's — is `{"active": false}` with no further detail (RFC 7662 §2.2).

use serde_json::{json, Map, Value};

use super::client_auth;
use super::error::{json_response, Result};
use super::lookup::{find, Found};
use super::{valid_on_route, Ctx, OAuthResponse};
use http::StatusCode;

pub(crate) async fn respond(ctx: &Ctx<'_>) -> Result<OAuthResponse> {
    let client = client_auth::authenticate(
        &ctx.params,
        ctx.req.authorization.as_deref(),
        &ctx.clients(),
    )
    .await?;
    let found = find(&ctx.params, ctx.store).await?;
    let visible = found.filter(|f| {
        let grant = f.grant();
        valid_on_route(
            &grant.route_id,
            grant.global,
            !grant.audience.is_empty(),
            ctx.route,
            ctx.oauth,
        ) && (client.entry.client.resource_server || f.client_id() == client.client_id())
    });
    let Some(found) = visible else {
        return Ok(json_response(StatusCode::OK, &json!({ "active": false })));
    };
    let mut body = Map::new();
    body.insert("active".into(), true.into());
    let (scopes, client_id, user, iat, exp, token_type) = match &found {
        Found::Access(_, t) => (
            &t.scopes,
            &t.client_id,
            &t.authenticated_userid,
            t.issued_at,
            t.expires_at,
            Some("bearer"),
        ),
        Found::Refresh(_, t) => (
            &t.scopes,
            &t.client_id,
            &t.authenticated_userid,
            t.issued_at,
            t.expires_at,
            None,
        ),
    };
    if !scopes.is_empty() {
        body.insert("scope".into(), scopes.join(" ").into());
    }
    body.insert("client_id".into(), client_id.clone().into());
    if let Some(u) = user {
        body.insert("username".into(), u.clone().into());
        body.insert("sub".into(), u.clone().into());
    }
    if let Some(t) = token_type {
        body.insert("token_type".into(), t.into());
    }
    if let Some(e) = exp {
        body.insert("exp".into(), e.into());
    }
    body.insert("iat".into(), iat.into());
    // RFC 7662 §2.2: `aud` is a string or an array of strings.
    match found.grant().audience.as_slice() {
        [] => {}
        [one] => {
            body.insert("aud".into(), one.clone().into());
        }
        many => {
            body.insert("aud".into(), many.to_vec().into());
        }
    }
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}
