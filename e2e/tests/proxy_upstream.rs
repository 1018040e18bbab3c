//! Upstream-side behaviour end to end: TLS to upstreams (custom CA, system roots,
//! mTLS, HTTP/2 by ALPN), timeouts, retries, outlier ejection, connection limits,
//! request ids and the access log.

mod proxy_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_e2e::pki::TestCa;
use gatehouse_e2e::upstream::{channel_body, echo_response, TestUpstream};
use gatehouse_proxy::access_log::Mode;
use gatehouse_proxy::config::{UpstreamProtocol, UpstreamTls};
use gatehouse_proxy::store::memory::MemoryStore;
use http::Request;
use proxy_support::*;

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(100))
}

// ---------------------------------------------------------------- TLS

struct TlsSetup {
    ca: TestCa,
    dir: tempfile::TempDir,
}

impl TlsSetup {
    fn new() -> TlsSetup {
        TlsSetup {
            ca: TestCa::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A client certificate from the CA, written to files; returns their paths.
    fn client_cert_files(&self) -> (String, String) {
        let leaf = self.ca.leaf(&["gatehouse-proxy"]);
        let cert = self.dir.path().join("client.pem");
        let key = self.dir.path().join("client.key");
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        (cert.display().to_string(), key.display().to_string())
    }

    async fn upstream(&self, alpn: &[&[u8]], mtls: bool) -> TestUpstream {
        let leaf = self.ca.leaf(&["localhost", "127.0.0.1"]);
        let config = self.ca.server_config(&leaf, alpn, mtls);
        TestUpstream::start_tls(|req| async move { echo_response(req).await }, config).await
    }
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_routes_ca() {
    let tls = TlsSetup::new();
    let up = tls.upstream(&[b"http/1.1"], false).await;
    let https = format!("https://localhost:{}", up.addr.port());
    let mut trusted = mk_route("trusted", &["/trusted"], std::slice::from_ref(&https));
    trusted.upstream.tls = Some(UpstreamTls {
        ca_pem: Some(tls.ca.cert_pem.clone()),
        ..Default::default()
    });
    // System roots do not know the test CA: 502, never an unverified connection.
    let untrusted = mk_route("untrusted", &["/untrusted"], std::slice::from_ref(&https));
    // The certificate names localhost and 127.0.0.1, not this name.
    let mut wrong_name = mk_route("wrong-name", &["/wrong-name"], &[https]);
    wrong_name.upstream.tls = Some(UpstreamTls {
        ca_pem: Some(tls.ca.cert_pem.clone()),
        server_name: Some("other.example".into()),
        ..Default::default()
    });
    let proxy = Proxy::start(mk_snapshot(vec![trusted, untrusted, wrong_name]), store()).await;

    let echo = get(&proxy.url("/trusted/x"), &[]).await.echo();
    assert_eq!(echo["path"], "/trusted/x");
    assert_eq!(
        echo["headers"]["host"],
        format!("localhost:{}", up.addr.port())
    );
    assert_eq!(get(&proxy.url("/untrusted/x"), &[]).await.status, 502);
    assert_eq!(get(&proxy.url("/wrong-name/x"), &[]).await.status, 502);
    assert_eq!(up.requests(), 1);
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_the_upstream_demands_one() {
    let tls = TlsSetup::new();
    let up = tls.upstream(&[b"http/1.1"], true).await;
    let https = format!("https://127.0.0.1:{}", up.addr.port());
    let (cert, key) = tls.client_cert_files();
    let mut with_cert = mk_route("mtls", &["/mtls"], std::slice::from_ref(&https));
    with_cert.upstream.tls = Some(UpstreamTls {
        ca_pem: Some(tls.ca.cert_pem.clone()),
        client_cert_file: Some(cert),
        client_key_file: Some(key),
        ..Default::default()
    });
    let mut without = mk_route("plain", &["/plain"], &[https]);
    without.upstream.tls = Some(UpstreamTls {
        ca_pem: Some(tls.ca.cert_pem.clone()),
        ..Default::default()
    });
    let proxy = Proxy::start(mk_snapshot(vec![with_cert, without]), store()).await;
    assert_eq!(get(&proxy.url("/mtls/a"), &[]).await.status, 200);
    assert_eq!(get(&proxy.url("/plain/a"), &[]).await.status, 502);
}

#[tokio::test]
async fn http2_over_tls_is_negotiated_by_alpn() {
    let tls = TlsSetup::new();
    let up = tls.upstream(&[b"h2", b"http/1.1"], false).await;
    let mut route = mk_route(
        "h2",
        &["/"],
        &[format!("https://localhost:{}", up.addr.port())],
    );
    route.upstream.protocol = UpstreamProtocol::H2;
    route.upstream.tls = Some(UpstreamTls {
        ca_pem: Some(tls.ca.cert_pem.clone()),
        ..Default::default()
    });
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    for _ in 0..3 {
        let echo = get(&proxy.url("/v"), &[]).await.echo();
        assert_eq!(echo["version"], "HTTP/2.0");
    }
}

// ---------------------------------------------------------------- timeouts, retries, limits

#[tokio::test]
async fn the_response_timeout_starts_when_the_upload_is_complete() {
    let up = TestUpstream::echo().await;
    let mut route = mk_route("r", &["/"], &[up.url()]);
    route.timeouts.backend_request_ms = Some(400);
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let (mut tx, body) = channel_body();
    let req = Request::post(proxy.url("/upload")).body(body).unwrap();
    let sending = tokio::spawn(send(req));
    // The upload takes longer than the response timeout.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send_data(Bytes::from_static(b"chunk")).await.unwrap();
    }
    drop(tx);
    let resp = sending.await.unwrap();
    assert_eq!(resp.echo()["body"], "chunkchunkchunkchunkchunk");
}

#[tokio::test]
async fn the_request_timeout_bounds_the_whole_exchange() {
    let up = TestUpstream::slow(Duration::from_secs(2)).await;
    let mut route = mk_route("r", &["/"], &[up.url()]);
    route.timeouts.request_ms = Some(300);
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let started = std::time::Instant::now();
    assert_eq!(get(&proxy.url("/"), &[]).await.status, 504);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_endpoint_refusing_connections_is_ejected() {
    let up = TestUpstream::echo().await;
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut route = mk_route("r", &["/"], &[dead, up.url()]);
    route.upstream.outlier_detection.consecutive_failures = 1;
    route.upstream.outlier_detection.ejection_ms = 60_000;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(get(&proxy.url("/"), &[]).await.status.as_u16());
    }
    // The first pick of the dead endpoint fails; after that it is skipped.
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(up.requests(), 5);
}

#[tokio::test]
async fn requests_beyond_the_connection_limit_are_refused_at_once() {
    let up = TestUpstream::slow(Duration::from_millis(700)).await;
    let mut route = mk_route("r", &["/"], &[up.url()]);
    route.upstream.max_connections = 1;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let first = tokio::spawn(get_owned(proxy.url("/1")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = get(&proxy.url("/2"), &[]).await;
    assert_eq!(second.status, 503);
    assert_eq!(first.await.unwrap().status, 200);
    // The slot is free again.
    assert_eq!(get(&proxy.url("/3"), &[]).await.status, 200);
}

async fn get_owned(url: String) -> Resp {
    get(&url, &[]).await
}

// ---------------------------------------------------------------- request id, access log

#[tokio::test]
async fn request_ids_are_passed_through_or_generated_and_sent_both_ways() {
    let up = TestUpstream::echo().await;
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
    )
    .await;
    let resp = get(&proxy.url("/"), &[("x-request-id", "abc-123")]).await;
    assert_eq!(resp.header("x-request-id"), Some("abc-123"));
    assert_eq!(resp.echo()["headers"]["x-request-id"], "abc-123");
    let resp = get(&proxy.url("/"), &[("x-request-id", "bad id with spaces")]).await;
    let generated = resp.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    assert_eq!(resp.echo()["headers"]["x-request-id"], generated.as_str());
}

#[tokio::test]
async fn the_access_log_has_a_line_per_request_and_never_a_secret() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let mut route = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    let mut oauth = mk_oauth();
    oauth.enable_client_credentials = true;
    // The token endpoint wants HTTPS; loopback is a trusted proxy that says so.
    oauth.accept_http_if_already_terminated = true;
    route.oauth2 = Some(oauth);
    let store = store();
    const HEADER_TOKEN: &str = "header-token-must-not-be-logged";
    const QUERY_TOKEN: &str = "query-token-must-not-be-logged";
    for raw in [HEADER_TOKEN, QUERY_TOKEN] {
        issue(
            store.as_ref(),
            raw,
            mk_token("default/stepon", &[], Some(now() + 3600)),
        )
        .await;
    }
    let log = log_path.clone();
    let proxy = Proxy::start_with(mk_snapshot(vec![route]), store, move |a| {
        a.access_log = Mode::On;
        a.access_log_file = Some(log);
    })
    .await;

    // A token request with the client secret in the query is refused (issue 17) but
    // still logged, redacted; then one with the secret in the body only.
    let refused = post_form(
        &proxy.url("/stepon/oauth2/token?client_secret=secret"),
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    let token = post_form(
        &proxy.url("/stepon/oauth2/token"),
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret",
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(token.status, 200, "{token:?}");
    let issued = token.json()["access_token"].as_str().unwrap().to_owned();
    let ok = get(
        &proxy.url("/stepon/data?page=2"),
        &[("authorization", &format!("Bearer {HEADER_TOKEN}"))],
    )
    .await;
    assert_eq!(ok.status, 200);
    let ok = get(
        &proxy.url(&format!("/stepon/data?access_token={QUERY_TOKEN}&page=3")),
        &[],
    )
    .await;
    assert_eq!(ok.status, 200);
    let ok = get(
        &proxy.url("/stepon/data"),
        &[("authorization", &format!("Bearer {issued}"))],
    )
    .await;
    assert_eq!(ok.status, 200);
    let denied = get(
        &proxy.url("/stepon/data"),
        &[("authorization", "Bearer wrong-one")],
    )
    .await;
    assert_eq!(denied.status, 401);

    let lines = wait_for_lines(&log_path, 6).await;
    let text = lines.join("\n");
    for secret in [
        "secret",
        HEADER_TOKEN,
        QUERY_TOKEN,
        issued.as_str(),
        "wrong-one",
    ] {
        assert!(
            !text.contains(secret),
            "`{secret}` leaked into the access log:\n{text}"
        );
    }
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let oauth_line = &entries[0];
    assert_eq!(oauth_line["path"], "/stepon/oauth2/token");
    assert!(
        oauth_line["query"].is_null(),
        "no query string for /oauth2/*"
    );
    assert_eq!(oauth_line["outcome"], "oauth2");
    assert_eq!(oauth_line["status"], 400);
    // The refused token request is line 0; the rest shift by one.
    let entries = &entries[1..];
    assert_eq!(entries[0]["status"], 200);
    assert_eq!(entries[1]["route"], "default/stepon");
    assert_eq!(entries[1]["status"], 200);
    assert_eq!(entries[1]["query"], "page=2");
    assert_eq!(entries[1]["consumer"], "default/shoeflyshoe");
    assert_eq!(entries[1]["client_id"], "shoe-fly-shoe");
    assert_eq!(entries[1]["upstream"], up.url());
    assert_eq!(entries[2]["query"], "access_token=[redacted]&page=3");
    assert_eq!(entries[4]["outcome"], "token_invalid");
    assert_eq!(entries[4]["status"], 401);
    for entry in entries {
        assert_eq!(entry["request_id"].as_str().unwrap().len(), 32);
        assert!(entry["duration_ms"].as_f64().unwrap() >= 0.0);
    }
}

async fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} access log lines: {text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
