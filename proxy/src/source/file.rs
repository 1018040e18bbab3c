//! Snapshot from a JSON file (`gatehouse proxy --config-file`), re-read when it
//! changes. The file is polled (modification time and size) rather than watched with
//! inotify, which misses the symlink swaps Kubernetes uses to update mounted
//! ConfigMaps. A file that fails to parse leaves the last good snapshot in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{publish, ConfigTx};
use crate::config::SnapshotError;
use crate::Snapshot;

/// Why a snapshot file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Invalid {
        path: String,
        #[source]
        source: SnapshotError,
    },
}

/// Read and validate a snapshot file.
pub fn load(path: &Path) -> Result<Snapshot, FileSourceError> {
    let bytes = std::fs::read(path).map_err(|source| FileSourceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Snapshot::from_json(&bytes).map_err(|source| FileSourceError::Invalid {
        path: path.display().to_string(),
        source,
    })
}

/// A polling file source.
#[derive(Debug)]
pub struct FileSource {
    poller: Poller,
    /// How often the file's metadata is checked.
    interval: Duration,
}

impl FileSource {
    /// Poll once a second.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self::with_interval(path, Duration::from_secs(1))
    }

    /// Poll every `interval`.
    pub fn with_interval(path: impl Into<PathBuf>, interval: Duration) -> Self {
        FileSource {
            poller: Poller {
                path: path.into(),
                seen: None,
            },
            interval,
        }
    }

    /// Load the file now and publish it; fails if it cannot be loaded (so a proxy
    /// refuses to start on a broken file instead of serving nothing). Later changes
    /// are measured against the version read here.
    pub fn load_initial(&mut self, tx: &ConfigTx) -> Result<(), FileSourceError> {
        // Stamp before reading: a change racing with the read is seen on the next poll.
        self.poller.seen = stamp(&self.poller.path);
        let snapshot = load(&self.poller.path)?;
        tracing::info!(path = %self.poller.path.display(), revision = %snapshot.revision, "Snapshot file loaded");
        publish(tx, Arc::new(snapshot));
        Ok(())
    }

    /// Re-load the file whenever its modification time or size changes, until every
    /// receiver of `tx` is gone.
    pub async fn follow(self, tx: ConfigTx) {
        let FileSource {
            mut poller,
            interval,
        } = self;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tx.closed() => return,
            }
            let started = std::time::Instant::now();
            match poller.poll(&tx) {
                Poll::Unchanged | Poll::Same => {}
                Poll::Published(revision) => {
                    // Read, parse, validate and compare; compiling follows on a worker.
                    let read_ms = started.elapsed().as_secs_f64() * 1e3;
                    tracing::info!(path = %poller.path.display(), %revision, read_ms, "Snapshot file reloaded");
                }
                Poll::Rejected(error) => {
                    tracing::error!(%error, "Snapshot file rejected; keeping the last good snapshot");
                }
            }
        }
    }
}

/// Result of one look at the file.
#[derive(Debug)]
pub enum Poll {
    /// Same modification time and size as last time: not read.
    Unchanged,
    /// Read, but the content equals the published snapshot.
    Same,
    /// A new snapshot (its revision) was published.
    Published(String),
    /// Read and refused; the channel still holds the last good snapshot.
    Rejected(FileSourceError),
}

/// Remembers which version of the file was last looked at.
#[derive(Debug)]
pub struct Poller {
    path: PathBuf,
    seen: Option<Stamp>,
}

impl Poller {
    /// Start from the file as it is now.
    pub fn new(path: &Path) -> Self {
        Poller {
            path: path.to_owned(),
            seen: stamp(path),
        }
    }

    /// Look at the file once and publish it if it changed and is valid.
    pub fn poll(&mut self, tx: &ConfigTx) -> Poll {
        let now = stamp(&self.path);
        if now == self.seen {
            return Poll::Unchanged;
        }
        self.seen = now;
        match load(&self.path) {
            Ok(snapshot) => {
                let revision = snapshot.revision.clone();
                if publish(tx, Arc::new(snapshot)) {
                    Poll::Published(revision)
                } else {
                    Poll::Same
                }
            }
            Err(error) => Poll::Rejected(error),
        }
    }
}

/// What identifies a version of the file (following symlinks).
/// The inode is part of it because timestamps are only as fine as the kernel's clock
/// tick: a write-and-rename within one tick still changes the inode.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

type Stamp = (SystemTime, u64, u64);

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, revision: &str) {
        let snap = Snapshot {
            format: crate::config::FORMAT_VERSION,
            revision: revision.into(),
            ..Default::default()
        };
        // Write-then-rename, as any careful producer does: readers never see half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, snap.to_json()).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn changes_are_published_and_bad_files_keep_the_last_good_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.json");
        write(&path, "one");
        let (tx, rx) = crate::source::channel();
        FileSource::new(&path).load_initial(&tx).unwrap();
        let mut poller = Poller::new(&path);
        assert!(matches!(poller.poll(&tx), Poll::Unchanged));

        write(&path, "two");
        assert!(matches!(poller.poll(&tx), Poll::Published(r) if r == "two"));
        assert_eq!(rx.borrow().as_ref().unwrap().revision, "two");

        std::fs::write(&path, b"{ not json").unwrap();
        assert!(matches!(
            poller.poll(&tx),
            Poll::Rejected(FileSourceError::Invalid { .. })
        ));
        assert_eq!(rx.borrow().as_ref().unwrap().revision, "two");

        write(&path, "three");
        assert!(matches!(poller.poll(&tx), Poll::Published(r) if r == "three"));
    }

    #[tokio::test]
    async fn the_follower_reloads_in_the_background_and_stops_with_its_receivers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.json");
        write(&path, "one");
        let (tx, mut rx) = crate::source::channel();
        let mut source = FileSource::with_interval(&path, Duration::from_millis(10));
        source.load_initial(&tx).unwrap();
        rx.borrow_and_update();
        let task = tokio::spawn(source.follow(tx));
        write(&path, "two-longer");
        rx.changed().await.unwrap();
        assert_eq!(
            rx.borrow_and_update().as_ref().unwrap().revision,
            "two-longer"
        );
        drop(rx);
        task.await.unwrap();
    }

    #[test]
    fn a_missing_or_invalid_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        assert!(matches!(load(&path), Err(FileSourceError::Read { .. })));
        std::fs::write(&path, b"{\"format\": 7}").unwrap();
        assert!(matches!(load(&path), Err(FileSourceError::Invalid { .. })));
    }

    #[test]
    fn identical_snapshots_are_not_republished() {
        let (tx, _rx) = crate::source::channel();
        assert!(publish(&tx, Arc::new(Snapshot::default())));
        assert!(!publish(&tx, Arc::new(Snapshot::default())));
    }
}
