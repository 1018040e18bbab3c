//! One worker's open client connections: the per-worker cap, which connections are
//! idle (no request in flight) and since when, and evicting the longest-idle one when
//! the cap or the open-files limit is hit, so silent or slow clients cannot lock
//! out real ones.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// At most one "connection cap reached" log line per worker this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The connections of one worker.
pub struct ConnTable {
    cap: usize,
    epoch: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Arc<ConnState>>,
    last_log: Option<Instant>,
    evicted_since_log: u64,
    refused_since_log: u64,
}

/// What the table and the connection's own task know about one connection.
pub struct ConnState {
    in_flight: AtomicUsize,
    /// Milliseconds since the table's epoch when `in_flight` last became 0.
    idle_since_ms: AtomicU64,
    http2: AtomicBool,
    evict: Notify,
}

/// Keeps a connection in the table; dropping it removes the connection.
pub struct ConnGuard {
    table: Arc<ConnTable>,
    id: u64,
    pub state: Arc<ConnState>,
}

/// What admitting a new connection did.
pub enum Admission {
    Admitted(ConnGuard),
    /// At the cap with no idle connection to close.
    Refused,
}

impl ConnTable {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(ConnTable {
            cap: cap.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admit a new connection, closing the longest-idle one first when at the cap.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut inner = self
            .inner
            .lock()
            .expect("no panics while the table is locked");
        if inner.open.len() >= self.cap {
            if evict_oldest_idle(&mut inner) {
                inner.evicted_since_log += 1;
            } else {
                inner.refused_since_log += 1;
                self.log_pressure(&mut inner);
                return Admission::Refused;
            }
            self.log_pressure(&mut inner);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            http2: AtomicBool::new(false),
            evict: Notify::new(),
        });
        inner.open.insert(id, state.clone());
        Admission::Admitted(ConnGuard {
            table: self.clone(),
            id,
            state,
        })
    }

    /// Close the longest-idle connection to free a file descriptor (accept failed
    /// with EMFILE/ENFILE). Returns whether one was closed.
    pub fn relieve(&self) -> bool {
        let mut inner = self
            .inner
            .lock()
            .expect("no panics while the table is locked");
        let evicted = evict_oldest_idle(&mut inner);
        if evicted {
            inner.evicted_since_log += 1;
        }
        self.log_pressure(&mut inner);
        evicted
    }

    fn log_pressure(&self, inner: &mut Inner) {
        let due = inner.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY);
        if !due {
            return;
        }
        inner.last_log = Some(Instant::now());
        tracing::warn!(
            cap = self.cap,
            open = inner.open.len(),
            idle_closed = inner.evicted_since_log,
            refused = inner.refused_since_log,
            "Connection limit reached: closing idle connections for new ones (raise the open-files limit or --max-connections-per-worker)"
        );
        inner.evicted_since_log = 0;
        inner.refused_since_log = 0;
    }

    /// How long this connection has had nothing in flight, if it has nothing.
    fn idle_for(&self, state: &ConnState) -> Option<Duration> {
        if state.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = state.idle_since_ms.load(Ordering::Acquire);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }
}

/// Signal the connection idle the longest and drop it from the table (its task
/// closes the socket when it next runs).
fn evict_oldest_idle(inner: &mut Inner) -> bool {
    let oldest = inner
        .open
        .iter()
        .filter(|(_, s)| s.in_flight.load(Ordering::Acquire) == 0)
        .min_by_key(|(_, s)| s.idle_since_ms.load(Ordering::Acquire))
        .map(|(id, _)| *id);
    match oldest.and_then(|id| inner.open.remove(&id)) {
        Some(state) => {
            state.evict.notify_one();
            true
        }
        None => false,
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.table.inner.lock() {
            inner.open.remove(&self.id);
        }
    }
}

impl ConnGuard {
    /// Count a request as in flight until the returned token (moved into its
    /// response body) is dropped.
    pub fn begin(&self, http2: bool) -> InFlight {
        self.state.http2.store(http2, Ordering::Release);
        self.state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            table: self.table.clone(),
            state: self.state.clone(),
        }
    }

    /// Resolves when the table closed this connection to make room.
    pub async fn evicted(&self) {
        self.state.evict.notified().await
    }

    /// When the connection, idle now, must be closed: `header` before its first
    /// request (and between HTTP/1 requests, where hyper enforces it too), `idle`
    /// between HTTP/2 requests. `None` while a request is in flight.
    pub fn idle_deadline(&self, header: Duration, idle: Duration) -> Option<Duration> {
        let idle_for = self.table.idle_for(&self.state)?;
        let allowed = if self.state.http2.load(Ordering::Acquire) {
            idle
        } else {
            header
        };
        Some(allowed.saturating_sub(idle_for))
    }
}

/// One request in flight; its drop marks the connection idle when it was the last.
pub struct InFlight {
    table: Arc<ConnTable>,
    state: Arc<ConnState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.state.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state
                .idle_since_ms
                .store(self.table.now_ms(), Ordering::Release);
        }
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct TrackedBody<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> TrackedBody<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        TrackedBody {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(table: &Arc<ConnTable>) -> ConnGuard {
        match table.admit() {
            Admission::Admitted(guard) => guard,
            Admission::Refused => panic!("expected admission"),
        }
    }

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let table = ConnTable::new(2);
        let first = admitted(&table);
        std::thread::sleep(Duration::from_millis(5));
        let second = admitted(&table);
        let third = admitted(&table);
        // `first` was idle longest: it is told to close, the others are not.
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("first connection evicted");
        assert!(
            tokio::time::timeout(Duration::from_millis(20), second.evicted())
                .await
                .is_err()
        );
        drop(third);
    }

    #[test]
    fn busy_connections_are_never_evicted_and_the_newcomer_is_refused() {
        let table = ConnTable::new(1);
        let busy = admitted(&table);
        let request = busy.begin(false);
        assert!(matches!(table.admit(), Admission::Refused));
        assert!(!table.relieve());
        drop(request);
        assert!(busy
            .idle_deadline(Duration::from_secs(5), Duration::from_secs(60))
            .is_some());
        assert!(matches!(table.admit(), Admission::Admitted(_)));
    }

    #[test]
    fn http2_connections_get_the_idle_timeout_after_a_request() {
        let table = ConnTable::new(4);
        let conn = admitted(&table);
        let header = Duration::from_secs(5);
        let idle = Duration::from_secs(60);
        assert!(conn.idle_deadline(header, idle).unwrap() <= header);
        let request = conn.begin(true);
        assert_eq!(conn.idle_deadline(header, idle), None);
        drop(request);
        assert!(conn.idle_deadline(header, idle).unwrap() > header);
    }
}
