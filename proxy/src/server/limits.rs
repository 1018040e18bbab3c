//! Per-connection time and size bounds, so idle or slow clients cannot hold a worker's
//! sockets, memory or file descriptors: the flags, their defaults, the hyper builder
//! settings they become, and the rate-bounded reader for bodies the proxy reads itself.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

use crate::body::ProxyBody;

/// File descriptors kept back from the per-worker connection cap for upstream pools,
/// Redis, the admin listener and logging.
const RESERVED_FDS: u64 = 64;
/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_HTTP1_BUF: usize = 8 * 1024;
/// The admin listener has no flags of its own: its clients are probes and scrapers.
const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connection limit flags shared by `gatehouse proxy` and `gatehouse standalone`.
#[derive(clap::Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitArgs {
    /// Seconds a client gets to send a complete request head: from accepting the
    /// connection (first byte included) and, on HTTP/1, from the end of the previous
    /// response (so it is also the HTTP/1 keep-alive idle timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub header_timeout: u64,

    /// Seconds an HTTP/2 connection may stay open with no request in flight.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub idle_timeout: u64,

    /// Seconds a client gets to finish the TLS handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub tls_handshake_timeout: u64,

    /// Seconds of slack for bodies the proxy reads itself (/oauth2/*, form token
    /// lookup) on top of --body-min-rate: a body must be complete within this plus
    /// its size divided by the rate; slower gets 408.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub body_timeout: u64,

    /// Minimum rate, in bytes per second, of bodies the proxy reads itself.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub body_min_rate: u64,

    /// Seconds between HTTP/2 PINGs on a connection (0 = none); a PING unanswered
    /// for as long again closes the connection.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub h2_keepalive_interval: u64,

    /// Streams one HTTP/2 connection may have open at once.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub h2_max_concurrent_streams: u32,

    /// Client connections one worker keeps open (default: the open-files limit, less
    /// a reserve, split over the workers with room for one upstream connection each).
    /// At the cap the longest-idle connection is closed for a new one; with none idle
    /// the new one is refused.
    #[arg(long, value_name = "N")]
    pub max_connections_per_worker: Option<usize>,
}

impl Default for LimitArgs {
    fn default() -> Self {
        LimitArgs {
            header_timeout: 10,
            idle_timeout: 60,
            tls_handshake_timeout: 10,
            body_timeout: 10,
            body_min_rate: 1024,
            h2_keepalive_interval: 30,
            h2_max_concurrent_streams: 100,
            max_connections_per_worker: None,
        }
    }
}

impl LimitArgs {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout.max(1))
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout.max(1))
    }

    /// The body reading bound for a body of at most `max_bytes`.
    pub fn body(&self, max_bytes: usize) -> BodyLimit {
        BodyLimit {
            max_bytes,
            slack: Duration::from_secs(self.body_timeout.max(1)),
            min_rate: self.body_min_rate.max(1),
        }
    }

    /// The connection cap for one of `workers` workers.
    pub fn connections_per_worker(&self, workers: usize) -> usize {
        self.max_connections_per_worker
            .unwrap_or_else(|| default_cap(open_files_limit(), workers))
            .max(1)
    }

    /// The hyper builder for client connections (HTTP/1 and HTTP/2 by preface).
    pub fn builder(&self, max_header_bytes: usize) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // hyper runs this timer while it waits for a head, idle keep-alive included.
            .header_read_timeout(self.header_timeout())
            .max_buf_size(max_header_bytes.max(MIN_HTTP1_BUF));
        let keepalive = (self.h2_keepalive_interval > 0)
            .then(|| Duration::from_secs(self.h2_keepalive_interval));
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(self.h2_max_concurrent_streams.max(1))
            .keep_alive_interval(keepalive);
        if let Some(interval) = keepalive {
            h2.keep_alive_timeout(interval);
        }
        builder
    }
}

/// An HTTP/1 builder for the admin listeners, with a head timeout (hyper applies its
/// default one only when a timer is set, which `Builder::new()` does not do).
pub fn admin_http1() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ADMIN_HEADER_TIMEOUT);
    builder
}

/// Raise the soft open-files limit to the hard one (as Go's runtime does) and return
/// it; `None` where it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
        limit.current
    }
    #[cfg(not(unix))]
    None
}

fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    None
}

/// Each client connection may need one upstream connection too, hence the halving.
fn default_cap(open_files: Option<u64>, workers: usize) -> usize {
    const UNLIMITED: usize = 1 << 20;
    match open_files {
        None => 10_000,
        Some(n) => {
            let usable = n.saturating_sub(RESERVED_FDS) / 2 / workers.max(1) as u64;
            usize::try_from(usable)
                .unwrap_or(UNLIMITED)
                .clamp(8, UNLIMITED)
        }
    }
}

/// How a body the proxy reads itself is bounded: size, and a deadline of
/// `slack + bytes_received / min_rate` from the first poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimit {
    pub max_bytes: usize,
    pub slack: Duration,
    pub min_rate: u64,
}

impl BodyLimit {
    /// Only a size bound (tests, and callers with their own timeouts).
    pub fn size_only(max_bytes: usize) -> Self {
        BodyLimit {
            max_bytes,
            slack: Duration::from_secs(u32::MAX.into()),
            min_rate: 1,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    TooSlow,
    Broken,
}

/// Read a whole body within `limit`.
pub async fn read_body(body: ProxyBody, limit: BodyLimit) -> Result<Bytes, BodyError> {
    let start = tokio::time::Instant::now();
    let mut body = body;
    let mut buf = BytesMut::new();
    loop {
        let received = buf.len() as u64;
        let allowed = limit.slack + Duration::from_secs(received / limit.min_rate);
        let frame = match tokio::time::timeout_at(start + allowed, body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(buf.freeze()),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit.max_bytes {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
        if body.is_end_stream() {
            return Ok(buf.freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cap_leaves_room_for_upstreams_and_is_never_tiny() {
        assert_eq!(default_cap(Some(1024), 2), (1024 - 64) / 2 / 2);
        assert_eq!(default_cap(Some(70), 4), 8);
        assert_eq!(default_cap(None, 2), 10_000);
        assert_eq!(default_cap(Some(u64::MAX), 1), 1 << 20);
    }

    #[test]
    fn explicit_cap_wins() {
        let args = LimitArgs {
            max_connections_per_worker: Some(3),
            ..LimitArgs::default()
        };
        assert_eq!(args.connections_per_worker(8), 3);
    }

    #[tokio::test]
    async fn bodies_within_the_bounds_are_read_and_larger_ones_refused() {
        let limit = BodyLimit::size_only(5);
        assert_eq!(
            read_body(crate::body::full("abcde"), limit).await.unwrap(),
            "abcde"
        );
        assert_eq!(
            read_body(crate::body::full("abcdef"), limit).await,
            Err(BodyError::TooLarge)
        );
    }
}
