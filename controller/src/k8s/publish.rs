//! Publishing the snapshot to Redis for the proxies to follow, with the writer of
//! `gatehouse_proxy::source::redis` ([`ConfigPublisher`]): one Lua script compares the
//! digest, writes `<prefix>config` and announces on `<prefix>config:changed` only when
//! the content changed.
//!
//! On top of that the controller remembers the digest it last published, so an
//! unchanged snapshot (most passes) costs no Redis round trip and does not ship the
//! whole document; [`RedisPublisher::forget`] (resync, new leader) makes the next
//! publish ask Redis again, which repairs a flushed or replaced Redis.

use gatehouse_proxy::source::redis::{ConfigPublisher, Publication};
use gatehouse_proxy::store::redis::conn::Target;
use gatehouse_proxy::store::redis::keys::Keys;
use gatehouse_proxy::Snapshot;
use sha2::{Digest as _, Sha256};

use super::{Error, Result};

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Redis already had this content; nothing was written or announced.
    Unchanged,
    /// Written and announced as `version`.
    Updated { version: u64 },
}

/// Writes snapshots to one Redis deployment (single, Sentinel or Cluster).
pub struct RedisPublisher {
    inner: ConfigPublisher,
    key: String,
    last_sha256: Option<String>,
}

impl RedisPublisher {
    /// A publisher for `target` under `prefix` (e.g. `gatehouse:`). Connects lazily:
    /// Redis being down now is reported by the first publish, not here.
    pub fn new(target: &Target, prefix: &str) -> Result<Self> {
        Ok(RedisPublisher {
            inner: ConfigPublisher::new(target, prefix).map_err(Error::Redis)?,
            key: Keys::new(prefix, target.is_cluster()).config(),
            last_sha256: None,
        })
    }

    /// The key the snapshot lives under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Publish `snapshot` if it differs from what was last published.
    pub async fn publish(&mut self, snapshot: &Snapshot) -> Result<Published> {
        let sha256 = hex::encode(Sha256::digest(snapshot.to_json()));
        if self.last_sha256.as_deref() == Some(sha256.as_str()) {
            return Ok(Published::Unchanged);
        }
        let publication = self.inner.publish(snapshot).await.map_err(Error::Redis)?;
        self.last_sha256 = Some(sha256);
        Ok(match publication {
            Publication::Unchanged { .. } => Published::Unchanged,
            Publication::Published { version } => Published::Updated { version },
        })
    }

    /// Forget what was last published, so the next publish compares with Redis.
    pub fn forget(&mut self) {
        self.last_sha256 = None;
    }
}
