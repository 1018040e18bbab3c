//! Proxy metrics (prometheus-client), exposed on the admin listener's `/metrics`.
//! Outcomes are a bounded label set; nothing is labelled by token, user or client.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::Rejection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// Per-route request labels. `route` is a route id from the configuration (bounded by
/// it; empty when no route matched), `class` the status class (`2xx`...), `outcome`
/// a fixed word or a refusal reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub class: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    certificate: String,
    host: String,
}

/// One route's per-route metric handles, kept with the compiled snapshot (one per
/// route) so a request's metrics cost an atomic add, not a label-set hash and a map
/// lookup. Each handle is resolved from its family on first use, so a series still
/// appears only once something was counted in it.
#[derive(Debug, Default)]
pub struct RouteHandles {
    request_duration: OnceLock<Histogram>,
    upstream_duration: OnceLock<Histogram>,
    /// `class="2xx", outcome="proxied"`: nearly every request of a busy route.
    proxied_2xx: OnceLock<Counter>,
}

/// Counters of the OAuth2 endpoints (token requests, abuse); cheap to clone (shared
/// handles).
#[derive(Clone, Debug, Default)]
pub struct OAuthCounters {
    rate_limited: Family<LimitLabels, Counter>,
    client_auth_failures: Counter,
    token_requests: Family<TokenLabels, Counter>,
}

impl OAuthCounters {
    fn register(registry: &mut Registry) -> Self {
        let c = OAuthCounters::default();
        registry.register(
            "gatehouse_proxy_oauth2_rate_limited",
            "OAuth2 endpoint requests refused with 429, by exhausted budget (address or client)",
            c.rate_limited.clone(),
        );
        registry.register(
            "gatehouse_proxy_oauth2_client_auth_failures",
            "OAuth2 requests whose client authentication failed (invalid_client)",
            c.client_auth_failures.clone(),
        );
        registry.register(
            "gatehouse_proxy_token_requests",
            "Token endpoint requests over HTTPS with readable parameters, by grant_type (a grant the proxy implements, other, or none) and result (issued, the OAuth2 error code, or too_many_requests)",
            c.token_requests.clone(),
        );
        c
    }

    /// A token request with `grant` (a known wire name or `other`; `None` when the
    /// request had no `grant_type`) ended with `error` (its OAuth2 error code, or
    /// `too_many_requests`) or issued a token.
    pub fn token_request(&self, grant: Option<&'static str>, error: Option<&'static str>) {
        self.token_requests
            .get_or_create(&TokenLabels {
                grant: grant.unwrap_or("none"),
                result: error.unwrap_or("issued"),
            })
            .inc();
    }

    /// A request was refused by the `limit` (`address` or `client`) budget.
    pub fn rate_limited(&self, limit: &'static str) {
        self.rate_limited
            .get_or_create(&LimitLabels { limit })
            .inc();
    }

    /// A client failed to authenticate.
    pub fn client_auth_failed(&self) {
        self.client_auth_failures.inc();
    }
}

/// Latency buckets in seconds: 1 ms to 60 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Counters and gauges of the data plane.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Requests by route, status class and outcome.
    pub route_requests: Family<RouteLabels, Counter>,
    /// Time from request arrival to the last response byte, by route.
    pub request_duration: Family<RouteOnly, Histogram, fn() -> Histogram>,
    /// Time from sending upstream to the response headers, by route.
    pub upstream_duration: Family<RouteOnly, Histogram, fn() -> Histogram>,
    /// Access log lines dropped because the writer fell behind.
    pub access_log_dropped: Counter,
    /// Upgraded connections (WebSocket) open now.
    pub tunnels: Gauge,
    config_info: Family<RevisionLabels, Gauge>,
    /// Unix time the configuration in force was loaded.
    pub config_loaded: Gauge,
    /// How long the configuration in force took to compile.
    config_compile: Gauge<f64, AtomicU64>,
    requests: Family<OutcomeLabels, Counter>,
    // Pre-resolved handles so the hot path is one atomic add, no map lookup.
    proxied: Counter,
    oauth2: Counter,
    /// Compiled configurations swapped in.
    pub config_reloads: Counter,
    /// Open client connections.
    pub connections: Gauge,
    /// Token requests, rate limits and client authentication failures of the OAuth2
    /// endpoints.
    pub oauth_counters: OAuthCounters,
    certificates: Family<CertificateLabels, Gauge>,
}

/// The not-after time of one served certificate, for the expiry gauge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateExpiry {
    /// Snapshot certificate id (`namespace/secret`), or `default` for `--tls-cert`.
    pub certificate: String,
    /// A host name it is served for (`*` for the default certificate).
    pub host: String,
    /// Unix seconds of the leaf certificate's notAfter.
    pub not_after: i64,
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
        let route_requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "gatehouse_proxy_route_requests",
            "Requests by route, status class and outcome (proxied, oauth2, upgraded, or the refusal reason)",
            route_requests.clone(),
        );
        let request_duration =
            Family::<RouteOnly, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "gatehouse_proxy_request_duration",
            "Time from request arrival to the last response byte, by route",
            Unit::Seconds,
            request_duration.clone(),
        );
        let upstream_duration =
            Family::<RouteOnly, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register_with_unit(
            "gatehouse_proxy_upstream_duration",
            "Time from sending a request upstream to its response headers, by route",
            Unit::Seconds,
            upstream_duration.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "gatehouse_proxy_access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            access_log_dropped.clone(),
        );
        let tunnels = Gauge::default();
        registry.register(
            "gatehouse_proxy_open_tunnels",
            "Upgraded (WebSocket) connections open now",
            tunnels.clone(),
        );
        let config_info = Family::<RevisionLabels, Gauge>::default();
        registry.register(
            "gatehouse_proxy_config",
            "The configuration revision in force (value 1)",
            config_info.clone(),
        );
        let config_loaded = Gauge::default();
        registry.register(
            "gatehouse_proxy_config_loaded_timestamp_seconds",
            "Unix time the configuration in force was loaded (age = time() - this)",
            config_loaded.clone(),
        );
        let config_compile = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "gatehouse_proxy_config_compile",
            "Time the configuration in force took to compile (routing table, catalog, upstreams, scope rules, certificates)",
            Unit::Seconds,
            config_compile.clone(),
        );
        let certificates = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "gatehouse_proxy_tls_certificate_expiry_timestamp_seconds",
            "Unix time the served TLS certificate expires (leaf notAfter), by certificate (snapshot id, or default) and host",
            certificates.clone(),
        );
        let proxied = requests
            .get_or_create(&OutcomeLabels { outcome: "proxied" })
            .clone();
        let oauth2 = requests
            .get_or_create(&OutcomeLabels { outcome: "oauth2" })
            .clone();
        Metrics {
            route_requests,
            request_duration,
            upstream_duration,
            access_log_dropped,
            tunnels,
            config_info,
            config_loaded,
            config_compile,
            requests,
            proxied,
            oauth2,
            config_reloads,
            connections,
            oauth_counters: OAuthCounters::register(registry),
            certificates,
        }
    }

    pub fn proxied(&self) {
        self.proxied.inc();
    }

    pub fn oauth2(&self) {
        self.oauth2.inc();
    }

    /// Count a request of `route` (`""` when none matched; `handles` are that
    /// route's) that ended with `class` and `outcome` after `elapsed` seconds.
    pub fn request_done(
        &self,
        route: &str,
        handles: Option<&RouteHandles>,
        class: &'static str,
        outcome: &'static str,
        elapsed: f64,
    ) {
        let labels = || RouteLabels {
            route: route.to_owned(),
            class,
            outcome,
        };
        let only = || RouteOnly {
            route: route.to_owned(),
        };
        match handles {
            Some(h) if class == "2xx" && outcome == "proxied" => h
                .proxied_2xx
                .get_or_init(|| self.route_requests.get_or_create_owned(&labels()))
                .inc(),
            _ => self.route_requests.get_or_create(&labels()).inc(),
        };
        match handles {
            Some(h) => h
                .request_duration
                .get_or_init(|| self.request_duration.get_or_create_owned(&only()))
                .observe(elapsed),
            None => self
                .request_duration
                .get_or_create(&only())
                .observe(elapsed),
        }
    }

    /// Time from sending a request of `route` upstream to its response headers.
    pub fn upstream_done(&self, route: &str, handles: Option<&RouteHandles>, elapsed: f64) {
        let only = || RouteOnly {
            route: route.to_owned(),
        };
        match handles {
            Some(h) => h
                .upstream_duration
                .get_or_init(|| self.upstream_duration.get_or_create_owned(&only()))
                .observe(elapsed),
            None => self
                .upstream_duration
                .get_or_create(&only())
                .observe(elapsed),
        }
    }

    /// A configuration with `revision` is now in force (only its revision is labelled),
    /// loaded at `unix_now` after compiling for `compile_time`.
    pub fn config_loaded(&self, revision: &str, unix_now: u64, compile_time: std::time::Duration) {
        self.config_compile.set(compile_time.as_secs_f64());
        self.config_info.clear();
        self.config_info
            .get_or_create(&RevisionLabels {
                revision: revision.to_owned(),
            })
            .set(1);
        self.config_loaded
            .set(i64::try_from(unix_now).unwrap_or(i64::MAX));
    }

    /// The certificates served now (replacing what was there: a certificate removed
    /// from the configuration disappears from the gauge).
    pub fn certificates<'a>(&self, served: impl IntoIterator<Item = &'a CertificateExpiry>) {
        self.certificates.clear();
        for c in served {
            self.certificates
                .get_or_create(&CertificateLabels {
                    certificate: c.certificate.clone(),
                    host: c.host.clone(),
                })
                .set(c.not_after);
        }
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
