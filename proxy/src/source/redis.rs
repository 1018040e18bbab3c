//! Snapshot distribution through Redis: the writer the controller calls
//! ([`ConfigPublisher::publish`]) and the follower a proxy runs ([`follow`]).
//!
//! The snapshot lives in one hash, `<prefix>config`, with fields `snapshot` (the JSON
//! document), `sha256` (of that JSON) and `version` (incremented on every change).
//! Publishing is one Lua script: it writes and announces on `<prefix>config:changed`
//! only when the digest differs, so an unchanged snapshot wakes no proxy and calling
//! `publish` on every controller resync is cheap.
//!
//! A follower loads the hash at start, re-reads it on every announcement, on every
//! (re)subscription (it may have missed announcements while away) and every
//! [`RESYNC`] as a safety net. While Redis is unreachable it keeps the last good
//! snapshot in the channel; a document it cannot parse is logged and skipped.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::ConfigTx;
use crate::store::redis::backoff::Backoff;
use crate::store::redis::conn::{self, ConnectOptions, RedisConn, SubscriptionEvent, Target};
use crate::store::redis::keys::Keys;
use crate::store::redis::scripts;
use crate::Snapshot;

/// How often a follower re-reads the config even without an announcement.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Failures of the config writer or reader.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Redis unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    #[error(transparent)]
    Target(#[from] conn::TargetError),
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
}

/// Outcome of [`ConfigPublisher::publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publication {
    /// Redis already held this exact snapshot; nothing was written or announced.
    Unchanged { version: u64 },
    /// Written and announced as `version`.
    Published { version: u64 },
}

/// The controller side: writes snapshots to `<prefix>config`.
pub struct ConfigPublisher {
    conn: RedisConn,
    keys: Keys,
    script: redis::Script,
}

impl ConfigPublisher {
    /// A publisher on `target` (does not wait for Redis).
    pub fn new(target: &Target, prefix: &str) -> Result<Self, ConfigError> {
        Ok(ConfigPublisher {
            conn: target.connect()?,
            keys: Keys::new(prefix, target.is_cluster()),
            script: scripts::publish_config(),
        })
    }

    /// A publisher for a `redis://`, `rediss://` or `redis+sentinel://` URL with a
    /// 1 s command timeout.
    pub fn connect(url: &str, prefix: &str) -> Result<Self, ConfigError> {
        let opts = ConnectOptions {
            timeout: Duration::from_secs(1),
            ..Default::default()
        };
        Self::new(&Target::from_url(url, opts)?, prefix)
    }

    /// Publish `snapshot` if it differs from what Redis holds (atomic compare, write
    /// and announce).
    pub async fn publish(&self, snapshot: &Snapshot) -> Result<Publication, ConfigError> {
        let json = snapshot.to_json();
        let sha = hex::encode(Sha256::digest(&json));
        let mut inv = self.script.prepare_invoke();
        inv.key(self.keys.config())
            .arg(self.keys.prefix())
            .arg(json)
            .arg(&sha)
            .arg(self.keys.config_channel());
        let reply: Vec<String> = self
            .conn
            .invoke(&inv)
            .await
            .map_err(ConfigError::Unavailable)?;
        let version = reply
            .get(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ConfigError::Protocol(format!("{reply:?}")))?;
        match reply.first().map(String::as_str) {
            Some("published") => {
                tracing::info!(version, revision = %snapshot.revision, "Config published");
                Ok(Publication::Published { version })
            }
            Some("unchanged") => Ok(Publication::Unchanged { version }),
            _ => Err(ConfigError::Protocol(format!("{reply:?}"))),
        }
    }
}

/// Publish one snapshot through `publisher` (see [`ConfigPublisher::publish`]).
pub async fn publish(
    publisher: &ConfigPublisher,
    snapshot: &Snapshot,
) -> Result<Publication, ConfigError> {
    publisher.publish(snapshot).await
}

/// Follow `<prefix>config` on `target` into `tx` until the task is aborted.
pub async fn follow(target: Target, prefix: String, tx: ConfigTx) {
    let keys = Keys::new(&prefix, target.is_cluster());
    let conn = match target.connect() {
        Ok(c) => c,
        Err(error) => {
            // `Target` construction already validated everything `connect` needs.
            tracing::error!(%error, "Cannot follow config from Redis");
            return;
        }
    };
    // Size 1: a pending reload already covers any further announcement.
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<()>(1);
    let subscription = tokio::spawn(conn::subscribe_forever(
        target.clone(),
        keys.config_channel(),
        move |event| match event {
            SubscriptionEvent::Connected | SubscriptionEvent::Message(_) => {
                let _ = reload_tx.try_send(());
            }
            SubscriptionEvent::Lost => {}
        },
    ));
    let _guard = AbortOnDrop(subscription);

    let mut current_sha: Option<String> = None;
    let mut backoff =
        Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).expect("100 ms ≤ 5 s");
    let mut resync = tokio::time::interval_at(tokio::time::Instant::now() + RESYNC, RESYNC);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        while let Err(error) = load(&conn, &keys, &mut current_sha, &tx).await {
            tracing::warn!(%error, "Config not readable from Redis, keeping the last good snapshot");
            tokio::time::sleep(backoff.next_delay()).await;
        }
        backoff.reset();
        tokio::select! {
            r = reload_rx.recv() => {
                if r.is_none() {
                    return;
                }
            }
            _ = resync.tick() => {}
        }
    }
}

/// `--config-redis URL`: follow the snapshot in Redis into `tx`, with the token
/// store's credentials, CA, timeout and key prefix. The task runs until aborted.
pub fn spawn_from_args(
    url: &str,
    store: &crate::store::args::StoreArgs,
    tx: ConfigTx,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let target = store.target_for(url)?;
    tracing::info!(source = %target.describe(), "Following config from Redis");
    Ok(spawn_follow(target, store.redis_prefix.clone(), tx))
}

/// Start [`follow`] on the current runtime.
pub fn spawn_follow(target: Target, prefix: String, tx: ConfigTx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(follow(target, prefix, tx))
}

/// Read the hash; install the snapshot if its digest changed and it parses.
async fn load(
    conn: &RedisConn,
    keys: &Keys,
    current_sha: &mut Option<String>,
    tx: &ConfigTx,
) -> Result<(), ConfigError> {
    let (snapshot, sha, version): (Option<Vec<u8>>, Option<String>, Option<u64>) = conn
        .query(
            redis::cmd("HMGET")
                .arg(keys.config())
                .arg("snapshot")
                .arg("sha256")
                .arg("version"),
        )
        .await
        .map_err(ConfigError::Unavailable)?;
    let Some(json) = snapshot else {
        tracing::debug!(key = %keys.config(), "No config published yet");
        return Ok(());
    };
    let sha = sha.unwrap_or_else(|| hex::encode(Sha256::digest(&json)));
    if current_sha.as_deref() == Some(sha.as_str()) {
        return Ok(());
    }
    match Snapshot::from_json(&json) {
        Ok(snap) => {
            tracing::info!(version, revision = %snap.revision, "Config loaded from Redis");
            let snap = Arc::new(snap);
            tx.send_if_modified(|cur| {
                if cur.as_deref() == Some(&*snap) {
                    false
                } else {
                    *cur = Some(snap.clone());
                    true
                }
            });
        }
        Err(error) => {
            // Remember the digest so a bad document is reported once, not on every
            // resync; the last good snapshot stays in place.
            tracing::error!(version, %error, "Config in Redis rejected, keeping the last good snapshot");
        }
    }
    *current_sha = Some(sha);
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
