//! `POST /oauth2/token`: the authorization code, refresh token, client credentials
//! and password grants (RFC 6749 §4.1.3, §6, §4.4, §4.3) with Kong's rules and
//! messages, plus minting of token pairs shared with the implicit grant.
//!
//! Order of checks (Kong's precedence): client authentication, then the grant type,
//! then the client's permission for it, then `redirect_uri`, then the grant itself.
//!
//! Deliberate departure from Kong: an unknown, expired, replayed or foreign code or
//! refresh token is `invalid_grant` (RFC 6749 §5.2), not `invalid_request`; the
//! descriptions ("Invalid code", "Invalid refresh_token") are Kong's.

use serde_json::{Map, Value};

use super::client_auth::{self, AuthenticatedClient};
use super::error::{json_response, OAuthError, Result};
use super::{check_provision_key, client_allows, pkce, scope, valid_on_route, Ctx, OAuthResponse};
use crate::audit::Event;
use crate::config::{ClientType, GrantType, OAuth2Client};
use crate::secret::{random_token, random_token_in};
use crate::store::{
    AccessToken, CodeRedemption, Digest, Grant, IssuedPair, RefreshToken, Rotation,
};
use http::StatusCode;

/// A freshly minted token pair: the raw values for the client, the records for the
/// store. Deliberately not `Debug`: it holds raw tokens that must never be logged.
pub(crate) struct Minted {
    pub access: String,
    pub refresh: Option<String>,
    pub expires_in: Option<u64>,
    pub scopes: Vec<String>,
    pub pair: IssuedPair,
}

/// What to do about the refresh token of a new pair.
pub(crate) enum RefreshPlan {
    /// No refresh token (implicit, client credentials, or `token_expiration: 0`).
    None,
    /// A new refresh token carrying `scopes`.
    New { scopes: Vec<String> },
    /// Keep the presented refresh token (`reuse_refresh_token`).
    Keep {
        digest: Digest,
        raw: String,
        scopes: Vec<String>,
    },
}

/// Mint an access token (and maybe a refresh token) for `client` on this route.
pub(crate) fn mint(
    ctx: &Ctx<'_>,
    client: &OAuth2Client,
    user: Option<String>,
    scopes: Vec<String>,
    family: String,
    plan: RefreshPlan,
) -> Minted {
    let now = ctx.now;
    let ttl = ctx.oauth.token_expiration;
    // Kong: a token that never expires never gets a refresh token.
    let plan = if ttl == 0 { RefreshPlan::None } else { plan };
    let expires_at = (ttl > 0).then(|| now.saturating_add(ttl));
    let access = random_token_in(&family);
    let access_digest = Digest::of(access.as_bytes());
    let refresh_ttl = ctx
        .oauth
        .refresh_ttl_for(client.client_type == ClientType::Public);
    let refresh_expires_at = (refresh_ttl > 0).then(|| now.saturating_add(refresh_ttl));
    let (refresh_raw, refresh) = match plan {
        RefreshPlan::None => (None, None),
        RefreshPlan::New { scopes } => {
            let raw = random_token_in(&family);
            let d = Digest::of(raw.as_bytes());
            (Some(raw), Some((d, scopes)))
        }
        RefreshPlan::Keep {
            digest,
            raw,
            scopes,
        } => (Some(raw), Some((digest, scopes))),
    };
    let refresh = refresh.map(|(d, refresh_scopes)| {
        (
            d,
            RefreshToken {
                grant: Grant {
                    route_id: ctx.route.id.clone(),
                    global: ctx.oauth.global_credentials,
                    client_id: client.client_id.clone(),
                    consumer_id: client.consumer_id.clone(),
                    authenticated_userid: user.clone(),
                    scopes: refresh_scopes,
                    issued_at: now,
                    expires_at: refresh_expires_at,
                    family: family.clone(),
                    audience: Vec::new(),
                },
                access: access_digest,
            },
        )
    });
    let record = AccessToken {
        grant: Grant {
            route_id: ctx.route.id.clone(),
            global: ctx.oauth.global_credentials,
            client_id: client.client_id.clone(),
            consumer_id: client.consumer_id.clone(),
            authenticated_userid: user,
            scopes: scopes.clone(),
            issued_at: now,
            expires_at,
            family,
            audience: Vec::new(),
        },
        refresh: refresh.as_ref().map(|(d, _)| *d),
    };
    Minted {
        access,
        refresh: refresh_raw,
        expires_in: (ttl > 0).then_some(ttl),
        scopes,
        pair: IssuedPair {
            access_digest,
            access: record,
            refresh,
        },
    }
}

impl Minted {
    /// Bind the pair to RFC 8707 resources (its audience).
    pub(crate) fn for_resources(mut self, audience: Vec<String>) -> Self {
        if let Some((_, refresh)) = &mut self.pair.refresh {
            refresh.grant.audience = audience.clone();
        }
        self.pair.access.grant.audience = audience;
        self
    }
}

/// The `resource` values of this token request, checked against the route.
fn requested_resources(ctx: &Ctx<'_>) -> Result<Vec<String>> {
    super::resource::requested(&ctx.params, ctx.req.issuer.as_deref(), ctx.route)
}

/// RFC 6749 §5.1 success body: `access_token`, `token_type`, `expires_in` (omitted
/// when the token never expires), `refresh_token`, `scope`, and Kong's `state`.
fn success(m: &Minted, state: Option<&str>) -> OAuthResponse {
    let mut body = Map::new();
    body.insert("access_token".into(), m.access.clone().into());
    body.insert("token_type".into(), "bearer".into());
    if let Some(e) = m.expires_in {
        body.insert("expires_in".into(), e.into());
    }
    if let Some(r) = &m.refresh {
        body.insert("refresh_token".into(), r.clone().into());
    }
    if !m.scopes.is_empty() {
        body.insert("scope".into(), m.scopes.join(" ").into());
    }
    if let Some(s) = state {
        body.insert("state".into(), s.into());
    }
    json_response(StatusCode::OK, &Value::Object(body))
}

/// The wire name of a grant (audit log).
pub(crate) fn grant_name(g: GrantType) -> &'static str {
    match g {
        GrantType::AuthorizationCode => "authorization_code",
        GrantType::RefreshToken => "refresh_token",
        GrantType::ClientCredentials => "client_credentials",
        GrantType::Password => "password",
        GrantType::Implicit => "implicit",
    }
}

pub(crate) fn parse_grant(s: Option<&str>) -> Option<GrantType> {
    match s? {
        "authorization_code" => Some(GrantType::AuthorizationCode),
        "refresh_token" => Some(GrantType::RefreshToken),
        "client_credentials" => Some(GrantType::ClientCredentials),
        "password" => Some(GrantType::Password),
        _ => None,
    }
}

/// Answer a token request.
pub(crate) async fn respond(ctx: &Ctx<'_>) -> Result<OAuthResponse> {
    let client = client_auth::authenticate(
        &ctx.params,
        ctx.req.authorization.as_deref(),
        &ctx.clients(),
    )
    .await?;
    let o = ctx.oauth;
    let grant = parse_grant(ctx.params.get("grant_type")?).filter(|g| match g {
        GrantType::AuthorizationCode => o.enable_authorization_code,
        // Refresh tokens exist only where some grant hands them out; refreshing is
        // always on there, as in Kong.
        GrantType::RefreshToken => true,
        GrantType::ClientCredentials => o.enable_client_credentials,
        GrantType::Password => o.password_enabled(),
        GrantType::Implicit => false,
    });
    let Some(grant) = grant else {
        return Err(OAuthError::unsupported_grant_type());
    };
    let c = &client.entry.client;
    if grant == GrantType::ClientCredentials && client.is_public() {
        // RFC 6749 §4.4: only confidential clients.
        return Err(OAuthError::unauthorized_client(
            "Public clients cannot use the client_credentials grant",
        ));
    }
    if !client_allows(c, grant) {
        return Err(OAuthError::unauthorized_client(
            "The client is not allowed to use this grant_type",
        ));
    }
    if grant != GrantType::ClientCredentials {
        if let Some(uri) = ctx.params.get("redirect_uri")? {
            let loopback_any_port = o.oauth21_for(client.is_unvetted());
            if super::redirect::find(&c.redirect_uris, uri, loopback_any_port).is_none() {
                return Err(OAuthError::invalid_request(
                    "Invalid redirect_uri that does not match with any redirect_uri created with the application",
                ));
            }
        }
    }
    let minted = match grant {
        GrantType::AuthorizationCode => authorization_code(ctx, &client).await?,
        GrantType::RefreshToken => refresh_token(ctx, &client).await?,
        GrantType::ClientCredentials => client_credentials(ctx, &client).await?,
        GrantType::Password => password(ctx, &client).await?,
        GrantType::Implicit => return Err(OAuthError::unsupported_grant_type()),
    };
    tracing::debug!(
        route.name = %ctx.route.id,
        client.id = %client.client_id(),
        grant = ?grant,
        "Token issued"
    );
    ctx.audit(Event::TokenIssued {
        client_id: client.client_id(),
        grant: grant_name(grant),
        user: minted.pair.access.authenticated_userid.as_deref(),
        scopes: &minted.scopes,
    });
    Ok(success(&minted, ctx.state()))
}

async fn authorization_code(ctx: &Ctx<'_>, client: &AuthenticatedClient<'_>) -> Result<Minted> {
    let code = ctx
        .params
        .get("code")?
        .ok_or_else(|| OAuthError::invalid_request("Invalid code"))?;
    let rec = match ctx.store.take_code(Digest::of(code.as_bytes())).await? {
        CodeRedemption::Redeemed(rec) => *rec,
        CodeRedemption::Replayed { family } => {
            // RFC 6749 §4.1.2: the store has revoked everything issued from it.
            ctx.audit(Event::CodeReplay {
                client_id: client.client_id(),
                family: &family,
            });
            tracing::warn!(
                route.name = %ctx.route.id,
                client.id = %client.client_id(),
                "Authorization code replayed; tokens issued from it revoked"
            );
            return Err(OAuthError::invalid_grant("Invalid code"));
        }
        CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("Invalid code")),
    };
    if rec.client_id != client.client_id()
        || !valid_on_route(
            &rec.route_id,
            rec.global,
            !rec.resources.is_empty(),
            ctx.route,
            ctx.oauth,
        )
    {
        return Err(OAuthError::invalid_grant("Invalid code"));
    }
    match ctx.params.get("redirect_uri")? {
        // RFC 6749 §4.1.3: identical to the one the code was issued for.
        Some(uri) if uri != rec.redirect_uri => {
            return Err(OAuthError::invalid_grant(
                "redirect_uri does not match the authorization request",
            ));
        }
        // ...and required when the authorization request carried one (Kong does not
        // ask; `optional_token_redirect_uri` keeps its behaviour).
        None if rec.redirect_uri_sent && !ctx.oauth.optional_token_redirect_uri => {
            return Err(OAuthError::invalid_request(
                "redirect_uri is required: the authorization request sent one",
            ));
        }
        _ => {}
    }
    match &rec.code_challenge {
        Some(challenge) => pkce::verify(&ctx.params, challenge)?,
        None => {
            let client_type = client.entry.client.client_type;
            if pkce::required(ctx.oauth.pkce_for(client.is_unvetted()), client_type) {
                return Err(OAuthError::invalid_request(
                    "code_verifier is required for PKCE authorization requests",
                ));
            }
            if ctx.params.is_present("code_verifier") {
                // RFC 9700 §4.8.2: a verifier for a code issued without a challenge
                // signals a PKCE downgrade attempt.
                return Err(OAuthError::invalid_grant(
                    "code_verifier sent for a code issued without code_challenge",
                ));
            }
        }
    }
    let audience = super::resource::narrow(requested_resources(ctx)?, &rec.resources)?;
    let minted = mint(
        ctx,
        &client.entry.client,
        Some(rec.authenticated_userid),
        rec.scopes.clone(),
        rec.family,
        RefreshPlan::New { scopes: rec.scopes },
    )
    .for_resources(audience);
    ctx.store.issue(minted.pair.clone()).await?;
    Ok(minted)
}

/// A pair nobody holds and that is already expired: handed to
/// [`TokenStore::rotate`](crate::store::TokenStore::rotate) only to let it detect
/// reuse of a refresh token that is no longer live. It can never be persisted as a
/// live token (the presented token is not live, so no rotation happens), and even
/// then nobody knows its values.
fn decoy(ctx: &Ctx<'_>, client: &OAuth2Client) -> IssuedPair {
    let mut m = mint(
        ctx,
        client,
        None,
        Vec::new(),
        random_token(),
        RefreshPlan::None,
    );
    m.pair.access.grant.expires_at = Some(0);
    m.pair
}

async fn refresh_token(ctx: &Ctx<'_>, client: &AuthenticatedClient<'_>) -> Result<Minted> {
    let invalid = || OAuthError::invalid_grant("Invalid refresh_token");
    let raw = ctx
        .params
        .get("refresh_token")?
        .ok_or_else(|| OAuthError::invalid_request("Invalid refresh_token"))?;
    let digest = Digest::of(raw.as_bytes());
    let grace = ctx.oauth.refresh_token_grace_seconds > 0;
    let Some(rec) = ctx.store.refresh_token(digest).await? else {
        // A retry of a rotation whose answer was lost: the same pair again.
        if grace {
            let replayed = super::grace::replay(ctx, raw).await;
            // Bound to the client it was issued to, like the refresh token itself.
            if let Some(minted) = replayed.filter(|m| m.pair.access.client_id == client.client_id())
            {
                ctx.audit(Event::RefreshGraceReplay {
                    client_id: client.client_id(),
                    family: &minted.pair.access.family,
                });
                return Ok(minted);
            }
        }
        let outcome = ctx
            .store
            .rotate(digest, decoy(ctx, &client.entry.client))
            .await?;
        if let Rotation::Reused { family } = outcome {
            ctx.audit(Event::RefreshReuse {
                client_id: client.client_id(),
                family: &family,
            });
            tracing::warn!(
                route.name = %ctx.route.id,
                client.id = %client.client_id(),
                "Rotated refresh token reused; its token family revoked"
            );
        }
        return Err(invalid());
    };
    // RFC 6749 §6: bound to the client it was issued to.
    if rec.client_id != client.client_id()
        || !valid_on_route(
            &rec.route_id,
            rec.global,
            !rec.audience.is_empty(),
            ctx.route,
            ctx.oauth,
        )
    {
        return Err(invalid());
    }
    let scopes = scope::narrow(&ctx.params, &rec.scopes, ctx.oauth, &client.entry.client)?;
    // OAuth 2.1 §4.3.1: a public client's refresh token is not sender-bound, so it
    // rotates on every use even where the route keeps refresh tokens otherwise.
    let must_rotate = client.is_public() && ctx.oauth.oauth21_for(client.is_unvetted());
    let plan = if ctx.oauth.reuse_refresh_token && !must_rotate {
        RefreshPlan::Keep {
            digest,
            raw: raw.to_owned(),
            scopes: rec.scopes.clone(),
        }
    } else {
        RefreshPlan::New {
            scopes: rec.scopes.clone(),
        }
    };
    let audience = super::resource::narrow(requested_resources(ctx)?, &rec.grant.audience)?;
    let minted = mint(
        ctx,
        &client.entry.client,
        rec.grant.authenticated_userid,
        scopes,
        rec.grant.family,
        plan,
    )
    .for_resources(audience);
    match ctx.store.rotate(digest, minted.pair.clone()).await? {
        Rotation::Rotated => {
            if grace {
                super::grace::remember(ctx, raw, &minted).await;
            }
            Ok(minted)
        }
        Rotation::Reused { family } => {
            ctx.audit(Event::RefreshReuse {
                client_id: client.client_id(),
                family: &family,
            });
            tracing::warn!(
                route.name = %ctx.route.id,
                client.id = %client.client_id(),
                "Rotated refresh token reused; its token family revoked"
            );
            Err(invalid())
        }
        Rotation::Unknown => Err(invalid()),
    }
}

async fn client_credentials(ctx: &Ctx<'_>, client: &AuthenticatedClient<'_>) -> Result<Minted> {
    // Kong: an `authenticated_userid` may ride along, but only with the provision key.
    let user = ctx.params.get("authenticated_userid")?.map(str::to_owned);
    if user.is_some() {
        check_provision_key(&ctx.params, ctx.oauth)?;
    }
    let scopes = scope::resolve(&ctx.params, ctx.oauth, &client.entry.client)?;
    // RFC 6749 §4.4.3: no refresh token for client credentials.
    let audience = requested_resources(ctx)?;
    let minted = mint(
        ctx,
        &client.entry.client,
        user,
        scopes,
        random_token(),
        RefreshPlan::None,
    )
    .for_resources(audience);
    ctx.store.issue(minted.pair.clone()).await?;
    Ok(minted)
}

async fn password(ctx: &Ctx<'_>, client: &AuthenticatedClient<'_>) -> Result<Minted> {
    // The login app checked the password; the provision key proves it is the caller.
    check_provision_key(&ctx.params, ctx.oauth)?;
    let user = ctx.params.authenticated_userid()?.to_owned();
    let scopes = scope::resolve(&ctx.params, ctx.oauth, &client.entry.client)?;
    let audience = requested_resources(ctx)?;
    let minted = mint(
        ctx,
        &client.entry.client,
        Some(user),
        scopes.clone(),
        random_token(),
        RefreshPlan::New { scopes },
    )
    .for_resources(audience);
    ctx.store.issue(minted.pair.clone()).await?;
    Ok(minted)
}
