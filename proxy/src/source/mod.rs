//! Config sources: where the proxy gets its [`Snapshot`](crate::Snapshot) from.
//! Every source publishes into one `watch` channel; `None` means "nothing loaded yet"
//! (the proxy answers 503 and `/readyz` says not ready). A source that fails keeps
//! the last good snapshot in the channel.

pub mod file;
pub mod redis;

use std::sync::Arc;

use tokio::sync::watch;

use crate::Snapshot;

/// The receiving end every proxy worker reads per request.
pub type ConfigRx = watch::Receiver<Option<Arc<Snapshot>>>;
/// The publishing end a source writes to (use `send_if_modified`).
pub type ConfigTx = watch::Sender<Option<Arc<Snapshot>>>;

/// A channel with nothing loaded yet.
pub fn channel() -> (ConfigTx, ConfigRx) {
    watch::channel(None)
}
