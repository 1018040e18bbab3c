//! Gatehouse as the token checker behind a real nginx (Debian's package): nginx's
//! `auth_request` asks `/_gatehouse/authz/auth-request`, copies the identity headers
//! with `auth_request_set` to a real upstream, and routes the route's `/oauth2/` to
//! Gatehouse itself. The nginx configuration is the one `docs/external-authz.md`
//! gives (marked "tested").

mod proxy_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use gatehouse_e2e::nginx::Nginx;
use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::config::{Route, ScopeRule};
use proxy_support::*;

const GOOD: &str = "good-token-for-stepon";
const NARROW: &str = "narrow-token-for-stepon";

/// The identity headers Gatehouse answers with, and the nginx variable each is held in.
const IDENTITY: [(&str, &str); 7] = [
    ("X-Consumer-ID", "gh_consumer_id"),
    ("X-Consumer-Custom-ID", "gh_consumer_custom_id"),
    ("X-Consumer-Username", "gh_consumer_username"),
    ("X-Credential-Identifier", "gh_credential_identifier"),
    ("X-Authenticated-Scope", "gh_authenticated_scope"),
    ("X-Authenticated-Userid", "gh_authenticated_userid"),
    ("X-Anonymous-Consumer", "gh_anonymous_consumer"),
];

/// The nginx `http { }` body: the API at `/stepon/` behind `auth_request`, its
/// `/stepon/oauth2/` endpoints proxied to Gatehouse.
fn nginx_config(gatehouse: &str, upstream: &str) -> String {
    let mut copy = String::new();
    for (header, var) in IDENTITY {
        let upstream_var = header.to_ascii_lowercase().replace('-', "_");
        copy.push_str(&format!(
            "        auth_request_set ${var} $upstream_http_{upstream_var};\n\
             \x20       proxy_set_header {header} ${var};\n"
        ));
    }
    format!(
        r#"
    upstream gatehouse {{
        server {gatehouse};
        keepalive 16;
    }}
    server {{
        listen @LISTEN@;

        location /stepon/ {{
            auth_request /_gatehouse_authz;
{copy}
            proxy_pass http://{upstream};
        }}

        # The route's OAuth2 endpoints are Gatehouse's own. This test listens on plain
        # HTTP; with TLS on this server, send $scheme instead.
        location /stepon/oauth2/ {{
            proxy_pass http://gatehouse;
            proxy_set_header X-Forwarded-Proto https;
        }}

        location = /_gatehouse_authz {{
            internal;
            proxy_pass http://gatehouse/_gatehouse/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
"#
    )
}

/// `/stepon` with client credentials on and `/admin` needing scope `admin`.
fn stepon_route(up: &TestUpstream) -> Route {
    let mut route = mk_route("default/stepon", &["/stepon"], &[up.url()]);
    let mut oauth = mk_oauth();
    oauth.enable_client_credentials = true;
    oauth.accept_http_if_already_terminated = true;
    oauth.scopes = vec!["read".into(), "admin".into()];
    oauth.rules = vec![ScopeRule {
        path: "/admin".into(),
        methods: vec![],
        required_scopes: vec!["admin".into()],
    }];
    route.oauth2 = Some(oauth);
    route
}

struct Setup {
    up: TestUpstream,
    store: Arc<FlakyStore>,
    proxy: Proxy,
    nginx: Nginx,
}

async fn setup() -> Setup {
    let up = TestUpstream::echo().await;
    let store = Arc::new(FlakyStore::new());
    let expires = Some(now() + 3600);
    issue(
        &store.inner,
        GOOD,
        mk_token("default/stepon", &["read", "admin"], expires),
    )
    .await;
    issue(
        &store.inner,
        NARROW,
        mk_token("default/stepon", &["read"], expires),
    )
    .await;
    let proxy = Proxy::start(mk_snapshot(vec![stepon_route(&up)]), store.clone()).await;
    let nginx = Nginx::start(&nginx_config(&proxy.addr.to_string(), &up.addr.to_string()))
        .expect("nginx starts");
    Setup {
        up,
        store,
        proxy,
        nginx,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn a_valid_token_reaches_the_upstream_with_the_identity_headers() {
    let s = setup().await;
    let resp = get(
        &s.nginx.url("/stepon/counts?day=1"),
        &[("authorization", &bearer(GOOD))],
    )
    .await;
    let echo = resp.echo();
    assert_eq!(echo["path"], "/stepon/counts");
    assert_eq!(echo["query"], "day=1");
    let h = &echo["headers"];
    assert_eq!(h["x-consumer-id"], "default/shoeflyshoe");
    assert_eq!(h["x-consumer-username"], "shoeflyshoe");
    assert_eq!(h["x-consumer-custom-id"], "sfs-001");
    assert_eq!(h["x-credential-identifier"], "shoe-fly-shoe");
    assert_eq!(h["x-authenticated-scope"], "read admin");
    assert_eq!(h["x-authenticated-userid"], "clark");
    assert!(h.get("x-anonymous-consumer").is_none(), "{h}");
    assert_eq!(s.up.requests(), 1);
}

#[tokio::test]
async fn no_token_is_a_401_with_the_bearer_challenge_and_nothing_forwarded() {
    let s = setup().await;
    let resp = get(&s.nginx.url("/stepon/counts"), &[]).await;
    assert_eq!(resp.status, 401);
    // nginx copies WWW-Authenticate from a 401 auth response to the client.
    assert_eq!(
        resp.header("www-authenticate"),
        Some("Bearer realm=\"service\", error=\"invalid_request\", error_description=\"The access token is missing\"")
    );
    let bad = get(
        &s.nginx.url("/stepon/counts"),
        &[("authorization", &bearer("forged"))],
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad
        .header("www-authenticate")
        .is_some_and(|c| c.contains("error=\"invalid_token\"")));
    assert_eq!(s.up.requests(), 0);
}

#[tokio::test]
async fn a_token_without_the_rule_scope_is_a_403() {
    let s = setup().await;
    let resp = get(
        &s.nginx.url("/stepon/admin/users"),
        &[("authorization", &bearer(NARROW))],
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(s.up.requests(), 0);
    // The same token passes where the rule does not apply.
    let ok = get(
        &s.nginx.url("/stepon/counts"),
        &[("authorization", &bearer(NARROW))],
    )
    .await;
    assert_eq!(ok.echo()["headers"]["x-authenticated-scope"], "read");
}

#[tokio::test]
async fn identity_headers_from_the_client_never_reach_the_upstream() {
    let s = setup().await;
    let spoofed: Vec<(&str, &str)> = vec![
        ("X-Consumer-ID", "evil"),
        ("x-consumer-custom-id", "evil"),
        ("X-CONSUMER-USERNAME", "evil"),
        ("X-Credential-Identifier", "evil"),
        ("X-Authenticated-Scope", "admin"),
        ("X-Authenticated-Userid", "evil"),
        ("X-Anonymous-Consumer", "true"),
        ("X-Consumer_ID", "evil-underscore"),
    ];
    let mut with_token = spoofed.clone();
    let auth = bearer(NARROW);
    with_token.push(("authorization", &auth));
    let echo = get(&s.nginx.url("/stepon/counts"), &with_token)
        .await
        .echo();
    let h = echo["headers"].as_object().unwrap();
    assert_eq!(h["x-consumer-id"], "default/shoeflyshoe");
    assert_eq!(h["x-authenticated-scope"], "read");
    assert_eq!(h["x-authenticated-userid"], "clark");
    assert!(!h.contains_key("x-anonymous-consumer"), "{h:?}");
    for (name, value) in h {
        assert!(
            !value.as_str().unwrap_or("").contains("evil"),
            "spoofed {name}: {value} reached the upstream"
        );
    }
    // Without a token the spoofed headers get nowhere at all.
    let resp = get(&s.nginx.url("/stepon/counts"), &spoofed).await;
    assert_eq!(resp.status, 401);
    assert_eq!(s.up.requests(), 1);
}

#[tokio::test]
async fn store_down_or_gatehouse_down_makes_nginx_answer_500_and_forward_nothing() {
    let s = setup().await;
    s.store.failing.store(true, Ordering::SeqCst);
    let resp = get(
        &s.nginx.url("/stepon/counts"),
        &[("authorization", &bearer(GOOD))],
    )
    .await;
    assert_eq!(resp.status, 500, "store down: {resp:?}");
    s.store.failing.store(false, Ordering::SeqCst);

    let Setup {
        up, proxy, nginx, ..
    } = s;
    proxy.handle.shutdown().await;
    let resp = get(
        &nginx.url("/stepon/counts"),
        &[("authorization", &bearer(GOOD))],
    )
    .await;
    assert_eq!(resp.status, 500, "Gatehouse down: {resp:?}");
    assert_eq!(up.requests(), 0);
}

#[tokio::test]
async fn tokens_are_issued_through_nginx_and_then_accepted_by_it() {
    let s = setup().await;
    let form =
        "grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=secret&scope=read";
    let resp = post_form(&s.nginx.url("/stepon/oauth2/token"), form, &[]).await;
    assert_eq!(resp.status, 200, "{resp:?}");
    let token = resp.json()["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let echo = get(
        &s.nginx.url("/stepon/counts"),
        &[("authorization", &bearer(&token))],
    )
    .await
    .echo();
    assert_eq!(echo["headers"]["x-credential-identifier"], "shoe-fly-shoe");
    assert_eq!(echo["headers"]["x-authenticated-scope"], "read");
    assert!(echo["headers"].get("x-authenticated-userid").is_none());
}

/// The sign-in-only location of `docs/external-authz.md`: nginx keeps the Location of
/// Gatehouse's 401 and turns it into a redirect; API clients keep their challenge.
fn nginx_signin_config(gatehouse: &str, upstream: &str) -> String {
    format!(
        r#"
    server {{
        listen @LISTEN@;

        location /web/ {{
            auth_request /_gatehouse_authz;
            auth_request_set $gh_signin $upstream_http_location;
            auth_request_set $gh_challenge $upstream_http_www_authenticate;
            error_page 401 = @gatehouse_signin;
            auth_request_set $gh_authenticated_userid $upstream_http_x_authenticated_userid;
            proxy_set_header X-Authenticated-Userid $gh_authenticated_userid;
            auth_request_set $gh_authenticated_email $upstream_http_x_authenticated_email;
            proxy_set_header X-Authenticated-Email $gh_authenticated_email;
            proxy_pass http://{upstream};
        }}

        location /web/oauth2/ {{
            proxy_pass http://{gatehouse};
            proxy_set_header X-Forwarded-Proto https;
        }}

        location @gatehouse_signin {{
            if ($gh_signin = "") {{
                add_header WWW-Authenticate $gh_challenge always;
                return 401;
            }}
            return 302 $gh_signin;
        }}

        location = /_gatehouse_authz {{
            internal;
            proxy_pass http://{gatehouse}/_gatehouse/authz/auth-request;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
"#
    )
}

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_sign_in_through_nginx() {
    let up = TestUpstream::echo().await;
    let key = gatehouse_proxy::seal::LoginKey::random();
    let mut route = mk_route("default/web", &["/web"], &[up.url()]);
    let mut oauth = mk_oauth();
    oauth.login = Some(gatehouse_proxy::config::Login {
        // Never contacted: the redirect to sign-in is decided without the provider.
        issuer_url: "https://idp.invalid".into(),
        client_id: "gatehouse".into(),
        client_secret_sealed: key.seal(b"provider-secret", "default/web"),
        scopes: vec!["openid".into()],
        user_claim: "sub".into(),
        allowed_domains: vec![],
        allowed_users: vec![],
        required_claims: vec![],
        consent: Default::default(),
        trusted_clients: vec![],
        session_ttl: 3600,
        idle_timeout: 3600,
        consent_ttl: 3600,
        require_session: true,
        title: None,
        logo: None,
    });
    route.oauth2 = Some(oauth);
    let store = Arc::new(FlakyStore::new());
    let proxy = Proxy::start_with(mk_snapshot(vec![route]), store, |args| {
        args.login.key = Some(key.clone());
    })
    .await;
    let nginx = Nginx::start(&nginx_signin_config(
        &proxy.addr.to_string(),
        &up.addr.to_string(),
    ))
    .expect("nginx starts");

    let browser = get(
        &nginx.url("/web/dashboard?tab=1&x=2"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(browser.status, 302, "{browser:?}");
    // nginx makes the relative Location absolute on its own origin.
    assert_eq!(
        browser.header("location"),
        Some(
            nginx
                .url("/web/oauth2/signin?rd=%2Fweb%2Fdashboard%3Ftab%3D1%26x%3D2")
                .as_str()
        ),
    );
    let api = get(&nginx.url("/web/data"), &[]).await;
    assert_eq!(api.status, 401, "{api:?}");
    assert!(
        api.header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer")),
        "{api:?}"
    );
    assert_eq!(up.requests(), 0, "nothing was forwarded");
}
