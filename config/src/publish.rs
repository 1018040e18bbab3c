//! Publishing the snapshot to Redis for the proxies to follow ([`Publisher`]).
//!
//! The snapshot lives in one hash, `<prefix>config`, with fields `snapshot` (the JSON
//! document), `sha256` (of that JSON) and `version` (incremented on every change).
//! Publishing is one Lua script: it writes and announces on `<prefix>config:changed`
//! only when the digest differs, so an unchanged snapshot wakes no proxy.
//!
//! On top of that the publisher remembers the revision it last published (the
//! controller's revision is a content hash), so an unchanged snapshot (most passes)
//! costs no serialisation, no hashing and no Redis round trip; [`Publisher::forget`]
//! (resync, new leader) makes the next publish ask Redis again, which repairs a
//! flushed or replaced Redis.

use sha2::{Digest as _, Sha256};

use crate::redis::conn::{RedisConn, Target, TargetError};
use crate::redis::prefix;
use crate::Snapshot;

/// Failures of the config writer or reader.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Redis unavailable: {0}")]
    Unavailable(#[source] redis::RedisError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("unexpected reply from Redis: {0}")]
    Protocol(String),
}

/// Outcome of [`Publisher::publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publication {
    /// Redis already held this exact snapshot; nothing was written or announced.
    Unchanged { version: u64 },
    /// Written and announced as `version`.
    Published { version: u64 },
}

/// Publish a snapshot only when its digest changed. KEYS: config hash. ARGV: prefix,
/// snapshot JSON, its sha256 hex, announce channel. Returns {'unchanged', version} or
/// {'published', version}.
const PUBLISH_CONFIG: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'sha256')
if cur == ARGV[3] then
  return {'unchanged', redis.call('HGET', KEYS[1], 'version') or '0'}
end
redis.call('HSET', KEYS[1], 'snapshot', ARGV[2], 'sha256', ARGV[3])
local v = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('PUBLISH', ARGV[4], tostring(v))
return {'published', tostring(v)}
"#;

/// Writes snapshots to `<prefix>config` of one Redis deployment (single, Sentinel or
/// Cluster).
pub struct Publisher {
    conn: RedisConn,
    prefix: String,
    script: redis::Script,
    /// Revision and version last published or found in Redis.
    last: Option<(String, u64)>,
}

impl Publisher {
    /// A publisher for `target` under `prefix` (e.g. `gatehouse:`). Connects lazily:
    /// Redis being down now is reported by the first publish, not here.
    pub fn new(target: &Target, prefix: &str) -> Result<Self, ConfigError> {
        Ok(Publisher {
            conn: target.connect()?,
            prefix: prefix::effective_prefix(prefix, target.is_cluster()),
            script: redis::Script::new(PUBLISH_CONFIG),
            last: None,
        })
    }

    /// The key the snapshot lives under.
    pub fn key(&self) -> String {
        prefix::config_key(&self.prefix)
    }

    /// Publish `snapshot` if it differs from what was last published, and otherwise
    /// if it differs from what Redis holds (atomic compare, write and announce). An
    /// empty revision says nothing about the content, so it always asks Redis.
    pub async fn publish(&mut self, snapshot: &Snapshot) -> Result<Publication, ConfigError> {
        if let Some((revision, version)) = &self.last {
            if !revision.is_empty() && *revision == snapshot.revision {
                return Ok(Publication::Unchanged { version: *version });
            }
        }
        let json = snapshot.to_json();
        let sha = hex::encode(Sha256::digest(&json));
        let mut inv = self.script.prepare_invoke();
        inv.key(prefix::config_key(&self.prefix))
            .arg(&self.prefix)
            .arg(json)
            .arg(&sha)
            .arg(prefix::config_channel(&self.prefix));
        let reply: Vec<String> = self
            .conn
            .invoke(&inv)
            .await
            .map_err(ConfigError::Unavailable)?;
        let version = reply
            .get(1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ConfigError::Protocol(format!("{reply:?}")))?;
        let publication = match reply.first().map(String::as_str) {
            Some("published") => {
                tracing::info!(version, revision = %snapshot.revision, "Config published");
                Publication::Published { version }
            }
            Some("unchanged") => Publication::Unchanged { version },
            _ => return Err(ConfigError::Protocol(format!("{reply:?}"))),
        };
        self.last = Some((snapshot.revision.clone(), version));
        Ok(publication)
    }

    /// Forget what was last published, so the next publish compares with Redis.
    pub fn forget(&mut self) {
        self.last = None;
    }
}
