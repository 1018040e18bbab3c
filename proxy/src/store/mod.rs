//! Token and authorization-code state, behind one async trait so that the in-memory
//! store (standalone default) and Redis (production, shared by replicas) are
//! interchangeable.
//!
//! Keys are always [`Digest`]s: the SHA-256 of the raw token or code. Raw values are
//! handed to the client once and never stored. Records carry everything a proxy needs
//! to decide on a request without consulting anything else.
//!
//! Families: every token descends from one grant (an authorization code, a password or
//! client-credentials grant). All access and refresh tokens of that lineage share a
//! `family` id so that code replay and refresh-token reuse can revoke the whole lineage
//! (RFC 6749 §4.1.2, RFC 9700 §4.14).

pub mod args;
pub mod cache;
pub mod login_records;
pub mod memory;
pub mod metered;
pub mod redis;
pub mod slot;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use crate::ratelimit::{Decision, Quota};
pub use slot::Slot;

/// SHA-256 of a secret value (token, code, client secret, provision key), with the
/// [`Slot`] the raw value named. Two digests are equal when their SHA-256 is: the
/// slot only tells a sharded store where to look.
#[derive(Clone, Copy)]
pub struct Digest(pub [u8; 32], Slot);

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Digest {}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state)
    }
}

impl PartialOrd for Digest {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Digest {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl Digest {
    /// Hash a raw secret.
    pub fn of(raw: &[u8]) -> Self {
        Digest(Sha256::digest(raw).into(), Slot::of(raw))
    }

    /// The slot tag the raw value started with ([`Slot::NONE`] for a digest read
    /// back from hex).
    pub fn slot(&self) -> Slot {
        self.1
    }

    /// Lowercase hex, the form used in snapshots and store keys.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse lowercase or uppercase hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Digest(out, Slot::NONE))
    }

    /// Constant-time equality: secrets are compared as digests without leaking how
    /// many leading bytes matched.
    pub fn ct_eq(&self, other: &Digest) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

impl std::fmt::Debug for Digest {
    // Only a prefix: enough to correlate in debug output, useless to an attacker
    // (and these are digests, never raw secrets).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest({}…)", &self.to_hex()[..8])
    }
}

/// Unix time in seconds.
pub type UnixTime = u64;

/// What an access token and its refresh token have in common: the grant they carry.
/// Flattened into both records, so the JSON stored in Redis keeps its flat shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Route id the token was issued on.
    pub route_id: String,
    /// Issued on a `global_credentials` route: valid on every such route.
    pub global: bool,
    /// `client_id` of the client it was issued to.
    pub client_id: String,
    /// Consumer that owns that client.
    pub consumer_id: String,
    /// The resource owner, when the grant had one.
    pub authenticated_userid: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Expiry; `None` = never.
    pub expires_at: Option<UnixTime>,
    /// Lineage id (see module docs).
    pub family: String,
    /// The resources (RFC 8707 `resource`) the token is for; empty: none named. A
    /// token naming resources is valid only on the route that issued it (see
    /// [`crate::binding`]). Omitted when empty so records keep their earlier shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
}

/// Everything known about a granted access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessToken {
    #[serde(flatten)]
    pub grant: Grant,
    /// Digest of the refresh token issued together with this access token, if any.
    pub refresh: Option<Digest>,
}

/// Everything known about a refresh token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    #[serde(flatten)]
    pub grant: Grant,
    /// Digest of the access token issued together with this refresh token.
    pub access: Digest,
}

// Field reads (`token.scopes`) go to the grant, so code that only reads a token does
// not care which of the two records it holds.
impl std::ops::Deref for AccessToken {
    type Target = Grant;
    fn deref(&self) -> &Grant {
        &self.grant
    }
}

impl std::ops::Deref for RefreshToken {
    type Target = Grant;
    fn deref(&self) -> &Grant {
        &self.grant
    }
}

/// A pending authorization code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub route_id: String,
    pub global: bool,
    pub client_id: String,
    pub consumer_id: String,
    pub authenticated_userid: String,
    pub scopes: Vec<String>,
    /// The redirect URI the code was issued for; the token request must repeat it.
    pub redirect_uri: String,
    /// The authorization request named `redirect_uri` itself (rather than using the
    /// client's default), so the token request must send it (RFC 6749 §4.1.3).
    #[serde(default)]
    pub redirect_uri_sent: bool,
    /// PKCE S256 challenge, when one was sent.
    pub code_challenge: Option<String>,
    pub expires_at: UnixTime,
    /// Family every token issued from this code will belong to.
    pub family: String,
    /// RFC 8707 resources the authorization request named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// A freshly issued access token, optionally with its refresh token.
#[derive(Clone, Debug)]
pub struct IssuedPair {
    pub access_digest: Digest,
    pub access: AccessToken,
    pub refresh: Option<(Digest, RefreshToken)>,
}

/// Result of redeeming an authorization code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First redemption: the code is gone now.
    Redeemed(Box<AuthorizationCode>),
    /// The code was already redeemed; the store has revoked every token of `family`.
    Replayed { family: String },
    /// Never existed or expired.
    Unknown,
}

/// Result of a refresh-token rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The old refresh token (and its access token) died; the new pair is live.
    Rotated,
    /// The refresh token had already been rotated away: the whole family is revoked.
    Reused { family: String },
    /// Never existed, expired or revoked.
    Unknown,
}

/// Store failures. Callers fail closed (503 `temporarily_unavailable`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("token store unavailable: {0}")]
    Unavailable(String),
    #[error("token store returned corrupt data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Token and code state shared by all proxy replicas.
///
/// Implementations own expiry: a lookup never returns an expired record.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Store a new authorization code under its digest.
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()>;

    /// Take a code exactly once across all replicas. A second take reports
    /// [`CodeRedemption::Replayed`] (for at least the code's original lifetime) and
    /// revokes every token issued from it.
    async fn take_code(&self, code: Digest) -> Result<CodeRedemption>;

    /// Persist a newly issued token pair.
    async fn issue(&self, pair: IssuedPair) -> Result<()>;

    /// Look up a live access token.
    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>>;

    /// Look up a live refresh token.
    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>>;

    /// Atomically retire `old` (refresh token and its access token) and persist `new`.
    /// Presenting a refresh token that was already rotated away revokes its family.
    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation>;

    /// Revoke an access or refresh token and its partner (RFC 7009). Returns whether
    /// anything was revoked.
    async fn revoke(&self, token: Digest) -> Result<bool>;

    /// Revoke every token of a family.
    async fn revoke_family(&self, family: &str) -> Result<()>;

    /// Cheap health check for `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// Count one request against the rate-limit budget `key` (GCRA, see
    /// [`crate::ratelimit`]); shared by every replica using the same store. A store
    /// without rate-limit state fails closed (every limited endpoint answers 503).
    async fn rate_hit(&self, _key: &str, _quota: &Quota) -> Result<Decision> {
        Err(StoreError::Unavailable(
            "this token store keeps no rate-limit state".into(),
        ))
    }

    // --- Browser sign-in state (crate::login). Stores that keep none fail closed.

    /// Store a sign-in record (JSON) under `kind` + `key` until `expires_at`.
    async fn put_login(
        &self,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
    ) -> Result<()> {
        let _ = (kind, key, value, expires_at);
        Err(no_login_state())
    }

    /// A live sign-in record.
    async fn get_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        let _ = (kind, key);
        Err(no_login_state())
    }

    /// Remove and return a live sign-in record, exactly once across replicas.
    async fn take_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        let _ = (kind, key);
        Err(no_login_state())
    }

    /// Remove a sign-in record; whether one was there.
    async fn delete_login(&self, kind: LoginKind, key: Digest) -> Result<bool> {
        let _ = (kind, key);
        Err(no_login_state())
    }

    /// Register this store's metrics (and those of the stores it wraps) in
    /// `registry`; the server calls it once for the store it is given.
    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        let _ = registry;
    }
}

pub use login_records::LoginKind;

fn no_login_state() -> StoreError {
    StoreError::Unavailable("this token store keeps no sign-in state".into())
}

#[cfg(test)]
mod record_tests {
    use super::*;

    // Records as stored in Redis before `Grant` existed: they must still decode, and
    // encode back to the same bytes (the Lua scripts and older replicas read them).
    const ACCESS_JSON: &str = r#"{"route_id":"shop/api","global":false,"client_id":"cid","consumer_id":"shop/alice","authenticated_userid":"u1","scopes":["read","write"],"issued_at":1700000000,"expires_at":1700007200,"family":"fam","refresh":"2b6f9a4c0e1d3f5a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c"}"#;
    const REFRESH_JSON: &str = r#"{"route_id":"shop/api","global":true,"client_id":"cid","consumer_id":"shop/alice","authenticated_userid":null,"scopes":[],"issued_at":1700000000,"expires_at":null,"family":"fam","access":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}"#;

    #[test]
    fn todays_stored_access_token_decodes_and_reencodes_unchanged() {
        let token: AccessToken = serde_json::from_str(ACCESS_JSON).unwrap();
        assert_eq!(token.route_id, "shop/api");
        assert_eq!(token.authenticated_userid.as_deref(), Some("u1"));
        assert_eq!(token.scopes, ["read", "write"]);
        assert_eq!(token.expires_at, Some(1_700_007_200));
        assert_eq!(
            token.refresh.map(|d| d.to_hex()).as_deref(),
            Some("2b6f9a4c0e1d3f5a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c")
        );
        assert_eq!(serde_json::to_string(&token).unwrap(), ACCESS_JSON);
    }

    #[test]
    fn todays_stored_refresh_token_decodes_and_reencodes_unchanged() {
        let token: RefreshToken = serde_json::from_str(REFRESH_JSON).unwrap();
        assert!(token.global);
        assert_eq!(token.authenticated_userid, None);
        assert_eq!(token.expires_at, None);
        assert_eq!(
            token.access.to_hex(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        );
        assert_eq!(serde_json::to_string(&token).unwrap(), REFRESH_JSON);
    }
}
