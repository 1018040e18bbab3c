//! Latency and failures of the token store as seen from the proxy, by operation, and
//! whether Redis is reachable (`gatehouse_proxy_redis_up`).
//!
//! [`MeteredStore`] wraps the backend itself (in-memory or Redis), *below* the local
//! token cache, so the histogram shows what a store round trip costs and cache hits
//! (counted by the cache) do not dilute it. Labels are the operation (a trait method
//! name) and the error kind: a fixed set, never a key or a token.
//!
//! Redis reachability is learnt from every command's outcome and, so that an idle
//! proxy (or one answering from its cache) still notices, from a `PING` every
//! [`PROBE_INTERVAL`].

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::*;

/// How often a Redis-backed store is pinged to keep `gatehouse_proxy_redis_up` true
/// while no request reaches Redis.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// Store round trips in seconds: 100 µs to 5 s (the Redis timeout is 1 s by default).
const STORE_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

fn store_histogram() -> Histogram {
    Histogram::new(STORE_BUCKETS)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    operation: &'static str,
    error: &'static str,
}

/// The store's metric handles (shared: clones count into the same series).
#[derive(Clone, Debug)]
pub struct StoreMetrics {
    duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    /// `operation="access_token"` (every proxied request with a token), resolved once.
    access_token_duration: OnceLock<Histogram>,
    errors: Family<ErrorLabels, Counter>,
    /// `Some` for a Redis-backed store: 1 while Redis answers, 0 after a failure.
    up: Option<Gauge>,
}

impl StoreMetrics {
    fn new(redis: bool) -> Self {
        StoreMetrics {
            duration: Family::new_with_constructor(store_histogram),
            access_token_duration: OnceLock::new(),
            errors: Family::default(),
            up: redis.then(Gauge::default),
        }
    }

    /// Register these handles in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "gatehouse_proxy_store_operation_duration",
            "Token store round trips (below the local token cache), by operation",
            Unit::Seconds,
            self.duration.clone(),
        );
        registry.register(
            "gatehouse_proxy_store_errors",
            "Token store operations that failed, by operation and error (unavailable: not reachable, timed out or refused; corrupt: an unreadable record or reply)",
            self.errors.clone(),
        );
        if let Some(up) = &self.up {
            registry.register(
                "gatehouse_proxy_redis_up",
                "Whether the token store's Redis answered its last command or probe (1) or failed (0)",
                up.clone(),
            );
        }
    }

    fn record<T>(&self, operation: &'static str, started: Instant, result: &Result<T>) {
        let seconds = started.elapsed().as_secs_f64();
        if operation == "access_token" {
            self.access_token_duration
                .get_or_init(|| {
                    self.duration
                        .get_or_create_owned(&OperationLabels { operation })
                })
                .observe(seconds);
        } else {
            self.duration
                .get_or_create(&OperationLabels { operation })
                .observe(seconds);
        }
        let error = match result {
            Ok(_) => None,
            Err(StoreError::Unavailable(_)) => Some("unavailable"),
            Err(StoreError::Corrupt(_)) => Some("corrupt"),
        };
        if let Some(error) = error {
            self.errors
                .get_or_create(&ErrorLabels { operation, error })
                .inc();
        }
        if let Some(up) = &self.up {
            // A corrupt reply is still an answer: Redis is reachable.
            up.set(i64::from(error != Some("unavailable")));
        }
    }
}

/// A [`TokenStore`] that times every operation of `inner` and counts its failures.
pub struct MeteredStore {
    inner: Arc<dyn TokenStore>,
    metrics: StoreMetrics,
}

impl MeteredStore {
    /// Meter `inner`; `redis` adds the reachability gauge.
    pub fn new(inner: Arc<dyn TokenStore>, redis: bool) -> Self {
        MeteredStore {
            inner,
            metrics: StoreMetrics::new(redis),
        }
    }

    /// The metric handles.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.record(operation, started, &result);
        result
    }
}

/// Ping `store` every [`PROBE_INTERVAL`] until it is dropped (the probe holds only a
/// weak reference, so it never keeps a store alive).
pub async fn probe(store: Weak<MeteredStore>) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        // The outcome is recorded by the metering itself; readiness reports errors.
        let _ = store.ping().await;
    }
}

#[async_trait]
impl TokenStore for MeteredStore {
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()> {
        self.timed("put_code", self.inner.put_code(code, record))
            .await
    }

    async fn take_code(&self, code: Digest) -> Result<CodeRedemption> {
        self.timed("take_code", self.inner.take_code(code)).await
    }

    async fn issue(&self, pair: IssuedPair) -> Result<()> {
        self.timed("issue", self.inner.issue(pair)).await
    }

    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>> {
        self.timed("access_token", self.inner.access_token(token))
            .await
    }

    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>> {
        self.timed("refresh_token", self.inner.refresh_token(token))
            .await
    }

    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation> {
        self.timed("rotate", self.inner.rotate(old, new)).await
    }

    async fn revoke(&self, token: Digest) -> Result<bool> {
        self.timed("revoke", self.inner.revoke(token)).await
    }

    async fn revoke_family(&self, family: &str) -> Result<()> {
        self.timed("revoke_family", self.inner.revoke_family(family))
            .await
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn rate_hit(&self, key: &str, quota: &Quota) -> Result<Decision> {
        self.timed("rate_hit", self.inner.rate_hit(key, quota))
            .await
    }

    async fn put_login(
        &self,
        kind: LoginKind,
        key: Digest,
        value: String,
        expires_at: UnixTime,
    ) -> Result<()> {
        self.timed(
            "put_login",
            self.inner.put_login(kind, key, value, expires_at),
        )
        .await
    }

    async fn get_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        self.timed("get_login", self.inner.get_login(kind, key))
            .await
    }

    async fn take_login(&self, kind: LoginKind, key: Digest) -> Result<Option<String>> {
        self.timed("take_login", self.inner.take_login(kind, key))
            .await
    }

    async fn delete_login(&self, kind: LoginKind, key: Digest) -> Result<bool> {
        self.timed("delete_login", self.inner.delete_login(kind, key))
            .await
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.metrics.register(registry);
        self.inner.register_metrics(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use prometheus_client::encoding::text::encode;

    /// A pair that never expires: a one-entry memory store refuses the second one
    /// (`unavailable`, "store is full"), a real failure without a broken backend.
    fn mk_pair(name: &str) -> IssuedPair {
        IssuedPair {
            access_digest: Digest::of(name.as_bytes()),
            access: AccessToken {
                grant: Grant {
                    route_id: "default/r".into(),
                    global: false,
                    client_id: "c".into(),
                    consumer_id: "default/u".into(),
                    authenticated_userid: None,
                    scopes: vec![],
                    issued_at: 1,
                    expires_at: None,
                    family: name.into(),
                    audience: vec![],
                },
                refresh: None,
            },
            refresh: None,
        }
    }

    fn scrape(store: &dyn TokenStore) -> String {
        let mut registry = Registry::default();
        store.register_metrics(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    #[tokio::test]
    async fn every_operation_is_timed_and_failures_are_counted_by_kind() {
        let store = MeteredStore::new(Arc::new(MemoryStore::new(1)), false);
        assert_eq!(store.access_token(Digest::of(b"t")).await.unwrap(), None);
        store.issue(mk_pair("a")).await.unwrap();
        assert!(store.issue(mk_pair("b")).await.is_err());
        let text = scrape(&store);
        assert!(
            text.contains(
                "gatehouse_proxy_store_operation_duration_seconds_count{operation=\"access_token\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "gatehouse_proxy_store_errors_total{operation=\"issue\",error=\"unavailable\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("operation=\"access_token\",error"), "{text}");
        // No Redis behind it: no reachability gauge.
        assert!(!text.contains("gatehouse_proxy_redis_up"), "{text}");
    }

    #[tokio::test]
    async fn the_redis_gauge_follows_the_last_outcome() {
        let store = MeteredStore::new(Arc::new(MemoryStore::new(1)), true);
        store.ping().await.unwrap();
        assert!(scrape(&store).contains("gatehouse_proxy_redis_up 1"));
        store.issue(mk_pair("a")).await.unwrap();
        assert!(store.issue(mk_pair("b")).await.is_err());
        assert!(scrape(&store).contains("gatehouse_proxy_redis_up 0"));
        store.ping().await.unwrap();
        assert!(scrape(&store).contains("gatehouse_proxy_redis_up 1"));
    }
}
