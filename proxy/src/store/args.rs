//! Token store selection flags (`--redis ...`), shared by `proxy` and `standalone`,
//! and the wiring that turns them into an `Arc<dyn TokenStore>`: in-memory by default,
//! Redis (single server, Sentinel or Cluster) behind a local token cache otherwise.
//! The connection flags themselves (credentials, CA, prefix, timeout) are
//! [`RedisArgs`], the set the controller flattens too.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::cache::{CachedStore, TokenCache};
use super::memory::MemoryStore;
use super::metered::{probe, MeteredStore};
use super::redis::{follow_invalidations, RedisStore};
use super::TokenStore;
use gatehouse_config::redis::args::{parse_duration, parse_target, RedisArgs};
use gatehouse_config::redis::conn::Target;

/// Where tokens and codes live.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Redis for the token store: `redis://[user:pass@]host[:port][/db]`,
    /// `rediss://...` (TLS) or `redis+sentinel://[user:pass@]host:port[,host:port]/master[/db]`.
    /// Without it (and without --redis-cluster / --redis-sentinel) tokens live in
    /// process memory.
    #[arg(long, value_name = "URL", env = "GATEHOUSE_REDIS")]
    pub redis: Option<String>,

    /// Redis Cluster seed nodes for the token store, comma-separated
    /// (`host:port` or `redis://` / `rediss://` URLs).
    #[arg(
        long,
        value_name = "NODES",
        env = "GATEHOUSE_REDIS_CLUSTER",
        value_delimiter = ',',
        conflicts_with = "redis"
    )]
    pub redis_cluster: Vec<String>,

    /// Redis Sentinel nodes (`host:port`, comma-separated); use with
    /// --redis-sentinel-master. Equivalent to a redis+sentinel:// URL.
    #[arg(
        long,
        value_name = "NODES",
        value_delimiter = ',',
        conflicts_with_all = ["redis", "redis_cluster"],
        requires = "redis_sentinel_master"
    )]
    pub redis_sentinel: Vec<String>,

    /// Master (service) name the sentinels know the token store by.
    #[arg(long, value_name = "NAME", requires = "redis_sentinel")]
    pub redis_sentinel_master: Option<String>,

    /// Credentials, CA, key prefix and timeout (shared with `--config-redis` and
    /// with `gatehouse controller`).
    #[command(flatten)]
    pub redis_conn: RedisArgs,

    /// How long a validated access token may be answered from the local cache
    /// without asking Redis (the staleness bound if a revocation announcement is
    /// missed). `0` disables the cache.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub token_cache_ttl: Duration,

    /// Maximum number of access tokens in the local cache.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub token_cache_size: u64,

    /// Maximum number of live tokens and codes kept by the in-memory store.
    #[arg(long, default_value_t = 1_000_000)]
    pub memory_capacity: usize,
}

impl Default for StoreArgs {
    fn default() -> Self {
        StoreArgs {
            redis: None,
            redis_cluster: Vec::new(),
            redis_sentinel: Vec::new(),
            redis_sentinel_master: None,
            redis_conn: RedisArgs::default(),
            token_cache_ttl: Duration::from_secs(1),
            token_cache_size: 100_000,
            memory_capacity: 1_000_000,
        }
    }
}

impl StoreArgs {
    /// Build the configured token store. With Redis, this also starts the task that
    /// follows revocation announcements (it stops when the store is dropped); Redis
    /// being down at start is not an error (requests get 503 until it is back).
    pub async fn build(&self) -> anyhow::Result<Arc<dyn TokenStore>> {
        let Some(target) = self.token_target()? else {
            let memory = Arc::new(MemoryStore::new(self.memory_capacity));
            return Ok(Arc::new(MeteredStore::new(memory, false)));
        };
        let redis = RedisStore::new(&target, &self.redis_conn.redis_prefix)?;
        let keys = redis.keys().clone();
        let cache = (!self.token_cache_ttl.is_zero())
            .then(|| Arc::new(TokenCache::new(self.token_cache_size, self.token_cache_ttl)));
        let redis = match &cache {
            Some(cache) => redis.with_local_cache(cache.clone()),
            None => redis,
        };
        // Metered below the cache: the latency histogram shows Redis round trips.
        let metered = Arc::new(MeteredStore::new(Arc::new(redis), true));
        if let Err(error) = metered.ping().await {
            tracing::warn!(%error, target = %target.describe(), "Redis not reachable yet, will keep trying");
        } else {
            tracing::info!(target = %target.describe(), prefix = keys.prefix(), "Token store on Redis");
        }
        // Ends by itself once the store is dropped (it holds a weak reference).
        let prober = tokio::spawn(probe(Arc::downgrade(&metered)));
        let Some(cache) = cache else {
            return Ok(metered);
        };
        let follower = tokio::spawn(follow_invalidations(target, keys, cache.clone()));
        Ok(Arc::new(
            CachedStore::new(metered, cache)
                .with_task(follower)
                .with_task(prober),
        ))
    }

    /// The Redis target for tokens, if one is configured.
    pub fn token_target(&self) -> anyhow::Result<Option<Target>> {
        let opts = self.redis_conn.connect_options()?;
        if let Some(url) = &self.redis {
            return Ok(Some(parse_target(url, opts)?));
        }
        if !self.redis_cluster.is_empty() {
            return Ok(Some(Target::cluster(&self.redis_cluster, opts)?));
        }
        if !self.redis_sentinel.is_empty() {
            let master = self
                .redis_sentinel_master
                .as_deref()
                .context("--redis-sentinel needs --redis-sentinel-master")?;
            return Ok(Some(Target::sentinel(&self.redis_sentinel, master, opts)?));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: StoreArgs,
    }

    fn parse(args: &[&str]) -> StoreArgs {
        let mut argv = vec!["gatehouse"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).expect("valid flags").store
    }

    #[test]
    fn defaults_are_memory_store_with_a_one_second_cache() {
        let a = parse(&[]);
        assert!(a.token_target().unwrap().is_none());
        assert_eq!(a.redis_conn.redis_prefix, "gatehouse:");
        assert_eq!(a.token_cache_ttl, Duration::from_secs(1));
    }

    #[test]
    fn every_url_form_selects_a_target() {
        let single = parse(&["--redis", "redis://:pw@127.0.0.1:6380/2"]);
        let t = single.token_target().unwrap().unwrap();
        assert!(!t.is_cluster());
        assert!(!t.describe().contains("pw"), "password must not be logged");

        let sentinel = parse(&[
            "--redis",
            "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/mymaster/1",
        ]);
        let t = sentinel.token_target().unwrap().unwrap();
        assert!(t.describe().contains("mymaster"));
        assert!(t.describe().contains("10.0.0.2:26379"));
        assert!(!t.describe().contains("pw"));

        let cluster = parse(&["--redis-cluster", "127.0.0.1:7000,127.0.0.1:7001"]);
        assert!(cluster.token_target().unwrap().unwrap().is_cluster());

        let listed = parse(&["--redis", "redis://127.0.0.1:7000,redis://127.0.0.1:7001"]);
        assert!(listed.token_target().unwrap().unwrap().is_cluster());

        let flags = parse(&[
            "--redis-sentinel",
            "127.0.0.1:26379",
            "--redis-sentinel-master",
            "mymaster",
        ]);
        assert!(flags
            .token_target()
            .unwrap()
            .unwrap()
            .describe()
            .contains("mymaster"));
    }

    #[test]
    fn malformed_sentinel_urls_are_refused() {
        let no_master = parse(&["--redis", "redis+sentinel://127.0.0.1:26379"]);
        assert!(no_master.token_target().is_err());
        let bad_port = parse(&["--redis", "redis+sentinel://127.0.0.1:x/m"]);
        assert!(bad_port.token_target().is_err());
    }

    #[test]
    fn sentinel_flags_need_a_master_name() {
        let mut argv = vec!["gatehouse", "--redis-sentinel", "127.0.0.1:26379"];
        assert!(Cli::try_parse_from(argv.clone()).is_err());
        argv.extend(["--redis", "redis://x"]);
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
