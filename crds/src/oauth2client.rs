//! `OAuth2Client`: a registered client application owned by a Consumer (Kong's
//! `oauth2` credential).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::refs::LocalRef;

/// A client application allowed to obtain tokens from Gatehouse.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "OAuth2Client",
    namespaced,
    doc = "An OAuth2 client application owned by a Consumer.",
    status = "OAuth2ClientStatus",
    shortname = "oauth2c",
    category = "gatehouse",
    printcolumn = r#"{"name":"Consumer","type":"string","jsonPath":".spec.consumerRef.name"}"#,
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.clientType"}"#,
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.clientType) || self.clientType != 'public' || !has(self.grantTypes) || !self.grantTypes.exists(g, g == 'client_credentials')").message("public clients cannot use the client_credentials grant").reason(Reason::FieldValueForbidden))]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientSpec {
    /// The Consumer (same namespace) that owns this client.
    pub consumer_ref: LocalRef,
    /// Display name shown to users on consent pages.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `confidential` clients authenticate with a secret; `public` ones (SPAs, mobile
    /// apps) cannot keep one and must use PKCE.
    #[serde(default)]
    pub client_type: ClientType,
    /// Redirect URIs, matched exactly; the first is the default. Absolute `https`
    /// (plain `http` only for localhost), no fragment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(url, length(max = 2048)))]
    pub redirect_uris: Vec<String>,
    /// Grants this client may use; empty means every grant the route enables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub grant_types: Vec<GrantType>,
    /// Scopes this client may obtain; unset means any scope the route offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    pub scopes: Option<Vec<String>>,
    /// Secret (same namespace) holding `client_id` and `client_secret`. When unset the
    /// controller generates one named `<name>-oauth2-credentials`, owned by this client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalRef>,
    /// A first-party client: routes whose `login.consent` is `skip` do not ask users
    /// to consent to it.
    #[serde(default)]
    pub trusted: bool,
    /// The client is a resource server: it may introspect tokens issued to other
    /// clients on the routes it calls. Other clients introspect only their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resource_server: bool,
}

/// Whether the client can keep a secret (RFC 6749 §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientType {
    /// Authenticates with `client_secret`.
    #[default]
    Confidential,
    /// Has no secret; authorization code requires PKCE.
    Public,
}

/// OAuth2 grant types, spelled as on the wire (`grant_type=`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    Implicit,
    RefreshToken,
}

/// Observed state of an OAuth2Client.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2ClientStatus {
    /// The `client_id` in effect (read from, or generated into, the credentials Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Standard conditions; Gatehouse sets `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl OAuth2ClientStatus {
    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        crate::conditions::is_ready(&self.conditions)
    }
}
