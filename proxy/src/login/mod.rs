//! Built-in browser sign-in (`oauth2.login`): Gatehouse signs users in at the
//! organisation's OIDC provider, shows its own consent page and keeps browser
//! sessions, so no login/consent app has to be written. The provision-key contract
//! (`POST /oauth2/authorize`) is untouched and keeps working beside it.
//!
//! Endpoints under the route prefix, on routes with `login`:
//!
//! | request                        | what happens                                                |
//! |--------------------------------|-------------------------------------------------------------|
//! | `GET /oauth2/authorize?…`      | client + redirect URI checked, then sign-in and consent     |
//! | `GET /oauth2/callback`         | the provider's redirect: code exchange, ID token, session   |
//! | `POST /oauth2/consent`         | the consent form (approve / deny), bound to the session     |
//! | `GET\|POST /oauth2/logout`     | session ended here, then RP-initiated logout at the provider |
//! | `GET /oauth2/signed-out`       | the signed-out page                                         |
//! | `GET /oauth2/signin?rd=/path`  | sign in, then back to a relative path (`requireSession`)    |
//!
//! Layout: [`oidc`] talks to the provider, [`policy`] decides who may sign in,
//! [`state`] owns the records kept in the token store, [`cookie`] the two cookies,
//! [`pages`] the HTML, [`flow`] the endpoints above and [`gate`] sign-in-only
//! protection of a route's other requests; [`revoke`] is `gatehouse revoke-sign-in`.

pub mod cookie;
pub mod flow;
pub mod gate;
pub mod oidc;
pub mod pages;
pub mod policy;
pub mod revoke;
pub mod state;

use std::path::PathBuf;

use clap::Args;
use http::{HeaderMap, Method, StatusCode};

use crate::catalog::Catalog;
use crate::config::{Login, Route, RouteOAuth2};
use crate::oauth2::client_metadata::MetadataDocuments;
use crate::oauth2::clients::{Client, Directory, LookupError};
use crate::oauth2::OAuthResponse;
use crate::seal::{KeyError, LoginKey};
use crate::store::{StoreError, TokenStore, UnixTime};

/// Command-line flags of sign-in (part of the server flags).
#[derive(Args, Debug, Clone, Default)]
pub struct LoginArgs {
    /// File holding the installation's login key (at least 32 random bytes; the same
    /// Secret as the controller's): opens the sealed OIDC client secrets of the
    /// snapshot and encrypts session cookies. Without it, `oauth2.login` routes show
    /// an error page instead of signing anyone in.
    #[arg(long, value_name = "PATH", env = "GATEHOUSE_LOGIN_KEY_FILE")]
    pub login_key_file: Option<PathBuf>,

    /// A key handed in by the embedding program (standalone generates one).
    #[arg(skip)]
    pub key: Option<LoginKey>,

    /// PEM file of extra certificate authorities trusted when fetching client ID
    /// metadata documents (`clientRegistration.metadataDocuments`), beside the
    /// system's roots: for documents served inside the organisation.
    #[arg(long, value_name = "PATH", env = "GATEHOUSE_CLIENT_METADATA_CA")]
    pub client_metadata_ca: Option<PathBuf>,
}

impl LoginArgs {
    /// The client metadata document fetcher, trusting `--client-metadata-ca` too.
    pub fn documents(&self) -> anyhow::Result<MetadataDocuments> {
        let mut roots = Vec::new();
        if let Some(path) = &self.client_metadata_ca {
            let pem = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!("{} holds no usable certificate: {e}", path.display())
            })?;
        }
        Ok(MetadataDocuments::new(roots))
    }

    /// The configured key, if any.
    pub fn load(&self) -> Result<Option<LoginKey>, KeyError> {
        if let Some(key) = &self.key {
            return Ok(Some(key.clone()));
        }
        self.login_key_file
            .as_deref()
            .map(LoginKey::from_file)
            .transpose()
    }
}

/// Sign-in machinery shared by every worker: the login key and the provider cache.
pub struct Signin {
    key: Option<LoginKey>,
    pub providers: oidc::Providers,
    /// Client ID metadata documents (fetcher and cache), for sign-in and the
    /// OAuth2 endpoints alike.
    pub documents: MetadataDocuments,
}

impl Signin {
    pub fn new(key: Option<LoginKey>) -> Self {
        Self::with_documents(key, MetadataDocuments::default())
    }

    pub fn with_documents(key: Option<LoginKey>, documents: MetadataDocuments) -> Self {
        Signin {
            key,
            providers: oidc::Providers::new(),
            documents,
        }
    }
}

/// Which sign-in endpoint a request addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Authorize,
    Callback,
    Consent,
    Logout,
    SignedOut,
    SignIn,
}

impl Endpoint {
    /// The endpoint for `method` and the path after the route prefix. `POST
    /// /oauth2/authorize` is not one: it stays the provision-key contract.
    pub fn from_request(method: &Method, suffix: &str) -> Option<Endpoint> {
        let suffix = match suffix.strip_suffix('/') {
            Some(s) if !s.is_empty() => s,
            _ => suffix,
        };
        let get = *method == Method::GET || *method == Method::HEAD;
        match (suffix, get, *method == Method::POST) {
            ("/oauth2/authorize", true, _) => Some(Endpoint::Authorize),
            ("/oauth2/callback", true, _) => Some(Endpoint::Callback),
            ("/oauth2/consent", _, true) => Some(Endpoint::Consent),
            ("/oauth2/logout", true, _) | ("/oauth2/logout", _, true) => Some(Endpoint::Logout),
            ("/oauth2/signed-out", true, _) => Some(Endpoint::SignedOut),
            ("/oauth2/signin", true, _) => Some(Endpoint::SignIn),
            _ => None,
        }
    }
}

/// One request to a sign-in endpoint.
pub struct LoginRequest<'a> {
    pub endpoint: Endpoint,
    pub headers: &'a HeaderMap,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    /// Real TLS, or a trusted proxy terminated it and the route accepts that.
    pub https: bool,
    /// Externally visible base URL of the route (`https://host/stepon`), the same
    /// string the authorization server metadata names as issuer.
    pub base: &'a str,
}

/// Why a sign-in step failed; each maps to one page.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("sign-in is not set up on this proxy: {0}")]
    NotConfigured(&'static str),
    #[error("the identity provider failed: {0}")]
    Provider(String),
    #[error("the identity provider's ID token was refused: {0}")]
    IdToken(String),
    #[error("{0}")]
    Refused(#[from] policy::Refusal),
    #[error("{0}")]
    BadRequest(String),
    #[error("sign-in requires HTTPS")]
    HttpsRequired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoginError {
    /// Bounded label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            LoginError::NotConfigured(_) => "not_configured",
            LoginError::Provider(_) => "provider_failed",
            LoginError::IdToken(_) => "id_token_invalid",
            LoginError::Refused(_) => "user_refused",
            LoginError::BadRequest(_) => "bad_request",
            LoginError::HttpsRequired => "https_required",
            LoginError::Store(_) => "store_unavailable",
        }
    }

    /// The page shown for this error. Provider and token details go to the log,
    /// not to the browser.
    fn page(&self, brand: pages::Branding<'_>, retry: Option<&str>) -> OAuthResponse {
        let (status, heading, message): (StatusCode, &str, String) = match self {
            LoginError::NotConfigured(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is not available",
                "Sign-in is not set up correctly on this server. Please tell its administrators."
                    .into(),
            ),
            LoginError::Provider(_) => (
                StatusCode::BAD_GATEWAY,
                "The identity provider could not be reached",
                "Signing in needs the organisation's identity provider, which did not answer as expected. Please try again later."
                    .into(),
            ),
            LoginError::IdToken(_) => (
                StatusCode::UNAUTHORIZED,
                "Sign-in could not be verified",
                "The identity provider's answer could not be verified, so you were not signed in."
                    .into(),
            ),
            LoginError::Refused(r) => (
                StatusCode::FORBIDDEN,
                "Access not allowed",
                format!("You signed in, but {r}."),
            ),
            LoginError::BadRequest(m) => (StatusCode::BAD_REQUEST, "Sign-in failed", m.clone()),
            LoginError::HttpsRequired => (
                StatusCode::BAD_REQUEST,
                "Sign-in requires HTTPS",
                "Open this page over https://.".into(),
            ),
            LoginError::Store(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is temporarily unavailable",
                "Please try again in a moment.".into(),
            ),
        };
        pages::error(brand, status, heading, &message, retry)
    }
}

/// Everything a sign-in step needs, for one request.
pub struct Ctx<'a> {
    pub signin: &'a Signin,
    pub route: &'a Route,
    pub oauth: &'a RouteOAuth2,
    pub login: &'a Login,
    pub catalog: &'a Catalog,
    pub store: &'a dyn TokenStore,
    pub now: UnixTime,
}

impl Ctx<'_> {
    /// Where this route's clients are looked up.
    pub fn clients(&self) -> Directory<'_> {
        Directory {
            catalog: self.catalog,
            store: self.store,
            route: self.route,
            oauth: self.oauth,
            documents: &self.signin.documents,
            now: self.now,
        }
    }

    /// The client `client_id` names; an unknown one or an unusable metadata
    /// document is `BadRequest` (a page, never a redirect).
    pub async fn client(&self, client_id: &str) -> Result<Client<'_>, LoginError> {
        match self.clients().find(client_id).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(LoginError::BadRequest(
                "The application asking for access is not registered here.".into(),
            )),
            Err(LookupError::Store(e)) => Err(LoginError::Store(e)),
            Err(LookupError::Document(why)) => Err(LoginError::BadRequest(format!(
                "The application's description could not be used: {why}."
            ))),
        }
    }

    /// The login key, or the error every sign-in step reports without one.
    pub fn key(&self) -> Result<&LoginKey, LoginError> {
        self.signin
            .key
            .as_ref()
            .ok_or(LoginError::NotConfigured("no --login-key-file"))
    }

    /// Gatehouse's client secret at the provider, unsealed.
    pub fn client_secret(&self) -> Result<String, LoginError> {
        let key = self.key()?;
        key.open(&self.login.client_secret_sealed, &self.route.id)
            .and_then(|raw| String::from_utf8(raw).ok())
            .ok_or(LoginError::NotConfigured(
                "the client secret was sealed under another login key",
            ))
    }

    /// Title and logo of the route's pages.
    pub fn brand(&self) -> pages::Branding<'_> {
        pages::Branding {
            title: self.login.title.as_deref().unwrap_or("Gatehouse"),
            logo: self.login.logo.as_deref(),
        }
    }

    pub fn records(&self) -> state::Records<'_> {
        state::Records { store: self.store }
    }
}

/// Serve one sign-in endpoint request; never fails (every failure is a page).
pub async fn serve(ctx: &Ctx<'_>, req: LoginRequest<'_>) -> OAuthResponse {
    let result = if req.https {
        flow::dispatch(ctx, &req).await
    } else {
        Err(LoginError::HttpsRequired)
    };
    match result {
        Ok(resp) => resp,
        Err(e) => {
            match &e {
                LoginError::Store(_) | LoginError::NotConfigured(_) | LoginError::Provider(_) => {
                    tracing::warn!(route.id = %ctx.route.id, reason = e.reason(), error = %e, "Sign-in failed")
                }
                _ => {
                    tracing::info!(route.id = %ctx.route.id, reason = e.reason(), error = %e, "Sign-in refused")
                }
            }
            let retry = matches!(
                e,
                LoginError::Provider(_) | LoginError::Store(_) | LoginError::IdToken(_)
            )
            .then(|| format!("{}/oauth2/signin", path_of(req.base)));
            e.page(ctx.brand(), retry.as_deref())
        }
    }
}

/// The path part of a base URL (`https://h/stepon` → `/stepon`, `https://h` → ``).
pub fn path_of(base: &str) -> &str {
    let after_scheme = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_authorize_is_a_sign_in_endpoint() {
        assert_eq!(
            Endpoint::from_request(&Method::GET, "/oauth2/authorize"),
            Some(Endpoint::Authorize)
        );
        assert_eq!(
            Endpoint::from_request(&Method::POST, "/oauth2/authorize"),
            None
        );
        assert_eq!(
            Endpoint::from_request(&Method::POST, "/oauth2/consent"),
            Some(Endpoint::Consent)
        );
        assert_eq!(
            Endpoint::from_request(&Method::GET, "/oauth2/consent"),
            None
        );
        assert_eq!(
            Endpoint::from_request(&Method::GET, "/oauth2/callback/"),
            Some(Endpoint::Callback)
        );
        assert_eq!(Endpoint::from_request(&Method::GET, "/oauth2/token"), None);
    }

    #[test]
    fn the_path_of_a_base_url() {
        assert_eq!(path_of("https://h:8443/stepon"), "/stepon");
        assert_eq!(path_of("https://h"), "");
    }
}
