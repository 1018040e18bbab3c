//! The proxy as an HTTP reverse proxy, end to end on loopback: routing, header
//! hygiene, X-Forwarded-*, upstream failures, streaming, TLS with HTTP/2, hot reload,
//! admin endpoints, limits and graceful shutdown.

mod proxy_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gatehouse_e2e::binary::free_addr;
use gatehouse_e2e::upstream::{
    channel_body, echo_response, full, matches_pattern, pattern_body, pattern_check_response,
    TestBody, TestUpstream,
};
use gatehouse_proxy::forwarded::TrustedProxies;
use gatehouse_proxy::store::memory::MemoryStore;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_support::*;
use tokio::sync::{mpsc, oneshot, Notify};

fn store() -> Arc<MemoryStore> {
    Arc::new(MemoryStore::new(100))
}

#[tokio::test]
async fn requests_are_routed_by_host_class_then_longest_prefix() {
    let up = TestUpstream::echo().await;
    // Each route's endpoint has its own base path so the echo shows which route won.
    let ep = |name: &str| vec![format!("{}/{name}", up.url())];
    let mut exact = mk_route("exact", &["/"], &ep("exact"));
    exact.hosts = vec!["api.example.com".into()];
    let mut wild = mk_route("wild", &["/"], &ep("wild"));
    wild.hosts = vec!["*.example.com".into()];
    let routes = vec![
        mk_route("root", &["/"], &ep("root")),
        mk_route("api", &["/api"], &ep("api")),
        mk_route("api-v2", &["/api/v2"], &ep("apiv2")),
        exact,
        wild,
    ];
    let proxy = Proxy::start(mk_snapshot(routes), store()).await;
    let path_for = |host: &'static str, path: &'static str| {
        let url = proxy.url(path);
        async move {
            get(&url, &[("host", host)]).await.echo()["path"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(path_for("other.test", "/api/x").await, "/api/api/x");
    assert_eq!(path_for("other.test", "/api/v2/x").await, "/apiv2/api/v2/x");
    assert_eq!(path_for("other.test", "/apix").await, "/root/apix");
    assert_eq!(
        path_for("API.example.com:8000", "/api/x").await,
        "/exact/api/x"
    );
    assert_eq!(path_for("www.example.com", "/api/x").await, "/wild/api/x");
    assert_eq!(path_for("a.b.example.com", "/api/x").await, "/api/api/x");
}

#[tokio::test]
async fn no_matching_route_is_a_404_with_kongs_message() {
    let up = TestUpstream::echo().await;
    let mut only = mk_route("only", &["/only"], &[up.url()]);
    only.hosts = vec!["api.example.com".into()];
    let proxy = Proxy::start(mk_snapshot(vec![only]), store()).await;
    let resp = get(&proxy.url("/only"), &[("host", "evil.example.com")]).await;
    assert_eq!(resp.status, 404);
    assert_eq!(
        resp.json(),
        serde_json::json!({"message": "no Route matched with those values"})
    );
    let resp = get(&proxy.url("/onlyx"), &[("host", "api.example.com")]).await;
    assert_eq!(resp.status, 404);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn strip_path_and_preserve_host_shape_the_upstream_request() {
    let up = TestUpstream::echo().await;
    let mut stripped = mk_route("stripped", &["/stepon"], &[format!("{}/base", up.url())]);
    stripped.strip_path = true;
    let mut preserved = mk_route("preserved", &["/keep"], &[up.url()]);
    preserved.preserve_host = true;
    let proxy = Proxy::start(mk_snapshot(vec![stripped, preserved]), store()).await;

    let echo = get(
        &proxy.url("/stepon/stepcounts?day=mon"),
        &[("host", "public.example")],
    )
    .await
    .echo();
    assert_eq!(echo["path"], "/base/stepcounts");
    assert_eq!(echo["query"], "day=mon");
    assert_eq!(echo["headers"]["host"], up.addr.to_string());
    assert_eq!(echo["headers"]["x-forwarded-host"], "public.example");
    let echo = get(&proxy.url("/stepon"), &[]).await.echo();
    assert_eq!(echo["path"], "/base/");

    let echo = get(&proxy.url("/keep/x"), &[("host", "public.example")])
        .await
        .echo();
    assert_eq!(echo["path"], "/keep/x");
    assert_eq!(echo["headers"]["host"], "public.example");
}

#[tokio::test]
async fn dot_segments_cannot_smuggle_a_request_past_its_route() {
    let up = TestUpstream::echo().await;
    let mut private = mk_route("private", &["/private"], &[up.url()]);
    private.oauth2 = Some(mk_oauth());
    let routes = vec![mk_route("public", &["/public"], &[up.url()]), private];
    let proxy = Proxy::start(mk_snapshot(routes), store()).await;
    for path in [
        "/public/../private/x",
        "/public/%2e%2e/private/x",
        "//private/x",
    ] {
        let resp = get(&proxy.url(path), &[]).await;
        assert_eq!(resp.status, 401, "{path} must hit the protected route");
    }
    let echo = get(&proxy.url("/public/./a//b"), &[]).await.echo();
    assert_eq!(echo["path"], "/public/a/b");
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded_either_way() {
    let up = TestUpstream::start(|req| async move {
        let mut resp = echo_response(req).await;
        resp.headers_mut()
            .insert("connection", "x-internal".parse().unwrap());
        resp.headers_mut()
            .insert("x-internal", "secret".parse().unwrap());
        resp.headers_mut()
            .insert("x-end-to-end", "kept".parse().unwrap());
        resp
    })
    .await;
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
    )
    .await;
    let resp = get(
        &proxy.url("/"),
        &[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic x"),
            ("x-keep", "1"),
        ],
    )
    .await;
    let echo = resp.echo();
    for name in ["x-hop", "te", "proxy-authorization"] {
        assert!(
            echo["headers"].get(name).is_none(),
            "{name} forwarded: {echo}"
        );
    }
    assert_eq!(echo["headers"]["x-keep"], "1");
    assert!(resp.headers.get("x-internal").is_none());
    assert_eq!(resp.header("x-end-to-end"), Some("kept"));
}

#[tokio::test]
async fn forwarded_headers_are_believed_only_from_trusted_peers() {
    let up = TestUpstream::echo().await;
    let snapshot = || mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]);
    let spoofed = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
        ("x-forwarded-port", "443"),
        ("host", "internal.test"),
    ];
    // Default: loopback is trusted, so the chain is extended and the rest kept.
    let trusted = Proxy::start(snapshot(), store()).await;
    let h = get(&trusted.url("/"), &spoofed).await.echo()["headers"].clone();
    assert_eq!(h["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "api.example.com");
    assert_eq!(h["x-forwarded-port"], "443");
    // Nobody trusted: everything describes this hop.
    let untrusted = Proxy::start_with(snapshot(), store(), |a| {
        a.trusted_proxies = TrustedProxies::none()
    })
    .await;
    let h = get(&untrusted.url("/"), &spoofed).await.echo()["headers"].clone();
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "internal.test");
    assert_eq!(h["x-forwarded-port"], untrusted.addr.port().to_string());
}

#[tokio::test]
async fn forwarded_https_from_an_untrusted_peer_does_not_satisfy_the_https_rule() {
    // The OAuth2 endpoints own the HTTPS rule; the server's part is to tell them
    // whether X-Forwarded-Proto came from a trusted peer.
    let up = TestUpstream::echo().await;
    let mut route = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    route.oauth2 = Some(gatehouse_proxy::config::RouteOAuth2 {
        accept_http_if_already_terminated: true,
        enable_client_credentials: true,
        ..mk_oauth()
    });
    let snapshot = || mk_snapshot(vec![route.clone()]);
    let form = "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret";
    let xfp = [("x-forwarded-proto", "https")];
    let untrusted = Proxy::start_with(snapshot(), store(), |a| {
        a.trusted_proxies = TrustedProxies::none()
    })
    .await;
    let resp = post_form(&untrusted.url("/stepon/oauth2/token"), form, &xfp).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error_description"], "You must use HTTPS");
    let trusted = Proxy::start(snapshot(), store()).await;
    let resp = post_form(&trusted.url("/stepon/oauth2/token"), form, &xfp).await;
    assert_eq!(resp.status, 200, "{:?}", resp);
    assert!(resp.json()["access_token"].is_string());
    assert_eq!(
        up.requests(),
        0,
        "OAuth2 endpoints are answered by the proxy itself"
    );
}

#[tokio::test]
async fn oauth2_endpoint_bodies_are_size_limited() {
    let up = TestUpstream::echo().await;
    let mut route = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    route.oauth2 = Some(mk_oauth());
    let proxy = Proxy::start_with(mk_snapshot(vec![route]), store(), |a| {
        a.max_oauth_body_bytes = 1024
    })
    .await;
    let resp = post_form(&proxy.url("/stepon/oauth2/token"), &"a".repeat(2048), &[]).await;
    assert_eq!(resp.status, 413);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let dead = format!("http://{}", free_addr());
    let proxy = Proxy::start(mk_snapshot(vec![mk_route("r", &["/"], &[dead])]), store()).await;
    let resp = get(&proxy.url("/"), &[]).await;
    assert_eq!(resp.status, 502);
    assert_eq!(
        resp.json()["message"],
        "An invalid response was received from the upstream server"
    );
}

#[tokio::test]
async fn a_slow_upstream_is_a_504() {
    let up = TestUpstream::slow(Duration::from_secs(5)).await;
    let mut route = mk_route("r", &["/"], &[up.url()]);
    route.upstream.response_timeout_ms = 200;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let resp = get(&proxy.url("/"), &[]).await;
    assert_eq!(resp.status, 504);
    assert_eq!(resp.json()["message"], "The upstream server is timing out");
}

#[tokio::test]
async fn a_route_without_endpoints_is_a_503() {
    let proxy = Proxy::start(mk_snapshot(vec![mk_route("r", &["/"], &[])]), store()).await;
    let resp = get(&proxy.url("/"), &[]).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["message"], "No upstream endpoint available");
}

#[tokio::test]
async fn endpoints_are_used_round_robin() {
    let (a, b) = (TestUpstream::echo().await, TestUpstream::echo().await);
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[a.url(), b.url()])]),
        store(),
    )
    .await;
    for _ in 0..6 {
        get(&proxy.url("/"), &[]).await.echo();
    }
    assert_eq!((a.requests(), b.requests()), (3, 3));
}

#[tokio::test]
async fn twenty_mebibytes_stream_through_in_both_directions() {
    const SIZE: u64 = 20 * 1024 * 1024;
    let sink = TestUpstream::start(pattern_check_response).await;
    let source = TestUpstream::streaming(SIZE).await;
    let routes = vec![
        mk_route("up", &["/upload"], &[sink.url()]),
        mk_route("down", &["/download"], &[source.url()]),
    ];
    let proxy = Proxy::start(mk_snapshot(routes), store()).await;
    let req = Request::post(proxy.url("/upload"))
        .body(pattern_body(SIZE))
        .unwrap();
    let checked = send(req).await.echo();
    assert_eq!(checked["body_len"], SIZE);
    assert_eq!(checked["pattern_ok"], true);

    let resp = client()
        .request(
            Request::get(proxy.url("/download"))
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            assert!(
                matches_pattern(received, &data),
                "byte mismatch near offset {received}"
            );
            received += data.len() as u64;
        }
    }
    assert_eq!(received, SIZE);
}

#[tokio::test]
async fn response_bytes_reach_the_client_before_the_upstream_finishes() {
    // The upstream sends one chunk and then waits for the client to confirm it got it:
    // a proxy that buffered whole responses would deadlock here (bounded by timeout).
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let up = TestUpstream::start(move |_req| {
        let gate = gate.clone();
        async move {
            let (mut tx, body) = channel_body();
            tokio::spawn(async move {
                tx.send_data(Bytes::from_static(b"first")).await.unwrap();
                gate.notified().await;
                tx.send_data(Bytes::from_static(b"second")).await.unwrap();
            });
            Response::new(body)
        }
    })
    .await;
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
    )
    .await;
    let resp = client()
        .request(
            Request::get(proxy.url("/"))
                .body(full(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("first chunk streamed");
    assert_eq!(first.unwrap().unwrap().into_data().unwrap(), "first");
    release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "second");
}

#[tokio::test]
async fn request_bytes_reach_the_upstream_before_the_client_finishes() {
    let (seen_tx, mut seen_rx) = mpsc::channel::<Bytes>(1);
    let up = TestUpstream::start(move |req| {
        let seen = seen_tx.clone();
        async move {
            let mut body = req.into_body();
            let mut total = 0;
            while let Some(Ok(frame)) = body.frame().await {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    let _ = seen.send(data).await;
                }
            }
            Response::new(full(total.to_string()))
        }
    })
    .await;
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
    )
    .await;
    let (mut tx, body) = channel_body();
    let pending = tokio::spawn(send(Request::post(proxy.url("/")).body(body).unwrap()));
    tx.send_data(Bytes::from_static(b"part-one")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
        .await
        .expect("first part streamed");
    assert_eq!(got.unwrap(), "part-one");
    tx.send_data(Bytes::from_static(b"+two")).await.unwrap();
    drop(tx);
    let resp = pending.await.unwrap();
    assert_eq!(resp.body, "12");
}

#[tokio::test]
async fn oversized_request_heads_are_refused_with_431() {
    let up = TestUpstream::echo().await;
    let proxy = Proxy::start_with(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
        |a| a.max_header_bytes = 16 * 1024,
    )
    .await;
    let big = "x".repeat(20 * 1024);
    let resp = get(&proxy.url("/"), &[("x-big", &big)]).await;
    assert_eq!(resp.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    get(&proxy.url("/"), &[("x-small", "1")]).await.echo();
}

#[tokio::test]
async fn a_new_snapshot_is_served_without_restart() {
    let (a, b) = (TestUpstream::echo().await, TestUpstream::echo().await);
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[a.url()])]),
        store(),
    )
    .await;
    get(&proxy.url("/"), &[]).await.echo();
    let mut next = mk_snapshot(vec![
        mk_route("r", &["/"], &[b.url()]),
        mk_route("new", &["/new"], &[b.url()]),
    ]);
    next.revision = "two".into();
    proxy.config.send_replace(Some(Arc::new(next)));
    proxy.handle.wait_for_revision("two").await;
    get(&proxy.url("/new/x"), &[]).await.echo();
    get(&proxy.url("/"), &[]).await.echo();
    assert_eq!((a.requests(), b.requests()), (1, 2));
}

#[tokio::test]
async fn admin_reports_health_readiness_and_metrics() {
    let up = TestUpstream::echo().await;
    let store = Arc::new(FlakyStore::new());
    let args = gatehouse_proxy::server::ServerArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        workers: Some(2),
        ..Default::default()
    };
    let (config, rx) = gatehouse_proxy::source::channel();
    let handle = gatehouse_proxy::server::spawn(&args, rx, store.clone()).unwrap();
    let admin = format!("http://{}", handle.admin_addr.unwrap());
    assert_eq!(get(&format!("{admin}/healthz"), &[]).await.status, 200);
    let resp = get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(resp.status, 503, "not ready before a snapshot is loaded");
    assert_eq!(
        get(&format!("http://{}/", handle.http_addr), &[])
            .await
            .status,
        503
    );

    config.send_replace(Some(Arc::new(mk_snapshot(vec![mk_route(
        "r",
        &["/"],
        &[up.url()],
    )]))));
    handle.wait_for_revision("test").await;
    let resp = get(&format!("{admin}/readyz"), &[]).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["revision"], "test");
    store
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        get(&format!("{admin}/readyz"), &[]).await.status,
        503,
        "not ready while the store fails"
    );

    get(&format!("http://{}/", handle.http_addr), &[])
        .await
        .echo();
    let metrics =
        String::from_utf8(get(&format!("{admin}/metrics"), &[]).await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("gatehouse_proxy_requests_total{outcome=\"proxied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_proxy_requests_total{outcome=\"not_ready\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_proxy_config_reloads_total 1"),
        "{metrics}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let (arrived_tx, arrived_rx) = oneshot::channel::<()>();
    let arrived = Arc::new(std::sync::Mutex::new(Some(arrived_tx)));
    let release = Arc::new(Notify::new());
    let gate = release.clone();
    let up = TestUpstream::start(move |req| {
        let arrived = arrived.clone();
        let gate = gate.clone();
        async move {
            if let Some(tx) = arrived.lock().unwrap().take() {
                let _ = tx.send(());
            }
            gate.notified().await;
            echo_response(req).await
        }
    })
    .await;
    let proxy = Proxy::start(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
    )
    .await;
    let url = proxy.url("/slow");
    let in_flight = tokio::spawn(async move { get(&url, &[]).await });
    arrived_rx.await.unwrap();
    let addr = proxy.addr;
    let stopping = tokio::spawn(proxy.handle.shutdown());
    release.notify_one();
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.echo()["path"], "/slow");
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after shutdown"
    );
}

/// TLS listener with a throw-away certificate: HTTP/2 and HTTP/1.1 via ALPN.
#[tokio::test]
async fn tls_listener_speaks_http2_and_http1_and_marks_requests_https() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let proxy = Proxy::start_with(
        mk_snapshot(vec![mk_route("r", &["/"], &[up.url()])]),
        store(),
        |a| {
            a.listen_tls = Some("127.0.0.1:0".parse().unwrap());
            a.tls_cert = Some(cert_path.clone());
            a.tls_key = Some(key_path.clone());
            a.trusted_proxies = TrustedProxies::none();
        },
    )
    .await;
    let tls_addr = proxy.handle.tls_addr.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let connect = |alpn: &'static [u8]| {
        let roots = roots.clone();
        async move {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            let tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .unwrap();
            assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
            TokioIo::new(tls)
        }
    };

    // HTTP/2.
    let (mut h2, conn) = hyper::client::conn::http2::handshake::<_, _, TestBody>(
        TokioExecutor::new(),
        connect(b"h2").await,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("https://localhost:{}/h2?x=1", tls_addr.port()))
        .body(full(Bytes::new()))
        .unwrap();
    let resp = h2.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let echo: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echo["path"], "/h2");
    assert_eq!(echo["version"], "HTTP/1.1", "upstream hop is HTTP/1.1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
    assert_eq!(
        echo["headers"]["x-forwarded-host"],
        format!("localhost:{}", tls_addr.port())
    );

    // HTTP/1.1 on the same listener.
    let (mut h1, conn) =
        hyper::client::conn::http1::handshake::<_, TestBody>(connect(b"http/1.1").await)
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/h1")
        .header("host", "localhost")
        .body(full(Bytes::new()))
        .unwrap();
    let resp = h1.send_request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    let echo: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(echo["path"], "/h1");
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test]
async fn an_upstream_that_never_accepts_hits_the_connect_timeout_as_a_502() {
    // A listener that never accepts, with its accept queue filled: further SYNs are
    // dropped, so connecting hangs until the proxy's connect timeout. The response
    // timeout is far longer, so a 504 would mean the connect timeout did not apply.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..16 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    let mut route = mk_route("r", &["/"], &[format!("http://{addr}")]);
    route.upstream.connect_timeout_ms = 300;
    route.upstream.response_timeout_ms = 60_000;
    let proxy = Proxy::start(mk_snapshot(vec![route]), store()).await;
    let resp = get(&proxy.url("/"), &[]).await;
    assert_eq!(resp.status, 502, "{resp:?}");
    drop(queued);
}
