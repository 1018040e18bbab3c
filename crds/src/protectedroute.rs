//! `ProtectedRoute`: where requests match, where they go, and the OAuth2 protection
//! in front (Kong route + service + `oauth2` plugin in one object).

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::login::LoginSpec;
use crate::refs::SecretKeyRef;
use crate::status::ObjectStatus;

/// Status of a ProtectedRoute.
pub type ProtectedRouteStatus = ObjectStatus;

/// An API path served through Gatehouse and protected by OAuth2.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "ProtectedRoute",
    namespaced,
    doc = "An API path served through Gatehouse and protected by OAuth2.",
    status = "ProtectedRouteStatus",
    shortname = "proute",
    category = "gatehouse",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hosts"}"#,
    printcolumn = r#"{"name":"Paths","type":"string","jsonPath":".spec.paths"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProtectedRouteSpec {
    /// Host names this route answers for: exact (`api.example.com`) or one leading
    /// wildcard label (`*.example.com`). Empty means any host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            ),
            length(max = 253)
        )
    )]
    pub hosts: Vec<String>,
    /// Path prefixes, matched on segment boundaries (`/api` matches `/api/x`, not
    /// `/apix`). Empty means `/`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = r"^/"), length(max = 1024)))]
    pub paths: Vec<String>,
    /// Remove the matched path prefix before proxying upstream.
    #[serde(default = "yes")]
    pub strip_path: bool,
    /// Send the client's `Host` header upstream instead of the backend's own.
    #[serde(default)]
    pub preserve_host: bool,
    /// Where matched requests go. Omit it for an auth-only route: one that exists for
    /// external authorization (a proxy in front asks Gatehouse) and for its
    /// `/oauth2/*` endpoints; requests proxied to it directly get 404.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Request, backend-request and idle timeouts (Gateway API duration strings such
    /// as `10s`, `1m30s`, `500ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RouteTimeouts>,
    /// OAuth2 protection settings (Kong `oauth2` plugin config).
    #[serde(default)]
    pub oauth2: OAuth2Spec,
    /// TLS certificate served for `hosts` (chosen by SNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
}

/// The certificate of a route's hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// A `kubernetes.io/tls` Secret (keys `tls.crt`, `tls.key`) in the route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// The upstream of a route: a Service in the cluster, or a URL in standalone mode.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.service) != has(self.url)").message("set exactly one of service or url"))]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    /// A Service in the route's namespace; traffic goes to its ready endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceBackend>,
    /// A base URL (`http://127.0.0.1:3000`, `https://...`, or `grpc://` / `grpcs://`
    /// for HTTP/2 backends); allowed in standalone mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(url, regex(pattern = r"^(https?|grpcs?)://"), length(max = 2048))]
    pub url: Option<String>,
    /// How to speak to the backend: `http1` (default), `h2c` (HTTP/2 cleartext, e.g.
    /// gRPC) or `h2` (HTTP/2 over TLS). A Service port's `appProtocol:
    /// kubernetes.io/h2c` selects `h2c` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<BackendProtocol>,
    /// Speak TLS to the backend, verified with this CA bundle and/or name. A Service
    /// backend's endpoints are then reached over TLS whatever its port's
    /// `appProtocol`; a `url` backend must be `https://` or `grpcs://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<BackendTls>,
}

/// How a ProtectedRoute verifies its backend's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.caCertificateRef) || has(self.hostname)").message("set caCertificateRef, hostname or both"))]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// PEM CA bundle trusted instead of the system roots, from a ConfigMap or Secret
    /// in the route's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_ref: Option<CaCertificateRef>,
    /// Name verified in the backend's certificate and sent as SNI (default: the
    /// endpoint's address, which rarely matches a certificate in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub hostname: Option<String>,
}

/// One key of a ConfigMap or Secret in the route's namespace holding a PEM CA bundle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaCertificateRef {
    /// `ConfigMap` or `Secret`.
    pub kind: CaSourceKind,
    /// Name of the ConfigMap or Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the bundle.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where a CA bundle is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum CaSourceKind {
    #[default]
    ConfigMap,
    Secret,
}

/// The key a CA bundle is read from unless another is named (as cert-manager and
/// BackendTLSPolicy use).
pub const CA_KEY: &str = "ca.crt";

fn default_ca_key() -> String {
    CA_KEY.to_owned()
}

/// Wire protocol towards a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendProtocol {
    Http1,
    H2c,
    H2,
}

/// Route timeouts, as Gateway API HTTPRoute `timeouts` plus `idle` for upgraded
/// (WebSocket) connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTimeouts {
    /// The whole request until the response headers, retries included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub request: Option<String>,
    /// One attempt at the backend, from the end of the request body to its response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub backend_request: Option<String>,
    /// An upgraded connection with no traffic either way is closed after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub idle: Option<String>,
}

/// A Service port in the route's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBackend {
    /// Service name.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Service port number (`spec.ports[].port`).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// OAuth2 settings of a route. Grant toggles mirror Kong's `enable_*` flags.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.mandatoryScope) || !self.mandatoryScope || (has(self.scopes) && size(self.scopes) > 0)").message("mandatoryScope needs at least one scope in scopes"))]
#[x_kube(validation = Rule::new("!has(self.rules) || size(self.rules) == 0 || (has(self.scopes) && self.rules.all(r, r.requiredScopes.all(s, s in self.scopes)))").message("every rules[].requiredScopes entry must be listed in scopes"))]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Spec {
    /// Scopes a client may request on this route. Empty means scopes are not used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^[!#-\[\]-~]+$"), length(max = 128))
    )]
    pub scopes: Vec<String>,
    /// Refuse authorization and token requests that name no scope.
    #[serde(default)]
    pub mandatory_scope: bool,
    /// Access token lifetime in seconds; 0 means tokens never expire (and no refresh
    /// tokens are issued).
    #[serde(default = "default_token_expiration")]
    #[schemars(range(min = 0))]
    pub token_expiration: i64,
    /// Refresh token lifetime in seconds; 0 means refresh tokens never expire.
    #[serde(default = "default_refresh_token_ttl")]
    #[schemars(range(min = 0))]
    pub refresh_token_ttl: i64,
    /// Keep the same refresh token on refresh instead of rotating it.
    #[serde(default)]
    pub reuse_refresh_token: bool,
    /// Authorization code grant.
    #[serde(default = "yes")]
    pub authorization_code: bool,
    /// Client credentials grant.
    #[serde(default)]
    pub client_credentials: bool,
    /// Resource owner password grant (the login app checked the password).
    #[serde(default)]
    pub password: bool,
    /// Implicit grant.
    #[serde(default)]
    pub implicit: bool,
    /// PKCE enforcement.
    #[serde(default)]
    pub pkce: Pkce,
    /// Secret key holding the provision key the login/consent app presents to
    /// `/oauth2/authorize` and the password grant. Unset: those are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provision_key_secret_ref: Option<SecretKeyRef>,
    /// Strip the token from the request before proxying upstream.
    #[serde(default)]
    pub hide_credentials: bool,
    /// Accept plain HTTP when a trusted front proxy sent `X-Forwarded-Proto: https`.
    #[serde(default)]
    pub accept_http_if_already_terminated: bool,
    /// Name of a Consumer (same namespace) that requests without a token pass as.
    /// Unset: requests without a token get 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub anonymous_consumer: Option<String>,
    /// Tokens issued here are valid on every route that also sets this.
    #[serde(default)]
    pub global_credentials: bool,
    /// Let an encoded slash (`%2F`) through to the upstream, for APIs that put
    /// slashes in identifiers. Scope rules then treat it both as data and as a
    /// separator (the stricter reading wins). Off: `%2F` is refused with 400.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_slashes: bool,
    /// Match `rules` paths ignoring ASCII case, for upstreams that do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_insensitive_rules: bool,
    /// The issuer URL the metadata document announces (`https://auth.example.com/api`).
    /// Unset: built from the request's host, and only when the route lists hosts (a
    /// route answering any host has no trustworthy host to announce).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s?#]+$"), length(max = 2048))]
    pub issuer: Option<String>,
    /// Kong compatibility: accept a token request without `redirect_uri` even when the
    /// authorization request sent one (RFC 6749 §4.1.3 requires it; off by default).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional_token_redirect_uri: bool,
    /// Rate limits of the token, authorize and introspection endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimitsSpec>,
    /// Refresh-token grace window in seconds: a rotation retried within it (a lost
    /// response) gets the same new pair instead of revoking the token family
    /// (RFC 9700 §4.14.2). `0` (default): any reuse revokes the family.
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(max = 300))]
    pub refresh_token_grace_seconds: u32,
    /// Header the bearer token is read from.
    #[serde(default = "default_auth_header")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9-]+$"), length(min = 1, max = 64))]
    pub auth_header_name: String,
    /// Scope requirements enforced at the gateway; the longest matching path wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<ScopeRule>,
    /// Built-in browser sign-in at an OIDC provider, consent page and sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginSpec>,
    /// OAuth 2.1 for every client: PKCE S256 required, no implicit or password grant,
    /// bearer tokens in the `Authorization` header only, loopback redirect URIs match
    /// any port (RFC 8252).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oauth21: bool,
    /// Clients nobody registered by hand (MCP clients): client ID metadata documents
    /// and RFC 7591 dynamic registration. Such clients are public and follow OAuth 2.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_registration: Option<ClientRegistrationSpec>,
}

/// Clients that are not `OAuth2Client` objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRegistrationSpec {
    /// Accept a `client_id` that is an `https` URL of a client ID metadata document.
    #[serde(default)]
    pub metadata_documents: bool,
    /// Hosts such documents may come from (`mcp.example.com`, `*.example.com`). Empty:
    /// any host with a public address. A listed host is trusted even on a private one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*(:[0-9]{1,5})?$"
            ),
            length(max = 253)
        )
    )]
    pub allowed_hosts: Vec<String>,
    /// RFC 7591 dynamic registration at `<path>/oauth2/register`.
    #[serde(default)]
    pub dynamic: bool,
    /// Lifetime of a dynamically registered client in seconds (default 30 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub client_lifetime_seconds: Option<i64>,
    /// Registrations per source address, `COUNT/UNIT[:BURST]` or `off` (default
    /// `10/h:5`), shared across replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(off|[1-9][0-9]{0,6}/(s|min|h)(:[1-9][0-9]{0,6})?)$"))]
    pub registration_rate: Option<String>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// Quotas of a route's OAuth2 endpoints: `COUNT/UNIT[:BURST]` with `UNIT` one of
/// `s`, `min`, `h` (`300/min:60`), or `off`. Unset: the proxy's defaults (per address
/// `300/min:60`, per client `600/min:120`). Budgets are shared across replicas through
/// Redis.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitsSpec {
    /// Per source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(off|[1-9][0-9]{0,6}/(s|min|h)(:[1-9][0-9]{0,6})?)$"))]
    pub per_address: Option<String>,
    /// Per client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(off|[1-9][0-9]{0,6}/(s|min|h)(:[1-9][0-9]{0,6})?)$"))]
    pub per_client: Option<String>,
}

impl Default for OAuth2Spec {
    fn default() -> Self {
        // Deserializing an empty object applies every serde default in one place.
        serde_json::from_str("{}").expect("every OAuth2Spec field has a serde default")
    }
}

/// PKCE enforcement (Kong's `pkce`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pkce {
    /// Never required.
    None,
    /// Required for public clients.
    #[default]
    Lax,
    /// Required for every client.
    Strict,
}

/// A scope requirement for part of a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRule {
    /// Path prefix relative to the matched route path (route `/stepon` + rule
    /// `/stepcounts` covers `/stepon/stepcounts/...`).
    #[schemars(regex(pattern = r"^/"), length(max = 1024))]
    pub path: String,
    /// Methods the rule applies to; empty means every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 9))]
    pub methods: Vec<Method>,
    /// Every one of these scopes must have been granted to the token.
    #[schemars(length(min = 1, max = 16), inner(length(max = 128)))]
    pub required_scopes: Vec<String>,
}

/// HTTP methods a scope rule can name.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Connect,
    Trace,
}

impl Method {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
        }
    }
}

fn yes() -> bool {
    true
}
fn default_token_expiration() -> i64 {
    7_200
}
fn default_refresh_token_ttl() -> i64 {
    1_209_600
}
fn default_auth_header() -> String {
    "authorization".to_owned()
}
