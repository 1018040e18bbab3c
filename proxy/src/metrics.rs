//! Proxy metrics (prometheus-client), exposed on the admin listener's `/metrics`.
//! Outcomes are a bounded label set; nothing is labelled by token, user or client.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::error::Rejection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Counters and gauges of the data plane.
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<OutcomeLabels, Counter>,
    // Pre-resolved handles so the hot path is one atomic add, no map lookup.
    proxied: Counter,
    oauth2: Counter,
    /// Compiled configurations swapped in.
    pub config_reloads: Counter,
    /// Open client connections.
    pub connections: Gauge,
}

impl Metrics {
    /// Register every metric in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "gatehouse_proxy_requests",
            "Requests answered, by outcome (proxied, oauth2 endpoint, the rejection reason, or an authz_* external-authorization outcome)",
            requests.clone(),
        );
        let config_reloads = Counter::default();
        registry.register(
            "gatehouse_proxy_config_reloads",
            "Configuration snapshots compiled and swapped in",
            config_reloads.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "gatehouse_proxy_open_connections",
            "Client connections currently open",
            connections.clone(),
        );
        let proxied = requests
            .get_or_create(&OutcomeLabels { outcome: "proxied" })
            .clone();
        let oauth2 = requests
            .get_or_create(&OutcomeLabels { outcome: "oauth2" })
            .clone();
        Metrics {
            requests,
            proxied,
            oauth2,
            config_reloads,
            connections,
        }
    }

    pub fn proxied(&self) {
        self.proxied.inc();
    }

    pub fn oauth2(&self) {
        self.oauth2.inc();
    }

    /// Count one request under a bounded, static outcome label.
    pub fn outcome(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub fn rejected(&self, rejection: &Rejection) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: rejection.reason(),
            })
            .inc();
    }
}
