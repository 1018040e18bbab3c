//! `POST /oauth2/revoke` (RFC 7009), beyond Kong.
//!
//! The caller authenticates as a client and can revoke only its own tokens;
//! revoking either token of a pair revokes its partner too. The answer is 200 with
//! an empty JSON object whether or not anything was revoked, so the endpoint cannot
//! be used to probe for valid tokens (RFC 7009 §2.2).

use serde_json::json;

use super::client_auth;
use super::error::{json_response, Result};
use super::lookup::find;
use super::{Ctx, OAuthResponse};
use http::StatusCode;

pub(crate) async fn respond(ctx: &Ctx<'_>) -> Result<OAuthResponse> {
    let client = client_auth::authenticate(
        &ctx.params,
        ctx.req.authorization.as_deref(),
        &ctx.clients(),
    )
    .await?;
    if let Some(found) = find(&ctx.params, ctx.store).await? {
        if found.client_id() == client.client_id() {
            if ctx.store.revoke(found.digest()).await? {
                ctx.audit(crate::audit::Event::TokenRevoked {
                    client_id: client.client_id(),
                });
            }
            tracing::debug!(
                route.name = %ctx.route.id,
                client.id = %client.client_id(),
                "Token revoked"
            );
        }
    }
    Ok(json_response(StatusCode::OK, &json!({})))
}
