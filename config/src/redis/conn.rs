//! Reaching Redis in its three deployment shapes — one server (`redis://`,
//! `rediss://`), Sentinel (`redis+sentinel://`) and Cluster — behind one cloneable
//! command connection that reconnects by itself, plus pub/sub subscriptions that are
//! re-established with backoff.
//!
//! Every command is bounded by a timeout so a hung Redis cannot hang a request: the
//! caller gets an error and answers 503 instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

/// Why a Redis target could not be set up (bad URL, unreadable CA file...).
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
    #[error("Redis client setup failed: {0}")]
    Client(#[source] RedisError),
}

/// Credentials and TLS settings that apply to every node of a target, on top of what
/// the URL says (so that passwords can come from the environment, not the URL).
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// ACL user name for Redis nodes.
    pub username: Option<String>,
    /// Password for Redis nodes.
    pub password: Option<String>,
    /// PEM root certificate(s) to trust for `rediss://` instead of the system store.
    pub ca_pem: Option<Vec<u8>>,
    /// Bound on every command and every connection attempt.
    pub timeout: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Where Redis is: parsed from `--redis URL` / `--redis-cluster NODES`.
#[derive(Clone)]
pub struct Target {
    kind: TargetKind,
    opts: ConnectOptions,
}

#[derive(Clone)]
enum TargetKind {
    Single(Client),
    Sentinel(SentinelSpec),
    Cluster {
        // Boxed: a cluster client is much larger than the other variants.
        client: Box<ClusterClient>,
        /// One plain client per seed node for pub/sub (a PUBLISH anywhere in a
        /// cluster reaches subscribers on every node).
        nodes: Vec<Client>,
    },
}

#[derive(Clone)]
struct SentinelSpec {
    sentinels: Vec<ConnectionAddr>,
    master: String,
    tls: bool,
    db: i64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Target {
    /// Parse a `redis://`, `rediss://`, `redis+sentinel://` or `rediss+sentinel://` URL.
    ///
    /// Sentinel form: `redis+sentinel://[user:pass@]host[:port][,host[:port]...]/master[/db]`
    /// (port defaults to 26379; credentials apply to the Redis nodes).
    pub fn from_url(url: &str, opts: ConnectOptions) -> Result<Self, TargetError> {
        if let Some(rest) = url
            .strip_prefix("redis+sentinel://")
            .map(|r| (r, false))
            .or_else(|| url.strip_prefix("rediss+sentinel://").map(|r| (r, true)))
        {
            let (rest, tls) = rest;
            return Self::sentinel_from_url_parts(rest, tls, opts);
        }
        let info = url
            .into_connection_info()
            .map_err(|e| TargetError::Url(e.to_string()))?;
        let info = apply_credentials(info, &opts);
        let client = build_client(info, &opts)?;
        Ok(Target {
            kind: TargetKind::Single(client),
            opts,
        })
    }

    /// Sentinel from explicit parts: `host:port` sentinels and the master name.
    pub fn sentinel(
        sentinels: &[String],
        master: &str,
        opts: ConnectOptions,
    ) -> Result<Self, TargetError> {
        let addrs = sentinels
            .iter()
            .map(|s| parse_host_port(s, 26379, false))
            .collect::<Result<Vec<_>, _>>()?;
        Self::sentinel_target(addrs, master.to_owned(), false, 0, opts)
    }

    /// Redis Cluster from seed nodes (`redis://h:p`, `rediss://h:p` or `h:p`).
    pub fn cluster(seeds: &[String], opts: ConnectOptions) -> Result<Self, TargetError> {
        if seeds.is_empty() {
            return Err(TargetError::Url(
                "--redis-cluster needs at least one node".into(),
            ));
        }
        let infos = seeds
            .iter()
            .map(|s| {
                let url = if s.contains("://") {
                    s.clone()
                } else {
                    format!("redis://{s}")
                };
                url.as_str()
                    .into_connection_info()
                    .map(|i| apply_credentials(i, &opts))
                    .map_err(|e| TargetError::Url(format!("{s}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = infos
            .iter()
            .any(|i| matches!(i.addr(), ConnectionAddr::TcpTls { .. }));
        let mut builder = ClusterClient::builder(infos.clone())
            .connection_timeout(opts.timeout)
            .response_timeout(opts.timeout)
            .retries(2);
        if tls {
            builder = builder.tls(TlsMode::Secure);
            if let Some(ca) = &opts.ca_pem {
                builder = builder.certs(certs(ca));
            }
        }
        let client = builder.build().map_err(TargetError::Client)?;
        let nodes = infos
            .into_iter()
            .map(|i| build_client(i, &opts))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target {
            kind: TargetKind::Cluster {
                client: Box::new(client),
                nodes,
            },
            opts,
        })
    }

    /// Whether this is a Redis Cluster (keys must then share one hash slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, TargetKind::Cluster { .. })
    }

    /// Human-readable description without credentials, for logs.
    pub fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Single(c) => format!("redis {}", c.get_connection_info().addr()),
            TargetKind::Sentinel(s) => format!(
                "redis sentinel master {:?} via {}",
                s.master,
                s.sentinels
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            TargetKind::Cluster { nodes, .. } => format!(
                "redis cluster seeds {}",
                nodes
                    .iter()
                    .map(|c| c.get_connection_info().addr().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }

    /// The per-command bound.
    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    /// A command connection. It does not wait for Redis: if Redis is down now, the
    /// first commands fail (and trigger reconnection) instead of start-up failing.
    pub fn connect(&self) -> Result<RedisConn, TargetError> {
        let inner = match &self.kind {
            TargetKind::Single(client) => Inner::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config(&self.opts))
                    .map_err(TargetError::Client)?,
            ),
            TargetKind::Sentinel(spec) => Inner::Sentinel(Arc::new(SentinelConn {
                client: tokio::sync::Mutex::new(self.sentinel_client(spec)?),
                current: Mutex::new(None),
                epoch: AtomicU64::new(0),
                config: manager_config(&self.opts),
            })),
            TargetKind::Cluster { client, .. } => {
                let config = redis::cluster::ClusterConfig::new()
                    .set_connection_timeout(self.opts.timeout)
                    .set_response_timeout(self.opts.timeout);
                Inner::Cluster(client.get_pending_async_connection_with_config(config))
            }
        };
        Ok(RedisConn {
            inner,
            timeout: self.opts.timeout,
        })
    }

    /// Open a fresh pub/sub connection to a node that sees every `PUBLISH` of the
    /// deployment (the master for Sentinel, any reachable seed for Cluster).
    pub async fn pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        let t = self.opts.timeout;
        match &self.kind {
            TargetKind::Single(client) => bounded(t, client.get_async_pubsub()).await,
            TargetKind::Sentinel(spec) => {
                let mut sentinel = self.sentinel_client(spec).map_err(|e| {
                    RedisError::from((redis::ErrorKind::Client, "sentinel", e.to_string()))
                })?;
                let client = bounded(t, sentinel.async_get_client()).await?;
                bounded(t, client.get_async_pubsub()).await
            }
            TargetKind::Cluster { nodes, .. } => {
                let mut last = None;
                for node in nodes {
                    match bounded(t, node.get_async_pubsub()).await {
                        Ok(p) => return Ok(p),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| {
                    RedisError::from((redis::ErrorKind::Client, "no cluster seed node"))
                }))
            }
        }
    }

    fn sentinel_from_url_parts(
        rest: &str,
        tls: bool,
        mut opts: ConnectOptions,
    ) -> Result<Self, TargetError> {
        let (userinfo, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        if let Some(userinfo) = userinfo {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if !user.is_empty() && opts.username.is_none() {
                opts.username = Some(decode(user));
            }
            if let Some(p) = pass.filter(|p| !p.is_empty()) {
                if opts.password.is_none() {
                    opts.password = Some(decode(p));
                }
            }
        }
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let master = segments
            .next()
            .ok_or_else(|| TargetError::Url("redis+sentinel:// URL needs /<master-name>".into()))?;
        let db = match segments.next() {
            Some(db) => db
                .parse()
                .map_err(|_| TargetError::Url(format!("invalid database number {db:?}")))?,
            None => 0,
        };
        let sentinels = hosts
            .split(',')
            .filter(|h| !h.is_empty())
            .map(|h| parse_host_port(h, 26379, tls))
            .collect::<Result<Vec<_>, _>>()?;
        if sentinels.is_empty() {
            return Err(TargetError::Url(
                "redis+sentinel:// URL names no sentinel".into(),
            ));
        }
        Self::sentinel_target(sentinels, master.to_owned(), tls, db, opts)
    }

    fn sentinel_target(
        sentinels: Vec<ConnectionAddr>,
        master: String,
        tls: bool,
        db: i64,
        opts: ConnectOptions,
    ) -> Result<Self, TargetError> {
        let target = Target {
            kind: TargetKind::Sentinel(SentinelSpec {
                sentinels,
                master,
                tls,
                db,
            }),
            opts,
        };
        // Validate the builder parameters once, now, so a bad flag fails at start-up.
        if let TargetKind::Sentinel(spec) = &target.kind {
            target.sentinel_client(spec)?;
        }
        Ok(target)
    }

    fn sentinel_client(&self, spec: &SentinelSpec) -> Result<SentinelClient, TargetError> {
        let mut b = SentinelClientBuilder::new(
            spec.sentinels.clone(),
            &spec.master,
            SentinelServerType::Master,
        )
        .map_err(TargetError::Client)?
        .set_client_to_redis_db(spec.db);
        if let Some(u) = &self.opts.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.opts.password {
            b = b.set_client_to_redis_password(p);
        }
        if spec.tls {
            b = b
                .set_client_to_redis_tls_mode(TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(ca) = &self.opts.ca_pem {
                b = b
                    .set_client_to_redis_certificates(certs(ca))
                    .set_client_to_sentinel_certificates(certs(ca));
            }
        }
        b.build().map_err(TargetError::Client)
    }
}

fn parse_host_port(s: &str, default_port: u16, tls: bool) -> Result<ConnectionAddr, TargetError> {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse()
                .map_err(|_| TargetError::Url(format!("invalid port in {s:?}")))?,
        ),
        _ => (s, default_port),
    };
    if host.is_empty() {
        return Err(TargetError::Url(format!("missing host in {s:?}")));
    }
    Ok(if tls {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    })
}

fn apply_credentials(mut info: ConnectionInfo, opts: &ConnectOptions) -> ConnectionInfo {
    let mut redis = info.redis_settings().clone();
    if let Some(u) = &opts.username {
        redis = redis.set_username(u);
    }
    if let Some(p) = &opts.password {
        redis = redis.set_password(p);
    }
    info = info.set_redis_settings(redis);
    info
}

fn certs(ca: &[u8]) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

fn build_client(info: ConnectionInfo, opts: &ConnectOptions) -> Result<Client, TargetError> {
    match (&opts.ca_pem, info.addr()) {
        (Some(ca), ConnectionAddr::TcpTls { .. }) => {
            Client::build_with_tls(info, certs(ca)).map_err(TargetError::Client)
        }
        _ => Client::open(info).map_err(TargetError::Client),
    }
}

fn manager_config(opts: &ConnectOptions) -> ConnectionManagerConfig {
    // Few, quick retries: a request waiting on a reconnect is bounded by our own
    // timeout anyway, and every later command re-triggers a reconnect attempt, so the
    // manager keeps trying for as long as there is traffic (and /readyz pings).
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(opts.timeout))
        .set_response_timeout(Some(opts.timeout))
        .set_number_of_retries(2)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
}

/// Bound a Redis future by `t`; a timeout becomes an I/O-kind error so that callers
/// treat it like a dropped connection.
pub(crate) async fn bounded<T>(
    t: Duration,
    fut: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(t, fut).await {
        Ok(r) => r,
        Err(_) => Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "Redis did not answer in time",
        ))),
    }
}

/// A cloneable connection for commands and scripts; cheap to clone (shares one
/// multiplexed connection per node).
#[derive(Clone)]
pub struct RedisConn {
    inner: Inner,
    timeout: Duration,
}

#[derive(Clone)]
enum Inner {
    Single(ConnectionManager),
    Sentinel(Arc<SentinelConn>),
    Cluster(ClusterConnection),
}

impl RedisConn {
    /// Run one command, bounded by the timeout.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        let mut conn = self.clone();
        bounded(self.timeout, cmd.query_async(&mut conn)).await
    }

    /// Run a Lua script invocation (EVALSHA, falling back to EVAL after a Redis
    /// restart flushed the script cache), bounded by the timeout.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        let mut conn = self.clone();
        bounded(self.timeout, script.invoke_async(&mut conn)).await
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.inner {
            Inner::Single(m) => m.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
            Inner::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let (epoch, mut m) = s.manager().await?;
                    let r = m.req_packed_command(cmd).await;
                    s.check(epoch, &r);
                    r
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.inner {
            Inner::Single(m) => m.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Sentinel(s) => {
                let s = s.clone();
                Box::pin(async move {
                    let (epoch, mut m) = s.manager().await?;
                    let r = m.req_packed_commands(pipeline, offset, count).await;
                    s.check(epoch, &r);
                    r
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(m) => m.get_db(),
            Inner::Cluster(c) => c.get_db(),
            Inner::Sentinel(_) => 0,
        }
    }
}

/// A connection to whatever node the sentinels currently call master. When that node
/// stops answering or turns read-only (it was demoted by a failover), the next command
/// asks the sentinels again.
struct SentinelConn {
    client: tokio::sync::Mutex<SentinelClient>,
    /// The current master connection and the epoch it was created in.
    current: Mutex<Option<(u64, ConnectionManager)>>,
    epoch: AtomicU64,
    config: ConnectionManagerConfig,
}

impl SentinelConn {
    async fn manager(&self) -> RedisResult<(u64, ConnectionManager)> {
        if let Some(c) = self.current.lock().expect("lock is never poisoned").clone() {
            return Ok(c);
        }
        // One resolution at a time; late arrivals reuse the winner's result.
        let mut client = self.client.lock().await;
        if let Some(c) = self.current.lock().expect("lock is never poisoned").clone() {
            return Ok(c);
        }
        let master = client.async_get_client().await?;
        let manager = ConnectionManager::new_lazy_with_config(master, self.config.clone())?;
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        *self.current.lock().expect("lock is never poisoned") = Some((epoch, manager.clone()));
        Ok((epoch, manager))
    }

    fn check<T>(&self, epoch: u64, r: &RedisResult<T>) {
        let Err(e) = r else { return };
        let stale = e.is_io_error()
            || e.is_unrecoverable_error()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if stale {
            let mut cur = self.current.lock().expect("lock is never poisoned");
            if matches!(&*cur, Some((e, _)) if *e == epoch) {
                *cur = None;
            }
        }
    }
}

/// What a subscription loop reports to its handler.
pub enum SubscriptionEvent<'a> {
    /// Subscribed (first time or again after a loss); messages may have been missed
    /// while it was down.
    Connected,
    /// A message on the channel.
    Message(&'a [u8]),
    /// The subscription was lost; it is being re-established.
    Lost,
}

/// How often an idle subscription is pinged to notice a silently dead connection.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Keep a subscription to `channel` alive forever, reporting events to `handler`.
/// Reconnects with exponential backoff (50 ms … 5 s, jittered). Returns only when the
/// task is aborted.
pub async fn subscribe_forever(
    target: Target,
    channel: String,
    mut handler: impl FnMut(SubscriptionEvent<'_>) + Send,
) {
    let mut backoff =
        super::backoff::Backoff::new(Duration::from_millis(50), Duration::from_secs(5))
            .expect("50 ms ≤ 5 s");
    loop {
        let attempt = async {
            let pubsub = target.pubsub().await?;
            let (mut sink, stream) = pubsub.split();
            bounded(target.timeout(), sink.subscribe(&channel)).await?;
            RedisResult::Ok((sink, stream))
        };
        match attempt.await {
            Ok((mut sink, mut stream)) => {
                backoff.reset();
                tracing::debug!(channel = %channel, "Subscribed");
                handler(SubscriptionEvent::Connected);
                let mut heartbeat = tokio::time::interval(HEARTBEAT);
                heartbeat.tick().await;
                loop {
                    tokio::select! {
                        msg = stream.next() => match msg {
                            Some(msg) => handler(SubscriptionEvent::Message(msg.get_payload_bytes())),
                            None => break,
                        },
                        _ = heartbeat.tick() => {
                            if bounded(target.timeout(), sink.ping::<Value>()).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!(channel = %channel, "Redis subscription lost, reconnecting");
                handler(SubscriptionEvent::Lost);
            }
            Err(error) => {
                tracing::debug!(channel = %channel, %error, "Redis subscription failed");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
