//! Token enforcement on proxied requests, end to end: a real proxy on loopback, the
//! real in-memory token store, and an echo upstream that shows what it received.

mod proxy_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::config::{Route, ScopeRule};
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::TokenStore;
use proxy_support::*;

const GOOD: &str = "good-token-for-stepon";

/// `/stepon` protected (rules: GET /stepcounts needs step_counts, POST /admin needs
/// admin), `/open` unprotected, both to one echo upstream.
fn mk_routes(up: &TestUpstream, tweak: impl FnOnce(&mut Route)) -> Vec<Route> {
    let mut stepon = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    let mut oauth = mk_oauth();
    oauth.rules = vec![
        ScopeRule {
            path: "/stepcounts".into(),
            methods: vec!["GET".into()],
            required_scopes: vec!["step_counts".into()],
        },
        ScopeRule {
            path: "/admin".into(),
            methods: vec!["POST".into()],
            required_scopes: vec!["admin".into()],
        },
    ];
    stepon.oauth2 = Some(oauth);
    tweak(&mut stepon);
    vec![stepon, mk_route("default/open", &["/open"], &[up.url()])]
}

async fn setup(tweak: impl FnOnce(&mut Route)) -> (TestUpstream, Proxy, Arc<MemoryStore>) {
    let up = TestUpstream::echo().await;
    let store = Arc::new(MemoryStore::new(1000));
    issue(
        store.as_ref(),
        GOOD,
        mk_token("default/stepon", &["step_counts"], Some(now() + 3600)),
    )
    .await;
    let proxy = Proxy::start(mk_snapshot(mk_routes(&up, tweak)), store.clone()).await;
    (up, proxy, store)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_request_without_a_token_is_refused_with_invalid_request() {
    let (up, proxy, _) = setup(|_| {}).await;
    let resp = get(&proxy.url("/stepon/stepcounts"), &[]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"service\", error=\"invalid_request\", error_description=\"The access token is missing\"")
    );
    assert_eq!(resp.json()["error"], "invalid_request");
    assert_eq!(
        resp.json()["error_description"],
        "The access token is missing"
    );
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn an_unknown_token_is_refused_with_invalid_token() {
    let (up, proxy, _) = setup(|_| {}).await;
    let resp = get(
        &proxy.url("/stepon/x"),
        &[("authorization", &bearer("nope"))],
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_token");
    assert_eq!(
        resp.json()["error_description"],
        "The access token is invalid or has expired"
    );
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn a_valid_bearer_token_passes_with_the_callers_identity() {
    let (_up, proxy, _) = setup(|_| {}).await;
    let echo = get(
        &proxy.url("/stepon/stepcounts"),
        &[("authorization", &bearer(GOOD))],
    )
    .await
    .echo();
    let h = &echo["headers"];
    assert_eq!(h["x-consumer-id"], "default/shoeflyshoe");
    assert_eq!(h["x-consumer-username"], "shoeflyshoe");
    assert_eq!(h["x-consumer-custom-id"], "sfs-001");
    assert_eq!(h["x-credential-identifier"], "shoe-fly-shoe");
    assert_eq!(h["x-authenticated-scope"], "step_counts");
    assert_eq!(h["x-authenticated-userid"], "clark");
    assert!(h.get("x-anonymous-consumer").is_none());
    // Without hide_credentials the upstream sees the token too.
    assert_eq!(h["authorization"], bearer(GOOD));
}

#[tokio::test]
async fn identity_headers_sent_by_the_client_never_reach_the_upstream() {
    let (_up, proxy, _) = setup(|_| {}).await;
    let spoof = [
        ("x-consumer-id", "admin"),
        ("x-consumer-custom-id", "admin"),
        ("x-consumer-username", "admin"),
        ("x-credential-identifier", "admin"),
        ("x-authenticated-scope", "admin"),
        ("x-authenticated-userid", "admin"),
        ("x-anonymous-consumer", "false"),
    ];
    // Unprotected route: all removed.
    let echo = get(&proxy.url("/open/x"), &spoof).await.echo();
    for (name, _) in &spoof {
        assert!(
            echo["headers"].get(*name).is_none(),
            "{name} leaked: {echo}"
        );
    }
    // Protected route: replaced by the real identity (userid of the token, not "admin").
    let mut with_token = spoof.to_vec();
    let auth = bearer(GOOD);
    with_token.push(("authorization", &auth));
    let echo = get(&proxy.url("/stepon/x"), &with_token).await.echo();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
    assert_eq!(echo["headers"]["x-consumer-id"], "default/shoeflyshoe");
    assert!(echo["headers"].get("x-anonymous-consumer").is_none());
}

#[tokio::test]
async fn tokens_are_accepted_from_the_query_and_from_a_form_body() {
    let (_up, proxy, _) = setup(|_| {}).await;
    let echo = get(
        &proxy.url(&format!("/stepon/x?a=1&access_token={GOOD}")),
        &[],
    )
    .await
    .echo();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
    assert_eq!(echo["query"], format!("a=1&access_token={GOOD}"));

    let form = format!("steps=1200&access_token={GOOD}&day=mon");
    let echo = post_form(&proxy.url("/stepon/x"), &form, &[]).await.echo();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
    // The body had to be read to find the token; the upstream still gets all of it.
    assert_eq!(echo["body"], form);
    assert_eq!(echo["headers"]["content-length"], form.len().to_string());
}

#[tokio::test]
async fn an_oversized_form_body_is_refused_before_any_token_check() {
    let (up, proxy, _) = setup(|_| {}).await;
    let form = format!("pad={}", "x".repeat(70 * 1024));
    let resp = post_form(&proxy.url("/stepon/x"), &form, &[]).await;
    assert_eq!(resp.status, 413);
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn hide_credentials_removes_the_token_from_header_query_and_form() {
    let (_up, proxy, _) = setup(|r| r.oauth2.as_mut().unwrap().hide_credentials = true).await;
    let echo = get(&proxy.url("/stepon/x"), &[("authorization", &bearer(GOOD))])
        .await
        .echo();
    assert!(echo["headers"].get("authorization").is_none());
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");

    let echo = get(
        &proxy.url(&format!("/stepon/x?a=1%20&access_token={GOOD}&b=2")),
        &[],
    )
    .await
    .echo();
    assert_eq!(echo["query"], "a=1%20&b=2");
    let echo = get(&proxy.url(&format!("/stepon/x?access_token={GOOD}")), &[])
        .await
        .echo();
    assert_eq!(echo["query"], serde_json::Value::Null);

    let echo = post_form(
        &proxy.url("/stepon/x"),
        &format!("a=1&access_token={GOOD}&b=2"),
        &[],
    )
    .await
    .echo();
    assert_eq!(echo["body"], "a=1&b=2");
    assert_eq!(echo["headers"]["content-length"], "7");
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
}

#[tokio::test]
async fn a_token_of_another_route_is_invalid_here() {
    let (_up, proxy, store) = setup(|_| {}).await;
    issue(
        store.as_ref(),
        "other",
        mk_token("default/other", &["step_counts"], None),
    )
    .await;
    let resp = get(
        &proxy.url("/stepon/x"),
        &[("authorization", &bearer("other"))],
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_token");
}

#[tokio::test]
async fn global_tokens_work_only_on_global_routes() {
    let up = TestUpstream::echo().await;
    let store = Arc::new(MemoryStore::new(100));
    let mut token = mk_token("default/issuer", &[], None);
    token.grant.global = true;
    issue(store.as_ref(), "global", token).await;
    let mut global = mk_route("default/global", &["/global"], &[up.url()]);
    global.oauth2 = Some(gatehouse_proxy::config::RouteOAuth2 {
        global_credentials: true,
        ..mk_oauth()
    });
    let mut local = mk_route("default/local", &["/local"], &[up.url()]);
    local.oauth2 = Some(mk_oauth());
    let proxy = Proxy::start(mk_snapshot(vec![global, local]), store).await;
    let auth = bearer("global");
    let echo = get(&proxy.url("/global/x"), &[("authorization", &auth)])
        .await
        .echo();
    assert_eq!(echo["headers"]["x-credential-identifier"], "shoe-fly-shoe");
    let resp = get(&proxy.url("/local/x"), &[("authorization", &auth)]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_token");
}

#[tokio::test]
async fn an_expired_token_is_refused_even_when_the_store_still_returns_it() {
    // The store's clock lags the proxy's by an hour: it still hands the record out,
    // the proxy's own expiry check must refuse it.
    let up = TestUpstream::echo().await;
    let lagging = gatehouse_proxy::store::memory::Clock::manual(now() - 3600);
    let store = Arc::new(MemoryStore::with_clock(100, lagging));
    issue(
        store.as_ref(),
        "stale",
        mk_token("default/stepon", &["step_counts"], Some(now() - 60)),
    )
    .await;
    assert!(store
        .access_token(gatehouse_proxy::store::Digest::of(b"stale"))
        .await
        .unwrap()
        .is_some());
    let proxy = Proxy::start(mk_snapshot(mk_routes(&up, |_| {})), store).await;
    let resp = get(
        &proxy.url("/stepon/x"),
        &[("authorization", &bearer("stale"))],
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_token");
}

#[tokio::test]
async fn scope_rules_are_enforced_per_path_and_method() {
    let (up, proxy, _) = setup(|_| {}).await;
    let auth = bearer(GOOD);
    // GET /stepcounts needs step_counts: granted.
    get(
        &proxy.url("/stepon/stepcounts/today"),
        &[("authorization", &auth)],
    )
    .await
    .echo();
    // POST /admin needs admin: not granted.
    let resp = post_form(
        &proxy.url("/stepon/admin/reset"),
        "",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.json()["error"], "insufficient_scope");
    let challenge = resp.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.ends_with("scope=\"admin\""), "{challenge}");
    // GET /admin has no rule: any valid token passes.
    get(
        &proxy.url("/stepon/admin/reset"),
        &[("authorization", &auth)],
    )
    .await
    .echo();
    assert_eq!(up.requests(), 2);
}

#[tokio::test]
async fn a_token_without_the_rule_scope_is_forbidden() {
    let (_up, proxy, store) = setup(|_| {}).await;
    issue(
        store.as_ref(),
        "bio",
        mk_token("default/stepon", &["biometric"], None),
    )
    .await;
    let resp = get(
        &proxy.url("/stepon/stepcounts"),
        &[("authorization", &bearer("bio"))],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert!(resp
        .header("www-authenticate")
        .unwrap()
        .contains("scope=\"step_counts\""));
}

#[tokio::test]
async fn anonymous_consumer_lets_tokenless_requests_through_but_not_bad_tokens() {
    let (_up, proxy, _) =
        setup(|r| r.oauth2.as_mut().unwrap().anonymous_consumer = Some("default/guest".into()))
            .await;
    let echo = get(
        &proxy.url("/stepon/public"),
        &[("x-anonymous-consumer", "false")],
    )
    .await
    .echo();
    assert_eq!(echo["headers"]["x-anonymous-consumer"], "true");
    assert_eq!(echo["headers"]["x-consumer-id"], "default/guest");
    assert_eq!(echo["headers"]["x-consumer-username"], "anonymous");
    assert!(echo["headers"].get("x-authenticated-userid").is_none());
    // An invalid token is still refused.
    let resp = get(
        &proxy.url("/stepon/public"),
        &[("authorization", &bearer("forged"))],
    )
    .await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_token");
    // A path whose rule requires a scope still needs a token.
    let resp = get(&proxy.url("/stepon/stepcounts"), &[]).await;
    assert_eq!(resp.status, 401);
    assert_eq!(resp.json()["error"], "invalid_request");
    // A valid token is used as such, not as anonymous.
    let echo = get(
        &proxy.url("/stepon/public"),
        &[("authorization", &bearer(GOOD))],
    )
    .await
    .echo();
    assert!(echo["headers"].get("x-anonymous-consumer").is_none());
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
}

#[tokio::test]
async fn a_custom_auth_header_name_is_where_the_token_is_read() {
    let (_up, proxy, _) =
        setup(|r| r.oauth2.as_mut().unwrap().auth_header_name = "x-stepon-auth".into()).await;
    let echo = get(&proxy.url("/stepon/x"), &[("x-stepon-auth", &bearer(GOOD))])
        .await
        .echo();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
    let resp = get(&proxy.url("/stepon/x"), &[("authorization", &bearer(GOOD))]).await;
    assert_eq!(resp.status, 401);
}

#[tokio::test]
async fn a_token_whose_client_was_removed_from_the_config_is_invalid() {
    let (_up, proxy, _) = setup(|_| {}).await;
    let up2 = TestUpstream::echo().await;
    let mut snapshot = mk_snapshot(mk_routes(&up2, |_| {}));
    snapshot.clients.clear();
    snapshot.revision = "client-deleted".into();
    proxy.config.send_replace(Some(Arc::new(snapshot)));
    proxy.handle.wait_for_revision("client-deleted").await;
    let status = get(&proxy.url("/stepon/x"), &[("authorization", &bearer(GOOD))])
        .await
        .status;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_failing_token_store_fails_closed_with_503() {
    let up = TestUpstream::echo().await;
    let store = Arc::new(FlakyStore::new());
    issue(
        store.as_ref(),
        GOOD,
        mk_token("default/stepon", &["step_counts"], None),
    )
    .await;
    let proxy = Proxy::start(mk_snapshot(mk_routes(&up, |_| {})), store.clone()).await;
    get(&proxy.url("/stepon/x"), &[("authorization", &bearer(GOOD))])
        .await
        .echo();
    store.failing.store(true, Ordering::SeqCst);
    let resp = get(&proxy.url("/stepon/x"), &[("authorization", &bearer(GOOD))]).await;
    assert_eq!(resp.status, 503);
    assert_eq!(resp.json()["error"], "temporarily_unavailable");
    assert_eq!(up.requests(), 1);
}
