//! The Redis key layout. Every key starts with the configurable prefix (default
//! `gatehouse:`) and names tokens and codes only by their SHA-256 hex digest.
//!
//! | key                          | type   | holds                                   | expiry                        |
//! |------------------------------|--------|-----------------------------------------|-------------------------------|
//! | `<f>at:<sha256>`             | string | access token record (JSON)              | the token's expiry            |
//! | `<f>rt:<sha256>`             | string | refresh token record (JSON)             | the token's expiry            |
//! | `<f>rt-used:<sha256>`        | string | family of a rotated refresh token       | its remaining lifetime        |
//! | `<f>code:<sha256>`           | hash   | `rec` (JSON), `fam`, `life` (ms)        | the code's expiry             |
//! | `<f>code-used:<sha256>`      | string | family of a redeemed code               | the code's original lifetime  |
//! | `<f>fam:<family>`            | set    | live members `a:<sha256>`, `r:<sha256>` | longest member                |
//! | `<f>fam-revoked:<family>`    | string | marker: refuse new tokens in the family | 10 minutes                    |
//! | `<p>login:<kind>:<sha256>`   | string | session / pending sign-in / consent     | the record's expiry           |
//! | `<p>rl:<budget>`             | string | rate-limit TAT (ms, Redis clock)        | when the budget is full again |
//! | `<p>config`                  | hash   | `snapshot`, `sha256`, `version`         | none                          |
//!
//! `<f>` is the *family prefix*: `<p>` itself on a single server or Sentinel; on Redis
//! Cluster `<p>{<tag>}`, the family's slot tag (see [`crate::store::slot`]) as hash
//! tag, so one family's keys share a slot (its scripts stay atomic) and families
//! spread over the shards. A prefix that already carries a hash tag (`{gh}:`) keeps
//! everything in that one slot, as the operator asked.
//!
//! Channels: `<p>invalidate` (space-separated access-token digests that died) and
//! `<p>config:changed` (the new config version). The snapshot's key and channel, and
//! its own hash-tag rule, belong to [`gatehouse_config::redis::prefix`].

use gatehouse_config::redis::prefix;

use crate::store::{Digest, Slot};

/// Key and channel names under one prefix.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    /// Redis Cluster with a prefix without hash tag: family keys carry their slot tag.
    sharded: bool,
    /// `<prefix>invalidate`, named in every family script.
    invalidate: String,
}

impl Keys {
    /// Keys under `prefix`; `cluster`: the server is a Redis Cluster.
    pub fn new(prefix: &str, cluster: bool) -> Self {
        Keys {
            prefix: prefix.to_owned(),
            sharded: cluster && !prefix::has_hash_tag(prefix),
            invalidate: format!("{prefix}invalidate"),
        }
    }

    /// The configured prefix (login, rate-limit keys and the invalidation channel).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix of every key of the family with `slot` (`<f>` above).
    pub fn family_prefix(&self, slot: Slot) -> String {
        format!("{}{}", self.prefix, self.hash_tag(slot))
    }

    /// `{tag}` where family keys carry one, else nothing: formatted straight into a
    /// key, so a key (built once per token check on Redis) needs no prefix string of
    /// its own first.
    fn hash_tag(&self, slot: Slot) -> HashTag {
        HashTag(if self.sharded { slot } else { Slot::NONE })
    }

    /// Family keys carry their slot tag (Redis Cluster, prefix without hash tag).
    pub fn is_sharded(&self) -> bool {
        self.sharded
    }

    /// On a sharded store a value without slot tag was never issued here, and its
    /// keys would not share a slot: the caller answers "unknown" without asking.
    pub fn unroutable(&self, slot: Slot) -> bool {
        self.is_sharded() && slot == Slot::NONE
    }

    /// A family key: `<f><kind>:<id>`.
    fn family_key(&self, slot: Slot, kind: &str, id: impl std::fmt::Display) -> String {
        format!("{}{}{kind}:{id}", self.prefix, self.hash_tag(slot))
    }

    pub fn access(&self, d: &Digest) -> String {
        self.family_key(d.slot(), "at", d.to_hex())
    }

    pub fn refresh(&self, d: &Digest) -> String {
        self.family_key(d.slot(), "rt", d.to_hex())
    }

    pub fn rotated(&self, d: &Digest) -> String {
        self.family_key(d.slot(), "rt-used", d.to_hex())
    }

    pub fn code(&self, d: &Digest) -> String {
        self.family_key(d.slot(), "code", d.to_hex())
    }

    pub fn code_used(&self, d: &Digest) -> String {
        self.family_key(d.slot(), "code-used", d.to_hex())
    }

    pub fn family(&self, family: &str) -> String {
        self.family_key(Slot::of(family.as_bytes()), "fam", family)
    }

    /// A rate-limit budget (see [`crate::ratelimit`]).
    pub fn rate(&self, key: &str) -> String {
        format!("{}rl:{key}", self.prefix)
    }

    /// A browser sign-in record (see `crate::store::login_records`).
    pub fn login(&self, kind: crate::store::LoginKind, d: &Digest) -> String {
        format!("{}login:{}:{}", self.prefix, kind.as_str(), d.to_hex())
    }

    /// Channel announcing access tokens that died (revoked, rotated, family revoked).
    pub fn invalidate_channel(&self) -> &str {
        &self.invalidate
    }
}

/// A slot tag as a Redis hash tag (`{AbC}`), or nothing for [`Slot::NONE`].
struct HashTag(Slot);

impl std::fmt::Display for HashTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_str() {
            Some(tag) => write!(f, "{{{tag}}}"),
            None => Ok(()),
        }
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

    #[test]
    fn on_a_cluster_a_family_shares_one_hash_tag_and_families_spread() {
        let k = Keys::new("gatehouse:", true);
        let family = "AbCfamily";
        let code = Digest::of(b"AbC-code");
        let access = Digest::of(b"AbC-access");
        for key in [
            k.code(&code),
            k.code_used(&code),
            k.access(&access),
            k.refresh(&access),
            k.rotated(&access),
            k.family(family),
        ] {
            assert!(key.starts_with("gatehouse:{AbC}"), "{key}");
        }
        assert!(k
            .access(&Digest::of(b"xyz-other"))
            .starts_with("gatehouse:{xyz}at:"));
        assert!(k.unroutable(Digest::of(b"}}}").slot()));
        // Shared records are not tied to a family.
        assert_eq!(k.rate("b"), "gatehouse:rl:b");
        assert_eq!(k.invalidate_channel(), "gatehouse:invalidate");
        // A single server keeps the layout it always had.
        let single = Keys::new("gatehouse:", false);
        assert_eq!(single.family_prefix(access.slot()), "gatehouse:");
        assert!(!single.unroutable(Slot::NONE));
        // The operator's own hash tag pins every key to one slot.
        let pinned = Keys::new("{gh}:", true);
        assert_eq!(pinned.family_prefix(access.slot()), "{gh}:");
        assert!(!pinned.unroutable(Slot::NONE));
    }
}
