//! Browser sign-in state kept in the token store: sessions, pending sign-ins at the
//! identity provider, and remembered consents (see `crate::login`).
//!
//! The store treats them as opaque JSON under a kind and a digest key, with an absolute
//! expiry; `crate::login::state` owns their shape. This module holds the kind names and
//! the in-memory map that [`super::memory::MemoryStore`] uses.

use std::collections::HashMap;

use super::{Digest, Result, StoreError, UnixTime};

/// Which kind of sign-in record a key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LoginKind {
    /// A browser session (key: digest of the random session id in the cookie).
    Session,
    /// A sign-in in progress at the identity provider (key: digest of `state`).
    Pending,
    /// A consent page awaiting its answer (key: digest of the form's ticket).
    Ticket,
    /// A remembered consent (key: digest of route, user, client and scopes).
    Consent,
    /// When a user's sign-in on a route was last revoked (key: digest of route and user).
    Revoked,
    /// A refresh rotation's answer, sealed under the old refresh token (key: its
    /// digest; see `oauth2::grace`).
    RefreshGrace,
    /// A client registered at `/oauth2/register` (RFC 7591; key: digest of its
    /// `client_id`; see `oauth2::register`).
    RegisteredClient,
}

impl LoginKind {
    /// Name used in store keys (`<prefix>login:<kind>:<sha256>`).
    pub fn as_str(self) -> &'static str {
        match self {
            LoginKind::Session => "session",
            LoginKind::Pending => "pending",
            LoginKind::Ticket => "ticket",
            LoginKind::Consent => "consent",
            LoginKind::Revoked => "revoked",
            LoginKind::RefreshGrace => "refresh-grace",
            LoginKind::RegisteredClient => "registered-client",
        }
    }
}

/// Bounded, expiring map of sign-in records for the in-memory store.
#[derive(Debug, Default)]
pub struct LoginMap {
    records: HashMap<(LoginKind, Digest), (String, UnixTime)>,
}

impl LoginMap {
    /// Insert or replace; purges expired records when full, then refuses.
    pub fn put(
        &mut self,
        capacity: usize,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<()> {
        if self.records.len() >= capacity && !self.records.contains_key(&(kind, key)) {
            self.records.retain(|_, (_, exp)| *exp > now);
            if self.records.len() >= capacity {
                // Refusing keeps existing sessions alive; a new sign-in fails closed.
                return Err(StoreError::Unavailable(format!(
                    "in-memory sign-in state is full ({capacity} records); use Redis"
                )));
            }
        }
        self.records.insert((kind, key), (value, expires_at));
        Ok(())
    }

    /// A live record.
    pub fn get(&mut self, kind: LoginKind, key: &Digest, now: UnixTime) -> Option<String> {
        match self.records.get(&(kind, *key)) {
            Some((v, exp)) if *exp > now => Some(v.clone()),
            Some(_) => {
                self.records.remove(&(kind, *key));
                None
            }
            None => None,
        }
    }

    /// Remove and return a live record (single use).
    pub fn take(&mut self, kind: LoginKind, key: &Digest, now: UnixTime) -> Option<String> {
        let (v, exp) = self.records.remove(&(kind, *key))?;
        (exp > now).then_some(v)
    }

    /// Remove a record; whether a live one was there.
    pub fn delete(&mut self, kind: LoginKind, key: &Digest, now: UnixTime) -> bool {
        self.take(kind, key, now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Digest {
        Digest::of(s.as_bytes())
    }

    #[test]
    fn records_expire_and_are_taken_once() {
        let mut m = LoginMap::default();
        m.put(10, LoginKind::Pending, d("s"), "v".into(), 100, 50)
            .unwrap();
        assert_eq!(m.get(LoginKind::Pending, &d("s"), 99).as_deref(), Some("v"));
        assert_eq!(m.get(LoginKind::Session, &d("s"), 99), None);
        assert_eq!(
            m.take(LoginKind::Pending, &d("s"), 99).as_deref(),
            Some("v")
        );
        assert_eq!(m.take(LoginKind::Pending, &d("s"), 99), None);
        m.put(10, LoginKind::Session, d("x"), "v".into(), 100, 50)
            .unwrap();
        assert_eq!(m.get(LoginKind::Session, &d("x"), 100), None);
    }

    #[test]
    fn a_full_map_purges_expired_records_then_refuses() {
        let mut m = LoginMap::default();
        m.put(2, LoginKind::Session, d("a"), "1".into(), 10, 0)
            .unwrap();
        m.put(2, LoginKind::Session, d("b"), "2".into(), 100, 0)
            .unwrap();
        m.put(2, LoginKind::Session, d("c"), "3".into(), 100, 20)
            .unwrap();
        let err = m.put(2, LoginKind::Session, d("d"), "4".into(), 100, 20);
        assert!(matches!(err, Err(StoreError::Unavailable(_))));
        // Replacing an existing record needs no room.
        m.put(2, LoginKind::Session, d("b"), "5".into(), 100, 20)
            .unwrap();
        assert_eq!(m.get(LoginKind::Session, &d("b"), 20).as_deref(), Some("5"));
    }
}
