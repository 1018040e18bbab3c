//! The shape of browser sign-in state and its life in the token store: sessions,
//! sign-ins pending at the provider, consent tickets and remembered consents.
//!
//! Every record is keyed by the SHA-256 of a random value the browser holds (the
//! session id inside the encrypted cookie, the `state` sent to the provider, the
//! consent ticket in the form) or, for remembered consents, of what was consented to.
//! Raw values are never stored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::config::Login;
use crate::store::{Digest, LoginKind, StoreError, TokenStore, UnixTime};

/// A pending sign-in lives this long (the user is typing a password at the provider).
pub const PENDING_TTL: u64 = 600;
/// A consent page may be answered for this long.
pub const TICKET_TTL: u64 = 600;
/// `last_seen` is written back at most this often, so a busy browser app does not
/// turn every request into a store write.
pub const TOUCH_INTERVAL: u64 = 60;

/// A signed-in browser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Route the session was created on; it is valid there only.
    pub route_id: String,
    /// `authenticated_userid` (the configured user claim).
    pub user: String,
    /// Verified email, when the provider said so.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name, when known.
    #[serde(default)]
    pub name: Option<String>,
    pub created_at: UnixTime,
    /// Absolute end (session lifetime).
    pub expires_at: UnixTime,
    pub last_seen: UnixTime,
    /// The provider's ID token, kept as `id_token_hint` for RP-initiated logout.
    #[serde(default)]
    pub id_token: Option<String>,
    /// The user's revocation epoch on this route when the session began; a later
    /// revocation changes it, and the session stops counting.
    #[serde(default)]
    pub epoch: Option<String>,
}

impl Session {
    /// Whether the session is alive at `now` under `login`'s idle timeout.
    pub fn alive(&self, login: &Login, now: UnixTime) -> bool {
        now < self.expires_at && now < self.last_seen.saturating_add(login.idle_timeout)
    }

    /// When the store may forget it: at the idle deadline, never after the absolute end.
    pub fn store_expiry(&self, login: &Login) -> UnixTime {
        self.expires_at
            .min(self.last_seen.saturating_add(login.idle_timeout))
    }
}

/// An authorization request from a client, kept while the user signs in and consents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The client named `redirect_uri` (the token request must repeat it).
    #[serde(default)]
    pub redirect_uri_sent: bool,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub code_challenge: Option<String>,
    /// RFC 8707 resources, checked against the route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// Where to go once the provider has signed the user in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum After {
    /// Back to `GET <prefix>/oauth2/authorize?<query>` (now with a session).
    Authorize { query: String },
    /// Back to a path on this host (sign-in-only protection).
    Return { path: String },
}

/// A sign-in in progress at the provider (key: digest of `state`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub route_id: String,
    pub nonce: String,
    pub verifier: String,
    pub after: After,
}

/// A consent page waiting for an answer (key: digest of the ticket in the form).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub route_id: String,
    /// Digest of the session that saw the page: only it may answer (CSRF).
    pub session: Digest,
    pub request: AuthzRequest,
}

/// Key of a remembered consent: route, user, client and the exact scope set. Its
/// value is the user's revocation epoch when it was given (a later revocation voids it).
pub fn consent_key(route_id: &str, user: &str, client_id: &str, scopes: &[String]) -> Digest {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    key_of(
        [route_id, user, client_id]
            .into_iter()
            .chain(scopes.iter().map(String::as_str)),
    )
}

/// Key of a user's revocation epoch on a route: a random value replaced by each
/// revocation. Sessions and consents carry the epoch they began in and count only
/// while it is current (exact, whatever the replicas' clocks say).
pub fn revocation_key(route_id: &str, user: &str) -> Digest {
    key_of([route_id, user])
}

/// A revocation outlives any session or remembered consent it voids (the store needs
/// an expiry for every record; the CRDs cap lifetimes far below this).
pub const REVOCATION_TTL: u64 = 5 * 366 * 24 * 3600;

/// Digest of length-prefixed parts: no two different tuples hash the same input.
fn key_of<'p>(parts: impl IntoIterator<Item = &'p str>) -> Digest {
    let mut buf = Vec::new();
    for part in parts {
        buf.extend_from_slice(&(part.len() as u64).to_be_bytes());
        buf.extend_from_slice(part.as_bytes());
    }
    Digest::of(&buf)
}

/// Typed access to the store's sign-in records.
pub struct Records<'a> {
    pub store: &'a dyn TokenStore,
}

impl Records<'_> {
    pub async fn put<T: Serialize>(
        &self,
        kind: LoginKind,
        key: Digest,
        value: &T,
        expires_at: UnixTime,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.store.put_login(kind, key, json, expires_at).await
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        kind: LoginKind,
        key: Digest,
    ) -> Result<Option<T>, StoreError> {
        decode(self.store.get_login(kind, key).await?)
    }

    /// `user`'s current revocation epoch on `route_id` (`None`: never revoked).
    pub async fn epoch(&self, route_id: &str, user: &str) -> Result<Option<String>, StoreError> {
        self.get(LoginKind::Revoked, revocation_key(route_id, user))
            .await
    }

    /// Revoke `user`'s sessions and remembered consents on `route_id`: a new epoch.
    pub async fn revoke(
        &self,
        route_id: &str,
        user: &str,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.put(
            LoginKind::Revoked,
            revocation_key(route_id, user),
            &crate::secret::random_token(),
            now + REVOCATION_TTL,
        )
        .await
    }

    pub async fn take<T: DeserializeOwned>(
        &self,
        kind: LoginKind,
        key: Digest,
    ) -> Result<Option<T>, StoreError> {
        decode(self.store.take_login(kind, key).await?)
    }
}

fn decode<T: DeserializeOwned>(raw: Option<String>) -> Result<Option<T>, StoreError> {
    raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_keys_ignore_scope_order_but_not_who_or_what() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let k = consent_key("r", "clark", "app", &s(&["a", "b"]));
        assert_eq!(k, consent_key("r", "clark", "app", &s(&["b", "a"])));
        assert_ne!(k, consent_key("r", "clark", "app", &s(&["a"])));
        assert_ne!(k, consent_key("r", "lois", "app", &s(&["a", "b"])));
        assert_ne!(k, consent_key("r", "clark", "other", &s(&["a", "b"])));
        assert_ne!(
            consent_key("r", "ab", "c", &[]),
            consent_key("r", "a", "bc", &[])
        );
    }
}
