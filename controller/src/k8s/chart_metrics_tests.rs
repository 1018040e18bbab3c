//! Every metric the chart's Grafana dashboard and PrometheusRule query exists, under
//! the name the proxy and the controller actually expose: both registries are built by
//! the same code the binaries run, one series of every family is recorded (empty
//! families are not encoded), and the text is read back; each `gatehouse_*` series
//! name found in the chart files must be one of theirs (a counter `x` is queried as
//! `x_total`, a histogram as `x_bucket`/`_sum`/`_count`).

use std::collections::BTreeSet;
use std::path::Path;

use gatehouse_proxy::metrics::{CertificateExpiry, RouteLabels, RouteOnly};
use gatehouse_proxy::store::args::StoreArgs;
use gatehouse_proxy::store::Digest;
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// Metric family names exposed by the proxy and the controller.
fn exposed() -> BTreeSet<String> {
    let mut proxy = Registry::default();
    let p = gatehouse_proxy::metrics::Metrics::register(&mut proxy);
    p.proxied();
    p.config_loaded("r1", 1, std::time::Duration::from_millis(5));
    p.access_log_dropped.inc();
    let route = || RouteOnly {
        route: "ns/r".into(),
    };
    p.route_requests
        .get_or_create(&RouteLabels {
            route: "ns/r".into(),
            class: "2xx",
            outcome: "proxied",
        })
        .inc();
    p.request_duration.get_or_create(&route()).observe(0.1);
    p.upstream_duration.get_or_create(&route()).observe(0.1);
    p.oauth_counters
        .token_request(Some("client_credentials"), None);
    p.certificates(&[CertificateExpiry {
        certificate: "default".into(),
        host: "*".into(),
        not_after: 1,
    }]);
    // The store's metrics come from the store the binaries build: a Redis-backed one
    // (cache over metered Redis), never connected here, so every family gets a series.
    let store = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let store = StoreArgs {
                redis: Some(format!("redis://127.0.0.1:{}", closed_port())),
                ..StoreArgs::default()
            }
            .build()
            .await
            .unwrap();
            // Fails (nothing listens): an error, a duration and a miss are recorded.
            assert!(store.access_token(Digest::of(b"t")).await.is_err());
            store
        });
    store.register_metrics(&mut proxy);
    let mut controller = Registry::with_prefix("gatehouse_controller");
    let c = super::metrics::Metrics::register(&mut controller);
    c.translated(0.1, 1, 1);
    c.published("updated");
    c.write("status", true);
    c.dropped("status", 1);
    c.set_leader(true);
    c.set_malformed("Consumer", 1);
    c.watch_error("Consumer");
    let mut text = String::new();
    encode(&mut text, &proxy).unwrap();
    encode(&mut text, &controller).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `gatehouse_proxy_…` and `gatehouse_controller_…` identifiers in `text`.
fn queried(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("gatehouse_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        if name.starts_with("gatehouse_proxy_") || name.starts_with("gatehouse_controller_") {
            names.insert(name.to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn family(series: &str) -> &str {
    for suffix in ["_total", "_bucket", "_sum", "_count"] {
        if let Some(base) = series.strip_suffix(suffix) {
            return base;
        }
    }
    series
}

#[test]
fn the_dashboard_and_alerts_query_only_metrics_that_exist() {
    let exposed = exposed();
    assert!(exposed.contains("gatehouse_proxy_requests"), "{exposed:?}");
    assert!(
        exposed.contains("gatehouse_controller_leader"),
        "{exposed:?}"
    );
    for family in [
        "gatehouse_proxy_token_requests",
        "gatehouse_proxy_token_cache_lookups",
        "gatehouse_proxy_store_operation_duration_seconds",
        "gatehouse_proxy_store_errors",
        "gatehouse_proxy_redis_up",
        "gatehouse_proxy_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(exposed.contains(family), "{family} missing: {exposed:?}");
    }
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/gatehouse");
    for file in ["dashboards/gatehouse.json", "templates/prometheusrule.yaml"] {
        let text = std::fs::read_to_string(chart.join(file)).unwrap();
        let names = queried(&text);
        assert!(names.len() >= 5, "{file}: {names:?}");
        for name in names {
            assert!(
                exposed.contains(family(&name)),
                "{file} queries {name}, which neither the proxy nor the controller exposes"
            );
        }
    }
}

#[test]
fn the_dashboard_and_alerts_cover_tokens_the_store_redis_and_certificates() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/gatehouse");
    let read = |file: &str| std::fs::read_to_string(chart.join(file)).unwrap();
    let on = |text: &str| -> BTreeSet<String> {
        queried(text).iter().map(|n| family(n).to_owned()).collect()
    };
    let dashboard = on(&read("dashboards/gatehouse.json"));
    for family in [
        "gatehouse_proxy_token_requests",
        "gatehouse_proxy_token_cache_lookups",
        "gatehouse_proxy_store_operation_duration_seconds",
        "gatehouse_proxy_store_errors",
        "gatehouse_proxy_redis_up",
        "gatehouse_proxy_tls_certificate_expiry_timestamp_seconds",
    ] {
        assert!(
            dashboard.contains(family),
            "no dashboard panel shows {family}"
        );
    }
    let rules = read("templates/prometheusrule.yaml");
    assert!(on(&rules).contains("gatehouse_proxy_redis_up"));
    assert!(on(&rules).contains("gatehouse_proxy_tls_certificate_expiry_timestamp_seconds"));
    for alert in [
        "GatehouseRedisDown",
        "GatehouseCertificateExpiringSoon",
        "GatehouseCertificateExpired",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}")),
            "{alert} missing"
        );
    }
    // The threshold is the chart value, and the value has a default.
    assert!(rules.contains("$r.certificateExpiryDays"));
    assert!(read("values.yaml").contains("certificateExpiryDays: 14"));
}
