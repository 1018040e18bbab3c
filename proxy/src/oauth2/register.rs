//! Dynamic client registration (RFC 7591) at `<prefix>/oauth2/register`, with the
//! read and delete of RFC 7592 at `<prefix>/oauth2/register/<client_id>`, on routes
//! whose `client_registration.dynamic` is on.
//!
//! Registered clients are public (no secret is ever issued: `token_endpoint_auth_method`
//! is `none` whatever was asked, as RFC 7591 §3.2.1 lets the server decide), may use
//! the authorization code grant with PKCE and refresh tokens only, and live in the
//! token store under [`LoginKind::RegisteredClient`] until `registered_client_ttl`
//! passes or they are deleted. They never become `OAuth2Client` objects. The
//! registration access token is stored as a digest and compared in constant time.
//! Registrations are rate-limited per source address (`registration_rate`).

use http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::clients::{registration, Registration, REGISTERED_PREFIX};
use super::error::{ErrorCode, OAuthError};
use super::{Ctx, OAuthResponse};
use crate::config::{ClientType, GrantType, OAuth2Client};
use crate::enforce::bearer;
use crate::respond::Reply;
use crate::secret::random_token;
use crate::store::{Digest, LoginKind};

/// Most redirect URIs one registration may list.
const MAX_REDIRECT_URIS: usize = 16;
/// Longest `client_name`.
const MAX_NAME: usize = 200;

/// The client metadata fields this server reads (RFC 7591 §2); others are ignored.
#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    client_uri: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
}

/// Answer a request to the registration endpoint; `id` is the path segment after
/// `/oauth2/register/`, if any.
pub(crate) async fn respond(ctx: &Ctx<'_>, id: Option<&str>) -> OAuthResponse {
    let result = match (&ctx.req.method, id) {
        (&Method::POST, None) => create(ctx).await,
        (&Method::GET, Some(id)) => read(ctx, id).await,
        (&Method::DELETE, Some(id)) => delete(ctx, id).await,
        (m, None) => Err(OAuthError::invalid_method(m, "registration", "POST")),
        (m, Some(_)) => Err(OAuthError::invalid_method(
            m,
            "client configuration",
            "GET, DELETE",
        )),
    };
    result.unwrap_or_else(|e| e.into_response())
}

fn metadata_error(code: ErrorCode, description: String) -> OAuthError {
    OAuthError::new(code, description)
}

async fn create(ctx: &Ctx<'_>) -> Result<OAuthResponse, OAuthError> {
    if let Some(refused) = super::limit::registration(ctx).await {
        return Ok(refused);
    }
    let request: Request = serde_json::from_slice(&ctx.req.body).map_err(|e| {
        metadata_error(
            ErrorCode::InvalidClientMetadata,
            format!("The registration request is not a valid JSON client metadata object: {e}"),
        )
    })?;
    if request.redirect_uris.is_empty() || request.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(metadata_error(
            ErrorCode::InvalidRedirectUri,
            format!("Register 1 to {MAX_REDIRECT_URIS} redirect_uris"),
        ));
    }
    for uri in &request.redirect_uris {
        super::redirect::check_unvetted(uri)
            .map_err(|why| metadata_error(ErrorCode::InvalidRedirectUri, why))?;
    }
    if let Some(grants) = &request.grant_types {
        if grants
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(metadata_error(
                ErrorCode::InvalidClientMetadata,
                "Registered clients may use the authorization_code and refresh_token grants only"
                    .into(),
            ));
        }
    }
    if let Some(types) = &request.response_types {
        if types.iter().any(|t| t != "code") {
            return Err(metadata_error(
                ErrorCode::InvalidClientMetadata,
                "Registered clients may use response_type code only".into(),
            ));
        }
    }
    let name = match request.client_name {
        Some(n) if n.chars().count() > MAX_NAME || n.chars().any(char::is_control) => {
            return Err(metadata_error(
                ErrorCode::InvalidClientMetadata,
                format!("client_name must be at most {MAX_NAME} printable characters"),
            ))
        }
        n => n.unwrap_or_default(),
    };
    let scopes = match &request.scope {
        None => None,
        Some(s) => {
            let scopes: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
            if let Some(unknown) = scopes.iter().find(|s| !ctx.oauth.scopes.contains(s)) {
                return Err(metadata_error(
                    ErrorCode::InvalidClientMetadata,
                    format!("The scope {unknown} is not offered here"),
                ));
            }
            Some(scopes)
        }
    };
    let client_id = format!("{REGISTERED_PREFIX}{}", random_token());
    let access_token = random_token();
    let ttl = ctx.oauth.client_registration.registered_client_ttl;
    let expires_at = ctx.now.saturating_add(ttl);
    let mut metadata = json!({
        "client_id": client_id,
        "client_id_issued_at": ctx.now,
        "client_secret_expires_at": 0,
        "redirect_uris": request.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    });
    if !name.is_empty() {
        metadata["client_name"] = name.clone().into();
    }
    if let Some(uri) = request.client_uri.filter(|u| u.len() <= 2048) {
        metadata["client_uri"] = uri.into();
    }
    if let Some(s) = &scopes {
        metadata["scope"] = s.join(" ").into();
    }
    let record = Registration {
        route_id: ctx.route.id.clone(),
        client: OAuth2Client {
            client_id: client_id.clone(),
            secret_sha256: None,
            name,
            consumer_id: String::new(),
            client_type: ClientType::Public,
            redirect_uris: request.redirect_uris,
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes,
            resource_server: false,
        },
        access_token: Digest::of(access_token.as_bytes()),
        issued_at: ctx.now,
        expires_at,
        metadata: metadata.clone(),
    };
    let stored = serde_json::to_string(&record).expect("a registration always serializes");
    ctx.store
        .put_login(
            LoginKind::RegisteredClient,
            Digest::of(client_id.as_bytes()),
            stored,
            expires_at,
        )
        .await?;
    ctx.audit(crate::audit::Event::ClientRegistered {
        client_id: &client_id,
        redirect_uris: &record.client.redirect_uris,
    });
    tracing::info!(route.id = %ctx.route.id, client.id = %client_id, "Client registered dynamically");
    let mut body = metadata;
    body["registration_access_token"] = access_token.into();
    if let Some(uri) = configuration_uri(ctx, &client_id) {
        body["registration_client_uri"] = uri.into();
    }
    Ok(Reply::json(StatusCode::CREATED, &body).no_store())
}

/// `registration_client_uri`: under the issuer, when the route has one.
fn configuration_uri(ctx: &Ctx<'_>, client_id: &str) -> Option<String> {
    let issuer = ctx.req.issuer.as_deref()?.trim_end_matches('/');
    Some(format!("{issuer}/oauth2/register/{client_id}"))
}

/// The registration `id` names, if the request's registration access token is its
/// own; every failure is the same 401 (RFC 7592 §2.1), whether the client exists or not.
async fn authorised(ctx: &Ctx<'_>, id: &str) -> Result<Registration, OAuthError> {
    let presented = ctx.req.authorization.as_deref().and_then(bearer);
    let record = registration(ctx.store, &ctx.route.id, id).await?;
    let ok = match (&record, presented) {
        (Some(r), Some(token)) => Digest::of(token.as_bytes()).ct_eq(&r.access_token),
        _ => false,
    };
    match record {
        Some(r) if ok => Ok(r),
        _ => {
            let mut e = OAuthError::new(
                ErrorCode::InvalidClient,
                "The registration access token is not valid for this client",
            );
            e.status = StatusCode::UNAUTHORIZED;
            e.headers.push((
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            ));
            Err(e)
        }
    }
}

async fn read(ctx: &Ctx<'_>, id: &str) -> Result<OAuthResponse, OAuthError> {
    let record = authorised(ctx, id).await?;
    let mut body: Value = record.metadata;
    if let Some(uri) = configuration_uri(ctx, id) {
        body["registration_client_uri"] = uri.into();
    }
    Ok(Reply::json(StatusCode::OK, &body).no_store())
}

async fn delete(ctx: &Ctx<'_>, id: &str) -> Result<OAuthResponse, OAuthError> {
    authorised(ctx, id).await?;
    ctx.store
        .delete_login(LoginKind::RegisteredClient, Digest::of(id.as_bytes()))
        .await?;
    tracing::info!(route.id = %ctx.route.id, client.id = %id, "Dynamically registered client deleted");
    Ok(Reply {
        status: StatusCode::NO_CONTENT,
        headers: vec![
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        body: bytes::Bytes::new(),
    })
}
