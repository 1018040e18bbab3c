//! Following the snapshot in Redis: the proxy's side of [`crate::publish`].
//!
//! A follower loads the hash at start, re-reads it on every announcement, on every
//! (re)subscription (it may have missed announcements while away) and every
//! [`RESYNC`] as a safety net. While Redis is unreachable it keeps the last good
//! snapshot in the channel; a document it cannot parse is logged and skipped.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::channel::{self, ConfigTx};
use crate::publish::ConfigError;
use crate::redis::backoff::Backoff;
use crate::redis::conn::{self, RedisConn, SubscriptionEvent, Target};
use crate::redis::prefix::{config_channel, config_key, effective_prefix};
use crate::Snapshot;

/// How often a follower re-reads the config even without an announcement.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Follow `<prefix>config` on `target` into `tx` until the task is aborted.
pub async fn follow(target: Target, prefix: String, tx: ConfigTx) {
    let prefix = effective_prefix(&prefix, target.is_cluster());
    let key = config_key(&prefix);
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
        config_channel(&prefix),
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
        while let Err(error) = load(&conn, &key, &mut current_sha, &tx).await {
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

/// Start [`follow`] on the current runtime.
pub fn spawn_follow(target: Target, prefix: String, tx: ConfigTx) -> tokio::task::JoinHandle<()> {
    tokio::spawn(follow(target, prefix, tx))
}

/// Read the hash; install the snapshot if its digest changed and it parses.
async fn load(
    conn: &RedisConn,
    key: &str,
    current_sha: &mut Option<String>,
    tx: &ConfigTx,
) -> Result<(), ConfigError> {
    let (snapshot, sha, version): (Option<Vec<u8>>, Option<String>, Option<u64>) = conn
        .query(
            redis::cmd("HMGET")
                .arg(key)
                .arg("snapshot")
                .arg("sha256")
                .arg("version"),
        )
        .await
        .map_err(ConfigError::Unavailable)?;
    let Some(json) = snapshot else {
        tracing::debug!(key, "No config published yet");
        return Ok(());
    };
    let sha = sha.unwrap_or_else(|| hex::encode(Sha256::digest(&json)));
    if current_sha.as_deref() == Some(sha.as_str()) {
        return Ok(());
    }
    match Snapshot::from_json(&json) {
        Ok(snap) => {
            tracing::info!(version, revision = %snap.revision, "Config loaded from Redis");
            channel::publish(tx, Arc::new(snap));
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
