//! Controller metrics (Prometheus, served on `/metrics` by [`super::admin`]).
//!
//! Every label has a small fixed value set (kind, result), never an object name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label set `{kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// Label set `{kind, result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

/// Label set `{result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: &'static str,
}

/// What the controller counts.
pub struct Metrics {
    translations: Counter,
    translate_seconds: Histogram,
    publishes: Family<ResultLabel, Counter>,
    writes: Family<WriteLabels, Counter>,
    dropped_writes: Family<KindLabel, Counter>,
    leader: Gauge,
    not_ready: Gauge,
    held: Gauge,
    malformed: Family<KindLabel, Gauge>,
    watch_errors: Family<KindLabel, Counter>,
}

impl Metrics {
    /// Create the metrics and register them (the registry adds its own prefix, e.g.
    /// `gatehouse_controller_`).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            translations: Counter::default(),
            // 1 ms … ~16 s: a handful of objects up to tens of thousands.
            translate_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            publishes: Family::default(),
            writes: Family::default(),
            dropped_writes: Family::default(),
            leader: Gauge::default(),
            not_ready: Gauge::default(),
            held: Gauge::default(),
            malformed: Family::default(),
            watch_errors: Family::default(),
        };
        registry.register(
            "translations",
            "Translation passes run (each one re-translates every object)",
            m.translations.clone(),
        );
        registry.register(
            "translate_duration_seconds",
            "Time one translation pass took",
            m.translate_seconds.clone(),
        );
        registry.register(
            "snapshot_publishes",
            "Snapshot publications to Redis by result (updated, unchanged, error)",
            m.publishes.clone(),
        );
        registry.register(
            "writes",
            "Kubernetes writes by kind (status, secret, event) and result (ok, error)",
            m.writes.clone(),
        );
        registry.register(
            "dropped_writes",
            "Writes a non-leader computed but did not make, by kind",
            m.dropped_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the Lease and writes, else 0",
            m.leader.clone(),
        );
        registry.register(
            "objects_not_ready",
            "Gatehouse objects whose Ready condition is not True after the last pass",
            m.not_ready.clone(),
        );
        registry.register(
            "objects_held_back",
            "Changed objects whose new version is not Ready, served at their last good version",
            m.held.clone(),
        );
        registry.register(
            "malformed_objects",
            "Objects left out because they could not be decoded, by kind",
            m.malformed.clone(),
        );
        registry.register(
            "watch_errors",
            "Watch stream failures (each is retried with backoff), by kind",
            m.watch_errors.clone(),
        );
        m
    }

    /// Metrics not registered anywhere (tests).
    pub fn unregistered() -> Self {
        Metrics::register(&mut Registry::default())
    }

    pub(crate) fn translated(&self, seconds: f64, not_ready: usize, held: usize) {
        self.translations.inc();
        self.translate_seconds.observe(seconds);
        self.not_ready
            .set(i64::try_from(not_ready).unwrap_or(i64::MAX));
        self.held.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    pub(crate) fn published(&self, result: &'static str) {
        self.publishes.get_or_create(&ResultLabel { result }).inc();
    }

    pub(crate) fn write(&self, kind: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.writes
            .get_or_create(&WriteLabels { kind, result })
            .inc();
    }

    pub(crate) fn dropped(&self, kind: &'static str, n: usize) {
        if n > 0 {
            self.dropped_writes
                .get_or_create(&KindLabel { kind })
                .inc_by(n as u64);
        }
    }

    /// Number of writes of `kind` a non-leader dropped so far.
    pub fn dropped_count(&self, kind: &'static str) -> u64 {
        self.dropped_writes.get_or_create(&KindLabel { kind }).get()
    }

    /// Number of writes of `kind` with `result` (`ok`/`error`) so far.
    pub fn write_count(&self, kind: &'static str, result: &'static str) -> u64 {
        self.writes
            .get_or_create(&WriteLabels { kind, result })
            .get()
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub(crate) fn set_malformed(&self, kind: &'static str, n: usize) {
        self.malformed
            .get_or_create(&KindLabel { kind })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn watch_error(&self, kind: &'static str) {
        self.watch_errors.get_or_create(&KindLabel { kind }).inc();
    }
}
