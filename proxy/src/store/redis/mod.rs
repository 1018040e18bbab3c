//! Redis token store: the production store, shared by every proxy replica.
//!
//! Records are JSON under SHA-256-digest keys (see [`keys`] for the layout); expiry is
//! Redis TTL, so no sweeper runs. Every change that touches more than one key is one
//! Lua script ([`scripts`]), which Redis runs atomically: a code is taken exactly once
//! across replicas, a refresh rotation retires the old pair in the same step the new
//! one is born, and reuse of a rotated refresh token or replay of a redeemed code
//! revokes the whole family.
//!
//! Failures (Redis down, timeout, script error) surface as
//! [`StoreError::Unavailable`]; the server turns that into 503 and `/readyz` not ready.

pub mod keys;
pub mod scripts;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ::redis::RedisError;
use async_trait::async_trait;

use gatehouse_config::redis::conn;

use super::cache::TokenCache;
use super::*;
use conn::{RedisConn, SubscriptionEvent, Target, TargetError};
use keys::Keys;
use scripts::Scripts;

/// How long the "rotated" tombstone of a refresh token that never expires is kept:
/// reuse after that is reported as unknown (rejected) instead of revoking the family.
const NEVER_EXPIRING_TOMBSTONE_MS: u64 = 30 * 24 * 3600 * 1000;

/// Token store backed by Redis (single server, Sentinel or Cluster).
pub struct RedisStore {
    conn: RedisConn,
    keys: Keys,
    scripts: Scripts,
    /// Local cache to drop revoked access tokens from at once (other replicas learn
    /// through the `<prefix>invalidate` channel).
    local: Option<Arc<TokenCache>>,
}

impl RedisStore {
    /// A store on `target` with keys under `prefix`. Does not wait for Redis.
    pub fn new(target: &Target, prefix: &str) -> Result<Self, TargetError> {
        Ok(RedisStore {
            conn: target.connect()?,
            keys: Keys::new(prefix, target.is_cluster()),
            scripts: Scripts::new(),
            local: None,
        })
    }

    /// Also drop revoked access tokens from this local cache synchronously.
    pub fn with_local_cache(mut self, cache: Arc<TokenCache>) -> Self {
        self.local = Some(cache);
        self
    }

    /// The key layout in use.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A family script's invocation: the family prefix and the channel come first.
    fn family_script<'a>(
        &self,
        script: &'a ::redis::Script,
        slot: Slot,
    ) -> ::redis::ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.arg(self.keys.family_prefix(slot))
            .arg(self.keys.invalidate_channel());
        inv
    }

    /// On a sharded store a new record must be written in its family's slot: where
    /// it will be looked up by the tag its raw value starts with.
    fn check_slot(&self, what: &str, digest: &Digest, family: &str) -> Result<Slot> {
        let slot = Slot::of(family.as_bytes());
        if self.keys.is_sharded() && (slot == Slot::NONE || digest.slot() != slot) {
            return Err(StoreError::Corrupt(format!(
                "{what} does not carry its family's slot tag"
            )));
        }
        Ok(slot)
    }

    async fn run(&self, inv: ::redis::ScriptInvocation<'_>) -> Result<Vec<String>> {
        self.conn
            .invoke::<Vec<String>>(&inv)
            .await
            .map_err(unavailable)
    }

    /// Drop the access-token digests a script reported (from `skip` on) locally.
    fn forget(&self, reply: &[String], skip: usize) {
        if let Some(cache) = &self.local {
            cache.invalidate(reply.iter().skip(skip).filter_map(|h| Digest::from_hex(h)));
        }
    }

    fn pair_args(inv: &mut ::redis::ScriptInvocation<'_>, pair: &IssuedPair) -> Result<()> {
        let access_json = serde_json::to_string(&pair.access).map_err(corrupt)?;
        inv.arg(&pair.access.family)
            .arg(pair.access_digest.to_hex())
            .arg(access_json)
            .arg(ttl_ms(pair.access.expires_at));
        match &pair.refresh {
            Some((digest, record)) => {
                let json = serde_json::to_string(record).map_err(corrupt)?;
                inv.arg(digest.to_hex())
                    .arg(json)
                    .arg(ttl_ms(record.expires_at));
            }
            None => {
                inv.arg("").arg("").arg(0);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()> {
        let json = serde_json::to_string(&record).map_err(corrupt)?;
        let life = ttl_ms(Some(record.expires_at)).max(1);
        let slot = self.check_slot("code", &code, &record.family)?;
        let mut inv = self.family_script(&self.scripts.put_code, slot);
        inv.key(self.keys.code(&code))
            .arg(json)
            .arg(&record.family)
            .arg(life);
        self.run(inv).await.map(|_| ())
    }

    async fn take_code(&self, code: Digest) -> Result<CodeRedemption> {
        if self.keys.unroutable(code.slot()) {
            return Ok(CodeRedemption::Unknown);
        }
        let mut inv = self.family_script(&self.scripts.take_code, code.slot());
        inv.key(self.keys.code(&code))
            .key(self.keys.code_used(&code));
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            Some("redeemed") => {
                let json = reply.get(1).ok_or_else(|| short_reply("take_code"))?;
                let record: AuthorizationCode = serde_json::from_str(json).map_err(corrupt)?;
                if record.expires_at <= now_secs() {
                    // Redis TTL and our clock disagree by a fraction of a second.
                    return Ok(CodeRedemption::Unknown);
                }
                Ok(CodeRedemption::Redeemed(Box::new(record)))
            }
            Some("replayed") => {
                self.forget(&reply, 2);
                let family = reply.get(1).ok_or_else(|| short_reply("take_code"))?;
                Ok(CodeRedemption::Replayed {
                    family: family.clone(),
                })
            }
            Some("unknown") => Ok(CodeRedemption::Unknown),
            _ => Err(unexpected("take_code", &reply)),
        }
    }

    async fn issue(&self, pair: IssuedPair) -> Result<()> {
        let family = &pair.access.family;
        let slot = self.check_slot("access token", &pair.access_digest, family)?;
        if let Some((refresh, _)) = &pair.refresh {
            self.check_slot("refresh token", refresh, family)?;
        }
        let mut inv = self.family_script(&self.scripts.issue, slot);
        inv.key(self.keys.family(family));
        Self::pair_args(&mut inv, &pair)?;
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            // A refused pair belongs to a family revoked a moment ago (its code was
            // replayed): it is dead on arrival, as if issued and then revoked.
            Some("issued") | Some("refused") => Ok(()),
            _ => Err(unexpected("issue", &reply)),
        }
    }

    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>> {
        if self.keys.unroutable(token.slot()) {
            return Ok(None);
        }
        let raw: Option<String> = self
            .conn
            .query(::redis::cmd("GET").arg(self.keys.access(&token)))
            .await
            .map_err(unavailable)?;
        let Some(raw) = raw else { return Ok(None) };
        let record: AccessToken = serde_json::from_str(&raw).map_err(corrupt)?;
        Ok(live(record.expires_at).then_some(record))
    }

    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>> {
        if self.keys.unroutable(token.slot()) {
            return Ok(None);
        }
        let raw: Option<String> = self
            .conn
            .query(::redis::cmd("GET").arg(self.keys.refresh(&token)))
            .await
            .map_err(unavailable)?;
        let Some(raw) = raw else { return Ok(None) };
        let record: RefreshToken = serde_json::from_str(&raw).map_err(corrupt)?;
        Ok(live(record.expires_at).then_some(record))
    }

    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation> {
        if self.keys.unroutable(old.slot()) {
            return Ok(Rotation::Unknown);
        }
        // Only a live `old` lets the script write `new`, in `old`'s family: the
        // family prefix is `old`'s, and a real rotation's pair carries the same tag.
        let mut inv = self.family_script(&self.scripts.rotate, old.slot());
        inv.key(self.keys.refresh(&old))
            .key(self.keys.rotated(&old))
            .arg(old.to_hex())
            .arg(NEVER_EXPIRING_TOMBSTONE_MS);
        Self::pair_args(&mut inv, &new)?;
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            Some("rotated") => {
                self.forget(&reply, 2);
                Ok(Rotation::Rotated)
            }
            Some("reused") => {
                self.forget(&reply, 2);
                let family = reply.get(1).ok_or_else(|| short_reply("rotate"))?;
                Ok(Rotation::Reused {
                    family: family.clone(),
                })
            }
            Some("unknown") => Ok(Rotation::Unknown),
            _ => Err(unexpected("rotate", &reply)),
        }
    }

    async fn revoke(&self, token: Digest) -> Result<bool> {
        if self.keys.unroutable(token.slot()) {
            return Ok(false);
        }
        let mut inv = self.family_script(&self.scripts.revoke, token.slot());
        inv.key(self.keys.access(&token))
            .key(self.keys.refresh(&token))
            .arg(token.to_hex());
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            Some("revoked") => {
                self.forget(&reply, 2);
                Ok(true)
            }
            Some("unknown") => Ok(false),
            _ => Err(unexpected("revoke", &reply)),
        }
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        let slot = Slot::of(family.as_bytes());
        if self.keys.unroutable(slot) {
            return Ok(());
        }
        let mut inv = self.family_script(&self.scripts.revoke_family, slot);
        inv.key(self.keys.family(family)).arg(family);
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            Some("revoked") => {
                self.forget(&reply, 2);
                Ok(())
            }
            _ => Err(unexpected("revoke_family", &reply)),
        }
    }

    async fn ping(&self) -> Result<()> {
        let _: String = self
            .conn
            .query(&::redis::cmd("PING"))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn put_login(
        &self,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
    ) -> Result<()> {
        let ttl = ttl_ms(Some(expires_at)).max(1);
        let _: () = self
            .conn
            .query(
                ::redis::cmd("SET")
                    .arg(self.keys.login(kind, &key))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        self.conn
            .query(::redis::cmd("GET").arg(self.keys.login(kind, &key)))
            .await
            .map_err(unavailable)
    }

    async fn take_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        // GETDEL (Redis 6.2+) is atomic: one replica wins a pending sign-in.
        self.conn
            .query(::redis::cmd("GETDEL").arg(self.keys.login(kind, &key)))
            .await
            .map_err(unavailable)
    }

    async fn delete_login(&self, kind: LoginKind, key: Digest) -> Result<bool> {
        let n: u64 = self
            .conn
            .query(::redis::cmd("DEL").arg(self.keys.login(kind, &key)))
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn rate_hit(&self, key: &str, quota: &Quota) -> Result<Decision> {
        let mut inv = self.scripts.rate_hit.prepare_invoke();
        inv.key(self.keys.rate(key))
            .arg(quota.interval_ms())
            .arg(quota.tolerance_ms());
        let reply = self.run(inv).await?;
        match reply.first().map(String::as_str) {
            Some("allowed") => Ok(Decision::Allowed),
            Some("limited") => {
                let ms: u64 = reply.get(1).and_then(|v| v.parse().ok()).ok_or_else(|| {
                    StoreError::Corrupt("rate limit reply without a delay".into())
                })?;
                Ok(Decision::Limited {
                    retry_after: std::time::Duration::from_millis(ms),
                })
            }
            other => Err(StoreError::Corrupt(format!("rate limit reply {other:?}"))),
        }
    }
}

/// Follow `<prefix>invalidate` and drop the announced access tokens from `cache`.
/// Every (re)subscription clears the whole cache: messages may have been missed
/// while the subscription was down. Runs until aborted.
pub async fn follow_invalidations(target: Target, keys: Keys, cache: Arc<TokenCache>) {
    let channel = keys.invalidate_channel().to_owned();
    conn::subscribe_forever(target, channel, move |event| match event {
        SubscriptionEvent::Connected => cache.invalidate_all(),
        SubscriptionEvent::Message(payload) => cache.invalidate_announced(payload),
        SubscriptionEvent::Lost => {}
    })
    .await
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_secs() -> UnixTime {
    now_ms() / 1000
}

fn live(expires_at: Option<UnixTime>) -> bool {
    expires_at.is_none_or(|e| e > now_secs())
}

/// Milliseconds until `expires_at` for `SET ... PX`; 0 means "never expires". A
/// record already past its expiry gets 1 ms so it vanishes at once.
fn ttl_ms(expires_at: Option<UnixTime>) -> u64 {
    match expires_at {
        None => 0,
        Some(t) => t.saturating_mul(1000).saturating_sub(now_ms()).max(1),
    }
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn short_reply(script: &str) -> StoreError {
    StoreError::Corrupt(format!("{script}: reply too short"))
}

fn unexpected(script: &str, reply: &[String]) -> StoreError {
    StoreError::Corrupt(format!(
        "{script}: unexpected reply {:?}",
        reply.first().map(String::as_str).unwrap_or("<empty>")
    ))
}
