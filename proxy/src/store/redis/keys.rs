//! The Redis key layout. Every key starts with the configurable prefix (default
//! `gatehouse:`) and names tokens and codes only by their SHA-256 hex digest.
//!
//! | key                          | type   | holds                                   | expiry                        |
//! |------------------------------|--------|-----------------------------------------|-------------------------------|
//! | `<p>at:<sha256>`             | string | access token record (JSON)              | the token's expiry            |
//! | `<p>rt:<sha256>`             | string | refresh token record (JSON)             | the token's expiry            |
//! | `<p>rt-used:<sha256>`        | string | family of a rotated refresh token       | its remaining lifetime        |
//! | `<p>code:<sha256>`           | hash   | `rec` (JSON), `fam`, `life` (ms)        | the code's expiry             |
//! | `<p>code-used:<sha256>`      | string | family of a redeemed code               | the code's original lifetime  |
//! | `<p>fam:<family>`            | set    | live members `a:<sha256>`, `r:<sha256>` | longest member                |
//! | `<p>fam-revoked:<family>`    | string | marker: refuse new tokens in the family | 10 minutes                    |
//! | `<p>login:<kind>:<sha256>`   | string | session / pending sign-in / consent     | the record's expiry           |
//! | `<p>rl:<budget>`             | string | rate-limit TAT (ms, Redis clock)        | when the budget is full again |
//! | `<p>config`                  | hash   | `snapshot`, `sha256`, `version`         | none                          |
//!
//! Channels: `<p>invalidate` (space-separated access-token digests that died) and
//! `<p>config:changed` (the new config version). The snapshot's key and channel, and
//! the cluster hash-tag rule, belong to [`gatehouse_config::redis::prefix`].

use gatehouse_config::redis::prefix;

use crate::store::Digest;

/// Key and channel names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`. With `cluster`, a prefix without a `{hash tag}` gets one
    /// (`gatehouse:` → `{gatehouse}:`) so all keys land in one slot.
    pub fn new(prefix: &str, cluster: bool) -> Self {
        Keys {
            prefix: prefix::effective_prefix(prefix, cluster),
        }
    }

    /// The effective prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn access(&self, d: &Digest) -> String {
        format!("{}at:{}", self.prefix, d.to_hex())
    }

    pub fn refresh(&self, d: &Digest) -> String {
        format!("{}rt:{}", self.prefix, d.to_hex())
    }

    pub fn rotated(&self, d: &Digest) -> String {
        format!("{}rt-used:{}", self.prefix, d.to_hex())
    }

    /// A rate-limit budget (see [`crate::ratelimit`]).
    pub fn rate(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    pub fn code(&self, d: &Digest) -> String {
        format!("{}code:{}", self.prefix, d.to_hex())
    }

    pub fn code_used(&self, d: &Digest) -> String {
        format!("{}code-used:{}", self.prefix, d.to_hex())
    }

    pub fn family(&self, family: &str) -> String {
        format!("{}fam:{}", self.prefix, family)
    }

    /// A browser sign-in record (see `crate::store::login_records`).
    pub fn login(&self, kind: crate::store::LoginKind, d: &Digest) -> String {
        format!("{}login:{}:{}", self.prefix, kind.as_str(), d.to_hex())
    }

    /// Channel announcing access tokens that died (revoked, rotated, family revoked).
    pub fn invalidate_channel(&self) -> String {
        format!("{}invalidate", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hold_digests_under_the_prefix() {
        let k = Keys::new("gatehouse:", false);
        let d = Digest::of(b"secret-token");
        let key = k.access(&d);
        assert_eq!(key, format!("gatehouse:at:{}", d.to_hex()));
        assert!(!key.contains("secret-token"));
    }
}
