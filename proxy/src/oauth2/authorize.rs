//! `POST /oauth2/authorize`, called by the organisation's login/consent app with the
//! route's provision key once the user has logged in and consented (Kong's
//! contract). Answers `{"redirect_uri": "..."}`: the registered redirect URI with a
//! `code` (authorization code grant) or, for the implicit grant, a fragment with the
//! access token.
//!
//! Errors before the client and its redirect URI are known (HTTPS, provision key,
//! user, unknown client) are plain 400 JSON. Later ones go back inside the redirect
//! URI (`?error=…&error_description=…&state=…`, RFC 6749 §4.1.2.1), still with
//! status 400 as Kong answers; an unregistered `redirect_uri` is reported inside
//! the client's first registered one, never the unverified one.

use serde_json::json;

use super::clients::{Client, LookupError};
use super::error::{json_response, ErrorCode, OAuthError, Result};
use super::token::{mint, RefreshPlan};
use super::{check_provision_key, client_allows, pkce, scope, Ctx, OAuthResponse};
use crate::config::{GrantType, OAuth2Client, Route, RouteOAuth2};
use crate::secret::{random_token, random_token_in};
use crate::store::{AuthorizationCode, Digest, TokenStore, UnixTime};
use http::StatusCode;

/// Append `params` to `uri`'s query (or fragment), keeping the registered URI
/// byte-for-byte (no URL normalisation) and encoding spaces as `%20`.
pub fn with_params(uri: &str, params: &[(&str, &str)], in_fragment: bool) -> String {
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let encoded = encoded.join("&");
    let (base, fragment) = match uri.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (uri, None),
    };
    if in_fragment {
        match fragment {
            Some(f) if !f.is_empty() => format!("{base}#{f}&{encoded}"),
            _ => format!("{base}#{encoded}"),
        }
    } else {
        let sep = if !base.contains('?') {
            "?"
        } else if base.ends_with('?') || base.ends_with('&') {
            ""
        } else {
            "&"
        };
        match fragment {
            Some(f) => format!("{base}{sep}{encoded}#{f}"),
            None => format!("{base}{sep}{encoded}"),
        }
    }
}

fn encode(s: &str) -> String {
    // form_urlencoded writes a space as `+`; a literal `+` is `%2B`, so every `+`
    // left is a space. `%20` is understood by every query parser.
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// An error reported inside the redirect URI.
fn redirect_error(redirect_uri: &str, e: &OAuthError, state: Option<&str>) -> OAuthResponse {
    let mut params = vec![
        ("error", e.code.as_str()),
        ("error_description", &*e.description),
    ];
    if let Some(s) = state {
        params.push(("state", s));
    }
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "redirect_uri": with_params(redirect_uri, &params, false) }),
    )
}

/// Answer an authorization request.
pub(crate) async fn respond(ctx: &Ctx<'_>) -> Result<OAuthResponse> {
    let params = &ctx.params;
    let state = ctx.state();
    check_provision_key(params, ctx.oauth)?;
    let user = params.authenticated_userid()?;
    let found = match params.get("client_id")? {
        Some(id) => ctx.clients().find(id).await.map_err(|e| match e {
            LookupError::Store(e) => e.into(),
            LookupError::Document(why) => {
                let mut e = OAuthError::invalid_client(false);
                e.description = why.into();
                e
            }
        })?,
        None => None,
    };
    let Some(found) = found else {
        return Err(OAuthError::invalid_client(false));
    };
    let client = &found.entry.client;
    let loopback_any_port = ctx.oauth.oauth21_for(found.is_unvetted());
    let Some(first_uri) = client.redirect_uris.first() else {
        return Err(OAuthError::invalid_request(
            "The client has no registered redirect_uri",
        ));
    };

    // From here on the client and a safe redirect target are known.
    let requested_uri = params.get("redirect_uri")?;
    let redirect_uri = match requested_uri {
        None => first_uri.as_str(),
        Some(u) if super::redirect::find(&client.redirect_uris, u, loopback_any_port).is_some() => {
            u
        }
        Some(_) => {
            let e = OAuthError::invalid_request(
                "Invalid redirect_uri that does not match with any redirect_uri created with the application",
            );
            return Ok(denied(ctx, first_uri, &e, state));
        }
    };
    let outcome = decide(ctx, &found, redirect_uri, requested_uri.is_some(), user).await;
    match outcome {
        Ok(resp) => Ok(resp),
        // The store failing is our problem, not the client's: plain 503.
        Err(e) if e.code == ErrorCode::TemporarilyUnavailable => Err(e),
        Err(e) => Ok(denied(ctx, redirect_uri, &e, state)),
    }
}

fn denied(ctx: &Ctx<'_>, redirect_uri: &str, e: &OAuthError, state: Option<&str>) -> OAuthResponse {
    tracing::info!(
        route.name = %ctx.route.id,
        endpoint = "authorize",
        error = e.code.as_str(),
        "OAuth2 request denied"
    );
    // Refusals answered inside the redirect are security events like any other.
    super::audit_refusal(ctx, super::Endpoint::Authorize, e);
    redirect_error(redirect_uri, e, state)
}

/// Everything after the redirect URI is settled; errors go into the redirect.
async fn decide(
    ctx: &Ctx<'_>,
    found: &Client<'_>,
    redirect_uri: &str,
    redirect_uri_sent: bool,
    user: &str,
) -> Result<OAuthResponse> {
    let params = &ctx.params;
    let client = &found.entry.client;
    let state = ctx.state();
    // Kong reports a scope problem in preference to a response_type problem.
    let scopes = scope::resolve(params, ctx.oauth, client)?;
    let resources = super::resource::requested(params, ctx.req.issuer.as_deref(), ctx.route)?;
    let grant = match params.get("response_type")? {
        Some("code") if ctx.oauth.enable_authorization_code => GrantType::AuthorizationCode,
        Some("token") if ctx.oauth.implicit_enabled() && !found.is_unvetted() => {
            GrantType::Implicit
        }
        _ => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "Invalid response_type",
            ))
        }
    };
    if !client_allows(client, grant) {
        return Err(OAuthError::unauthorized_client(
            "The client is not allowed to use this response_type",
        ));
    }

    if grant == GrantType::Implicit {
        let minted = mint(
            ctx,
            client,
            Some(user.to_owned()),
            scopes,
            random_token(),
            RefreshPlan::None,
        )
        .for_resources(resources);
        ctx.store.issue(minted.pair.clone()).await?;
        let expires_in = minted.expires_in.map(|e| e.to_string());
        // Kong's fragment, in Kong's (alphabetical) order.
        let mut frag: Vec<(&str, &str)> = vec![("access_token", &minted.access)];
        if let Some(e) = &expires_in {
            frag.push(("expires_in", e));
        }
        if let Some(s) = state {
            frag.push(("state", s));
        }
        frag.push(("token_type", "bearer"));
        return Ok(json_response(
            StatusCode::OK,
            &json!({ "redirect_uri": with_params(redirect_uri, &frag, true) }),
        ));
    }

    let challenge = pkce::challenge(
        params,
        ctx.oauth.pkce_for(found.is_unvetted()),
        client.client_type,
    )?;
    let issued_scopes = scopes.clone();
    let code = store_code(
        ctx.store,
        ctx.route,
        ctx.oauth,
        client,
        CodeGrant {
            user,
            scopes,
            redirect_uri,
            redirect_uri_sent,
            code_challenge: challenge,
            resources,
        },
        ctx.now,
    )
    .await?;
    ctx.audit(crate::audit::Event::TokenIssued {
        client_id: &client.client_id,
        grant: "code",
        user: Some(user),
        scopes: &issued_scopes,
    });
    let mut q: Vec<(&str, &str)> = vec![("code", &code)];
    if let Some(s) = state {
        q.push(("state", s));
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "redirect_uri": with_params(redirect_uri, &q, false) }),
    ))
}

/// What an authorization code grants, as decided at the authorization endpoint.
pub(crate) struct CodeGrant<'a> {
    pub user: &'a str,
    pub scopes: Vec<String>,
    pub redirect_uri: &'a str,
    /// The request named `redirect_uri` itself (the token request must repeat it).
    pub redirect_uri_sent: bool,
    pub code_challenge: Option<String>,
    /// RFC 8707 resources, already checked against the route.
    pub resources: Vec<String>,
}

/// Create and store a single-use authorization code (stored under its digest only)
/// and return the raw code. The one place codes are minted: the provision-key contract
/// and built-in sign-in (`crate::login`) both call it.
pub(crate) async fn store_code(
    store: &dyn TokenStore,
    route: &Route,
    oauth: &RouteOAuth2,
    client: &OAuth2Client,
    grant: CodeGrant<'_>,
    now: UnixTime,
) -> Result<String> {
    // The code carries its family's slot tag: redeeming it touches the family's keys.
    let family = random_token();
    let code = random_token_in(&family);
    let record = AuthorizationCode {
        route_id: route.id.clone(),
        global: oauth.global_credentials,
        client_id: client.client_id.clone(),
        consumer_id: client.consumer_id.clone(),
        authenticated_userid: grant.user.to_owned(),
        scopes: grant.scopes,
        redirect_uri: grant.redirect_uri.to_owned(),
        redirect_uri_sent: grant.redirect_uri_sent,
        code_challenge: grant.code_challenge,
        expires_at: now.saturating_add(oauth.code_ttl),
        family,
        resources: grant.resources,
    };
    store.put_code(Digest::of(code.as_bytes()), record).await?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_appended_to_the_query_without_touching_the_registered_uri() {
        assert_eq!(
            with_params(
                "http://google.com/kong",
                &[("code", "abc"), ("state", "a b")],
                false
            ),
            "http://google.com/kong?code=abc&state=a%20b"
        );
        assert_eq!(
            with_params("http://google.com/kong?foo=bar", &[("code", "x")], false),
            "http://google.com/kong?foo=bar&code=x"
        );
        assert_eq!(
            with_params("myapp:/cb#keep", &[("code", "x&y=z")], false),
            "myapp:/cb?code=x%26y%3Dz#keep"
        );
    }

    #[test]
    fn implicit_params_go_into_the_fragment() {
        assert_eq!(
            with_params(
                "https://a.example/cb",
                &[("access_token", "t"), ("token_type", "bearer")],
                true
            ),
            "https://a.example/cb#access_token=t&token_type=bearer"
        );
    }
}
