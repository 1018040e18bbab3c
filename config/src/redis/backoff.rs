//! Exponential backoff with full jitter for reconnect loops (subscriptions, config
//! follower). A validated type: `min ≤ max`, both non-zero.

use std::time::Duration;

use rand::Rng as _;

/// Delays that double from `min` up to `max`; each delay is drawn uniformly from
/// `[cap/2, cap]` so that many replicas losing Redis at once do not reconnect in
/// lockstep.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    cap: Duration,
}

/// `min` was zero or larger than `max`.
#[derive(Debug, thiserror::Error)]
#[error("backoff needs 0 < min ≤ max (got min {min:?}, max {max:?})")]
pub struct InvalidBackoff {
    min: Duration,
    max: Duration,
}

impl Backoff {
    /// A backoff between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, InvalidBackoff> {
        if min.is_zero() || min > max {
            return Err(InvalidBackoff { min, max });
        }
        Ok(Backoff { min, max, cap: min })
    }

    /// The next delay; grows until `max`.
    pub fn next_delay(&mut self) -> Duration {
        let cap = self.cap;
        self.cap = (self.cap * 2).min(self.max);
        let lo = cap / 2;
        let jitter = rand::rng().random_range(0..=(cap - lo).as_millis() as u64);
        lo + Duration::from_millis(jitter)
    }

    /// Start again from `min` (after a success).
    pub fn reset(&mut self) {
        self.cap = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_maximum_and_stay_within_it() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80)).unwrap();
        let caps = [10, 20, 40, 80, 80, 80];
        for cap in caps {
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(cap / 2), "{d:?} below {cap}/2");
            assert!(d <= Duration::from_millis(cap), "{d:?} above {cap}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn min_above_max_is_refused() {
        assert!(Backoff::new(Duration::from_secs(2), Duration::from_secs(1)).is_err());
        assert!(Backoff::new(Duration::ZERO, Duration::from_secs(1)).is_err());
    }
}
