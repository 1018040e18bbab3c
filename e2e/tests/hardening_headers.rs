//! Issue 17 item 2, on the wire: no client spelling of an identity header reaches an
//! upstream that could read it as the proxy's, a client's `Connection` list never
//! removes what the proxy set, and an `authenticated_userid` that cannot travel in a
//! header is refused when the token would be issued, not silently dropped later.
//!
//! The upstream is Python's `wsgiref` server: CGI naming maps `X-Authenticated-Userid`,
//! `X_Authenticated_Userid` and `x-AUTHENTICATED_userid` to the one variable
//! `HTTP_X_AUTHENTICATED_USERID` (joining repeats with `,`), so any spelling that
//! survives the proxy shows up there.

mod proxy_support;

use std::sync::Arc;

use gatehouse_e2e::raw_http::raw_request;
use gatehouse_e2e::real_upstreams::{RawLogger, WsgiUpstream};
use gatehouse_proxy::config::Route;
use gatehouse_proxy::forwarded::TrustedProxies;
use gatehouse_proxy::server::ServerArgs;
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::Digest;
use proxy_support::*;

const GOOD: &str = "good-token";
const PROVISION_KEY: &str = "provision-key-of-the-login-app";

/// `/api` protected (password grant on, provision key set) and `/open` plain, both to
/// `upstream`.
fn routes(upstream: &str) -> Vec<Route> {
    let mut api = mk_route("default/api", &["/api"], &[upstream.to_owned()]);
    let mut oauth = mk_oauth();
    oauth.provision_key_sha256 = Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex());
    oauth.enable_password_grant = true;
    oauth.accept_http_if_already_terminated = true;
    api.oauth2 = Some(oauth);
    vec![
        api,
        mk_route("default/open", &["/open"], &[upstream.to_owned()]),
    ]
}

async fn proxy(upstream: &str, tweak: impl FnOnce(&mut ServerArgs)) -> Proxy {
    let store = Arc::new(MemoryStore::new(1000));
    issue(
        store.as_ref(),
        GOOD,
        mk_token("default/api", &["read"], Some(now() + 3600)),
    )
    .await;
    Proxy::start_with(mk_snapshot(routes(upstream)), store, tweak).await
}

/// Spellings of the identity and forwarding headers a CGI/WSGI server folds together.
const SPOOFS: &[(&str, &str)] = &[
    ("X_Authenticated_Userid", "admin"),
    ("x-authenticated_userid", "admin"),
    ("X_AUTHENTICATED-USERID", "admin"),
    ("X_Consumer_ID", "admin"),
    ("x_consumer-username", "admin"),
    ("X_Consumer_Custom_ID", "admin"),
    ("x_credential_identifier", "admin"),
    ("X_Authenticated_Scope", "admin"),
    ("X_Anonymous_Consumer", "false"),
    ("X_Forwarded_For", "10.66.66.66"),
    ("X_Forwarded_Host", "evil.example"),
    ("X_Forwarded_Proto", "https"),
    ("X_Forwarded_Port", "1"),
];

#[tokio::test]
async fn no_spelling_of_an_identity_header_reaches_a_wsgi_upstream() {
    let wsgi = WsgiUpstream::start().expect("python3 wsgiref upstream starts");
    // Nobody is a trusted proxy here, so forwarding headers are the proxy's alone too.
    let proxy = proxy(&wsgi.url(), |a| a.trusted_proxies = TrustedProxies::none()).await;

    let plain = raw_request(proxy.addr, "GET", "/open/x", SPOOFS, b"").await;
    assert_eq!(plain.status, 200, "{}", plain.text());
    let env = plain.json()["http"].clone();
    for name in [
        "HTTP_X_AUTHENTICATED_USERID",
        "HTTP_X_CONSUMER_ID",
        "HTTP_X_CONSUMER_USERNAME",
        "HTTP_X_CONSUMER_CUSTOM_ID",
        "HTTP_X_CREDENTIAL_IDENTIFIER",
        "HTTP_X_AUTHENTICATED_SCOPE",
        "HTTP_X_ANONYMOUS_CONSUMER",
    ] {
        assert!(
            env.get(name).is_none(),
            "{name} reached the upstream: {env}"
        );
    }
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "http", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_HOST"], "test", "{env}");

    let auth = format!("Bearer {GOOD}");
    let mut headers = SPOOFS.to_vec();
    headers.push(("authorization", &auth));
    let protected = raw_request(proxy.addr, "GET", "/api/x", &headers, b"").await;
    assert_eq!(protected.status, 200, "{}", protected.text());
    let env = protected.json()["http"].clone();
    assert_eq!(env["HTTP_X_AUTHENTICATED_USERID"], "clark", "{env}");
    assert_eq!(env["HTTP_X_CONSUMER_ID"], "default/shoeflyshoe", "{env}");
    assert_eq!(env["HTTP_X_AUTHENTICATED_SCOPE"], "read", "{env}");
    assert!(env.get("HTTP_X_ANONYMOUS_CONSUMER").is_none(), "{env}");
}

#[tokio::test]
async fn a_clients_connection_header_cannot_remove_what_the_proxy_sets() {
    let logger = RawLogger::start().await;
    let proxy = proxy(&logger.url(), |a| {
        a.trusted_proxies = TrustedProxies::none()
    })
    .await;
    let auth = format!("Bearer {GOOD}");
    let resp = raw_request(
        proxy.addr,
        "GET",
        "/api/x",
        &[
            ("authorization", &auth),
            (
                "connection",
                "X-Authenticated-Userid, x-consumer-id, X-Forwarded-For, x-forwarded-proto, X-Credential-Identifier, x-hop",
            ),
            ("x-hop", "client hop-by-hop header"),
        ],
        b"",
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let heads = logger.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let head = heads[0].to_ascii_lowercase();
    for expected in [
        "x-authenticated-userid: clark",
        "x-consumer-id: default/shoeflyshoe",
        "x-credential-identifier: shoe-fly-shoe",
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
    ] {
        assert!(head.contains(expected), "missing `{expected}` in:\n{head}");
    }
    // The client's own hop-by-hop header is still removed, and so is its Connection.
    assert!(!head.contains("x-hop"), "{head}");
    assert!(!head.contains("client hop-by-hop"), "{head}");
}

#[tokio::test]
async fn a_user_id_that_cannot_be_a_header_value_is_refused_when_issuing() {
    let logger = RawLogger::start().await;
    let proxy = proxy(&logger.url(), |_| {}).await;
    for user in [
        "clark%0D%0AX-Admin:%201",
        "clark%00",
        "cl%09ark",
        "clark%7F",
    ] {
        let authorize = format!(
            "provision_key={PROVISION_KEY}&authenticated_userid={user}&client_id=shoe-fly-shoe&response_type=code"
        );
        let resp = post_form(
            &proxy.url("/api/oauth2/authorize"),
            &authorize,
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(resp.status, 400, "authorize {user}: {:?}", resp.body);
        assert_eq!(resp.json()["error"], "invalid_request", "authorize {user}");

        let password = format!(
            "grant_type=password&provision_key={PROVISION_KEY}&authenticated_userid={user}&client_id=shoe-fly-shoe&client_secret=secret"
        );
        let resp = post_form(
            &proxy.url("/api/oauth2/token"),
            &password,
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(resp.status, 400, "password {user}: {:?}", resp.body);
        assert_eq!(resp.json()["error"], "invalid_request", "password {user}");
    }
    // A printable id with spaces and non-ASCII letters is fine.
    let resp = post_form(
        &proxy.url("/api/oauth2/token"),
        &format!("grant_type=password&provision_key={PROVISION_KEY}&authenticated_userid=Cl%C3%A1rk%20Kent&client_id=shoe-fly-shoe&client_secret=secret"),
        &[("x-forwarded-proto", "https")],
    )
    .await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
}
