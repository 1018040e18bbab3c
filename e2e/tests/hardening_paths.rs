//! Issue 17 item 1, on the wire: the path that routing and scope rules check is the
//! path the upstream acts on. Each case sends a raw request target to a real proxy in
//! front of a real upstream that interprets paths its own way — Python's `wsgiref`
//! (percent-decodes `%2F`), embedded Tomcat 9 (drops `;` parameters, then resolves
//! `..`) — or a raw socket logger that shows the exact bytes forwarded.
//!
//! The route: `/api` protected, rule `/admin` needs scope `admin`, rule `GET /reports`
//! needs `reports`, rule `DELETE /items` needs `delete`; the caller's token has only
//! `read`. A case passes when the proxy refuses the request (400/403), or forwards it
//! and the upstream does *not* read it as one of those protected paths.

mod proxy_support;

use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_e2e::raw_http::{raw_request, RawResponse};
use gatehouse_e2e::real_upstreams::{RawLogger, ServletUpstream, WsgiUpstream};
use gatehouse_proxy::config::{Route, ScopeRule, Snapshot};
use gatehouse_proxy::store::memory::MemoryStore;
use proxy_support::*;

const READ: &str = "read-only-token";
const ADMIN: &str = "admin-token";

fn rule(path: &str, methods: &[&str], scopes: &[&str]) -> ScopeRule {
    ScopeRule {
        path: path.into(),
        methods: methods.iter().map(|m| m.to_string()).collect(),
        required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

/// The protected `/api` route to `upstream`, with `extra` snapshot fields merged into
/// the route (`{"oauth2": {...}}` merges into its oauth2 object) — options are set as
/// JSON so a misspelt or missing option fails the test at run time.
fn api_route(upstream: &str, extra: serde_json::Value) -> Route {
    let mut route = mk_route("default/api", &["/api"], &[upstream.to_owned()]);
    let mut oauth = mk_oauth();
    oauth.rules = vec![
        rule("/admin", &[], &["admin"]),
        rule("/reports", &["GET"], &["reports"]),
        rule("/items", &["DELETE"], &["delete"]),
    ];
    route.oauth2 = Some(oauth);
    let mut value = serde_json::to_value(&route).expect("routes serialize");
    merge(&mut value, extra);
    serde_json::from_value(value).expect("the route options exist in the snapshot format")
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A proxy serving `routes`, with a read-only and an admin token for `/api`.
async fn proxy(routes: Vec<Route>) -> Proxy {
    let store = Arc::new(MemoryStore::new(1000));
    issue(
        store.as_ref(),
        READ,
        mk_token("default/api", &["read"], Some(now() + 3600)),
    )
    .await;
    issue(
        store.as_ref(),
        ADMIN,
        mk_token(
            "default/api",
            &["read", "admin", "reports", "delete"],
            Some(now() + 3600),
        ),
    )
    .await;
    let snapshot: Snapshot = mk_snapshot(routes);
    Proxy::start(snapshot, store).await
}

async fn call(addr: SocketAddr, method: &str, target: &str, token: &str) -> RawResponse {
    call_with(addr, method, target, token, &[]).await
}

async fn call_with(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> RawResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    raw_request(addr, method, target, &headers, b"").await
}

/// Whether `path`, as the upstream reads it, is under a rule the read-only token
/// does not satisfy (any case: an upstream may match case-insensitively).
fn is_protected(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    ["/api/admin", "/api/reports"]
        .iter()
        .any(|p| lower == *p || lower.starts_with(&format!("{p}/")))
}

/// Spellings of `/api/admin/users` (and of escapes around it) found in the audit.
const ATTACKS: &[&str] = &[
    "/api/admin%2Fusers",
    "/api/admin%2fusers",
    "/api%2Fadmin/users",
    "/api/x/..%2Fadmin/users",
    "/api/admin;x=1/users",
    "/api/admin;/users",
    "/api/x/..;/admin/users",
    "/api/x/%2e%2e;/admin/users",
    "/api/x/.;/../admin/users",
    "/api/admin./users",
    "/api/admin%2e/users",
    "/api/admin%20/users",
    "/api/admin%09/users",
    "/api/admin%00/users",
    "/api/admin%5Cusers",
    "/api/admin%5cusers",
    "/api/admin\\users",
    "/api/x\\..\\admin/users",
    "/api/%61dmin/users",
    "/api/x/%2E%2E/admin/users",
    "/api//admin/users",
];

/// Every attack spelling sent with the read-only token: each one that reached the
/// upstream as a protected path (the upstream's `path_info`, named `seen_as`), or got
/// an answer other than a refusal or a plain 200.
async fn leaks(addr: SocketAddr, seen_as: &str) -> Vec<String> {
    let mut leaks = Vec::new();
    for target in ATTACKS {
        let resp = call(addr, "GET", target, READ).await;
        match resp.status {
            400 | 403 | 404 => {}
            200 => {
                let seen = resp.json()["path_info"].as_str().unwrap_or("").to_owned();
                if is_protected(&seen) {
                    leaks.push(format!("{target} → {seen_as} {seen}"));
                }
            }
            other => leaks.push(format!("{target} → unexpected {other}: {}", resp.text())),
        }
    }
    leaks
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_reaches_a_wsgi_upstream_as_that_path() {
    let wsgi = WsgiUpstream::start().expect("python3 wsgiref upstream starts");
    let proxy = proxy(vec![api_route(&wsgi.url(), serde_json::json!({}))]).await;
    let leaks = leaks(proxy.addr, "wsgi PATH_INFO").await;
    assert!(
        leaks.is_empty(),
        "read-only token reached admin paths:\n{}",
        leaks.join("\n")
    );
    // The admin token still gets there, spelled plainly.
    let ok = call(proxy.addr, "GET", "/api/admin/users", ADMIN).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["path_info"], "/api/admin/users");
}

#[tokio::test]
async fn no_spelling_of_a_protected_path_reaches_a_servlet_container_as_that_path() {
    let tomcat = ServletUpstream::start().expect("embedded Tomcat upstream starts");
    let proxy = proxy(vec![api_route(&tomcat.url(), serde_json::json!({}))]).await;
    // Tomcat itself refusing a spelling (400) never reaches the application.
    let leaks = leaks(proxy.addr, "servlet path").await;
    assert!(
        leaks.is_empty(),
        "read-only token reached admin paths:\n{}",
        leaks.join("\n")
    );
    // `;` parameters are kept for the upstream (session ids, matrix parameters) and the
    // checked path is what the servlet sees.
    let ok = call(proxy.addr, "GET", "/api/admin;jsessionid=1/users", ADMIN).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["path_info"], "/api/admin/users");
    assert_eq!(ok.json()["request_uri"], "/api/admin;jsessionid=1/users");
    let ok = call(proxy.addr, "GET", "/api/public;v=2/x", READ).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["path_info"], "/api/public/x");
}

#[tokio::test]
async fn refused_spellings_answer_400_and_never_reach_the_upstream() {
    let logger = RawLogger::start().await;
    let proxy = proxy(vec![
        api_route(&logger.url(), serde_json::json!({})),
        mk_route("default/open", &["/open"], &[logger.url()]),
    ])
    .await;
    for target in [
        "/open/a%2Fb",
        "/open/a%2fb",
        "/open/a%5Cb",
        "/open/a\\b",
        "/open/a%00b",
        "/open/a%0Ab",
        "/open/a%7Fb",
        "/open/a%09",
        "/open/dir./x",
        "/open/dir%20/x",
        "/api/admin%2Fusers",
    ] {
        let resp = call(proxy.addr, "GET", target, ADMIN).await;
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
    }
    assert!(logger.heads().is_empty(), "forwarded: {:?}", logger.heads());
}

#[tokio::test]
async fn the_upstream_receives_exactly_the_path_that_was_checked() {
    let logger = RawLogger::start().await;
    let proxy = proxy(vec![mk_route("default/open", &["/open"], &[logger.url()])]).await;
    let cases = [
        ("/open/./x/../y//z", "/open/y/z"),
        ("/open/%7euser/%41", "/open/~user/A"),
        ("/open/a;p=1/b", "/open/a;p=1/b"),
        ("/open/x/..;p/y", "/open/y"),
        ("/open/caf%c3%a9", "/open/caf%C3%A9"),
        ("/open/a%3Bb", "/open/a%3Bb"),
        ("/open/..", "/"),
    ];
    let mut expected_lines = Vec::new();
    for (sent, _) in cases {
        let resp = call(proxy.addr, "GET", sent, READ).await;
        // `/open/..` is `/`, which no route serves here.
        if sent == "/open/.." {
            assert_eq!(resp.status, 404, "{sent}");
            continue;
        }
        assert_eq!(resp.status, 200, "{sent}: {}", resp.text());
    }
    for (sent, forwarded) in cases {
        if sent != "/open/.." {
            expected_lines.push(format!("GET {forwarded} HTTP/1.1"));
        }
    }
    let seen: Vec<String> = logger
        .heads()
        .iter()
        .map(|h| h.lines().next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(seen, expected_lines);
}

#[tokio::test]
async fn a_route_may_opt_in_to_encoded_slashes_and_rules_still_see_them_as_separators() {
    let wsgi = WsgiUpstream::start().expect("python3 wsgiref upstream starts");
    let proxy = proxy(vec![api_route(
        &wsgi.url(),
        serde_json::json!({"allow_encoded_slashes": true}),
    )])
    .await;
    // Data with a slash in it passes and reaches the upstream encoded.
    let ok = call(proxy.addr, "GET", "/api/projects/group%2Fname", READ).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.json()["request_line"],
        "GET /api/projects/group%2Fname HTTP/1.1"
    );
    // A rule covers the path whether the upstream splits on %2F or not.
    for target in [
        "/api/admin%2Fusers",
        "/api/x/../admin%2Fusers",
        "/api/reports%2F1",
    ] {
        let resp = call(proxy.addr, "GET", target, READ).await;
        assert_eq!(resp.status, 403, "{target}: {}", resp.text());
    }
    // Dot segments hidden behind %2F are still refused.
    for target in [
        "/api/x/..%2Fadmin",
        "/api/x%2F..%2F..%2Fadmin",
        "/api/a%2F%2Fb",
    ] {
        let resp = call(proxy.addr, "GET", target, ADMIN).await;
        assert_eq!(resp.status, 400, "{target}: {}", resp.text());
    }
}

#[tokio::test]
async fn case_insensitive_rules_are_a_per_route_option() {
    let wsgi = WsgiUpstream::start().expect("python3 wsgiref upstream starts");
    let proxy = proxy(vec![api_route(
        &wsgi.url(),
        serde_json::json!({"oauth2": {"case_insensitive_rules": true}}),
    )])
    .await;
    for target in [
        "/api/ADMIN/users",
        "/api/Admin",
        "/api/REPORTS/1",
        "/api/%41dmin",
    ] {
        let resp = call(proxy.addr, "GET", target, READ).await;
        assert_eq!(resp.status, 403, "{target}: {}", resp.text());
    }
    let ok = call(proxy.addr, "GET", "/api/ADMIN/users", ADMIN).await;
    assert_eq!(ok.status, 200);
    // The path is forwarded with its case unchanged.
    assert_eq!(ok.json()["path_info"], "/api/ADMIN/users");
}

#[tokio::test]
async fn head_is_covered_by_get_rules_and_method_overrides_by_their_target_method() {
    let logger = RawLogger::start().await;
    let proxy = proxy(vec![api_route(&logger.url(), serde_json::json!({}))]).await;
    let head = call(proxy.addr, "HEAD", "/api/reports/1", READ).await;
    assert_eq!(head.status, 403);
    for header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let resp = call_with(
            proxy.addr,
            "POST",
            "/api/items/1",
            READ,
            &[(header, "DELETE")],
        )
        .await;
        assert_eq!(resp.status, 403, "{header}");
        let resp = call_with(
            proxy.addr,
            "POST",
            "/api/reports/1",
            READ,
            &[(header, "get")],
        )
        .await;
        assert_eq!(resp.status, 403, "{header} (lowercase method)");
    }
    let resp = call(proxy.addr, "POST", "/api/items/1?_method=DELETE", READ).await;
    assert_eq!(resp.status, 403, "_method query parameter");
    // With the scopes, the same requests pass.
    let ok = call_with(
        proxy.addr,
        "POST",
        "/api/items/1",
        ADMIN,
        &[("x-http-method-override", "DELETE")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert!(logger.heads().len() == 1, "{:?}", logger.heads());
}
