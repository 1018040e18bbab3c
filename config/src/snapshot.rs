//! The controller ↔ proxy contract: a versioned, self-contained description of
//! everything the proxy needs to know about the world.
//!
//! The controller (or standalone mode) builds a [`Snapshot`] from Kubernetes resources
//! and hands it to proxies as JSON (file, Redis key, or in-process channel). The proxy
//! never talks to Kubernetes. Secrets never travel in plaintext here: client secrets and
//! provision keys are carried as lowercase hex SHA-256 digests.
//!
//! Serialization is deterministic (vectors, not maps; the producer sorts them) so that
//! identical input yields byte-identical JSON and publishers can skip no-op updates.

use serde::{Deserialize, Serialize};

/// Current snapshot format version. A proxy refuses snapshots with a different
/// major `format` so that an old proxy never half-understands a new controller.
pub const FORMAT_VERSION: u32 = 1;

/// The whole configuration of the data plane at one point in time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Snapshot {
    /// Format version of this document; must equal [`FORMAT_VERSION`].
    #[serde(default = "default_format")]
    pub format: u32,
    /// Opaque revision chosen by the producer (the controller uses a content hash).
    /// Proxies log it and expose it on `/readyz`; it has no other meaning.
    #[serde(default)]
    pub revision: String,
    /// Protected (or plain) routes, in the producer's deterministic order.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Consumers that own OAuth2 clients or act as anonymous consumers.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// Registered OAuth2 client applications.
    #[serde(default)]
    pub clients: Vec<OAuth2Client>,
    /// TLS certificates chosen by SNI (from `kubernetes.io/tls` Secrets); the default
    /// certificate is the proxy's own (`--tls-cert`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<TlsCertificate>,
}

fn default_format() -> u32 {
    FORMAT_VERSION
}

/// One route: where requests match and where they go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Route {
    /// Stable unique identifier, `namespace/name` for routes from Kubernetes.
    /// Tokens and codes are bound to this id (unless `global_credentials`).
    pub id: String,
    /// Host names this route answers for. Exact names (`api.example.com`) or a single
    /// leading wildcard label (`*.example.com`, matching exactly one extra label).
    /// Empty means any host. Compared case-insensitively, port ignored.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefixes (each starting with `/`). The longest matching prefix across all
    /// routes wins; a prefix matches on segment boundaries (`/api` matches `/api` and
    /// `/api/x`, not `/apix`). Empty means `/`.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Remove the matched path prefix before proxying upstream.
    #[serde(default)]
    pub strip_path: bool,
    /// Send the client's `Host` header upstream instead of the upstream's own.
    #[serde(default)]
    pub preserve_host: bool,
    /// Let an encoded slash (`%2F`) through to the upstream (see the path policy);
    /// otherwise such a request is refused with 400.
    #[serde(default)]
    pub allow_encoded_slashes: bool,
    /// Where matched requests are proxied.
    pub upstream: Upstream,
    /// Request, upstream-attempt and idle timeouts of this route.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// OAuth2 protection; `None` means the route is a plain reverse-proxy route.
    #[serde(default)]
    pub oauth2: Option<RouteOAuth2>,
    /// No backend: the route exists for external authorization and its `/oauth2/*`
    /// endpoints only; anything else sent to it directly gets 404.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auth_only: bool,
    /// Whether `paths` are prefixes (default) or exact paths.
    #[serde(default, skip_serializing_if = "PathMatch::is_prefix")]
    pub path_match: PathMatch,
    /// Method, header and query conditions (Gateway API matches).
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// Header edits, redirect, rewrite (Gateway API filters).
    #[serde(default, skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
}

/// The upstream of a route: a set of equivalent endpoints, used round robin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Upstream {
    /// Base URLs such as `http://10.0.0.7:8080` or `http://127.0.0.1:9000/base`.
    /// A path in the URL is prepended to the (possibly stripped) request path.
    /// Empty means "no endpoint available": the proxy answers 503 until one appears.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Time allowed to establish a TCP connection to an endpoint; 502 when exceeded.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for the upstream to send response headers, counted from the end
    /// of the request body; 504 when exceeded.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// HTTP/1.1, or HTTP/2 (cleartext or TLS) for gRPC and other HTTP/2 backends.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// Verification and client certificate for `https://` / `grpcs://` endpoints.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// Requests in flight to one endpoint from one proxy (0 = unlimited); more get 503.
    #[serde(default)]
    pub max_connections: u32,
    /// Skip endpoints that keep refusing connections.
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    /// Relative weight of each endpoint (same order as `endpoints`); empty means equal.
    /// A weight of 0 keeps an endpoint out of rotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weights: Vec<u32>,
}

impl Default for Upstream {
    fn default() -> Self {
        // Round-tripping an empty object applies every serde default in one place.
        serde_json::from_str("{}").expect("every Upstream field has a serde default")
    }
}

fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_response_timeout_ms() -> u64 {
    60_000
}

/// How the proxy speaks to an upstream's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (over TLS for `https://` endpoints). Upgrades (WebSocket) work.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge over cleartext (gRPC backends; `grpc://` URLs and
    /// Service ports with `appProtocol: kubernetes.io/h2c`).
    H2c,
    /// HTTP/2 over TLS, negotiated by ALPN (`https://` endpoints).
    H2,
}

/// TLS settings for `https://` endpoints. Without any, the certificate is verified
/// against the system roots for the URL's host name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM CA bundle trusted instead of the system roots (public data: the controller
    /// copies it from a ConfigMap or Secret `ca.crt`).
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// PEM CA bundle file on the proxy's file system, trusted instead of the system roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Name verified in the certificate and sent as SNI (default: the URL's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM client certificate chain presented to the upstream (mTLS). Files, so the
    /// private key never travels in the snapshot: mount the Secret into the proxy.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// PEM private key for `client_cert_file`.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// Passive outlier detection: endpoints that keep refusing connections are skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive connection failures that eject an endpoint (0 = never).
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// How long an ejected endpoint is skipped.
    #[serde(default = "default_ejection_ms")]
    pub ejection_ms: u64,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: default_consecutive_failures(),
            ejection_ms: default_ejection_ms(),
        }
    }
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_ejection_ms() -> u64 {
    30_000
}

/// Per-route timeouts (Gateway API HTTPRoute `timeouts`, ProtectedRoute `timeouts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Timeouts {
    /// Whole request, from arrival to the upstream's response headers, retries
    /// included; 504 when exceeded. `None`: no overall limit.
    #[serde(default)]
    pub request_ms: Option<u64>,
    /// One upstream attempt, counted from the end of the request body to the response
    /// headers; overrides `upstream.response_timeout_ms`.
    #[serde(default)]
    pub backend_request_ms: Option<u64>,
    /// An upgraded connection (WebSocket) with no byte in either direction for this
    /// long is closed. Default 1 hour.
    #[serde(default)]
    pub idle_ms: Option<u64>,
}

/// PKCE enforcement, as Kong's `pkce` setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkceMode {
    /// Never required (a code issued with a challenge still needs its verifier).
    None,
    /// Required for public clients only.
    #[default]
    Lax,
    /// Required for every client.
    Strict,
}

/// OAuth2 settings of one route (Kong `oauth2` plugin config, plus `rules`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct RouteOAuth2 {
    /// Scopes a client may request on this route. Empty means scopes are not used.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Reject authorization/token requests that name no scope.
    #[serde(default)]
    pub mandatory_scope: bool,
    /// Access token lifetime in seconds; 0 = never expires and no refresh token.
    #[serde(default = "default_token_expiration")]
    pub token_expiration: u64,
    /// Refresh token lifetime in seconds; 0 = never expires.
    #[serde(default = "default_refresh_token_ttl")]
    pub refresh_token_ttl: u64,
    /// Authorization code lifetime in seconds.
    #[serde(default = "default_code_ttl")]
    pub code_ttl: u64,
    /// Keep the refresh token on refresh instead of rotating it.
    #[serde(default)]
    pub reuse_refresh_token: bool,
    /// Authorization code grant (`response_type=code`).
    #[serde(default = "yes")]
    pub enable_authorization_code: bool,
    /// Client credentials grant.
    #[serde(default)]
    pub enable_client_credentials: bool,
    /// Resource owner password grant (the login app checked the password).
    #[serde(default)]
    pub enable_password_grant: bool,
    /// Implicit grant (`response_type=token`).
    #[serde(default)]
    pub enable_implicit_grant: bool,
    /// PKCE mode.
    #[serde(default)]
    pub pkce: PkceMode,
    /// Hex SHA-256 of the provision key the login app presents; `None` means no
    /// provision key is configured and authorize/password grants are refused.
    #[serde(default)]
    pub provision_key_sha256: Option<String>,
    /// Remove the token from header, query and form body before proxying.
    #[serde(default)]
    pub hide_credentials: bool,
    /// Accept plain HTTP when a trusted proxy says `X-Forwarded-Proto: https`.
    #[serde(default)]
    pub accept_http_if_already_terminated: bool,
    /// Consumer id used when no token is presented (request passes as anonymous).
    #[serde(default)]
    pub anonymous_consumer: Option<String>,
    /// Tokens issued here are valid on every route that also sets this flag.
    #[serde(default)]
    pub global_credentials: bool,
    /// Match scope rule paths ignoring ASCII case.
    #[serde(default)]
    pub case_insensitive_rules: bool,
    /// Issuer announced in the metadata document; `None` = from the request's host,
    /// on routes that list hosts only.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Kong compatibility: a token request may omit a `redirect_uri` that the
    /// authorization request sent.
    #[serde(default)]
    pub optional_token_redirect_uri: bool,
    /// Refresh-token grace window (seconds; 0 = off): a rotation retried within it
    /// returns the same new pair (sealed under the old refresh token) instead of
    /// revoking the family.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub refresh_token_grace_seconds: u32,
    /// Rate limits of `/oauth2/token`, `/oauth2/authorize` and `/oauth2/introspect`.
    #[serde(default, skip_serializing_if = "RateLimits::is_default")]
    pub rate_limits: RateLimits,
    /// Header the bearer token is read from (lowercase).
    #[serde(default = "default_auth_header")]
    pub auth_header_name: String,
    /// Realm in `WWW-Authenticate` challenges.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Scope rules enforced at the gateway, first match (longest path) wins.
    #[serde(default)]
    pub rules: Vec<ScopeRule>,
    /// Built-in browser sign-in (OIDC provider, consent page, sessions); `None` keeps
    /// the provision-key contract only. Omitted from JSON when unset so proxies that
    /// predate it keep accepting snapshots of routes without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<Login>,
    /// OAuth 2.1 rules for every client of the route: PKCE S256 always, no implicit or
    /// password grant, tokens only in the `Authorization` header, loopback redirect
    /// URIs with any port (RFC 8252 §7.3). Clients of `client_registration` always
    /// follow them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oauth21: bool,
    /// Clients nobody registered by hand (MCP): client ID metadata documents and
    /// dynamic registration. Off unless set.
    #[serde(default, skip_serializing_if = "ClientRegistration::is_off")]
    pub client_registration: ClientRegistration,
}

/// How clients that are not in the configuration may appear on a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ClientRegistration {
    /// A `client_id` that is an `https` URL names a client ID metadata document,
    /// fetched and used as a public client.
    #[serde(default)]
    pub metadata_documents: bool,
    /// Hosts metadata documents may come from (`host` or `*.suffix`); empty: any
    /// host with a public address. A listed host is trusted even on a private address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metadata_hosts: Vec<String>,
    /// RFC 7591 registration at `<prefix>/oauth2/register` (RFC 7592 read/delete).
    #[serde(default)]
    pub dynamic: bool,
    /// How long a dynamically registered client lives, in seconds.
    #[serde(default = "default_registered_client_ttl")]
    pub registered_client_ttl: u64,
    /// Registrations allowed per source address (`COUNT/UNIT[:BURST]`, or `off`).
    #[serde(default = "default_registration_rate")]
    pub registration_rate: String,
}

impl Default for ClientRegistration {
    fn default() -> Self {
        ClientRegistration {
            metadata_documents: false,
            metadata_hosts: Vec::new(),
            dynamic: false,
            registered_client_ttl: default_registered_client_ttl(),
            registration_rate: default_registration_rate(),
        }
    }
}

impl ClientRegistration {
    /// Neither kind of unregistered client is accepted.
    pub fn is_off(&self) -> bool {
        !self.metadata_documents && !self.dynamic
    }
}

fn default_registered_client_ttl() -> u64 {
    30 * 24 * 3600
}
fn default_registration_rate() -> String {
    "10/h:5".to_owned()
}

/// Built-in sign-in settings of a route (`oauth2.login`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Login {
    /// OIDC issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer_url: String,
    /// Gatehouse's client id at the provider.
    pub client_id: String,
    /// Gatehouse's client secret at the provider, sealed (AES-256-GCM-SIV) under the
    /// installation's login key (see [`crate::seal`]): the proxy must present the secret
    /// itself, so a digest cannot do, and the snapshot never carries it in plaintext.
    pub client_secret_sealed: String,
    /// Scopes requested at the provider.
    pub scopes: Vec<String>,
    /// ID-token claim that becomes `authenticated_userid`.
    pub user_claim: String,
    /// Allowed email domains (lowercase); empty = any.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// Allowed users (user-claim values or emails); empty = any.
    #[serde(default)]
    pub allowed_users: Vec<String>,
    /// Claims that must hold one of their listed values.
    #[serde(default)]
    pub required_claims: Vec<RequiredClaim>,
    /// Consent page policy.
    #[serde(default)]
    pub consent: ConsentMode,
    /// Client ids that `ConsentMode::Skip` applies to (OAuth2Client `trusted: true`).
    #[serde(default)]
    pub trusted_clients: Vec<String>,
    /// Absolute session lifetime, seconds.
    pub session_ttl: u64,
    /// Idle session timeout, seconds.
    pub idle_timeout: u64,
    /// Remembered consent lifetime, seconds.
    pub consent_ttl: u64,
    /// Sign-in alone protects the route (browser apps).
    #[serde(default)]
    pub require_session: bool,
    /// Page title.
    #[serde(default)]
    pub title: Option<String>,
    /// Page logo as a `data:image/...;base64,` URI.
    #[serde(default)]
    pub logo: Option<String>,
}

/// A claim that must hold one of `values`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct RequiredClaim {
    pub claim: String,
    pub values: Vec<String>,
}

/// When the consent page is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    Always,
    #[default]
    Remember,
    Skip,
}

fn yes() -> bool {
    true
}
fn default_token_expiration() -> u64 {
    7_200
}
fn default_refresh_token_ttl() -> u64 {
    1_209_600
}
fn default_code_ttl() -> u64 {
    60
}
/// Quotas of a route's OAuth2 endpoints, each `COUNT/UNIT[:BURST]` (`300/min:60`),
/// `off`, or unset for the proxy's default. Budgets are shared by every route and
/// replica using the same store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Per source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_address: Option<String>,
    /// Per client id (clients of the configuration only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client: Option<String>,
}

impl RateLimits {
    fn is_default(&self) -> bool {
        *self == RateLimits::default()
    }
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

fn default_auth_header() -> String {
    "authorization".to_owned()
}
fn default_realm() -> String {
    "service".to_owned()
}

/// Longest life of a public client's refresh token under OAuth 2.1 rules: it is not
/// bound to the sender, so it must not live long (each rotation starts a new one).
pub const PUBLIC_REFRESH_TTL: u64 = 24 * 3600;

impl RouteOAuth2 {
    /// The implicit grant is on (never under OAuth 2.1).
    pub fn implicit_enabled(&self) -> bool {
        self.enable_implicit_grant && !self.oauth21
    }

    /// The password grant is on (never under OAuth 2.1).
    pub fn password_enabled(&self) -> bool {
        self.enable_password_grant && !self.oauth21
    }

    /// OAuth 2.1 rules apply to a client: on `oauth21` routes, and to every client
    /// nobody registered by hand.
    pub fn oauth21_for(&self, unvetted: bool) -> bool {
        self.oauth21 || unvetted
    }

    /// The PKCE mode in force for a client: S256 from everyone under OAuth 2.1.
    pub fn pkce_for(&self, unvetted: bool) -> PkceMode {
        if self.oauth21_for(unvetted) {
            PkceMode::Strict
        } else {
            self.pkce
        }
    }

    /// Refresh token lifetime for a client (0 = never expires): capped at
    /// [`PUBLIC_REFRESH_TTL`] for public clients where OAuth 2.1 rules or open
    /// registration apply.
    pub fn refresh_ttl_for(&self, public: bool) -> u64 {
        let short = public && (self.oauth21 || !self.client_registration.is_off());
        match (short, self.refresh_token_ttl) {
            (true, 0) => PUBLIC_REFRESH_TTL,
            (true, ttl) => ttl.min(PUBLIC_REFRESH_TTL),
            (false, ttl) => ttl,
        }
    }
}

impl Default for RouteOAuth2 {
    fn default() -> Self {
        // Round-tripping an empty object applies every serde default in one place.
        serde_json::from_str("{}").expect("every RouteOAuth2 field has a serde default")
    }
}

/// A gateway-enforced scope requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ScopeRule {
    /// Path prefix relative to the matched route path (`/stepcounts` under route
    /// `/stepon` covers `/stepon/stepcounts/...`). Segment-boundary match.
    pub path: String,
    /// Upper-case HTTP methods the rule applies to; empty means every method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Every one of these scopes must have been granted to the token.
    pub required_scopes: Vec<String>,
}

/// Who owns client applications (a Kong consumer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Consumer {
    /// Stable identifier sent upstream as `X-Consumer-ID` (the Kubernetes UID, or
    /// `namespace/name` in standalone mode).
    pub id: String,
    /// `X-Consumer-Username`.
    #[serde(default)]
    pub username: Option<String>,
    /// `X-Consumer-Custom-ID`.
    #[serde(default)]
    pub custom_id: Option<String>,
}

/// Confidential clients authenticate with a secret; public ones cannot keep one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    #[default]
    Confidential,
    Public,
}

/// OAuth2 grant types a client is allowed to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    ClientCredentials,
    Password,
    Implicit,
    RefreshToken,
}

/// A registered client application.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct OAuth2Client {
    /// Public identifier (`client_id`), unique in the snapshot.
    pub client_id: String,
    /// Hex SHA-256 of the client secret; `None` for public clients.
    #[serde(default)]
    pub secret_sha256: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Id of the owning [`Consumer`].
    pub consumer_id: String,
    /// Confidential or public.
    #[serde(default)]
    pub client_type: ClientType,
    /// Registered redirect URIs, matched exactly; the first is the default.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Grants this client may use; empty means every grant the route enables.
    #[serde(default)]
    pub grant_types: Vec<GrantType>,
    /// Scopes this client may obtain; `None` means any scope the route offers.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// May introspect tokens of other clients (it is a resource server).
    #[serde(default)]
    pub resource_server: bool,
}

/// Why a snapshot document was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is not valid JSON for this format: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("snapshot format {found} is not supported (this proxy speaks {FORMAT_VERSION})")]
    Format { found: u32 },
}

impl Snapshot {
    /// Parse and check a JSON snapshot document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let snap: Snapshot = serde_json::from_slice(bytes)?;
        if snap.format != FORMAT_VERSION {
            return Err(SnapshotError::Format { found: snap.format });
        }
        Ok(snap)
    }

    /// Deterministic JSON encoding (field order is the struct order).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Snapshot contains only JSON-representable data")
    }
}

// ---- Gateway API / Ingress additions: exact paths, request conditions, filters and
// SNI certificates. Every field defaults to "nothing" and is skipped when serializing,
// so snapshots without these features stay byte-identical to the earlier format.

/// How a route's `paths` match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathMatch {
    /// Segment-boundary prefix (`/api` matches `/api` and `/api/x`).
    #[default]
    Prefix,
    /// The whole path, exactly.
    Exact,
}

impl PathMatch {
    pub fn is_prefix(&self) -> bool {
        *self == PathMatch::Prefix
    }
}

/// Extra conditions a request must meet (all of them) to match a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Conditions {
    /// Upper-case method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers that must be present with exactly this value (names lowercase).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<NameValue>,
    /// Query parameters that must be present with exactly this value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<NameValue>,
}

impl Conditions {
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.headers.is_empty() && self.query.is_empty()
    }
}

/// A header or query parameter name with a value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// What happens to a matched request besides proxying.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Filters {
    /// Edits to the request headers sent upstream.
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub request_headers: HeaderEdits,
    /// Edits to the response headers sent to the client.
    #[serde(default, skip_serializing_if = "HeaderEdits::is_empty")]
    pub response_headers: HeaderEdits,
    /// Answer with a redirect instead of proxying (checked before OAuth2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Rewrite host and/or path before proxying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }
}

/// Header edits: `set` replaces, `add` appends, `remove` deletes (names lowercase).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct HeaderEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A redirect response (`Location` built from the request with these replaced).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    /// 301 or 302 (default 302).
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// Rewrite before proxying.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Rewrite {
    /// `Host` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

/// A path replacement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathRewrite {
    /// Replace the whole path.
    Full(String),
    /// Replace the matched prefix, keep the rest.
    Prefix(String),
}

/// A certificate and its private key, served to TLS clients whose SNI matches `hosts`.
///
/// Unlike client secrets, a private key cannot travel as a digest: the proxy needs the
/// key itself. With an installation login key (the Helm chart's default) the key is
/// sealed under it ([`crate::seal`], context [`TlsCertificate::seal_context`]), like
/// `oauth2.login` client secrets, so reading the snapshot (the file, or the Redis key)
/// does not reveal it. Without one it travels in plaintext: protect the snapshot as
/// the Secrets themselves (Redis ACL + TLS, file mode 0600).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct TlsCertificate {
    /// Where it came from (`namespace/secret`), for logs.
    pub id: String,
    /// Exact names or `*.wildcard` names this certificate is served for.
    pub hosts: Vec<String>,
    /// PEM certificate chain.
    pub cert_pem: String,
    /// PEM private key in plaintext; empty when `key_sealed` carries it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key_pem: String,
    /// PEM private key sealed under the installation's login key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sealed: Option<String>,
}

impl TlsCertificate {
    /// Associated data the private key of certificate `id` is sealed with, so a sealed
    /// key cannot be moved to another certificate.
    pub fn seal_context(id: &str) -> String {
        format!("tls-key/{id}")
    }
}

impl std::fmt::Debug for TlsCertificate {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("id", &self.id)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_oauth2_defaults_match_kong() {
        let o = RouteOAuth2::default();
        assert_eq!(o.token_expiration, 7200);
        assert_eq!(o.refresh_token_ttl, 1_209_600);
        assert!(o.enable_authorization_code);
        assert!(!o.enable_client_credentials);
        assert_eq!(o.pkce, PkceMode::Lax);
        assert_eq!(o.auth_header_name, "authorization");
    }

    #[test]
    fn example_snapshot_parses() {
        let bytes = include_bytes!("../../examples/snapshot.json");
        let snap = Snapshot::from_json(bytes).expect("examples/snapshot.json is valid");
        assert!(!snap.routes.is_empty());
        let again = Snapshot::from_json(&snap.to_json()).unwrap();
        assert_eq!(snap, again);
    }

    #[test]
    fn other_format_versions_are_refused() {
        let err = Snapshot::from_json(br#"{"format": 99}"#).unwrap_err();
        assert!(matches!(err, SnapshotError::Format { found: 99 }));
    }
}
