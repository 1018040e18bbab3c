//! The in-process hand-off of snapshots: one `watch` channel per proxy, written by
//! whichever source feeds it (file, Redis follower, standalone's translate) and read
//! by every worker per request. `None` means "nothing loaded yet" (the proxy answers
//! 503 and `/readyz` says not ready). A source that fails keeps the last good snapshot
//! in the channel.

use std::sync::Arc;

use tokio::sync::watch;

use crate::Snapshot;

/// The receiving end every proxy worker reads per request.
pub type ConfigRx = watch::Receiver<Option<Arc<Snapshot>>>;
/// The publishing end a source writes to (through [`publish`]).
pub type ConfigTx = watch::Sender<Option<Arc<Snapshot>>>;

/// A channel with nothing loaded yet.
pub fn channel() -> (ConfigTx, ConfigRx) {
    watch::channel(None)
}

/// Publish `snapshot` unless it equals what the channel already holds, so an unchanged
/// source wakes no one. Returns whether it was published.
///
/// Equality, not just the revision: a hand-written snapshot file may keep its revision
/// across edits. (The derived comparison looks at `revision` first, so snapshots from
/// the controller, whose revision is a content hash, differ after one string compare.)
pub fn publish(tx: &ConfigTx, snapshot: Arc<Snapshot>) -> bool {
    tx.send_if_modified(|current| {
        if current.as_deref() == Some(&*snapshot) {
            return false;
        }
        *current = Some(snapshot);
        true
    })
}
