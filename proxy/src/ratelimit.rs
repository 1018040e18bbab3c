//! Abuse limits for the OAuth2 endpoints: the generic cell rate algorithm (GCRA), a
//! bounded in-memory limiter for the memory token store, and the quota flags.
//!
//! GCRA keeps one number per key, the *theoretical arrival time* (TAT): when the key
//! would be back to an empty bucket. A request at `now` is allowed when
//! `TAT - now <= (burst - 1) * interval`, and then moves TAT one `interval` later
//! (`interval = period / count`). So `burst` requests may come at once, then one per
//! `interval`; a refused request learns exactly when the next one would pass
//! (`Retry-After`). The Redis store runs the same rule in a Lua script against the
//! Redis server's clock, so every replica shares one budget per key.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// How many requests a key may make: `count` per `period`, up to `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    /// Time between two requests at the sustained rate, in milliseconds (at least 1).
    pub fn interval_ms(&self) -> u64 {
        (self.period.as_millis() as u64 / u64::from(self.count.max(1))).max(1)
    }

    /// How far ahead of `now` the TAT may run before a request is refused.
    pub fn tolerance_ms(&self) -> u64 {
        self.interval_ms() * u64::from(self.burst.max(1) - 1)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            _ => "h",
        };
        write!(f, "{}/{unit}:{}", self.count, self.burst)
    }
}

/// `COUNT/UNIT[:BURST]` with `UNIT` one of `s`, `min`, `h` (`300/min:50`); `off`
/// parses as no quota in [`parse_optional_quota`]. Burst defaults to `COUNT`.
impl FromStr for Quota {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not COUNT/UNIT[:BURST] (e.g. 300/min:50)");
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        let burst: u32 = match burst {
            Some(b) => b.trim().parse().map_err(|_| bad())?,
            None => count,
        };
        if count == 0 || burst == 0 {
            return Err(format!("`{s}`: count and burst must be at least 1"));
        }
        Ok(Quota {
            count,
            period,
            burst,
        })
    }
}

/// A quota flag value: `off` (no limit) or a [`Quota`].
pub fn parse_optional_quota(s: &str) -> Result<Option<Quota>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

/// The outcome of counting one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the next request would pass after this long.
    Limited {
        retry_after: Duration,
    },
}

impl Decision {
    /// `Retry-After` in whole seconds, rounded up (at least 1).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Decision::Allowed => None,
            Decision::Limited { retry_after } => {
                Some(retry_after.as_millis().div_ceil(1000).max(1) as u64)
            }
        }
    }
}

/// One GCRA step: given the stored TAT (if any) and `now` (both in ms), decide and
/// return the TAT to store when allowed.
pub fn gcra(stored_tat: Option<u64>, now: u64, quota: &Quota) -> (Decision, Option<u64>) {
    let tat = stored_tat.unwrap_or(now).max(now);
    let ahead = tat - now;
    let tolerance = quota.tolerance_ms();
    if ahead > tolerance {
        let retry_after = Duration::from_millis(ahead - tolerance);
        return (Decision::Limited { retry_after }, None);
    }
    (Decision::Allowed, Some(tat + quota.interval_ms()))
}

/// The OAuth2 endpoint quotas in force: per source address and per (known) client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OAuthQuotas {
    pub per_address: Option<Quota>,
    pub per_client: Option<Quota>,
}

/// Store key of a per-address budget.
pub fn address_key(ip: std::net::IpAddr) -> String {
    format!("addr:{ip}")
}

/// Store key of a per-client budget. Only clients present in the configuration are
/// counted this way (an unknown `client_id` is the caller's choice and would let it
/// mint fresh budgets); the id is hashed so keys stay short whatever its length.
pub fn client_key(client_id: &str) -> String {
    format!(
        "client:{}",
        crate::store::Digest::of(client_id.as_bytes()).to_hex()
    )
}

/// Most keys the in-memory limiter tracks; beyond it, keys whose bucket is already
/// empty are dropped first, then arbitrary ones (a dropped key only gets a fresh
/// budget, so memory stays bounded and nothing is refused for lack of room).
pub const MEMORY_LIMITER_KEYS: usize = 100_000;

/// GCRA state in process memory (standalone and the memory token store).
#[derive(Debug)]
pub struct MemoryLimiter {
    tats: Mutex<HashMap<String, u64>>,
    capacity: usize,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::with_capacity(MEMORY_LIMITER_KEYS)
    }
}

impl MemoryLimiter {
    /// A limiter tracking at most `capacity` keys.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryLimiter {
            tats: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Count one request for `key` at `now_ms`.
    pub fn hit(&self, key: &str, quota: &Quota, now_ms: u64) -> Decision {
        // Held for a hash lookup and insert only, never across an await.
        let mut tats = self.tats.lock().unwrap_or_else(|p| p.into_inner());
        let (decision, new_tat) = gcra(tats.get(key).copied(), now_ms, quota);
        if let Some(tat) = new_tat {
            if tats.len() >= self.capacity && !tats.contains_key(key) {
                tats.retain(|_, t| *t > now_ms);
                if tats.len() >= self.capacity {
                    if let Some(victim) = tats.keys().next().cloned() {
                        tats.remove(&victim);
                    }
                }
            }
            tats.insert(key.to_owned(), tat);
        }
        decision
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.tats.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Milliseconds since the Unix epoch (the memory limiter's clock).
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quota {
        s.parse().unwrap()
    }

    #[test]
    fn quotas_parse_with_and_without_burst() {
        assert_eq!(
            q("300/min:50"),
            Quota {
                count: 300,
                period: Duration::from_secs(60),
                burst: 50
            }
        );
        assert_eq!(q("10/s").burst, 10);
        assert_eq!(q("300/min:50").interval_ms(), 200);
        assert_eq!(q("300/min:50").to_string(), "300/min:50");
        assert_eq!(parse_optional_quota("off"), Ok(None));
        for bad in ["", "10", "10/week", "0/s", "10/s:0", "x/s", "10/s:y"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_passes_at_once_then_one_request_per_interval() {
        let quota = q("10/s:3"); // interval 100 ms, 3 at once
        let mut tat = None;
        let mut hit = |now| {
            let (d, new) = gcra(tat, now, &quota);
            if new.is_some() {
                tat = new;
            }
            d
        };
        for _ in 0..3 {
            assert_eq!(hit(1_000), Decision::Allowed);
        }
        assert_eq!(
            hit(1_000),
            Decision::Limited {
                retry_after: Duration::from_millis(100)
            }
        );
        assert_eq!(
            hit(1_050),
            Decision::Limited {
                retry_after: Duration::from_millis(50)
            }
        );
        assert_eq!(hit(1_100), Decision::Allowed);
        assert!(matches!(hit(1_100), Decision::Limited { .. }));
        // After a quiet second the whole burst is back.
        for _ in 0..3 {
            assert_eq!(hit(3_000), Decision::Allowed);
        }
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let d = Decision::Limited {
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(d.retry_after_secs(), Some(1));
        let d = Decision::Limited {
            retry_after: Duration::from_millis(2_001),
        };
        assert_eq!(d.retry_after_secs(), Some(3));
        assert_eq!(Decision::Allowed.retry_after_secs(), None);
    }

    #[test]
    fn the_memory_limiter_counts_keys_separately_and_stays_bounded() {
        let limiter = MemoryLimiter::with_capacity(3);
        let quota = q("1/min:1");
        assert_eq!(limiter.hit("a", &quota, 0), Decision::Allowed);
        assert!(matches!(
            limiter.hit("a", &quota, 0),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.hit("b", &quota, 0), Decision::Allowed);
        for i in 0..100 {
            assert_eq!(limiter.hit(&format!("k{i}"), &quota, 0), Decision::Allowed);
            assert!(limiter.len() <= 3);
        }
        // Empty buckets are dropped before live ones.
        let limiter = MemoryLimiter::with_capacity(2);
        limiter.hit("old", &quota, 0);
        limiter.hit("live", &quota, 100_000);
        limiter.hit("new", &quota, 100_000);
        assert!(matches!(
            limiter.hit("live", &quota, 100_000),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn client_keys_are_short_whatever_the_id() {
        let long = "x".repeat(10_000);
        assert_eq!(client_key(&long).len(), "client:".len() + 64);
        assert_eq!(address_key("127.0.0.1".parse().unwrap()), "addr:127.0.0.1");
    }
}
