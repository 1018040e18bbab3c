//! Publishing the snapshot to Redis for the proxies to follow.
//!
//! The contract (shared with `gatehouse_proxy::source::redis`, see its key layout in
//! `gatehouse_proxy::store::redis::keys`): the hash `<prefix>config` holds `snapshot`
//! (the JSON document), `sha256` (hex digest of it) and `version` (a counter bumped on
//! every change); after a change the new version is published on the channel
//! `<prefix>config:changed`. All of it happens in one Lua script, so a follower never
//! sees a snapshot with another snapshot's digest, and a write of the content that is
//! already there changes nothing and announces nothing.
//!
//! Locally the publisher remembers the digest it last wrote, so an unchanged snapshot
//! costs no Redis round trip at all; [`RedisPublisher::forget`] (resync, new leader)
//! makes the next publish check Redis again, which repairs a flushed or restarted Redis.

use gatehouse_proxy::store::redis::conn::{RedisConn, Target};
use gatehouse_proxy::store::redis::keys::Keys;
use gatehouse_proxy::Snapshot;
use sha2::{Digest as _, Sha256};

use super::{Error, Result};

/// Compare-and-set of the snapshot; returns the new version, or 0 when unchanged.
const PUBLISH_SCRIPT: &str = r#"
local current = redis.call('HGET', KEYS[1], 'sha256')
if current == ARGV[2] then
  return 0
end
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'snapshot', ARGV[1], 'sha256', ARGV[2])
redis.call('PUBLISH', ARGV[3], tostring(version))
return version
"#;

/// What a publish did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Published {
    /// Redis already had this content; nothing was written or announced.
    Unchanged,
    /// Written and announced as `version`.
    Updated { version: i64 },
}

/// Writes snapshots to one Redis deployment (single, Sentinel or Cluster).
pub struct RedisPublisher {
    conn: RedisConn,
    keys: Keys,
    script: redis::Script,
    last_sha256: Option<String>,
}

impl RedisPublisher {
    /// A publisher for `target` under `prefix` (e.g. `gatehouse:`). Connects lazily:
    /// Redis being down now is reported by the first publish, not here.
    pub fn new(target: &Target, prefix: &str) -> Result<Self> {
        Ok(RedisPublisher {
            conn: target.connect().map_err(Error::RedisTarget)?,
            keys: Keys::new(prefix, target.is_cluster()),
            script: redis::Script::new(PUBLISH_SCRIPT),
            last_sha256: None,
        })
    }

    /// The key the snapshot lives under.
    pub fn key(&self) -> String {
        self.keys.config()
    }

    /// Publish `snapshot` if it differs from what was last published.
    pub async fn publish(&mut self, snapshot: &Snapshot) -> Result<Published> {
        let json = snapshot.to_json();
        let sha256 = hex::encode(Sha256::digest(&json));
        if self.last_sha256.as_deref() == Some(sha256.as_str()) {
            return Ok(Published::Unchanged);
        }
        let mut invocation = self.script.key(self.keys.config());
        invocation
            .arg(json)
            .arg(&sha256)
            .arg(self.keys.config_channel());
        let version: i64 = self.conn.invoke(&invocation).await.map_err(Error::Redis)?;
        self.last_sha256 = Some(sha256);
        Ok(if version == 0 {
            Published::Unchanged
        } else {
            Published::Updated { version }
        })
    }

    /// Forget what was last published, so the next publish compares with Redis.
    pub fn forget(&mut self) {
        self.last_sha256 = None;
    }
}
