//! Shared pieces of the sign-in tests: a proxy with `oauth2.login` routes in front of
//! a real provider (`gatehouse_e2e::idp`), and a small cookie-keeping HTTP "browser"
//! that follows redirects one at a time so each step can be checked.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use gatehouse_e2e::idp::{self, Idp};
use gatehouse_e2e::upstream::TestUpstream;
use gatehouse_proxy::config::{
    ClientType, ConsentMode, Consumer, Login, OAuth2Client, Route, RouteOAuth2, Snapshot, Upstream,
};
use gatehouse_proxy::seal::LoginKey;
use gatehouse_proxy::server::{self, ServerArgs, ServerHandle};
use gatehouse_proxy::source;
use gatehouse_proxy::store::{Digest, TokenStore};

pub const SFS: &str = "shoe-fly-shoe";
pub const SFS_SECRET: &str = "shoe-fly-shoe-secret-0123456789abcdef";
pub const SFS_CALLBACK: &str = "https://shoeflyshoe.example/callback";
/// Routes: `/app` (API + consent), `/web` (sign-in alone, short sessions), `/down`
/// (provider unreachable).
pub const ROUTES: [&str; 3] = ["app", "web", "down"];

/// One proxy replica with TLS.
pub struct Proxy {
    pub server: ServerHandle,
    pub config: source::ConfigTx,
    pub port: u16,
}

impl Proxy {
    pub fn start(dir: &std::path::Path, key: &LoginKey, store: Arc<dyn TokenStore>) -> Proxy {
        Self::start_with(dir, key, store, ServerArgs::default())
    }

    /// Like [`Proxy::start`], with other server flags from `args`.
    pub fn start_with(
        dir: &std::path::Path,
        key: &LoginKey,
        store: Arc<dyn TokenStore>,
        args: ServerArgs,
    ) -> Proxy {
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        if !cert_path.exists() {
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
            std::fs::write(&cert_path, cert.cert.pem()).unwrap();
            std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        }
        let (tx, rx) = source::channel();
        let mut args = ServerArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            listen_tls: Some("127.0.0.1:0".parse().unwrap()),
            tls_cert: Some(cert_path),
            tls_key: Some(key_path),
            workers: Some(1),
            ..args
        };
        args.login.key = Some(key.clone());
        let server = server::spawn(&args, rx, store).expect("proxy starts");
        let port = server.tls_addr.unwrap().port();
        Proxy {
            server,
            config: tx,
            port,
        }
    }

    pub fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub async fn publish(&self, snapshot: Snapshot) {
        let revision = snapshot.revision.clone();
        self.config.send_replace(Some(Arc::new(snapshot)));
        self.server.wait_for_revision(&revision).await;
    }
}

/// The provider's redirect URIs for every route on every proxy origin.
pub fn provider_uris(proxies: &[&Proxy]) -> (Vec<String>, Vec<String>) {
    let mut callbacks = Vec::new();
    let mut signed_out = Vec::new();
    for p in proxies {
        for r in ROUTES {
            callbacks.push(format!("{}/{r}/oauth2/callback", p.origin()));
            signed_out.push(format!("{}/{r}/oauth2/signed-out", p.origin()));
        }
    }
    (callbacks, signed_out)
}

pub fn mk_login(key: &LoginKey, route_id: &str, issuer: &str) -> Login {
    Login {
        issuer_url: issuer.to_owned(),
        client_id: idp::CLIENT_ID.into(),
        client_secret_sealed: key.seal(idp::CLIENT_SECRET.as_bytes(), route_id),
        scopes: vec!["openid".into(), "email".into(), "profile".into()],
        user_claim: "preferred_username".into(),
        allowed_domains: vec![],
        allowed_users: vec![],
        required_claims: vec![],
        consent: ConsentMode::Remember,
        trusted_clients: vec![],
        session_ttl: 3600,
        idle_timeout: 3600,
        consent_ttl: 3600,
        require_session: false,
        title: Some("Step On".into()),
        logo: None,
    }
}

/// `/app`, `/web` (`requireSession`, sessions of `web_session_secs`) and `/down`.
pub fn mk_snapshot(
    key: &LoginKey,
    issuer: &str,
    upstream: &TestUpstream,
    web_session_secs: u64,
    revision: &str,
) -> Snapshot {
    let route = |name: &str, login: Login| {
        let id = format!("default/{name}");
        Route {
            auth_only: false,
            id,
            hosts: vec![],
            paths: vec![format!("/{name}")],
            strip_path: true,
            preserve_host: false,
            allow_encoded_slashes: false,
            upstream: Upstream {
                endpoints: vec![upstream.url()],
                connect_timeout_ms: 2_000,
                response_timeout_ms: 5_000,
                ..Upstream::default()
            },
            timeouts: Default::default(),
            oauth2: Some(RouteOAuth2 {
                scopes: vec!["steps".into()],
                login: Some(login),
                ..RouteOAuth2::default()
            }),
            ..Default::default()
        }
    };
    let mut web = mk_login(key, "default/web", issuer);
    web.require_session = true;
    web.session_ttl = web_session_secs;
    web.idle_timeout = web_session_secs;
    // Nothing listens on port 9 of loopback (discard; never started in tests).
    let down = mk_login(key, "default/down", "http://127.0.0.1:9/o");
    Snapshot {
        revision: revision.into(),
        routes: vec![
            route("app", mk_login(key, "default/app", issuer)),
            route("down", down),
            route("web", web),
        ],
        consumers: vec![Consumer {
            id: "default/sfs".into(),
            username: Some("Shoe Fly Shoe Inc.".into()),
            custom_id: None,
        }],
        clients: vec![OAuth2Client {
            client_id: SFS.into(),
            secret_sha256: Some(Digest::of(SFS_SECRET.as_bytes()).to_hex()),
            name: "Shoe Fly Shoe".into(),
            consumer_id: "default/sfs".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec![SFS_CALLBACK.into()],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        ..Snapshot::default()
    }
}

/// One HTTP response as the browser saw it.
pub struct Page {
    pub status: u16,
    pub url: String,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The `value` of the first `<input name="NAME" ... value="...">`.
    pub fn input(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\""))?;
        let rest = &self.body[at..];
        let v = rest.find("value=\"")? + 7;
        let end = rest[v..].find('"')?;
        Some(rest[v..v + end].replace("&amp;", "&"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Cookies by host (not port, as real browsers keep them), no redirects followed
/// on its own.
pub struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, BTreeMap<String, String>>,
    pub origin_header: Option<String>,
    /// Sent on every request to `localhost` (the proxies), e.g. `X-Forwarded-Host`
    /// as a load balancer in front of replicas would.
    pub proxy_headers: Vec<(String, String)>,
}

impl Browser {
    pub fn new(dir: &std::path::Path) -> Browser {
        let pem = std::fs::read(dir.join("cert.pem")).unwrap();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            jar: HashMap::new(),
            origin_header: None,
            proxy_headers: Vec::new(),
        }
    }

    /// Forget every cookie of `host`.
    pub fn clear(&mut self, host: &str) {
        self.jar.remove(host);
    }

    /// The cookie names held for `host`.
    pub fn cookie_names(&self, host: &str) -> Vec<String> {
        self.jar
            .get(host)
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub async fn get(&mut self, url: &str) -> Page {
        self.send(reqwest::Method::GET, url, None, &[]).await
    }

    pub async fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Page {
        self.send(reqwest::Method::GET, url, None, headers).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.send(reqwest::Method::POST, url, Some(form), &[]).await
    }

    async fn send(
        &mut self,
        method: reqwest::Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
        headers: &[(&str, &str)],
    ) -> Page {
        let parsed = url::Url::parse(url).unwrap();
        let host = parsed.host_str().unwrap().to_owned();
        // Test traffic stays on this machine: a URL elsewhere is a test bug.
        assert!(
            host == "localhost" || host == "127.0.0.1",
            "the test browser refuses to leave loopback: {url}"
        );
        if std::env::var_os("SIGNIN_TRACE").is_some() {
            eprintln!("browser: {method} {url}");
        }
        let mut req = self.http.request(method, url);
        if let Some(cookies) = self.jar.get(&host).filter(|c| !c.is_empty()) {
            let header: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header("cookie", header.join("; "));
        }
        if let Some(form) = form {
            req = req.form(form);
            if let Some(o) = &self.origin_header {
                req = req.header("origin", o);
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if host == "localhost" {
            for (k, v) in &self.proxy_headers {
                req = req.header(k, v);
            }
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        for sc in resp.headers().get_all("set-cookie") {
            let sc = sc.to_str().unwrap();
            let (pair, attrs) = sc.split_once(';').unwrap_or((sc, ""));
            let (name, value) = pair.split_once('=').unwrap();
            let jar = self.jar.entry(host.clone()).or_default();
            if attrs.contains("Max-Age=0") || value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let location = resp
            .headers()
            .get("location")
            .map(|l| parsed.join(l.to_str().unwrap()).unwrap().to_string());
        Page {
            status: resp.status().as_u16(),
            url: url.to_owned(),
            location,
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    /// GET `url` and follow redirects until a page, or a redirect to `stop_prefix`.
    pub async fn follow(&mut self, url: &str, stop_prefix: &str) -> Page {
        let mut page = self.get(url).await;
        for _ in 0..20 {
            match &page.location {
                Some(l) if page.status / 100 == 3 && !l.starts_with(stop_prefix) => {
                    let next = l.clone();
                    page = self.get(&next).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Answer the provider's login form (the page `follow` stopped at).
    pub async fn log_in(&mut self, login_page: &Page, user: &str, stop_prefix: &str) -> Page {
        assert_eq!(login_page.status, 200, "{}", login_page.body);
        assert!(login_page.body.contains("Daily Planet identity provider"));
        let csrf = login_page.input("csrfmiddlewaretoken").expect("csrf token");
        let next = login_page.input("next").unwrap_or_default();
        let password = format!("{user}-password");
        let page = self
            .post(
                &login_page.url,
                &[
                    ("csrfmiddlewaretoken", &csrf),
                    ("username", user),
                    ("password", &password),
                    ("next", &next),
                ],
            )
            .await;
        assert_eq!(page.status, 302, "login refused: {}", page.body);
        let next = page.location.clone().unwrap();
        self.follow(&next, stop_prefix).await
    }
}

/// PKCE pair for the client.
pub fn pkce() -> (String, String) {
    let verifier = gatehouse_proxy::secret::random_token();
    let challenge = gatehouse_proxy::oauth2::pkce::s256(&verifier);
    (verifier, challenge)
}

/// The client's authorization URL on `origin`'s `/app` route.
pub fn authorize_url(origin: &str, state: &str, challenge: &str, scope: &str) -> String {
    let mut u = url::Url::parse(&format!("{origin}/app/oauth2/authorize")).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", SFS)
        .append_pair("redirect_uri", SFS_CALLBACK)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    if !scope.is_empty() {
        u.query_pairs_mut().append_pair("scope", scope);
    }
    u.to_string()
}

/// Query parameters of a URL.
pub fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The client's back-channel token request.
pub async fn redeem(origin: &str, code: &str, verifier: &str) -> serde_json::Value {
    redeem_for(origin, code, verifier, SFS_CALLBACK).await
}

/// The token request for a code issued to `redirect_uri`.
pub async fn redeem_for(
    origin: &str,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> serde_json::Value {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve("localhost", SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .unwrap();
    let resp = http
        .post(format!("{origin}/app/oauth2/token"))
        .basic_auth(SFS, Some(SFS_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

/// Start a provider for these proxies.
pub fn start_idp(proxies: &[&Proxy]) -> Idp {
    let (callbacks, signed_out) = provider_uris(proxies);
    Idp::start(&callbacks, &signed_out).expect("the test identity provider starts")
}

/// Start a provider for routes served under a public origin (replicas behind a
/// load balancer that sets `X-Forwarded-Host`).
pub fn start_idp_for_origin(origin: &str) -> Idp {
    let callbacks: Vec<String> = ROUTES
        .iter()
        .map(|r| format!("{origin}/{r}/oauth2/callback"))
        .collect();
    Idp::start(&callbacks, &[]).expect("the test identity provider starts")
}
