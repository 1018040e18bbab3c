//! Built-in sign-in (`oauth2.login`) end to end against a real OpenID Connect provider
//! (Django OAuth Toolkit, `e2e/idp/`), the proxy with TLS, and a real upstream:
//! sign-in → consent → code → token → API call, denial, CSRF and replay refusals,
//! ID-token verification (wrong audience, expired, tampered), the provider's key
//! rotation, sign-in-only protection with session expiry and open-redirect refusal,
//! logout with RP-initiated logout, an unreachable provider, and two replicas sharing
//! sign-in state through Redis.

mod signin_support;

use std::sync::Arc;

use gatehouse_config::redis::conn::{ConnectOptions, Target};
use gatehouse_e2e::idp;
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::login::oidc::Providers;
use gatehouse_proxy::seal::LoginKey;
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::redis::RedisStore;
use gatehouse_proxy::store::TokenStore;
use signin_support::*;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sign in and consent on `/app`, returning the client's callback URL.
async fn sign_in_and_approve(
    b: &mut Browser,
    origin: &str,
    user: &str,
    state: &str,
    challenge: &str,
) -> String {
    let login_page = b
        .follow(
            &authorize_url(origin, state, challenge, "steps"),
            SFS_CALLBACK,
        )
        .await;
    let consent = b.log_in(&login_page, user, SFS_CALLBACK).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let ticket = consent.input("ticket").expect("consent page has a ticket");
    let done = b
        .post(
            &format!("{origin}/app/oauth2/consent"),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    done.location.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_signs_in_at_the_provider_consents_and_the_client_calls_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let key = LoginKey::random();
    let upstream = TestUpstream::echo().await;
    let proxy = Proxy::start(dir.path(), &key, Arc::new(MemoryStore::new(10_000)));
    let idp = start_idp(&[&proxy]);
    proxy
        .publish(mk_snapshot(&key, &idp.issuer(), &upstream, 5, "one"))
        .await;
    let origin = proxy.origin();
    let mut b = Browser::new(dir.path());

    // Client and redirect URI are checked first; problems are pages, not redirects.
    let unknown = b
        .get(&format!(
            "{origin}/app/oauth2/authorize?response_type=code&client_id=nobody"
        ))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.location.is_none());
    assert!(unknown.body.contains("not registered"));
    let foreign = b
        .get(&format!(
            "{origin}/app/oauth2/authorize?response_type=code&client_id={SFS}&redirect_uri=https://evil.example/cb"
        ))
        .await;
    assert_eq!(foreign.status, 400);
    assert!(foreign.location.is_none());

    // Sign-in at the provider: PKCE, state, nonce.
    let (verifier, challenge) = pkce();
    let first = b
        .get(&authorize_url(&origin, "s-1", &challenge, "steps"))
        .await;
    assert_eq!(first.status, 302);
    let to_idp = first.location.clone().unwrap();
    assert!(to_idp.starts_with(&format!("{}/authorize/", idp.issuer())));
    let q = query(&to_idp);
    assert_eq!(q["client_id"], idp::CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q.contains_key("nonce") && q.contains_key("state"));
    assert_eq!(q["redirect_uri"], format!("{origin}/app/oauth2/callback"));
    let login_page = b.follow(&to_idp, SFS_CALLBACK).await;
    let consent = b.log_in(&login_page, "clark", SFS_CALLBACK).await;

    // The consent page: client, owner, scopes in words, a framing ban.
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Shoe Fly Shoe"));
    assert!(consent.body.contains("Shoe Fly Shoe Inc."));
    assert!(consent.body.contains("Clark Kent"));
    assert!(consent.body.contains("permission"));
    assert!(consent
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(b
        .cookie_names("localhost")
        .iter()
        .any(|c| c.starts_with("__Host-gatehouse-")));
    let ticket = consent.input("ticket").unwrap();

    // A cross-site POST is refused even with a valid ticket.
    b.origin_header = Some("https://evil.example".into());
    let forged = b
        .post(
            &format!("{origin}/app/oauth2/consent"),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(forged.status, 400);
    b.origin_header = Some(origin.clone());

    let approved = b
        .post(
            &format!("{origin}/app/oauth2/consent"),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(approved.status, 302, "{}", approved.body);
    let callback = approved.location.unwrap();
    assert!(callback.starts_with(SFS_CALLBACK));
    let q = query(&callback);
    assert_eq!(q["state"], "s-1");
    assert_eq!(q["iss"], format!("{origin}/app"));

    // A consent ticket is single-use.
    let replay = b
        .post(
            &format!("{origin}/app/oauth2/consent"),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(replay.status, 400);

    // Code → token → API call, as the same single-use code as ever.
    let tokens = redeem(&origin, &q["code"], &verifier).await;
    let access = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert_eq!(tokens["scope"], "steps");
    let api = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", ([127, 0, 0, 1], 0).into())
        .build()
        .unwrap();
    let echo: serde_json::Value = api
        .get(format!("{origin}/app/steps"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark", "{echo}");
    assert_eq!(echo["headers"]["x-authenticated-scope"], "steps");
    // (Replaying the code is refused, and revokes what it produced.)
    let again = redeem(&origin, &q["code"], &verifier).await;
    assert_eq!(again["error"], "invalid_grant");

    // Consent is remembered for the same client and scopes.
    let (_, challenge2) = pkce();
    let remembered = b
        .get(&authorize_url(&origin, "s-2", &challenge2, "steps"))
        .await;
    assert_eq!(remembered.status, 302);
    let loc = remembered.location.unwrap();
    assert!(loc.starts_with(SFS_CALLBACK) && query(&loc).contains_key("code"));

    // Other scopes ask again; denial is access_denied with state and iss.
    let (_, challenge3) = pkce();
    let ask = b.get(&authorize_url(&origin, "s-3", &challenge3, "")).await;
    assert_eq!(ask.status, 200);
    let t = ask.input("ticket").unwrap();
    let denied = b
        .post(
            &format!("{origin}/app/oauth2/consent"),
            &[("ticket", &t), ("decision", "deny")],
        )
        .await;
    let q = query(&denied.location.unwrap());
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "s-3");
    assert!(!q.contains_key("code"));

    // ID-token verification with real tokens from the provider.
    let providers = Providers::new();
    let callback_uri = format!("{origin}/app/oauth2/callback");
    let (v, c) = pkce();
    let mut direct = url::Url::parse(&format!("{}/authorize/", idp.issuer())).unwrap();
    direct
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", idp::CLIENT_ID)
        .append_pair("redirect_uri", &callback_uri)
        .append_pair("scope", "openid email")
        .append_pair("state", "direct")
        .append_pair("nonce", "the-nonce")
        .append_pair("code_challenge", &c)
        .append_pair("code_challenge_method", "S256");
    let to_cb = b.get(direct.as_str()).await;
    let code = query(&to_cb.location.expect("signed in at the provider"))["code"].clone();
    let id_token = providers
        .exchange(
            &idp.issuer(),
            idp::CLIENT_ID,
            idp::CLIENT_SECRET,
            &code,
            &callback_uri,
            &v,
        )
        .await
        .unwrap();
    let now = unix_now();
    let claims = providers
        .verify(&idp.issuer(), idp::CLIENT_ID, &id_token, "the-nonce", now)
        .await
        .expect("a genuine ID token verifies");
    assert_eq!(claims["preferred_username"], "clark");
    let wrong_aud = providers
        .verify(&idp.issuer(), "another-client", &id_token, "the-nonce", now)
        .await;
    assert!(wrong_aud.is_err(), "wrong audience accepted");
    let wrong_nonce = providers
        .verify(&idp.issuer(), idp::CLIENT_ID, &id_token, "other", now)
        .await;
    assert!(wrong_nonce.is_err(), "wrong nonce accepted");
    let later = now + 24 * 3600;
    let expired = providers
        .verify(&idp.issuer(), idp::CLIENT_ID, &id_token, "the-nonce", later)
        .await;
    assert!(
        format!("{:?}", expired.unwrap_err()).contains("expired"),
        "expired token accepted"
    );
    let mut parts: Vec<String> = id_token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    let tampered = providers
        .verify(
            &idp.issuer(),
            idp::CLIENT_ID,
            &parts.join("."),
            "the-nonce",
            now,
        )
        .await;
    assert!(tampered.is_err(), "tampered token accepted");
    let wrong_issuer = providers
        .verify(
            "http://127.0.0.1:9/o",
            idp::CLIENT_ID,
            &id_token,
            "the-nonce",
            now,
        )
        .await;
    assert!(wrong_issuer.is_err());

    // Sign-in alone (`/web`): a browser is sent to sign in and back to where it was.
    let page = b
        .get_with(
            &format!("{origin}/web/dashboard?tab=1"),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(page.status, 302);
    let to_signin = page.location.unwrap();
    assert!(to_signin.starts_with(&format!("{origin}/web/oauth2/signin?rd=")));
    let back = b
        .follow(&to_signin, &format!("{origin}/web/dashboard"))
        .await;
    assert_eq!(
        back.location.as_deref(),
        Some(format!("{origin}/web/dashboard?tab=1").as_str())
    );
    let inside = b.get(&format!("{origin}/web/dashboard?tab=1")).await;
    assert_eq!(inside.status, 200, "{}", inside.body);
    let echo: serde_json::Value = serde_json::from_str(&inside.body).unwrap();
    assert_eq!(echo["headers"]["x-authenticated-userid"], "clark");
    assert_eq!(
        echo["headers"]["x-authenticated-email"],
        "clark@dailyplanet.example"
    );
    assert_eq!(echo["path"], "/dashboard");
    // The same session through external authorization (the traefik-forward-auth
    // pattern): the fronting proxy copies the browser's cookie into the decision
    // request, which is answered with the user's identity.
    let host = origin.trim_start_matches("https://").to_owned();
    let forward_auth = |uri: &'static str| {
        vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", host.as_str()),
            ("x-forwarded-uri", uri),
            ("accept", "text/html"),
        ]
    };
    let decided = b
        .get_with(
            &format!("{origin}/_gatehouse/authz/forward-auth"),
            &forward_auth("/web/dashboard?tab=1"),
        )
        .await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    assert_eq!(decided.header("x-authenticated-userid"), Some("clark"));
    assert_eq!(
        decided.header("x-authenticated-email"),
        Some("clark@dailyplanet.example")
    );
    // Without the cookie: Traefik/Envoy pass a 302 to sign-in on to the browser;
    // nginx `auth_request` gets a 401 carrying the same Location.
    let mut stranger = Browser::new(dir.path());
    let to_signin = stranger
        .get_with(
            &format!("{origin}/_gatehouse/authz/forward-auth"),
            &forward_auth("/web/dashboard?tab=1"),
        )
        .await;
    assert_eq!(to_signin.status, 302, "{}", to_signin.body);
    assert_eq!(
        to_signin.header("location"),
        Some("/web/oauth2/signin?rd=%2Fweb%2Fdashboard%3Ftab%3D1")
    );
    let original_url = format!("{origin}/web/dashboard?tab=1");
    let nginx_style = stranger
        .get_with(
            &format!("{origin}/_gatehouse/authz/auth-request"),
            &[
                ("x-original-url", original_url.as_str()),
                ("x-original-method", "GET"),
                ("accept", "text/html"),
            ],
        )
        .await;
    assert_eq!(nginx_style.status, 401, "{}", nginx_style.body);
    assert_eq!(nginx_style.header("location"), to_signin.header("location"));
    assert_eq!(nginx_style.header("x-authenticated-userid"), None);
    // An API client without a token gets the usual 401, not a redirect.
    let api_call = api.get(format!("{origin}/web/data")).send().await.unwrap();
    assert_eq!(api_call.status(), 401);
    // Open redirects are refused.
    for rd in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let refused = b.get(&format!("{origin}/web/oauth2/signin?rd={enc}")).await;
        assert_eq!(refused.status, 400, "{rd}");
        assert!(refused.location.is_none());
    }
    // The `/web` session lasts 5 seconds.
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let expired = b
        .get_with(
            &format!("{origin}/web/dashboard"),
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(expired.status, 302, "an expired session still passed");

    // An unreachable provider: a clear page, never a login.
    let down = b
        .get(&format!(
            "{origin}/down/oauth2/authorize?response_type=code&client_id={SFS}&code_challenge={challenge}&code_challenge_method=S256"
        ))
        .await;
    assert_eq!(down.status, 502);
    assert!(down.body.contains("could not be reached"));
    assert!(down.location.is_none());

    // Logout: here, then at the provider (RP-initiated), then the signed-out page.
    let out = b.get(&format!("{origin}/app/oauth2/logout")).await;
    assert_eq!(out.status, 302);
    let end = out.location.unwrap();
    assert!(end.starts_with(&format!("{}/logout/", idp.issuer())));
    assert!(query(&end).contains_key("id_token_hint"));
    let signed_out = b.follow(&end, "never").await;
    assert_eq!(signed_out.status, 200, "{}", signed_out.body);
    assert!(signed_out.body.contains("You are signed out"));
    // The session is gone: the next authorization goes to the provider again.
    let (_, challenge4) = pkce();
    let after = b
        .get(&authorize_url(&origin, "s-4", &challenge4, "steps"))
        .await;
    assert!(after
        .location
        .unwrap()
        .starts_with(&format!("{}/authorize/", idp.issuer())));
    drop(idp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_signing_key_at_the_provider_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let key = LoginKey::random();
    let upstream = TestUpstream::echo().await;
    let proxy = Proxy::start(dir.path(), &key, Arc::new(MemoryStore::new(10_000)));
    let mut idp = start_idp(&[&proxy]);
    proxy
        .publish(mk_snapshot(&key, &idp.issuer(), &upstream, 600, "rot"))
        .await;
    let origin = proxy.origin();

    let mut first = Browser::new(dir.path());
    let (v, c) = pkce();
    let cb = sign_in_and_approve(&mut first, &origin, "clark", "a", &c).await;
    assert!(redeem(&origin, &query(&cb)["code"], &v).await["access_token"].is_string());

    idp.rotate_key()
        .expect("the provider restarts with a new key");
    // A new browser signs in: its ID token names a key the proxy has not seen.
    let mut second = Browser::new(dir.path());
    let (v, c) = pkce();
    let cb = sign_in_and_approve(&mut second, &origin, "lex", "b", &c).await;
    let tokens = redeem(&origin, &query(&cb)["code"], &v).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");

    // The controller's start-up check (`IssuerUnreachable`) is this same discovery,
    // run afresh: the real provider answers, a closed port does not.
    let providers = Providers::new();
    providers
        .probe(&idp.issuer())
        .await
        .expect("the provider answers its discovery document and keys");
    let closed = gatehouse_e2e::binary::free_addr();
    let down = providers.probe(&format!("http://{closed}")).await;
    assert!(down.is_err(), "{down:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_sign_in_state_through_redis() {
    let redis = RedisServer::start().expect("redis-server starts");
    let opts = ConnectOptions {
        timeout: std::time::Duration::from_secs(2),
        ..ConnectOptions::default()
    };
    let target = Target::from_url(&redis.url(), opts).unwrap();
    let store =
        || -> Arc<dyn TokenStore> { Arc::new(RedisStore::new(&target, "gatehouse:").unwrap()) };
    let dir = tempfile::tempdir().unwrap();
    let key = LoginKey::random();
    let upstream = TestUpstream::echo().await;
    let a = Proxy::start(dir.path(), &key, store());
    let b_proxy = Proxy::start(dir.path(), &key, store());
    // Both replicas sit behind one public name, as behind a load balancer.
    const PUBLIC: &str = "https://gatehouse.example";
    let idp = start_idp_for_origin(PUBLIC);
    let snapshot = mk_snapshot(&key, &idp.issuer(), &upstream, 600, "replicas");
    a.publish(snapshot.clone()).await;
    b_proxy.publish(snapshot).await;

    let mut browser = Browser::new(dir.path());
    browser.proxy_headers = vec![("x-forwarded-host".into(), "gatehouse.example".into())];
    // Start on replica A, stop when the provider sends the browser back.
    let (v, c) = pkce();
    let login_page = browser
        .follow(&authorize_url(&a.origin(), "r", &c, "steps"), PUBLIC)
        .await;
    let to_callback = browser.log_in(&login_page, "clark", PUBLIC).await;
    let callback = to_callback.location.unwrap();
    assert!(callback.starts_with(&format!("{PUBLIC}/app/oauth2/callback")));
    // The load balancer sends the callback to replica B: the pending sign-in (and
    // the encrypted sign-in cookie) are understood there.
    let callback_on_b = callback.replace(PUBLIC, &b_proxy.origin());
    let consent = browser.follow(&callback_on_b, SFS_CALLBACK).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let ticket = consent.input("ticket").unwrap();
    // The consent answer goes to replica A.
    let done = browser
        .post(
            &format!("{}/app/oauth2/consent", a.origin()),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(done.status, 302, "{}", done.body);
    let code = query(&done.location.unwrap())["code"].clone();
    let tokens = redeem(&b_proxy.origin(), &code, &v).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    // Session records live in Redis under digest keys only.
    let keys = redis
        .command(&["KEYS", "gatehouse:login:session:*"])
        .unwrap();
    assert!(keys.contains("gatehouse:login:session:"), "{keys}");
    assert!(!keys.contains(&ticket));

    // The consent is remembered: the next authorization skips the page.
    let (_, c2) = pkce();
    let again = browser
        .get(&authorize_url(&a.origin(), "r2", &c2, "steps"))
        .await;
    let again = again.location.expect("a redirect");
    assert!(again.starts_with(SFS_CALLBACK), "{again}");
    assert!(query(&again).contains_key("code"), "{again}");

    // An operator revokes clark's sign-in on the route: both replicas see it at once.
    let out = std::process::Command::new(gatehouse_e2e::binary::binary_path().unwrap())
        .args([
            "revoke-sign-in",
            "--user",
            "clark",
            "--route",
            "default/app",
        ])
        .args(["--redis", &redis.url()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for proxy in [&a, &b_proxy] {
        let (_, c3) = pkce();
        let after = browser
            .get(&authorize_url(&proxy.origin(), "r3", &c3, "steps"))
            .await;
        let to = after.location.expect("a redirect");
        assert!(
            to.starts_with(&format!("{}/authorize/", idp.issuer())),
            "the revoked session still signed the user in: {to}"
        );
    }
    // Signed in again, the remembered consent is void too: the page is shown.
    let (_, c4) = pkce();
    let mut back = browser
        .follow(&authorize_url(&a.origin(), "r4", &c4, "steps"), PUBLIC)
        .await;
    if back.status == 200 {
        // The provider's own session may have ended too: sign in there again.
        back = browser.log_in(&back, "clark", PUBLIC).await;
    }
    let back = back.location.unwrap().replace(PUBLIC, &a.origin());
    let consent = browser.follow(&back, SFS_CALLBACK).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.input("ticket").is_some(), "{}", consent.body);

    // Without a shared store the command refuses instead of revoking nothing.
    let out = std::process::Command::new(gatehouse_e2e::binary::binary_path().unwrap())
        .args([
            "revoke-sign-in",
            "--user",
            "clark",
            "--route",
            "default/app",
        ])
        .env_remove("GATEHOUSE_REDIS")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Redis the proxies share"));
}

/// Where the browser test leaves its screenshots (a person can look at them).
fn screenshot_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-screenshots/signin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_consents_in_headless_chromium() {
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    let chromium = std::env::var("GATEHOUSE_CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists() && browser_dir.join("node_modules/playwright-core").exists(),
        "the browser test needs Debian's chromium and e2e/browser/node_modules: run scripts/test once"
    );
    let dir = tempfile::tempdir().unwrap();
    let key = LoginKey::random();
    let upstream = TestUpstream::echo().await;
    let proxy = Proxy::start(dir.path(), &key, Arc::new(MemoryStore::new(10_000)));
    let idp = start_idp(&[&proxy]);
    // The client application's callback: a real page (the echo server shows the
    // query it received, code included).
    let client_app = TestUpstream::echo().await;
    let app_callback = format!("{}/callback", client_app.url());
    let mut snapshot = mk_snapshot(&key, &idp.issuer(), &upstream, 600, "browser");
    snapshot.clients[0].redirect_uris.push(app_callback.clone());
    proxy.publish(snapshot).await;
    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let (verifier, challenge) = pkce();
    let enc = |s: &str| -> String { url::form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let start = authorize_url(&proxy.origin(), "browser-state", &challenge, "steps")
        .replace(&enc(SFS_CALLBACK), &enc(&app_callback));
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("signin.mjs"))
        .env("START_URL", &start)
        .env("CALLBACK", &app_callback)
        .env("SHOTS", &shots)
        .env("USERNAME", "clark")
        .env("PASSWORD", "clark-password")
        .env("CHROMIUM", &chromium)
        .env("PROFILE", dir.path().join("chromium-profile"))
        .output()
        .await
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser script failed: {}\n{}\nprovider log: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        idp.log()
    );
    let result: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .unwrap(),
    )
    .unwrap();
    let q = query(result["callback"].as_str().unwrap());
    assert_eq!(q["state"], "browser-state");
    let tokens = redeem_for(&proxy.origin(), &q["code"], &verifier, &app_callback).await;
    assert!(tokens["access_token"].is_string(), "{tokens}");
    for name in ["1-sign-in.png", "2-consent.png", "3-result.png"] {
        let png = std::fs::read(shots.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name} is not a PNG");
        // A blank page compresses to a few hundred bytes; rendered text does not.
        assert!(
            png.len() > 5_000,
            "{name} looks empty ({} bytes)",
            png.len()
        );
    }
}
