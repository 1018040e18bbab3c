//! Passive health of upstream endpoints and per-endpoint concurrency limits.
//!
//! - Outlier ejection: after `consecutive_failures` connection failures in a row an
//!   endpoint is skipped for `ejection` (any success resets the count). When every
//!   endpoint is ejected they are all used again, as Envoy's panic threshold does:
//!   a guess beats a certain 503.
//! - Connection limit: at most `max_connections` requests in flight to one endpoint
//!   from this proxy (with HTTP/1.1 one request is one connection); the next one is
//!   answered 503 at once instead of queueing without bound.
//!
//! State lives with the compiled snapshot, so a configuration change starts afresh.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// Thresholds for one upstream set.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Consecutive connection failures that eject an endpoint (0 = never eject).
    pub consecutive_failures: u32,
    /// How long an ejected endpoint is skipped.
    pub ejection: Duration,
    /// Requests in flight per endpoint (0 = unlimited).
    pub max_connections: u32,
}

/// Health and load of one endpoint, shared by every worker.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    failures: AtomicU32,
    /// Milliseconds on [`clock_ms`] until which the endpoint is skipped.
    ejected_until: AtomicU64,
    in_flight: Arc<AtomicU32>,
}

/// Monotonic milliseconds since the first call (atomics cannot hold an `Instant`).
fn clock_ms() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Held while a request is in flight to an endpoint.
#[derive(Debug)]
pub struct Permit(Arc<AtomicU32>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl EndpointHealth {
    /// Not ejected right now.
    pub fn available(&self) -> bool {
        self.ejected_until.load(Ordering::Relaxed) <= clock_ms()
    }

    /// A request reached the endpoint: forget earlier failures.
    pub fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A connection failed; returns true when this failure ejected the endpoint.
    pub fn failed(&self, policy: &Policy) -> bool {
        if policy.consecutive_failures == 0 {
            return false;
        }
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures < policy.consecutive_failures {
            return false;
        }
        self.failures.store(0, Ordering::Relaxed);
        let until = clock_ms().saturating_add(policy.ejection.as_millis() as u64);
        self.ejected_until.store(until, Ordering::Relaxed);
        true
    }

    /// Take a slot for one request, or `None` when `max` are in flight already.
    pub fn acquire(&self, max: u32) -> Option<Permit> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit(self.in_flight.clone());
        if max != 0 && previous >= max {
            return None; // dropping the permit gives the slot back
        }
        Some(permit)
    }

    /// Requests in flight now.
    #[cfg(test)]
    fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        consecutive_failures: 3,
        ejection: Duration::from_secs(30),
        max_connections: 2,
    };

    #[test]
    fn consecutive_failures_eject_and_a_success_resets_the_count() {
        let h = EndpointHealth::default();
        assert!(!h.failed(&POLICY));
        assert!(!h.failed(&POLICY));
        h.succeeded();
        assert!(!h.failed(&POLICY));
        assert!(!h.failed(&POLICY));
        assert!(h.available());
        assert!(h.failed(&POLICY), "third failure in a row ejects");
        assert!(!h.available());
    }

    #[test]
    fn ejection_can_be_switched_off() {
        let h = EndpointHealth::default();
        let never = Policy {
            consecutive_failures: 0,
            ..POLICY
        };
        for _ in 0..100 {
            assert!(!h.failed(&never));
        }
        assert!(h.available());
    }

    #[test]
    fn permits_bound_requests_in_flight_and_are_returned_on_drop() {
        let h = EndpointHealth::default();
        let a = h.acquire(2).unwrap();
        let _b = h.acquire(2).unwrap();
        assert!(h.acquire(2).is_none());
        assert_eq!(h.in_flight(), 2, "a refused request holds no slot");
        drop(a);
        assert!(h.acquire(2).is_some());
        assert!(h.acquire(0).is_some(), "0 means unlimited");
    }
}
