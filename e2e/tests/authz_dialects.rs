//! The external authorization endpoints over real HTTP, with the exact requests each
//! fronting proxy sends: Envoy's ext_authz HTTP service (also what Gateway API's
//! `ExternalAuth` filter configures), Traefik's ForwardAuth, and nginx / ingress-nginx
//! `auth_request` (whose real-nginx flow is in `authz_nginx.rs`). Plus the rules every
//! dialect shares: trusted proxies only, never proxied, no route → 404, store down → 503.

mod proxy_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_e2e::upstream::{full, TestUpstream};
use gatehouse_proxy::config::{Route, ScopeRule};
use gatehouse_proxy::forwarded::TrustedProxies;
use http::{Method, Request};
use proxy_support::*;

const GOOD: &str = "good-token-for-stepon";
const NARROW: &str = "narrow-token-for-stepon";

fn stepon_route(up: &TestUpstream) -> Route {
    let mut route = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    let mut oauth = mk_oauth();
    oauth.rules = vec![ScopeRule {
        path: "/admin".into(),
        methods: vec!["DELETE".into()],
        required_scopes: vec!["admin".into()],
    }];
    route.hosts = vec!["api.example.com".into()];
    route.oauth2 = Some(oauth);
    route
}

async fn setup_with(trusted: bool) -> (TestUpstream, Arc<FlakyStore>, Proxy) {
    let up = TestUpstream::echo().await;
    let store = Arc::new(FlakyStore::new());
    let expires = Some(now() + 3600);
    let token = mk_token("default/stepon", &["read", "admin"], expires);
    issue(&store.inner, GOOD, token).await;
    issue(
        &store.inner,
        NARROW,
        mk_token("default/stepon", &["read"], expires),
    )
    .await;
    // A catch-all plain route: requests under the reserved prefix must never reach it.
    let routes = vec![
        stepon_route(&up),
        mk_route("default/root", &["/"], &[up.url()]),
    ];
    let proxy = Proxy::start_with(mk_snapshot(routes), store.clone(), |args| {
        if !trusted {
            args.trusted_proxies = TrustedProxies::none();
        }
    })
    .await;
    (up, store, proxy)
}

async fn setup() -> (TestUpstream, Arc<FlakyStore>, Proxy) {
    setup_with(true).await
}

async fn request(method: Method, url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(full(Bytes::new())).unwrap()).await
}

/// What Envoy's ext_authz HTTP client sends for `method path` with a bearer token:
/// the original method, `Host`, the path prefix + original path, `Content-Length: 0`,
/// and its own request id / timeout headers.
fn envoy_headers(token: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("host", "api.example.com"),
        ("content-length", "0"),
        ("x-forwarded-proto", "https"),
        ("x-request-id", "0b0e7a5c-2d5e-4c55-b0a4-4d1d3f9e1c11"),
        ("x-envoy-expected-rq-timeout-ms", "10000"),
        ("x-envoy-internal", "true"),
    ];
    if let Some(t) = token {
        h.push(("authorization", t));
    }
    h
}

fn assert_identity(resp: &Resp, scope: &str) {
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("x-consumer-id"), Some("default/shoeflyshoe"));
    assert_eq!(resp.header("x-consumer-username"), Some("shoeflyshoe"));
    assert_eq!(resp.header("x-consumer-custom-id"), Some("sfs-001"));
    assert_eq!(
        resp.header("x-credential-identifier"),
        Some("shoe-fly-shoe")
    );
    assert_eq!(resp.header("x-authenticated-userid"), Some("clark"));
    assert_eq!(resp.header("x-authenticated-scope"), Some(scope));
    assert_eq!(resp.header("x-anonymous-consumer"), None);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(resp.body.is_empty());
}

#[tokio::test]
async fn envoy_ext_authz_allows_with_identity_and_denies_like_inline() {
    let (up, _, proxy) = setup().await;
    let good = format!("Bearer {GOOD}");
    let narrow = format!("Bearer {NARROW}");

    let resp = request(
        Method::POST,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/counts?day=1"),
        &envoy_headers(Some(&good)),
    )
    .await;
    assert_identity(&resp, "read admin");

    let missing = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/counts"),
        &envoy_headers(None),
    )
    .await;
    let inline = get(&proxy.url("/stepon/counts"), &[("host", "api.example.com")]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.status, inline.status);
    // The same challenge; the metadata URL carries each request's own scheme (Envoy
    // says the original was HTTPS, the inline request here is plain HTTP).
    let challenge = |r: &Resp| {
        let value = r.header("www-authenticate").unwrap_or_default().to_owned();
        let (rest, url) = value
            .split_once(", resource_metadata=\"")
            .expect("the challenge names the resource metadata");
        assert!(
            url.ends_with("://api.example.com/.well-known/oauth-protected-resource/stepon\""),
            "{url}"
        );
        rest.to_owned()
    };
    assert_eq!(challenge(&missing), challenge(&inline));
    assert_eq!(missing.body, inline.body);
    assert_eq!(missing.json()["error"], "invalid_request");

    let forbidden = request(
        Method::DELETE,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/admin/7"),
        &envoy_headers(Some(&narrow)),
    )
    .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(forbidden.json()["error"], "insufficient_scope");
    assert!(forbidden
        .header("www-authenticate")
        .is_some_and(|c| c.contains("scope=\"admin\"")));
    // The rule is for DELETE only: the method Envoy sends is the method checked.
    let get_admin = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/admin/7"),
        &envoy_headers(Some(&narrow)),
    )
    .await;
    assert_identity(&get_admin, "read");
    assert_eq!(up.requests(), 0, "a decision never reaches the upstream");
}

#[tokio::test]
async fn traefik_forward_auth_headers_select_route_method_and_path() {
    let (up, _, proxy) = setup().await;
    let good = format!("Bearer {GOOD}");
    let narrow = format!("Bearer {NARROW}");
    // Traefik sends a GET to the address with the client's headers copied and the
    // original request in X-Forwarded-*.
    let traefik = |method: &'static str, uri: &'static str, token: &str| -> Vec<(String, String)> {
        vec![
            ("x-forwarded-method".into(), method.into()),
            ("x-forwarded-proto".into(), "https".into()),
            ("x-forwarded-host".into(), "api.example.com".into()),
            ("x-forwarded-uri".into(), uri.into()),
            ("x-forwarded-for".into(), "203.0.113.7".into()),
            ("x-real-ip".into(), "203.0.113.7".into()),
            ("user-agent".into(), "curl/8".into()),
            ("authorization".into(), token.into()),
        ]
    };
    let call = |h: Vec<(String, String)>| {
        let url = proxy.url("/_gatehouse/authz/forward-auth");
        async move {
            let pairs: Vec<(&str, &str)> =
                h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            request(Method::GET, &url, &pairs).await
        }
    };
    assert_identity(
        &call(traefik("GET", "/stepon/x?y=1", &good)).await,
        "read admin",
    );
    let denied = call(traefik("DELETE", "/stepon/admin/1", &narrow)).await;
    assert_eq!(denied.status, 403);
    let wrong_host = {
        let mut h = traefik("GET", "/stepon/x", &good);
        h[2].1 = "other.example.com".into();
        call(h).await
    };
    // On another host `/stepon` is served by the catch-all plain route: allowed, but
    // with no identity at all (exactly what a proxied request there would get).
    assert_eq!(wrong_host.status, 200);
    assert_eq!(wrong_host.header("x-consumer-id"), None);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn ingress_nginx_auth_url_requests_are_answered() {
    let (_, _, proxy) = setup().await;
    let good = format!("Bearer {GOOD}");
    // ingress-nginx's auth subrequest (`nginx.ingress.kubernetes.io/auth-url`).
    let headers = [
        ("host", "gatehouse.gatehouse-system.svc.cluster.local"),
        ("x-original-url", "https://api.example.com/stepon/counts"),
        ("x-original-method", "GET"),
        ("x-sent-from", "nginx-ingress-controller"),
        ("x-real-ip", "203.0.113.7"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-auth-request-redirect", "/stepon/counts"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
        ("authorization", good.as_str()),
    ];
    let resp = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/auth-request"),
        &headers,
    )
    .await;
    assert_identity(&resp, "read admin");
    let head = request(
        Method::HEAD,
        &proxy.url("/_gatehouse/authz/auth-request"),
        &headers,
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-consumer-id"), Some("default/shoeflyshoe"));
    let post = request(
        Method::POST,
        &proxy.url("/_gatehouse/authz/auth-request"),
        &headers,
    )
    .await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
}

#[tokio::test]
async fn client_identity_headers_are_never_echoed_as_a_decision() {
    let (_, _, proxy) = setup().await;
    // A public route's decision carries no identity; spoofed ones sent along with the
    // decision request must not come back as if Gatehouse had said them.
    let resp = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/public"),
        &[
            ("host", "api.example.com"),
            ("x-consumer-id", "evil"),
            ("x-authenticated-userid", "evil"),
            ("x-anonymous-consumer", "true"),
        ],
    )
    .await;
    assert_eq!(resp.status, 200);
    for name in [
        "x-consumer-id",
        "x-authenticated-userid",
        "x-anonymous-consumer",
    ] {
        assert_eq!(resp.header(name), None, "{name}");
    }
}

#[tokio::test]
async fn only_trusted_proxies_may_ask() {
    let (up, _, proxy) = setup_with(false).await;
    let good = format!("Bearer {GOOD}");
    let resp = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/x"),
        &envoy_headers(Some(&good)),
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.header("x-consumer-id"), None);
    assert!(resp.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("trusted")));
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn the_reserved_prefix_is_never_proxied_and_errors_are_explained() {
    let (up, _, proxy) = setup().await;
    let unknown = get(&proxy.url("/_gatehouse/authz/nope"), &[]).await;
    assert_eq!(unknown.status, 404);
    let bad = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/auth-request"),
        &[("x-original-url", "https://api.example.com/stepon")],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.json()["message"],
        "the X-Original-Method header is missing"
    );
    let no_route = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/anything"),
        &envoy_headers(None),
    )
    .await;
    // `/anything` on api.example.com: the catch-all route has no host, so it answers.
    assert_eq!(no_route.status, 200);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn no_route_is_404_and_a_failing_store_is_503_never_an_allow() {
    let up = TestUpstream::echo().await;
    let store = Arc::new(FlakyStore::new());
    let token = mk_token("default/stepon", &["read"], Some(now() + 3600));
    issue(&store.inner, GOOD, token).await;
    let proxy = Proxy::start(mk_snapshot(vec![stepon_route(&up)]), store.clone()).await;
    let good = format!("Bearer {GOOD}");

    let mut headers = envoy_headers(Some(&good));
    let no_route = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/elsewhere"),
        &headers,
    )
    .await;
    assert_eq!(no_route.status, 404);
    assert_eq!(
        no_route.json()["message"],
        "No route matches the original request's host and path"
    );
    headers[0] = ("host", "other.example.com");
    let other_host = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/x"),
        &headers,
    )
    .await;
    assert_eq!(other_host.status, 404);

    store.failing.store(true, Ordering::SeqCst);
    let down = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/x"),
        &envoy_headers(Some(&good)),
    )
    .await;
    assert_eq!(down.status, 503);
    assert_eq!(down.json()["error"], "temporarily_unavailable");
    assert_eq!(down.header("x-consumer-id"), None);
}

/// `calls=` of `cmdstat_get` in Redis's `INFO commandstats` (0 before the first GET).
fn redis_gets(redis: &gatehouse_e2e::redis_server::RedisServer) -> u64 {
    let info = redis
        .command(&["INFO", "commandstats"])
        .expect("redis answers INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_cached_token_is_decided_without_a_redis_round_trip() {
    let redis = gatehouse_e2e::redis_server::RedisServer::start().expect("redis-server starts");
    let store = gatehouse_proxy::store::args::StoreArgs {
        redis: Some(redis.url()),
        token_cache_ttl: std::time::Duration::from_secs(300),
        ..Default::default()
    }
    .build()
    .await
    .expect("redis store");
    let token = mk_token("default/stepon", &["read"], Some(now() + 3600));
    issue(store.as_ref(), GOOD, token).await;
    let up = TestUpstream::echo().await;
    let proxy = Proxy::start(mk_snapshot(vec![stepon_route(&up)]), store).await;
    let good = format!("Bearer {GOOD}");
    let url = proxy.url("/_gatehouse/authz/ext-authz/stepon/x");

    let first = request(Method::GET, &url, &envoy_headers(Some(&good))).await;
    assert_identity(&first, "read");
    let after_first = redis_gets(&redis);
    assert!(after_first >= 1, "the first decision reads Redis");
    for _ in 0..3 {
        let again = request(Method::GET, &url, &envoy_headers(Some(&good))).await;
        assert_identity(&again, "read");
    }
    assert_eq!(
        redis_gets(&redis),
        after_first,
        "cache hits must not read Redis"
    );
}

/// A route without a backend (auth-only): it issues tokens at its `/oauth2/*` endpoints
/// and answers decisions, but a request sent to it directly gets 404 and never falls
/// through to a broader route.
#[tokio::test]
async fn an_auth_only_route_issues_and_decides_but_proxies_nothing() {
    let up = TestUpstream::echo().await;
    let mut route = mk_route("default/stepon", &["/stepon"], &[]);
    route.hosts = vec!["api.example.com".into()];
    route.auth_only = true;
    let mut oauth = mk_oauth();
    oauth.enable_client_credentials = true;
    oauth.accept_http_if_already_terminated = true;
    route.oauth2 = Some(oauth);
    let routes = vec![route, mk_route("default/root", &["/"], &[up.url()])];
    let store = Arc::new(FlakyStore::new());
    let proxy = Proxy::start(mk_snapshot(routes), store).await;
    let host = [("host", "api.example.com"), ("x-forwarded-proto", "https")];

    let direct = request(Method::GET, &proxy.url("/stepon/counts"), &host).await;
    assert_eq!(direct.status, 404, "{direct:?}");
    let with_token = request(
        Method::GET,
        &proxy.url("/stepon/counts"),
        &[("host", "api.example.com"), ("authorization", "Bearer x")],
    )
    .await;
    assert_eq!(with_token.status, 404, "{with_token:?}");
    assert_eq!(up.requests(), 0, "nothing reaches the catch-all route");

    let token = post_form(
        &proxy.url("/stepon/oauth2/token"),
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret",
        &host,
    )
    .await;
    assert_eq!(token.status, 200, "{token:?}");
    let access = token.json()["access_token"].as_str().unwrap().to_owned();

    let bearer = format!("Bearer {access}");
    let allowed = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/counts"),
        &envoy_headers(Some(&bearer)),
    )
    .await;
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(
        allowed.header("x-credential-identifier"),
        Some("shoe-fly-shoe")
    );
    let denied = request(
        Method::GET,
        &proxy.url("/_gatehouse/authz/ext-authz/stepon/counts"),
        &envoy_headers(None),
    )
    .await;
    assert_eq!(denied.status, 401, "{denied:?}");
    assert_eq!(up.requests(), 0);
}
