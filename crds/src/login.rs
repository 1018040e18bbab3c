//! `oauth2.login`: built-in browser sign-in through the organisation's OIDC provider,
//! Gatehouse's own consent page and browser sessions. Part of the shared `oauth2`
//! block, so every kind that embeds it (ProtectedRoute, OAuth2Policy) has it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::LocalRef;

/// Sign users in at an OIDC provider instead of relying on a login app of your own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginSpec {
    /// The identity provider.
    pub oidc: OidcSpec,
    /// When the consent page is shown: `always`, `remember` (once per user, client and
    /// scopes until the remembered consent expires) or `skip` (only for clients marked
    /// `trusted: true`; other clients are asked as with `remember`).
    #[serde(default)]
    pub consent: ConsentMode,
    /// Absolute session lifetime in seconds.
    #[serde(default = "default_session_ttl")]
    #[schemars(range(min = 60, max = 2_592_000))]
    pub session_ttl: i64,
    /// A session unused for this many seconds ends.
    #[serde(default = "default_idle_timeout")]
    #[schemars(range(min = 60, max = 2_592_000))]
    pub idle_timeout: i64,
    /// How long a remembered consent lasts, in seconds.
    #[serde(default = "default_consent_ttl")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub consent_ttl: i64,
    /// Protect the whole route by sign-in alone: a request without a bearer token but
    /// with a session passes (with `X-Authenticated-Userid`); a browser without one is
    /// sent to sign in and back.
    #[serde(default)]
    pub require_session: bool,
    /// Title shown on the sign-in, consent and signed-out pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 80))]
    pub title: Option<String>,
    /// Logo as a `data:image/png;base64,…` or `data:image/svg+xml;base64,…` URI (the
    /// pages load no external assets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^data:image/(png|svg\+xml|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$"),
        length(max = 65536)
    )]
    pub logo: Option<String>,
}

/// The OIDC provider and how Gatehouse is registered there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcSpec {
    /// Issuer URL; `<issuerUrl>/.well-known/openid-configuration` must answer.
    #[schemars(regex(pattern = r"^https?://"), length(max = 2048))]
    pub issuer_url: String,
    /// Gatehouse's client id at the provider.
    #[schemars(length(min = 1, max = 512))]
    pub client_id: String,
    /// Secret key holding Gatehouse's client secret at the provider.
    pub client_secret_ref: ClientSecretRef,
    /// Scopes requested at the provider.
    #[serde(default = "default_scopes")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub scopes: Vec<String>,
    /// Claim of the ID token that becomes `authenticated_userid`.
    #[serde(default = "default_user_claim")]
    #[schemars(length(min = 1, max = 128))]
    pub user_claim: String,
    /// Only users whose verified `email` is in one of these domains may sign in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub allowed_domains: Vec<String>,
    /// Only these users (values of `userClaim`, or emails) may sign in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), inner(length(min = 1, max = 512)))]
    pub allowed_users: Vec<String>,
    /// Claims that must hold one of the listed values (e.g. `groups: [payments]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub required_claims: Vec<RequiredClaim>,
}

/// A Secret key in the route's namespace (key defaults to `client_secret`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of the Secret (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

impl ClientSecretRef {
    /// The referenced Secret, as a plain name reference.
    pub fn secret(&self) -> LocalRef {
        LocalRef {
            name: self.name.clone(),
        }
    }
}

/// A claim and the values (any one suffices) it must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredClaim {
    /// Claim name (`groups`, `hd`, `tid`…). A string or an array of strings.
    #[schemars(length(min = 1, max = 128))]
    pub claim: String,
    /// Accepted values.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 512)))]
    pub values: Vec<String>,
}

/// Consent page policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsentMode {
    /// Ask every time.
    Always,
    /// Ask once per user, client and scopes.
    #[default]
    Remember,
    /// Do not ask for clients marked `trusted`.
    Skip,
}

fn default_session_ttl() -> i64 {
    8 * 3600
}
fn default_idle_timeout() -> i64 {
    3600
}
fn default_consent_ttl() -> i64 {
    90 * 24 * 3600
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_secret_key() -> String {
    "client_secret".into()
}
