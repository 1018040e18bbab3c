//! The sign-in endpoints, step by step: the browser-facing authorization request,
//! the provider round trip, the consent decision and logout.
//!
//! Order of checks on `GET /oauth2/authorize` (RFC 6749 §4.1.2.1): the client and its
//! redirect URI first — a problem there is shown on a page and never redirected,
//! because an unverified redirect URI must not receive anything; every later problem
//! goes back to the client inside its registered redirect URI, with `state` and `iss`
//! (RFC 9207).

use http::{header, HeaderValue, StatusCode};

use super::cookie::{self, Jar};
use super::state::{self, After, AuthzRequest, Pending, Session, Ticket};
use super::{oidc, pages, path_of, policy, Ctx, Endpoint, LoginError, LoginRequest};
use crate::config::{ConsentMode, GrantType};
use crate::oauth2::authorize::{store_code, with_params, CodeGrant};
use crate::oauth2::error::OAuthError;
use crate::oauth2::params::Params;
use crate::oauth2::{client_allows, pkce, redirect, resource, scope, OAuthResponse};
use crate::secret::random_token;
use crate::store::{Digest, LoginKind};

type Result<T, E = LoginError> = std::result::Result<T, E>;

/// Longest relative return URL accepted by `/oauth2/signin`.
const MAX_RETURN_LEN: usize = 2048;

pub(super) async fn dispatch(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    match req.endpoint {
        Endpoint::Authorize => authorize(ctx, req).await,
        Endpoint::Callback => callback(ctx, req).await,
        Endpoint::Consent => consent(ctx, req).await,
        Endpoint::Logout => logout(ctx, req).await,
        Endpoint::SignedOut => Ok(pages::signed_out(ctx.brand())),
        Endpoint::SignIn => signin(ctx, req).await,
    }
}

/// A `302 Found` to `location` with the sign-in security headers.
fn redirect(location: &str) -> Result<OAuthResponse> {
    let mut headers = pages::security_headers();
    headers.push((
        header::LOCATION,
        HeaderValue::from_str(location).map_err(|_| {
            LoginError::BadRequest("The redirect target is not a valid URL.".into())
        })?,
    ));
    Ok(OAuthResponse {
        status: StatusCode::FOUND,
        headers,
        body: bytes::Bytes::new(),
    })
}

fn set_cookie(resp: &mut OAuthResponse, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers.push((header::SET_COOKIE, v));
    }
}

fn bad(msg: &str) -> LoginError {
    LoginError::BadRequest(msg.to_owned())
}

fn base(req: &LoginRequest<'_>) -> String {
    req.base.trim_end_matches('/').to_owned()
}

// ---------------------------------------------------------------- authorize

/// `GET /oauth2/authorize`: validate, then sign in (if needed) and consent (if needed).
async fn authorize(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    let params = Params::parse(req.query, None, &[]).map_err(|e| bad(&e.description))?;
    let client_id = params
        .get("client_id")
        .map_err(|e| bad(&e.description))?
        .ok_or_else(|| bad("The request names no client_id."))?;
    let found = ctx.client(client_id).await?;
    let client = &found.entry.client;
    let loopback_any_port = ctx.oauth.oauth21_for(found.is_unvetted());
    let requested_uri = params
        .get("redirect_uri")
        .map_err(|e| bad(&e.description))?;
    let redirect_uri = match requested_uri {
        None => client
            .redirect_uris
            .first()
            .map(String::as_str)
            .ok_or_else(|| bad("The application has no registered redirect_uri."))?,
        Some(u) => redirect::find(&client.redirect_uris, u, loopback_any_port)
            .map(|_| u)
            .ok_or_else(|| bad("The redirect_uri is not registered for this application."))?,
    };
    let redirect_uri = &redirect_uri.to_owned();
    let state = params.get("state").ok().flatten().map(str::to_owned);

    // From here on the redirect URI is verified: errors go back to the client.
    let back = |e: OAuthError| -> Result<OAuthResponse> {
        tracing::info!(route.id = %ctx.route.id, client.id = %client.client_id, error = e.code.as_str(), "Authorization request refused");
        client_error(
            req,
            redirect_uri,
            e.code.as_str(),
            &e.description,
            state.as_deref(),
        )
    };
    let response_type = params.get("response_type").ok().flatten();
    if response_type != Some("code") || !ctx.oauth.enable_authorization_code {
        return back(OAuthError::new(
            crate::oauth2::error::ErrorCode::UnsupportedResponseType,
            "Only response_type=code is supported here",
        ));
    }
    if !client_allows(client, GrantType::AuthorizationCode) {
        return back(OAuthError::unauthorized_client(
            "The client is not allowed to use this response_type",
        ));
    }
    let scopes = match scope::resolve(&params, ctx.oauth, client) {
        Ok(s) => s,
        Err(e) => return back(e),
    };
    let pkce_mode = ctx.oauth.pkce_for(found.is_unvetted());
    let code_challenge = match pkce::challenge(&params, pkce_mode, client.client_type) {
        Ok(c) => c,
        Err(e) => return back(e),
    };
    let resources = match resource::requested(&params, Some(req.base), ctx.route) {
        Ok(r) => r,
        Err(e) => return back(e),
    };
    let request = AuthzRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.clone(),
        redirect_uri_sent: requested_uri.is_some(),
        scopes,
        state,
        code_challenge,
        resources,
    };
    match current_session(ctx, req).await? {
        None => {
            let query = req.query.unwrap_or_default().to_owned();
            start_signin(ctx, req, After::Authorize { query }).await
        }
        Some((sid, session)) => ask_consent(ctx, req, sid, &session, request).await,
    }
}

/// A redirect to the client carrying an error (RFC 6749 §4.1.2.1 + RFC 9207 `iss`).
fn client_error(
    req: &LoginRequest<'_>,
    redirect_uri: &str,
    code: &str,
    description: &str,
    state: Option<&str>,
) -> Result<OAuthResponse> {
    let mut q = vec![("error", code), ("error_description", description)];
    if let Some(s) = state {
        q.push(("state", s));
    }
    q.push(("iss", req.base));
    redirect(&with_params(redirect_uri, &q, false))
}

/// Show the consent page, or skip it when policy allows, then issue the code.
async fn ask_consent(
    ctx: &Ctx<'_>,
    req: &LoginRequest<'_>,
    sid: Digest,
    session: &Session,
    request: AuthzRequest,
) -> Result<OAuthResponse> {
    let trusted = ctx.login.trusted_clients.contains(&request.client_id);
    let remembered = || {
        state::consent_key(
            &ctx.route.id,
            &session.user,
            &request.client_id,
            &request.scopes,
        )
    };
    let skip = match ctx.login.consent {
        ConsentMode::Always => false,
        ConsentMode::Skip if trusted => true,
        ConsentMode::Skip | ConsentMode::Remember => {
            let given = ctx
                .records()
                .get::<Option<String>>(LoginKind::Consent, remembered())
                .await?;
            // Given in the session's epoch (which `session_from_headers` checked is current).
            given.is_some_and(|epoch| epoch == session.epoch)
        }
    };
    if skip {
        return issue_code(ctx, req, session, &request).await;
    }
    let ticket = random_token();
    ctx.records()
        .put(
            LoginKind::Ticket,
            Digest::of(ticket.as_bytes()),
            &Ticket {
                route_id: ctx.route.id.clone(),
                session: sid,
                request: request.clone(),
            },
            ctx.now + state::TICKET_TTL,
        )
        .await?;
    let found = ctx.client(&request.client_id).await?;
    let entry = &found.entry;
    let name = if entry.client.name.is_empty() {
        entry.client.client_id.as_str()
    } else {
        entry.client.name.as_str()
    };
    let unvetted_host = found.host();
    let owner = ctx
        .catalog
        .consumer(&entry.client.consumer_id)
        .and_then(|c| c.username.as_deref());
    let who = session
        .name
        .as_deref()
        .or(session.email.as_deref())
        .unwrap_or(&session.user);
    let action = format!("{}/oauth2/consent", path_of(&base(req)));
    Ok(pages::consent(
        ctx.brand(),
        &pages::Consent {
            client: name,
            owner,
            unvetted_host: unvetted_host.as_deref(),
            user: who,
            scopes: &request.scopes,
            action: &action,
            ticket: &ticket,
        },
    ))
}

/// Store a single-use code (the same record the provision-key contract creates) and
/// send the browser back to the client with it.
async fn issue_code(
    ctx: &Ctx<'_>,
    req: &LoginRequest<'_>,
    session: &Session,
    request: &AuthzRequest,
) -> Result<OAuthResponse> {
    let found = ctx.client(&request.client_id).await?;
    let code = store_code(
        ctx.store,
        ctx.route,
        ctx.oauth,
        &found.entry.client,
        CodeGrant {
            user: &session.user,
            scopes: request.scopes.clone(),
            redirect_uri: &request.redirect_uri,
            redirect_uri_sent: request.redirect_uri_sent,
            code_challenge: request.code_challenge.clone(),
            resources: request.resources.clone(),
        },
        ctx.now,
    )
    .await
    .map_err(|_| LoginError::Store(crate::store::StoreError::Unavailable("code".into())))?;
    tracing::info!(route.id = %ctx.route.id, client.id = %request.client_id, "Authorization code issued after sign-in");
    let mut q = vec![("code", code.as_str())];
    if let Some(s) = &request.state {
        q.push(("state", s));
    }
    q.push(("iss", req.base));
    redirect(&with_params(&request.redirect_uri, &q, false))
}

// ---------------------------------------------------------------- consent

/// `POST /oauth2/consent`: the answer to a consent page.
async fn consent(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    // A cross-site form post is refused by origin when the browser says where it
    // came from; SameSite=Lax keeps the session cookie off it in any case, and the
    // ticket is unguessable and bound to the session that saw the page.
    if let Some(origin) = req.headers.get(header::ORIGIN) {
        let ours = origin_of(req.base);
        if origin.to_str().ok() != Some(ours) {
            return Err(bad("This form was sent from another site."));
        }
    }
    let content_type = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = Params::parse(None, content_type, req.body).map_err(|e| bad(&e.description))?;
    let ticket = params
        .get("ticket")
        .ok()
        .flatten()
        .ok_or_else(|| bad("The consent form is incomplete."))?;
    let approve = match params.get("decision").ok().flatten() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return Err(bad("The consent form is incomplete.")),
    };
    let Some((sid, session)) = current_session(ctx, req).await? else {
        return Err(bad(
            "Your session has ended. Please start again from the application.",
        ));
    };
    let record: Ticket = ctx
        .records()
        .take(LoginKind::Ticket, Digest::of(ticket.as_bytes()))
        .await?
        .ok_or_else(|| bad("This consent page has expired or was already answered."))?;
    if record.route_id != ctx.route.id || !record.session.ct_eq(&sid) {
        return Err(bad("This consent page belongs to another session."));
    }
    let request = record.request;
    let found = ctx.client(&request.client_id).await?;
    let loopback_any_port = ctx.oauth.oauth21_for(found.is_unvetted());
    if redirect::find(
        &found.entry.client.redirect_uris,
        &request.redirect_uri,
        loopback_any_port,
    )
    .is_none()
    {
        return Err(bad("The application is no longer registered."));
    }
    let entry = &found.entry;
    if !approve {
        tracing::info!(route.id = %ctx.route.id, client.id = %entry.client.client_id, "Consent denied");
        return client_error(
            req,
            &request.redirect_uri,
            "access_denied",
            "The user denied the request",
            request.state.as_deref(),
        );
    }
    if ctx.login.consent != ConsentMode::Always {
        let key = state::consent_key(
            &ctx.route.id,
            &session.user,
            &request.client_id,
            &request.scopes,
        );
        ctx.records()
            .put(
                LoginKind::Consent,
                key,
                &session.epoch,
                ctx.now + ctx.login.consent_ttl,
            )
            .await?;
    }
    issue_code(ctx, req, &session, &request).await
}

// ---------------------------------------------------------------- provider round trip

/// Send the browser to the provider (authorization code flow with PKCE, `state` and
/// `nonce`), remembering where to continue.
async fn start_signin(
    ctx: &Ctx<'_>,
    req: &LoginRequest<'_>,
    after: After,
) -> Result<OAuthResponse> {
    let key = ctx.key()?;
    // A secret that cannot be opened would only fail after the user typed a password.
    ctx.client_secret()?;
    let metadata = ctx.signin.providers.metadata(&ctx.login.issuer_url).await?;
    let state_value = random_token();
    let pending = Pending {
        route_id: ctx.route.id.clone(),
        nonce: random_token(),
        verifier: random_token(),
        after,
    };
    ctx.records()
        .put(
            LoginKind::Pending,
            Digest::of(state_value.as_bytes()),
            &pending,
            ctx.now + state::PENDING_TTL,
        )
        .await?;
    let callback = format!("{}/oauth2/callback", base(req));
    let scope = ctx.login.scopes.join(" ");
    let challenge = pkce::s256(&pending.verifier);
    let location = with_params(
        &metadata.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", &ctx.login.client_id),
            ("redirect_uri", &callback),
            ("scope", &scope),
            ("state", &state_value),
            ("nonce", &pending.nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
        false,
    );
    let mut resp = redirect(&location)?;
    set_cookie(
        &mut resp,
        cookie::set(
            key,
            Jar::SignIn,
            &ctx.route.id,
            &state_value,
            state::PENDING_TTL,
        ),
    );
    Ok(resp)
}

/// `GET /oauth2/callback`: the provider sends the browser back.
async fn callback(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    let key = ctx.key()?;
    let params = Params::parse(req.query, None, &[]).map_err(|e| bad(&e.description))?;
    if let Some(error) = params.get("error").ok().flatten() {
        tracing::info!(route.id = %ctx.route.id, provider.error = error, "Provider refused the sign-in");
        return Err(bad("The identity provider did not sign you in."));
    }
    let state_value = params
        .get("state")
        .ok()
        .flatten()
        .ok_or_else(|| bad("The identity provider's answer is incomplete."))?;
    let code = params
        .get("code")
        .ok()
        .flatten()
        .ok_or_else(|| bad("The identity provider's answer is incomplete."))?;
    // Login CSRF: the answer must come back to the browser that asked.
    let started_here = cookie::read(req.headers, key, Jar::SignIn, &ctx.route.id)
        .is_some_and(|s| Digest::of(s.as_bytes()).ct_eq(&Digest::of(state_value.as_bytes())));
    if !started_here {
        return Err(bad(
            "This sign-in was started in another browser, or it took too long. Please start again.",
        ));
    }
    let pending: Pending = ctx
        .records()
        .take(LoginKind::Pending, Digest::of(state_value.as_bytes()))
        .await?
        .filter(|p: &Pending| p.route_id == ctx.route.id)
        .ok_or_else(|| {
            bad("This sign-in has expired or was already completed. Please start again.")
        })?;
    let secret = ctx.client_secret()?;
    let callback = format!("{}/oauth2/callback", base(req));
    let providers = &ctx.signin.providers;
    let issuer = &ctx.login.issuer_url;
    let id_token = providers
        .exchange(
            issuer,
            &ctx.login.client_id,
            &secret,
            code,
            &callback,
            &pending.verifier,
        )
        .await?;
    let claims = providers
        .verify(
            issuer,
            &ctx.login.client_id,
            &id_token,
            &pending.nonce,
            ctx.now,
        )
        .await?;
    let identity = policy::admit(ctx.login, &claims)?;

    let sid = random_token();
    let epoch = ctx.records().epoch(&ctx.route.id, &identity.user).await?;
    let session = Session {
        route_id: ctx.route.id.clone(),
        user: identity.user,
        email: identity.email,
        name: identity.name,
        created_at: ctx.now,
        expires_at: ctx.now + ctx.login.session_ttl,
        last_seen: ctx.now,
        id_token: Some(id_token),
        epoch,
    };
    ctx.records()
        .put(
            LoginKind::Session,
            Digest::of(sid.as_bytes()),
            &session,
            session.store_expiry(ctx.login),
        )
        .await?;
    tracing::info!(route.id = %ctx.route.id, "Signed in");
    let location = match pending.after {
        After::Authorize { query } => format!("{}/oauth2/authorize?{query}", path_of(&base(req))),
        After::Return { path } => path,
    };
    let mut resp = redirect(&location)?;
    set_cookie(
        &mut resp,
        cookie::set(
            key,
            Jar::Session,
            &ctx.route.id,
            &sid,
            ctx.login.session_ttl,
        ),
    );
    set_cookie(&mut resp, cookie::clear(Jar::SignIn, &ctx.route.id));
    Ok(resp)
}

// ---------------------------------------------------------------- sessions

/// The browser's live session on this route, touched when due.
pub(super) async fn current_session(
    ctx: &Ctx<'_>,
    req: &LoginRequest<'_>,
) -> Result<Option<(Digest, Session)>> {
    let Some(key) = ctx.signin.key.as_ref() else {
        return Ok(None);
    };
    session_from_headers(ctx, key, req.headers).await
}

/// The live session named by the cookie in `headers`.
pub(super) async fn session_from_headers(
    ctx: &Ctx<'_>,
    key: &crate::seal::LoginKey,
    headers: &http::HeaderMap,
) -> Result<Option<(Digest, Session)>> {
    let Some(sid) = cookie::read(headers, key, Jar::Session, &ctx.route.id) else {
        return Ok(None);
    };
    let digest = Digest::of(sid.as_bytes());
    let Some(mut session) = ctx
        .records()
        .get::<Session>(LoginKind::Session, digest)
        .await?
    else {
        return Ok(None);
    };
    if session.route_id != ctx.route.id || !session.alive(ctx.login, ctx.now) {
        return Ok(None);
    }
    // One more read per session use, so a revocation takes effect at once.
    let epoch = ctx.records().epoch(&ctx.route.id, &session.user).await?;
    if epoch != session.epoch {
        ctx.store.delete_login(LoginKind::Session, digest).await?;
        return Ok(None);
    }
    if ctx.now >= session.last_seen + state::TOUCH_INTERVAL {
        session.last_seen = ctx.now;
        ctx.records()
            .put(
                LoginKind::Session,
                digest,
                &session,
                session.store_expiry(ctx.login),
            )
            .await?;
    }
    Ok(Some((digest, session)))
}

/// `GET|POST /oauth2/logout`: end the session here, then at the provider when it
/// supports RP-initiated logout.
async fn logout(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    let session = current_session(ctx, req).await?;
    if let Some((sid, _)) = &session {
        ctx.store.delete_login(LoginKind::Session, *sid).await?;
        tracing::info!(route.id = %ctx.route.id, "Signed out");
    }
    let end_session = match ctx.signin.providers.metadata(&ctx.login.issuer_url).await {
        Ok(m) => m.end_session_endpoint,
        Err(e) => {
            // Signed out here all the same; the provider's session stays.
            tracing::warn!(route.id = %ctx.route.id, error = %e, "Provider unreachable at logout");
            None
        }
    };
    let mut resp = match end_session {
        Some(end) => {
            let back = format!("{}/oauth2/signed-out", base(req));
            let mut q: Vec<(&str, &str)> = vec![
                ("client_id", &ctx.login.client_id),
                ("post_logout_redirect_uri", &back),
            ];
            let hint = session.as_ref().and_then(|(_, s)| s.id_token.clone());
            if let Some(h) = &hint {
                q.push(("id_token_hint", h));
            }
            redirect(&with_params(&end, &q, false))?
        }
        None => pages::signed_out(ctx.brand()),
    };
    set_cookie(&mut resp, cookie::clear(Jar::Session, &ctx.route.id));
    Ok(resp)
}

/// `GET /oauth2/signin?rd=/path`: sign in, then back to a path on this host.
async fn signin(ctx: &Ctx<'_>, req: &LoginRequest<'_>) -> Result<OAuthResponse> {
    let params = Params::parse(req.query, None, &[]).map_err(|e| bad(&e.description))?;
    let home = format!("{}/", path_of(&base(req)));
    let path = match params.get("rd").ok().flatten() {
        Some(rd) => safe_return(rd)
            .ok_or_else(|| bad("The return address must be a path on this site."))?
            .to_owned(),
        None => home,
    };
    if current_session(ctx, req).await?.is_some() {
        return redirect(&path);
    }
    start_signin(ctx, req, After::Return { path }).await
}

/// `rd` when it is a plain path on this host (`/x?y`), never an absolute or
/// scheme-relative URL (`//evil`, `/\evil`, `https:`) or anything with control bytes.
pub fn safe_return(rd: &str) -> Option<&str> {
    let ok = rd.len() <= MAX_RETURN_LEN
        && rd.starts_with('/')
        && !rd.starts_with("//")
        && !rd.contains('\\')
        && !rd
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b >= 0x80);
    ok.then_some(rd)
}

/// `https://host:port` of a base URL.
fn origin_of(base: &str) -> &str {
    let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
    match base[after_scheme..].find('/') {
        Some(i) => &base[..after_scheme + i],
        None => base,
    }
}

/// Re-exported for tests of the verification rules against a live provider.
pub use oidc::Providers;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relative_paths_are_return_targets() {
        assert_eq!(safe_return("/app/page?x=1"), Some("/app/page?x=1"));
        assert_eq!(safe_return("/"), Some("/"));
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil",
            "/a\r\nSet-Cookie: x",
            "/a b",
            "",
        ] {
            assert_eq!(safe_return(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn origins_are_scheme_host_and_port() {
        assert_eq!(origin_of("https://h:8443/stepon"), "https://h:8443");
        assert_eq!(origin_of("https://h"), "https://h");
    }
}
