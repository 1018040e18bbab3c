//! `/metrics` of the real `gatehouse proxy` binary, scraped over its admin socket:
//! token endpoint results by grant, the local token cache, token store latency and
//! errors, Redis reachability while a real `redis-server` is killed and restarted,
//! and the expiry of the default and SNI certificates.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::config::{
    ClientType, Consumer, OAuth2Client, Route, RouteOAuth2, Snapshot, TlsCertificate, Upstream,
    FORMAT_VERSION,
};
use gatehouse_proxy::store::Digest;

fn mk_snapshot(upstream: &str, certificates: Vec<TlsCertificate>) -> Snapshot {
    Snapshot {
        format: FORMAT_VERSION,
        revision: "metrics-1".into(),
        routes: vec![Route {
            id: "default/stepon".into(),
            paths: vec!["/stepon".into()],
            strip_path: true,
            upstream: Upstream {
                endpoints: vec![upstream.to_owned()],
                connect_timeout_ms: 1000,
                response_timeout_ms: 5000,
                ..Default::default()
            },
            oauth2: Some(RouteOAuth2 {
                scopes: vec!["step_counts".into()],
                enable_client_credentials: true,
                accept_http_if_already_terminated: true,
                ..RouteOAuth2::default()
            }),
            ..Default::default()
        }],
        consumers: vec![Consumer {
            id: "default/sfs".into(),
            username: Some("sfs".into()),
            custom_id: None,
        }],
        clients: vec![OAuth2Client {
            client_id: "sfs".into(),
            secret_sha256: Some(Digest::of(b"sfs-secret").to_hex()),
            name: "Shoe Fly Shoe".into(),
            consumer_id: "default/sfs".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec!["https://sfs.example/cb".into()],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        certificates,
    }
}

fn write_snapshot(path: &Path, snapshot: &Snapshot) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(snapshot).unwrap()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

/// Start the binary on `snapshot_file` with `extra` flags; (process, base URL, admin URL).
fn start_proxy(snapshot_file: &Path, extra: &[String]) -> (Gatehouse, String, String) {
    let (listen, admin) = (free_addr(), free_addr());
    let mut args = vec![
        "proxy".to_owned(),
        "--config-file".to_owned(),
        snapshot_file.display().to_string(),
        "--config-poll-ms".to_owned(),
        "50".to_owned(),
        "--listen".to_owned(),
        listen.to_string(),
        "--admin-listen".to_owned(),
        admin.to_string(),
        "--workers".to_owned(),
        "1".to_owned(),
    ];
    args.extend_from_slice(extra);
    let proxy = Gatehouse::spawn(args).unwrap();
    (proxy, format!("http://{listen}"), format!("http://{admin}"))
}

async fn scrape(admin: &str) -> String {
    let resp = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of the series written exactly as `series` (name and labels), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("a number"))
}

/// Scrape until `series` has the value `want` (metrics settle asynchronously).
async fn wait_for(proxy: &Gatehouse, admin: &str, series: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(admin).await;
        if value(&text, series) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never became {want}; last scrape:\n{text}\nproxy log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(proxy: &Gatehouse, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(reqwest::get(format!("{admin}/readyz")).await, Ok(r) if r.status() == 200) {
        assert!(
            Instant::now() < deadline,
            "proxy never became ready; log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POST a client-credentials request; (status, access token if issued).
async fn token_request(base: &str, secret: &str) -> (u16, Option<String>) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/stepon/oauth2/token"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sfs"),
            ("client_secret", secret),
            ("scope", "step_counts"),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    (status, body["access_token"].as_str().map(str::to_owned))
}

async fn api_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/stepon/steps"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

const ISSUED: &str =
    r#"gatehouse_proxy_token_requests_total{grant="client_credentials",result="issued"}"#;
const INVALID_CLIENT: &str =
    r#"gatehouse_proxy_token_requests_total{grant="client_credentials",result="invalid_client"}"#;
const UNAVAILABLE_TOKEN: &str = r#"gatehouse_proxy_token_requests_total{grant="client_credentials",result="temporarily_unavailable"}"#;
const HITS: &str = r#"gatehouse_proxy_token_cache_lookups_total{result="hit"}"#;
const MISSES: &str = r#"gatehouse_proxy_token_cache_lookups_total{result="miss"}"#;
const REDIS_UP: &str = "gatehouse_proxy_redis_up";
const LOOKUP_ERRORS: &str =
    r#"gatehouse_proxy_store_errors_total{operation="access_token",error="unavailable"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_tokens_the_cache_and_redis_going_down_and_coming_back() {
    let mut redis = RedisServer::start().unwrap();
    let upstream = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    write_snapshot(&file, &mk_snapshot(&upstream.url(), vec![]));
    let (proxy, base, admin) = start_proxy(
        &file,
        &[
            "--redis".into(),
            redis.url(),
            // Long enough that the second request below is a cache hit.
            "--token-cache-ttl".into(),
            "60s".into(),
        ],
    );
    wait_ready(&proxy, &admin).await;

    let (status, token) = token_request(&base, "sfs-secret").await;
    assert_eq!(status, 200);
    let token = token.unwrap();
    assert_eq!(token_request(&base, "wrong").await.0, 400);
    assert_eq!(api_status(&base, &token).await, 200);
    assert_eq!(api_status(&base, &token).await, 200);

    let text = scrape(&admin).await;
    assert_eq!(value(&text, ISSUED), Some(1.0), "{text}");
    assert_eq!(value(&text, INVALID_CLIENT), Some(1.0), "{text}");
    assert_eq!(value(&text, HITS), Some(1.0), "{text}");
    assert_eq!(value(&text, MISSES), Some(1.0), "{text}");
    assert_eq!(value(&text, REDIS_UP), Some(1.0), "{text}");
    for operation in ["issue", "access_token", "ping"] {
        let count = format!(
            "gatehouse_proxy_store_operation_duration_seconds_count{{operation=\"{operation}\"}}"
        );
        assert!(
            value(&text, &count).unwrap_or(0.0) >= 1.0,
            "{count}: {text}"
        );
    }
    assert_eq!(value(&text, LOOKUP_ERRORS), None, "{text}");
    for secret in ["sfs-secret", "wrong", &token] {
        assert!(!text.contains(secret), "a secret in /metrics: {text}");
    }

    // Redis dies: a token the cache does not hold is refused with 503 (never allowed),
    // token issuance too, and both show.
    redis.kill();
    assert_eq!(api_status(&base, "not-a-cached-token").await, 503);
    assert_eq!(token_request(&base, "sfs-secret").await.0, 503);
    let text = scrape(&admin).await;
    assert_eq!(value(&text, REDIS_UP), Some(0.0), "{text}");
    assert_eq!(value(&text, LOOKUP_ERRORS), Some(1.0), "{text}");
    assert_eq!(value(&text, UNAVAILABLE_TOKEN), Some(1.0), "{text}");
    // The cached token still passes: that is what the cache is for.
    assert_eq!(api_status(&base, &token).await, 200);

    // Redis is back: the probe notices without any request.
    redis.restart().unwrap();
    wait_for(&proxy, &admin, REDIS_UP, 1.0, Duration::from_secs(15)).await;
}

/// A self-signed certificate for `names` whose notAfter is `year-month-day` 00:00 UTC.
fn certificate(names: &[&str], (year, month, day): (i32, u8, u8)) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn expiry_series(certificate: &str, host: &str) -> String {
    format!(
        "gatehouse_proxy_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\",host=\"{host}\"}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_expiry_is_exposed_for_the_default_and_each_sni_certificate() {
    let upstream = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let (default_pem, default_key) = certificate(&["localhost"], (2031, 3, 4));
    std::fs::write(dir.path().join("tls.crt"), &default_pem).unwrap();
    std::fs::write(dir.path().join("tls.key"), &default_key).unwrap();
    let (shop_pem, shop_key) = certificate(&["shop.example", "*.shop.example"], (2032, 5, 6));
    let shop = |cert_pem: String, key_pem: String| TlsCertificate {
        id: "default/shop-tls".into(),
        hosts: vec!["shop.example".into(), "*.shop.example".into()],
        cert_pem,
        key_pem,
        key_sealed: None,
    };
    let file = dir.path().join("snapshot.json");
    write_snapshot(
        &file,
        &mk_snapshot(&upstream.url(), vec![shop(shop_pem, shop_key)]),
    );
    let (proxy, _base, admin) = start_proxy(
        &file,
        &[
            "--listen-tls".into(),
            free_addr().to_string(),
            "--tls-cert".into(),
            dir.path().join("tls.crt").display().to_string(),
            "--tls-key".into(),
            dir.path().join("tls.key").display().to_string(),
        ],
    );
    wait_ready(&proxy, &admin).await;

    // 2031-03-04, 2032-05-06 and 2033-07-08 at 00:00 UTC in Unix seconds.
    let text = scrape(&admin).await;
    assert_eq!(
        value(&text, &expiry_series("default", "*")),
        Some(1_930_348_800.0),
        "{text}"
    );
    for host in ["shop.example", "*.shop.example"] {
        assert_eq!(
            value(&text, &expiry_series("default/shop-tls", host)),
            Some(1_967_414_400.0),
            "{text}"
        );
    }
    // Memory store: no Redis gauge.
    assert!(!text.contains(REDIS_UP), "{text}");
    // The same configuration on a proxy without a TLS listener serves no certificate.
    let (plain, _, plain_admin) = start_proxy(&file, &[]);
    wait_ready(&plain, &plain_admin).await;
    let text = scrape(&plain_admin).await;
    assert!(
        !text.contains("gatehouse_proxy_tls_certificate_expiry_timestamp_seconds{"),
        "{text}"
    );
    drop(plain);

    // The Secret is renewed: the gauge follows the new snapshot.
    let (renewed_pem, renewed_key) = certificate(&["shop.example", "*.shop.example"], (2033, 7, 8));
    write_snapshot(
        &file,
        &mk_snapshot(&upstream.url(), vec![shop(renewed_pem, renewed_key)]),
    );
    wait_for(
        &proxy,
        &admin,
        &expiry_series("default/shop-tls", "shop.example"),
        2_004_393_600.0,
        Duration::from_secs(20),
    )
    .await;
}
