//! A bounded local cache of validated access tokens in front of any [`TokenStore`],
//! so the common request does no Redis round trip.
//!
//! Staleness is bounded two ways:
//! - **Invalidation.** Revocation, rotation and family revocation announce the access
//!   tokens that died; every replica drops them at once ([`TokenCache::invalidate`]).
//!   When the announcement channel is (re)subscribed the whole cache is cleared, since
//!   messages may have been missed while it was down.
//! - **Time.** An entry is trusted for at most `ttl` after it was read from the store
//!   (default 1 s, `--token-cache-ttl`), whatever happened to the subscription, and
//!   never past the token's own expiry.
//!
//! The trade-off: with a live subscription a revocation takes effect everywhere within
//! a pub/sub hop; if an announcement is lost, a revoked token can pass on another
//! replica for at most `ttl`. A larger `ttl` saves Redis reads for hot tokens and
//! widens that window. Only positive answers are cached: unknown tokens always ask the
//! store, so guessing cannot fill the cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::*;

/// One cached lookup.
#[derive(Debug)]
struct Entry {
    token: AccessToken,
    cached_at: Instant,
    /// How long moka keeps it (≤ ttl and ≤ the token's remaining life).
    keep: Duration,
}

struct EntryExpiry;

impl moka::Expiry<Digest, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.keep)
    }

    fn expire_after_update(
        &self,
        _key: &Digest,
        value: &Arc<Entry>,
        _updated_at: std::time::Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LookupLabels {
    result: &'static str,
}

/// Counters of the cache (Prometheus handles; see [`CacheStats::register`]).
#[derive(Debug)]
pub struct CacheStats {
    lookups: Family<LookupLabels, Counter>,
    /// Lookups answered from the cache.
    pub hits: Counter,
    /// Lookups that went to the store (absent, stale or expired here).
    pub misses: Counter,
    /// Tokens dropped because they were revoked or rotated away.
    pub invalidations: Counter,
}

impl Default for CacheStats {
    fn default() -> Self {
        let lookups = Family::<LookupLabels, Counter>::default();
        // Resolved once: a lookup costs one atomic add, no map access.
        let hits = lookups
            .get_or_create(&LookupLabels { result: "hit" })
            .clone();
        let misses = lookups
            .get_or_create(&LookupLabels { result: "miss" })
            .clone();
        CacheStats {
            lookups,
            hits,
            misses,
            invalidations: Counter::default(),
        }
    }
}

impl CacheStats {
    /// Register the counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gatehouse_proxy_token_cache_lookups",
            "Access-token lookups of the local token cache, by result (hit: answered locally; miss: asked the store)",
            self.lookups.clone(),
        );
        registry.register(
            "gatehouse_proxy_token_cache_invalidations",
            "Access tokens dropped from the local cache because they were revoked or rotated away",
            self.invalidations.clone(),
        );
    }
}

/// The local cache proper: access-token digest → record, with an invalidation
/// generation that keeps a lookup racing a revocation from re-inserting what the
/// revocation just dropped.
pub struct TokenCache {
    entries: moka::sync::Cache<Digest, Arc<Entry>>,
    ttl: Duration,
    generation: AtomicU64,
    stats: CacheStats,
}

impl TokenCache {
    /// A cache of at most `capacity` tokens, each trusted for at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        TokenCache {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(EntryExpiry)
                .build(),
            ttl,
            generation: AtomicU64::new(0),
            stats: CacheStats::default(),
        }
    }

    /// The staleness bound.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Hit/miss/invalidation counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// A cached record still within `ttl` of its read and before its own expiry.
    pub fn get(&self, token: &Digest, now: Instant, now_unix: UnixTime) -> Option<AccessToken> {
        let entry = self.entries.get(token)?;
        let fresh = now.saturating_duration_since(entry.cached_at) < self.ttl
            && entry.token.expires_at.is_none_or(|e| e > now_unix);
        if fresh {
            Some(entry.token.clone())
        } else {
            self.entries.invalidate(token);
            None
        }
    }

    /// The current invalidation generation; pass it back to [`insert`](Self::insert).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Cache a record read from the store when the read started at `generation`.
    /// If any invalidation happened since, the entry is dropped again (the record may
    /// be one that was just revoked).
    pub fn insert(
        &self,
        token: Digest,
        record: AccessToken,
        generation: u64,
        now: Instant,
        now_unix: UnixTime,
    ) {
        let remaining = match record.expires_at {
            Some(e) if e <= now_unix => return,
            Some(e) => Duration::from_secs(e - now_unix),
            None => Duration::MAX,
        };
        let keep = self.ttl.min(remaining);
        if keep.is_zero() {
            return;
        }
        self.entries.insert(
            token,
            Arc::new(Entry {
                token: record,
                cached_at: now,
                keep,
            }),
        );
        // Insert first, check after: an invalidation either bumped the generation
        // before this check (we undo the insert) or removes the entry after it.
        if self.generation() != generation {
            self.entries.invalidate(&token);
        }
    }

    /// Drop these tokens (they were revoked or rotated away).
    pub fn invalidate(&self, tokens: impl IntoIterator<Item = Digest>) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for t in tokens {
            self.stats.invalidations.inc();
            self.entries.invalidate(&t);
        }
    }

    /// Drop the tokens named in an announcement: space-separated hex digests.
    /// Anything unparsable is ignored (it cannot name a cached token).
    pub fn invalidate_announced(&self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        self.invalidate(text.split_ascii_whitespace().filter_map(Digest::from_hex));
    }

    /// Drop everything (the announcement channel was down: messages may be lost).
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate_all();
    }
}

/// Aborts a background task when the owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A [`TokenStore`] that answers access-token lookups from a [`TokenCache`] and
/// delegates everything else to the wrapped store.
pub struct CachedStore {
    inner: Arc<dyn TokenStore>,
    cache: Arc<TokenCache>,
    _tasks: Vec<AbortOnDrop>,
}

impl CachedStore {
    /// Wrap `inner`. The caller arranges for `cache` to hear about revocations made
    /// elsewhere (e.g. [`crate::store::redis::follow_invalidations`]).
    pub fn new(inner: Arc<dyn TokenStore>, cache: Arc<TokenCache>) -> Self {
        CachedStore {
            inner,
            cache,
            _tasks: Vec::new(),
        }
    }

    /// Tie a background task (the invalidation follower) to this store's lifetime.
    pub fn with_task(mut self, task: tokio::task::JoinHandle<()>) -> Self {
        self._tasks.push(AbortOnDrop(task));
        self
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<TokenCache> {
        &self.cache
    }
}

fn unix_now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[async_trait]
impl TokenStore for CachedStore {
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()> {
        self.inner.put_code(code, record).await
    }

    async fn take_code(&self, code: Digest) -> Result<CodeRedemption> {
        self.inner.take_code(code).await
    }

    async fn issue(&self, pair: IssuedPair) -> Result<()> {
        self.inner.issue(pair).await
    }

    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>> {
        if let Some(hit) = self.cache.get(&token, Instant::now(), unix_now()) {
            self.cache.stats.hits.inc();
            return Ok(Some(hit));
        }
        self.cache.stats.misses.inc();
        let generation = self.cache.generation();
        let found = self.inner.access_token(token).await?;
        if let Some(record) = &found {
            self.cache.insert(
                token,
                record.clone(),
                generation,
                Instant::now(),
                unix_now(),
            );
        }
        Ok(found)
    }

    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>> {
        self.inner.refresh_token(token).await
    }

    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation> {
        self.inner.rotate(old, new).await
    }

    async fn revoke(&self, token: Digest) -> Result<bool> {
        // Covers an access token revoked through any store; partners and families
        // are announced by the store itself.
        self.cache.invalidate([token]);
        self.inner.revoke(token).await
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        self.inner.revoke_family(family).await
    }

    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn put_login(
        &self,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
    ) -> Result<()> {
        self.inner.put_login(kind, key, value, expires_at).await
    }

    async fn get_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        self.inner.get_login(kind, key).await
    }

    async fn take_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        self.inner.take_login(kind, key).await
    }

    async fn delete_login(&self, kind: LoginKind, key: Digest) -> Result<bool> {
        self.inner.delete_login(kind, key).await
    }

    async fn rate_hit(&self, key: &str, quota: &Quota) -> Result<Decision> {
        self.inner.rate_hit(key, quota).await
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.cache.stats.register(registry);
        self.inner.register_metrics(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Grant;

    fn mk_token(expires_at: Option<UnixTime>) -> AccessToken {
        AccessToken {
            grant: Grant {
                route_id: "default/stepon".into(),
                global: false,
                client_id: "client".into(),
                consumer_id: "consumer".into(),
                authenticated_userid: Some("clark".into()),
                scopes: vec!["read".into()],
                issued_at: 1_000,
                expires_at,
                family: "fam".into(),
                audience: Vec::new(),
            },
            refresh: None,
        }
    }

    const NOW: UnixTime = 1_000_000;

    #[test]
    fn entries_are_trusted_for_at_most_the_ttl() {
        let cache = TokenCache::new(100, Duration::from_secs(1));
        let d = Digest::of(b"t");
        let t0 = Instant::now();
        cache.insert(d, mk_token(None), cache.generation(), t0, NOW);
        assert!(cache
            .get(&d, t0 + Duration::from_millis(999), NOW)
            .is_some());
        assert!(cache.get(&d, t0 + Duration::from_secs(1), NOW).is_none());
    }

    #[test]
    fn entries_never_outlive_the_token_expiry() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let d = Digest::of(b"t");
        let t0 = Instant::now();
        cache.insert(d, mk_token(Some(NOW + 5)), cache.generation(), t0, NOW);
        assert!(cache.get(&d, t0, NOW + 4).is_some());
        assert!(cache.get(&d, t0, NOW + 5).is_none());
    }

    #[test]
    fn expired_tokens_are_not_cached() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let d = Digest::of(b"t");
        let t0 = Instant::now();
        cache.insert(d, mk_token(Some(NOW)), cache.generation(), t0, NOW);
        assert!(cache.get(&d, t0, NOW - 1).is_none());
    }

    #[test]
    fn announced_tokens_are_dropped() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let t0 = Instant::now();
        cache.insert(a, mk_token(None), cache.generation(), t0, NOW);
        cache.insert(b, mk_token(None), cache.generation(), t0, NOW);
        cache.invalidate_announced(format!("{} not-hex", a.to_hex()).as_bytes());
        assert!(cache.get(&a, t0, NOW).is_none());
        assert!(cache.get(&b, t0, NOW).is_some());
        cache.invalidate_all();
        assert!(cache.get(&b, t0, NOW).is_none());
    }

    #[tokio::test]
    async fn hits_and_misses_are_counted_and_exposed() {
        let memory = Arc::new(crate::store::memory::MemoryStore::new(10));
        let token = Digest::of(b"t");
        memory
            .issue(IssuedPair {
                access_digest: token,
                access: mk_token(None),
                refresh: None,
            })
            .await
            .unwrap();
        let cache = Arc::new(TokenCache::new(10, Duration::from_secs(60)));
        let store = CachedStore::new(memory, cache.clone());
        for _ in 0..3 {
            assert!(store.access_token(token).await.unwrap().is_some());
        }
        assert!(store
            .access_token(Digest::of(b"unknown"))
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            (cache.stats().hits.get(), cache.stats().misses.get()),
            (2, 2)
        );
        let mut registry = Registry::default();
        store.register_metrics(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("gatehouse_proxy_token_cache_lookups_total{result=\"hit\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_proxy_token_cache_lookups_total{result=\"miss\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn a_lookup_that_raced_an_invalidation_is_not_cached() {
        let cache = TokenCache::new(100, Duration::from_secs(60));
        let d = Digest::of(b"t");
        let t0 = Instant::now();
        let generation = cache.generation();
        // The store answered "valid", then the revocation arrived before the insert.
        cache.invalidate([d]);
        cache.insert(d, mk_token(None), generation, t0, NOW);
        assert!(cache.get(&d, t0, NOW).is_none());
    }
}
