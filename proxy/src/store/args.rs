//! Token store selection flags (`--redis ...`), shared by `proxy` and `standalone`,
//! and the wiring that turns them into an `Arc<dyn TokenStore>`: in-memory by default,
//! Redis (single server, Sentinel or Cluster) behind a local token cache otherwise.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use super::cache::{CachedStore, TokenCache};
use super::memory::MemoryStore;
use super::redis::{follow_invalidations, RedisStore};
use super::TokenStore;
use gatehouse_config::redis::conn::{ConnectOptions, Target};

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

    /// Redis ACL user name (overrides the URL's).
    #[arg(long, value_name = "USER", env = "GATEHOUSE_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// Redis password (overrides the URL's; prefer the environment variable so it
    /// does not show in the process list).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "GATEHOUSE_REDIS_PASSWORD",
        hide_env_values = true
    )]
    pub redis_password: Option<String>,

    /// PEM file with the CA certificate(s) to trust for rediss:// instead of the
    /// system trust store.
    #[arg(long, value_name = "PATH")]
    pub redis_ca_file: Option<PathBuf>,

    /// Prefix of every Redis key and channel Gatehouse uses. In cluster mode a prefix
    /// without a {hash tag} is wrapped in one (`{gatehouse}:`).
    #[arg(long, value_name = "PREFIX", default_value = "gatehouse:")]
    pub redis_prefix: String,

    /// Bound on every Redis command; a request that needs Redis answers 503 after it.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

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
            redis_username: None,
            redis_password: None,
            redis_ca_file: None,
            redis_prefix: "gatehouse:".into(),
            redis_timeout: Duration::from_secs(1),
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
            return Ok(Arc::new(MemoryStore::new(self.memory_capacity)));
        };
        let store = RedisStore::new(&target, &self.redis_prefix)?;
        if let Err(error) = store.ping().await {
            tracing::warn!(%error, target = %target.describe(), "Redis not reachable yet, will keep trying");
        } else {
            tracing::info!(target = %target.describe(), prefix = store.keys().prefix(), "Token store on Redis");
        }
        if self.token_cache_ttl.is_zero() {
            return Ok(Arc::new(store));
        }
        let cache = Arc::new(TokenCache::new(self.token_cache_size, self.token_cache_ttl));
        let keys = store.keys().clone();
        let store = store.with_local_cache(cache.clone());
        let follower = tokio::spawn(follow_invalidations(target, keys, cache.clone()));
        Ok(Arc::new(
            CachedStore::new(Arc::new(store), cache).with_task(follower),
        ))
    }

    /// The Redis target for tokens, if one is configured.
    pub fn token_target(&self) -> anyhow::Result<Option<Target>> {
        let opts = self.connect_options()?;
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

    /// A target for another Redis URL (e.g. `--config-redis`) with the same
    /// credentials, CA and timeout as the token store.
    pub fn target_for(&self, url: &str) -> anyhow::Result<Target> {
        parse_target(url, self.connect_options()?)
    }

    fn connect_options(&self) -> anyhow::Result<ConnectOptions> {
        let ca_pem = match &self.redis_ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading --redis-ca-file {}", path.display()))?,
            ),
            None => None,
        };
        Ok(ConnectOptions {
            username: self.redis_username.clone(),
            password: self.redis_password.clone(),
            ca_pem,
            timeout: self.redis_timeout,
        })
    }
}

/// One URL, or a comma-separated list of `redis://` URLs meaning Cluster seed nodes.
fn parse_target(spec: &str, opts: ConnectOptions) -> anyhow::Result<Target> {
    let sentinel = spec.starts_with("redis+sentinel://") || spec.starts_with("rediss+sentinel://");
    if !sentinel && spec.contains(',') {
        let seeds: Vec<String> = spec.split(',').map(str::to_owned).collect();
        return Ok(Target::cluster(&seeds, opts)?);
    }
    Ok(Target::from_url(spec, opts)?)
}

/// `1s`, `500ms`, `2m`, `1h`, or a plain number of seconds (`0.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 1s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("invalid duration {s:?}: {e}"))
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
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn defaults_are_memory_store_with_a_one_second_cache() {
        let a = parse(&[]);
        assert!(a.token_target().unwrap().is_none());
        assert_eq!(a.redis_prefix, "gatehouse:");
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
