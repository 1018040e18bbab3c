//! The OAuth2 flows end to end against the running proxy (in-process
//! `server::spawn`, TLS with a throw-away self-signed certificate), a real HTTP
//! upstream on loopback, and the `oauth2` crate as an unmodified client peer. The
//! login app's call to `/oauth2/authorize` is plain reqwest, as a real login app
//! would make it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_e2e::snapshots::stepon_route;
use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::config::{ClientType, Consumer, OAuth2Client, RouteOAuth2, Snapshot};
use gatehouse_proxy::server::{self, ServerArgs, ServerHandle};
use gatehouse_proxy::source;
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::Digest;
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IntrospectionUrl,
    PkceCodeChallenge, RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope,
    StandardRevocableToken, TokenIntrospectionResponse, TokenResponse, TokenUrl,
};
use serde_json::Value;

const PROVISION_KEY: &str = "the-login-apps-provision-key";
const SFS: &str = "shoe-fly-shoe";
// Characters that must be form-encoded inside HTTP Basic (RFC 6749 §2.3.1).
const SFS_SECRET: &str = "sfs secret+/=:%";
const SFS_CALLBACK: &str = "https://shoeflyshoe.example/callback";
const MOBILE: &str = "stepon-mobile";
const MOBILE_CALLBACK: &str = "https://mobile.stepon.example/cb";

fn mk_snapshot(upstream: SocketAddr) -> Snapshot {
    let oauth = RouteOAuth2 {
        scopes: vec![
            "user_profile".into(),
            "biometric".into(),
            "step_counts".into(),
        ],
        mandatory_scope: true,
        provision_key_sha256: Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex()),
        enable_client_credentials: true,
        // The route answers any host, so metadata needs a configured issuer.
        issuer: Some("https://auth.stepon.example/stepon".into()),
        ..RouteOAuth2::default()
    };
    let client = |id: &str, secret: Option<&str>, cb: &str| OAuth2Client {
        client_id: id.into(),
        secret_sha256: secret.map(|s| Digest::of(s.as_bytes()).to_hex()),
        name: id.into(),
        consumer_id: "default/shoeflyshoe".into(),
        client_type: if secret.is_some() {
            ClientType::Confidential
        } else {
            ClientType::Public
        },
        redirect_uris: vec![cb.into()],
        grant_types: vec![],
        scopes: None,
        resource_server: false,
    };
    Snapshot {
        revision: "oauth-flows".into(),
        routes: vec![stepon_route("/stepon", format!("http://{upstream}"), oauth)],
        consumers: vec![Consumer {
            id: "default/shoeflyshoe".into(),
            username: Some("shoeflyshoe".into()),
            custom_id: Some("sfs-001".into()),
        }],
        clients: vec![
            client(SFS, Some(SFS_SECRET), SFS_CALLBACK),
            client(MOBILE, None, MOBILE_CALLBACK),
        ],
        ..Snapshot::default()
    }
}

/// The `oauth2` crate's client with every endpoint this test uses set (all but device
/// authorization).
type OAuthClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
>;

/// A running proxy with its upstream and an HTTP client that trusts its certificate.
struct Env {
    _server: ServerHandle,
    /// Answers every request with what it saw ([`TestUpstream::echo`]).
    _upstream: TestUpstream,
    /// Kept open for the proxy's lifetime.
    _config: source::ConfigTx,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
    /// `https://localhost:PORT`
    https: String,
    /// `http://127.0.0.1:PORT`
    plain: String,
}

impl Env {
    async fn start() -> Env {
        let upstream = TestUpstream::echo().await;
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_pem = cert.cert.pem();
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, &cert_pem).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();

        let (tx, rx) = source::channel();
        tx.send_replace(Some(Arc::new(mk_snapshot(upstream.addr))));
        let args = ServerArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            listen_tls: Some("127.0.0.1:0".parse().unwrap()),
            tls_cert: Some(cert_path),
            tls_key: Some(key_path),
            workers: Some(1),
            ..ServerArgs::default()
        };
        let server =
            server::spawn(&args, rx, Arc::new(MemoryStore::new(10_000))).expect("proxy starts");
        let tls_addr = server.tls_addr.expect("TLS listener requested");
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
            // Pin the name to the loopback address the proxy listens on.
            .resolve("localhost", tls_addr)
            // Following redirects would open an OAuth client to SSRF (oauth2 docs).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Env {
            https: format!("https://localhost:{}", tls_addr.port()),
            plain: format!("http://{}", server.http_addr),
            _server: server,
            _upstream: upstream,
            _config: tx,
            _dir: dir,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/stepon{path}", self.https)
    }

    /// The `oauth2` crate client for Shoe Fly Shoe (or the public mobile app).
    fn oauth_client(&self, id: &str, secret: Option<&str>, callback: &str) -> OAuthClient {
        let c = BasicClient::new(ClientId::new(id.into()));
        let c = match secret {
            Some(s) => c.set_client_secret(ClientSecret::new(s.into())),
            None => c,
        };
        // The authorization URL is the login app's consent page; the proxy's
        // /oauth2/authorize is called by the login app itself (Kong's model).
        c.set_auth_uri(AuthUrl::new("https://login.stepon.example/consent".into()).unwrap())
            .set_token_uri(TokenUrl::new(self.url("/oauth2/token")).unwrap())
            .set_introspection_url(IntrospectionUrl::new(self.url("/oauth2/introspect")).unwrap())
            .set_revocation_url(RevocationUrl::new(self.url("/oauth2/revoke")).unwrap())
            .set_redirect_uri(RedirectUrl::new(callback.into()).unwrap())
    }

    /// What the login app does once clark has logged in and consented: forward the
    /// client's authorization request to the proxy with the provision key.
    async fn login_app_consents(&self, authorize_url: &url::Url, user: &str) -> reqwest::Response {
        let mut form: Vec<(String, String)> = authorize_url.query_pairs().into_owned().collect();
        form.push(("provision_key".into(), PROVISION_KEY.into()));
        form.push(("authenticated_userid".into(), user.into()));
        self.http
            .post(self.url("/oauth2/authorize"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Call the protected API; returns status and the echoed upstream view.
    async fn api(&self, token: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url("/stepcounts"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Run the authorization code + PKCE flow for clark; returns the code too.
async fn code_flow(
    env: &Env,
    client: &OAuthClient,
    callback: &str,
) -> (String, oauth2::basic::BasicTokenResponse) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("step_counts".into()))
        .set_pkce_challenge(challenge)
        .url();
    let resp = env.login_app_consents(&authorize_url, "clark").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    let redirect = url::Url::parse(body["redirect_uri"].as_str().unwrap()).unwrap();
    assert!(redirect.as_str().starts_with(callback), "{redirect}");
    let params: HashMap<String, String> = redirect.query_pairs().into_owned().collect();
    assert_eq!(
        &params["state"],
        csrf.secret(),
        "state comes back unchanged"
    );
    let code = params["code"].clone();
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&env.http)
        .await
        .expect("the oauth2 crate redeems the code");
    (code, token)
}

#[tokio::test]
async fn the_oauth2_crate_completes_authorization_code_with_pkce_and_the_token_reaches_the_api() {
    let env = Env::start().await;
    let client = env.oauth_client(SFS, Some(SFS_SECRET), SFS_CALLBACK);
    let (_, token) = code_flow(&env, &client, SFS_CALLBACK).await;
    assert_eq!(
        token
            .scopes()
            .map(|s| s.iter().map(|x| x.to_string()).collect::<Vec<_>>()),
        Some(vec!["step_counts".to_string()])
    );
    assert_eq!(token.expires_in().map(|d| d.as_secs()), Some(7200));
    assert!(token.refresh_token().is_some());

    let (status, seen) = env.api(token.access_token().secret()).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/stepcounts");
    let h = &seen["headers"];
    assert_eq!(h["x-authenticated-userid"], "clark");
    assert_eq!(h["x-authenticated-scope"], "step_counts");
    assert_eq!(h["x-consumer-username"], "shoeflyshoe");
    assert_eq!(h["x-credential-identifier"], SFS);

    // Introspection with the crate (RFC 7662).
    let info = client
        .introspect(token.access_token())
        .request_async(&env.http)
        .await
        .unwrap();
    assert!(info.active());
    assert_eq!(info.username(), Some("clark"));
    assert_eq!(info.client_id().map(|c| c.as_str()), Some(SFS));

    // Refresh with the crate: the old pair dies, the new one works.
    let refreshed = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&env.http)
        .await
        .unwrap();
    assert_eq!(env.api(token.access_token().secret()).await.0, 401);
    assert_eq!(env.api(refreshed.access_token().secret()).await.0, 200);

    // Revocation with the crate (RFC 7009): revoking the refresh token kills its
    // access token too.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(
            refreshed.refresh_token().unwrap().clone(),
        ))
        .unwrap()
        .request_async(&env.http)
        .await
        .unwrap();
    assert_eq!(env.api(refreshed.access_token().secret()).await.0, 401);
    let info = client
        .introspect(refreshed.access_token())
        .request_async(&env.http)
        .await
        .unwrap();
    assert!(!info.active());
}

#[tokio::test]
async fn a_public_client_completes_the_code_flow_with_pkce_and_no_secret() {
    let env = Env::start().await;
    let client = env.oauth_client(MOBILE, None, MOBILE_CALLBACK);
    let (_, token) = code_flow(&env, &client, MOBILE_CALLBACK).await;
    assert_eq!(env.api(token.access_token().secret()).await.0, 200);
    let refreshed = client
        .exchange_refresh_token(token.refresh_token().unwrap())
        .request_async(&env.http)
        .await
        .unwrap();
    assert_eq!(env.api(refreshed.access_token().secret()).await.0, 200);
}

#[tokio::test]
async fn the_oauth2_crate_completes_the_client_credentials_flow() {
    let env = Env::start().await;
    let client = env.oauth_client(SFS, Some(SFS_SECRET), SFS_CALLBACK);
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("step_counts".into()))
        .request_async(&env.http)
        .await
        .expect("client credentials grant");
    assert!(token.refresh_token().is_none(), "RFC 6749 §4.4.3");
    let (status, seen) = env.api(token.access_token().secret()).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["headers"]["x-credential-identifier"], SFS);
    assert!(seen["headers"].get("x-authenticated-userid").is_none());

    let wrong = env.oauth_client(SFS, Some("not the secret"), SFS_CALLBACK);
    match wrong
        .exchange_client_credentials()
        .add_scope(Scope::new("step_counts".into()))
        .request_async(&env.http)
        .await
    {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn a_replayed_code_fails_and_kills_the_tokens_issued_from_it() {
    let env = Env::start().await;
    let client = env.oauth_client(SFS, Some(SFS_SECRET), SFS_CALLBACK);
    let (code, token) = code_flow(&env, &client, SFS_CALLBACK).await;
    assert_eq!(env.api(token.access_token().secret()).await.0, 200);
    let replay = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&env.http)
        .await;
    match replay {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("expected invalid_grant, got {other:?}"),
    }
    assert_eq!(env.api(token.access_token().secret()).await.0, 401);
    let r = client
        .exchange_refresh_token(&RefreshToken::new(
            token.refresh_token().unwrap().secret().clone(),
        ))
        .request_async(&env.http)
        .await;
    assert!(r.is_err(), "the refresh token died with the family");
}

#[tokio::test]
async fn the_endpoints_refuse_plain_http_and_wrong_methods_and_publish_metadata() {
    let env = Env::start().await;
    let plain = env
        .http
        .post(format!("{}/stepon/oauth2/token", env.plain))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 400);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "access_denied", "error_description": "You must use HTTPS"})
    );

    let get = env.http.get(env.url("/oauth2/token")).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["error"], "invalid_method");

    let meta: Value = env
        .http
        .get(env.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], "https://auth.stepon.example/stepon");
    assert_eq!(
        meta["token_endpoint"],
        "https://auth.stepon.example/stepon/oauth2/token"
    );
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );

    // An unknown access token at the API: Kong's 401.
    let (status, body) = env.api("nope").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_token");
}
