//! Real MCP clients against an MCP server behind Gatehouse (issue 13): the MCP Python
//! SDK's OAuth client and the TypeScript SDK's each connect to the Python SDK's own
//! server (streamable HTTP), get a 401, discover the protected resource (RFC 9728)
//! and the authorization server (RFC 8414), become a client (a client ID metadata
//! document, or RFC 7591 registration), run the authorization code flow with PKCE
//! and `resource` — the user signing in at the test identity provider and consenting,
//! driven here — and call a tool. Plus what must be refused: tokens for another
//! resource, a missing scope (step-up challenge), SSRF through `client_id` URLs,
//! oversize metadata documents and registration floods.
//!
//! The SDKs come from `scripts/test`: a venv built from `e2e/mcp/requirements.txt`
//! (`GATEHOUSE_MCP_PYTHON`, else `target/e2e-tools/mcp-venv/bin/python`) and
//! `e2e/mcp/node/node_modules` (`npm ci`).

mod signin_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use gatehouse_e2e::idp::Idp;
use gatehouse_e2e::pki::TestCa;
use gatehouse_e2e::upstream::{full, TestUpstream};
use gatehouse_proxy::config::{
    ClientRegistration, ClientType, Consumer, OAuth2Client, Route, RouteOAuth2, ScopeRule,
    Snapshot, Upstream,
};
use gatehouse_proxy::seal::LoginKey;
use gatehouse_proxy::server::ServerArgs;
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::Digest;
use serde_json::{json, Value};
use signin_support::*;

const ROBOT: &str = "robot";
const ROBOT_SECRET: &str = "robot-secret-0123456789";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn mcp_python() -> PathBuf {
    let path = std::env::var_os("GATEHOUSE_MCP_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/e2e-tools/mcp-venv/bin/python"));
    assert!(
        path.exists(),
        "the MCP Python SDK's venv ({}) is missing: run scripts/test once, or set GATEHOUSE_MCP_PYTHON",
        path.display()
    );
    path
}

fn node_client() -> PathBuf {
    let dir = workspace().join("e2e/mcp/node");
    assert!(
        dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "e2e/mcp/node/node_modules is missing: run scripts/test once (npm ci there)"
    );
    dir.join("client.mjs")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The MCP Python SDK's own server on a loopback port.
fn start_mcp_server() -> (Process, u16) {
    let port = free_port();
    let child = Command::new(mcp_python())
        .arg(workspace().join("e2e/mcp/server.py"))
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the MCP server starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the MCP server never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    (Process(child), port)
}

/// Everything one test needs: proxy, provider, MCP server, metadata document host.
struct World {
    _dir: tempfile::TempDir,
    dir_path: PathBuf,
    proxy: Proxy,
    _idp: Idp,
    _server: Process,
    documents: TestUpstream,
    origin: String,
}

impl World {
    async fn start(document: Value) -> World {
        let dir = tempfile::tempdir().unwrap();
        let key = LoginKey::random();
        // Client ID metadata documents come from a host with its own CA, which the
        // proxy trusts through --client-metadata-ca.
        let ca = TestCa::new();
        let leaf = ca.leaf(&["127.0.0.1"]);
        let ca_path = dir.path().join("documents-ca.pem");
        std::fs::write(&ca_path, &ca.cert_pem).unwrap();
        let documents =
            serve_documents(ca.server_config(&leaf, &[b"http/1.1"], false), document).await;
        let mut args = ServerArgs::default();
        args.login.client_metadata_ca = Some(ca_path);
        let proxy = Proxy::start_with(dir.path(), &key, Arc::new(MemoryStore::new(10_000)), args);
        let origin = proxy.origin();
        let idp = Idp::start(
            &[format!("{origin}/mcp/oauth2/callback")],
            &[format!("{origin}/mcp/oauth2/signed-out")],
        )
        .expect("the test identity provider starts");
        let (server, port) = start_mcp_server();
        proxy
            .publish(snapshot(&key, &idp.issuer(), port, &origin, documents.addr))
            .await;
        World {
            dir_path: dir.path().to_path_buf(),
            _dir: dir,
            proxy,
            _idp: idp,
            _server: server,
            documents,
            origin,
        }
    }

    fn document_url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.documents.addr.port())
    }

    fn cert(&self) -> PathBuf {
        self.dir_path.join("cert.pem")
    }

    fn http(&self) -> reqwest::Client {
        let pem = std::fs::read(self.cert()).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .resolve(
                "localhost",
                SocketAddr::from(([127, 0, 0, 1], self.proxy.port)),
            )
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }
}

/// The documents host: `/client.json` (the good document, `{URL}` replaced by its own
/// address), `/huge.json` (over the size limit), `/moved.json` (a redirect to a
/// private address).
async fn serve_documents(config: Arc<rustls::ServerConfig>, document: Value) -> TestUpstream {
    let template = document.to_string();
    TestUpstream::start_tls(
        move |req: http::Request<hyper::body::Incoming>| {
            let template = template.clone();
            async move {
                let host = req
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let path = req.uri().path().to_owned();
                let url = format!("https://{host}{path}");
                match path.as_str() {
                    "/client.json" | "/other.json" => http::Response::builder()
                        .header("content-type", "application/json")
                        .header("cache-control", "max-age=60")
                        .body(full(template.replace("{URL}", &url)))
                        .unwrap(),
                    "/huge.json" => http::Response::builder()
                        .header("content-type", "application/json")
                        .body(full(format!(
                            r#"{{"client_id":"{url}","redirect_uris":["http://127.0.0.1/cb"],"pad":"{}"}}"#,
                            "x".repeat(64 * 1024)
                        )))
                        .unwrap(),
                    "/moved.json" => http::Response::builder()
                        .status(302)
                        .header("location", "http://169.254.169.254/latest/meta-data/")
                        .body(full(""))
                        .unwrap(),
                    _ => http::Response::builder()
                        .status(404)
                        .body(full(""))
                        .unwrap(),
                }
            }
        },
        config,
    )
    .await
}

fn snapshot(
    key: &LoginKey,
    idp: &str,
    mcp_port: u16,
    origin: &str,
    documents: SocketAddr,
) -> Snapshot {
    let upstream = |port: u16| Upstream {
        endpoints: vec![format!("http://127.0.0.1:{port}")],
        connect_timeout_ms: 2_000,
        response_timeout_ms: 30_000,
        ..Upstream::default()
    };
    let mut login = mk_login(key, "default/mcp", idp);
    login.consent = gatehouse_proxy::config::ConsentMode::Always;
    let mcp = Route {
        id: "default/mcp".into(),
        paths: vec!["/mcp".into()],
        strip_path: false,
        upstream: upstream(mcp_port),
        oauth2: Some(RouteOAuth2 {
            scopes: vec!["tools".into(), "admin".into()],
            rules: vec![ScopeRule {
                path: "/".into(),
                methods: vec![],
                required_scopes: vec!["tools".into()],
            }],
            issuer: Some(format!("{origin}/mcp")),
            enable_client_credentials: true,
            global_credentials: true,
            oauth21: true,
            client_registration: ClientRegistration {
                metadata_documents: true,
                metadata_hosts: vec![format!("127.0.0.1:{}", documents.port())],
                dynamic: true,
                registration_rate: "5/h:5".into(),
                ..ClientRegistration::default()
            },
            login: Some(login),
            ..RouteOAuth2::default()
        }),
        ..Default::default()
    };
    // Another protected resource sharing credentials with /mcp.
    let other = Route {
        id: "default/other".into(),
        paths: vec!["/other".into()],
        upstream: upstream(mcp_port),
        oauth2: Some(RouteOAuth2 {
            scopes: vec!["tools".into(), "admin".into()],
            issuer: Some(format!("{origin}/other")),
            enable_client_credentials: true,
            global_credentials: true,
            ..RouteOAuth2::default()
        }),
        ..Default::default()
    };
    Snapshot {
        revision: "mcp".into(),
        routes: vec![mcp, other],
        consumers: vec![Consumer {
            id: "default/robots".into(),
            username: Some("robots".into()),
            custom_id: None,
        }],
        clients: vec![OAuth2Client {
            client_id: ROBOT.into(),
            secret_sha256: Some(Digest::of(ROBOT_SECRET.as_bytes()).to_hex()),
            name: "Robot".into(),
            consumer_id: "default/robots".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        ..Snapshot::default()
    }
}

fn good_document() -> Value {
    json!({
        "client_id": "{URL}",
        "client_name": "MCP client from a metadata document",
        "redirect_uris": ["http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

/// Run an SDK client to the end: it prints the authorization URL, the test signs
/// `clark` in and consents (checking the consent page says what `unvetted` expects),
/// hands back the redirect, and the client prints what the tool answered.
async fn run_client(world: &World, mut cmd: Command, expect_host: &str) -> String {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Process(cmd.spawn().expect("the MCP client starts"));
    let stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(90))
            .unwrap_or_else(|_| panic!("the MCP client printed no {what}"))
    };
    let first = tokio::task::block_in_place(|| next("authorization URL"));
    let Some(authorize) = first["authorize"].as_str() else {
        panic!("expected an authorization URL, got {first}");
    };
    assert!(authorize.starts_with(&format!("{}/mcp/oauth2/authorize?", world.origin)));
    let q = query(authorize);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], format!("{}/mcp", world.origin));

    let mut b = Browser::new(&world.dir_path);
    let stop = "http://127.0.0.1:3341";
    let mut page = b.follow(authorize, stop).await;
    if page.body.contains("Daily Planet identity provider") {
        page = b.log_in(&page, "clark", stop).await;
    }
    assert_eq!(page.status, 200, "expected the consent page: {}", page.body);
    assert!(
        page.body.contains("not registered with") && page.body.contains(expect_host),
        "the consent page flags a self-described client from {expect_host}: {}",
        page.body
    );
    let ticket = page.input("ticket").expect("consent ticket");
    // The consent form is posted from the proxy's own page.
    b.origin_header = Some(world.origin.clone());
    let approved = b
        .post(
            &format!("{}/mcp/oauth2/consent", world.origin),
            &[("ticket", &ticket), ("decision", "approve")],
        )
        .await;
    assert_eq!(approved.status, 302, "{}", approved.body);
    let callback = approved.location.clone().unwrap();
    assert!(callback.starts_with(stop), "{callback}");
    assert_eq!(query(&callback)["iss"], format!("{}/mcp", world.origin));
    {
        let stdin = child.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{callback}").unwrap();
    }
    let done = tokio::task::block_in_place(|| rx.recv_timeout(Duration::from_secs(90)).ok());
    let status = tokio::task::block_in_place(|| child.0.wait()).unwrap();
    let errors = err_reader.join().unwrap();
    let Some(done) = done else {
        panic!("the MCP client did not finish ({status}): {errors}");
    };
    assert!(status.success(), "the MCP client failed: {errors}");
    done["whoami"]
        .as_str()
        .unwrap_or_else(|| panic!("no tool answer: {done}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_uses_a_client_id_metadata_document() {
    let world = World::start(good_document()).await;
    let metadata_url = world.document_url("/client.json");
    let mut cmd = Command::new(mcp_python());
    cmd.arg(workspace().join("e2e/mcp/client.py"))
        .arg(format!("{}/mcp", world.origin))
        .arg(world.cert())
        .arg("cimd")
        .arg(&metadata_url);
    let answer = run_client(&world, cmd, "127.0.0.1").await;
    // The upstream learned who is calling: the user, and the client's URL as its id.
    // The SDKs ask for every scope the resource metadata lists (SEP-835).
    assert_eq!(
        answer,
        format!("user=clark client={metadata_url} scope=tools admin"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_registers_dynamically() {
    let world = World::start(good_document()).await;
    let mut cmd = Command::new("node");
    cmd.arg(node_client())
        .arg(format!("{}/mcp", world.origin))
        .arg("dcr")
        .env("NODE_EXTRA_CA_CERTS", world.cert());
    let answer = run_client(&world, cmd, "127.0.0.1").await;
    assert!(
        answer.starts_with("user=clark client=dcr_") && answer.ends_with(" scope=tools admin"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_uses_a_client_id_metadata_document() {
    let world = World::start(good_document()).await;
    let metadata_url = world.document_url("/other.json");
    let mut cmd = Command::new("node");
    cmd.arg(node_client())
        .arg(format!("{}/mcp", world.origin))
        .arg("cimd")
        .arg(&metadata_url)
        .env("NODE_EXTRA_CA_CERTS", world.cert());
    let answer = run_client(&world, cmd, "127.0.0.1").await;
    assert_eq!(
        answer,
        format!("user=clark client={metadata_url} scope=tools admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_registers_dynamically() {
    let world = World::start(good_document()).await;
    let mut cmd = Command::new(mcp_python());
    cmd.arg(workspace().join("e2e/mcp/client.py"))
        .arg(format!("{}/mcp", world.origin))
        .arg(world.cert())
        .arg("dcr");
    let answer = run_client(&world, cmd, "127.0.0.1").await;
    assert!(answer.starts_with("user=clark client=dcr_"), "{answer}");
}

/// A client credentials token of the configured robot for `route`, optionally bound
/// to `resource`, with `scope`.
async fn robot_token(world: &World, route: &str, resource: Option<&str>, scope: &str) -> String {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", ROBOT),
        ("client_secret", ROBOT_SECRET),
        ("scope", scope),
    ];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let resp = world
        .http()
        .post(format!("{}/{route}/oauth2/token", world.origin))
        .form(&form)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned()
}

async fn call_mcp(world: &World, token: &str) -> reqwest::Response {
    world
        .http()
        .post(format!("{}/mcp", world.origin))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_for_another_resource_and_missing_scopes_are_refused_with_challenges() {
    let world = World::start(good_document()).await;
    let metadata = format!("{}/.well-known/oauth-protected-resource/mcp", world.origin);
    // No token: 401 naming the resource metadata, which names the server.
    let none = world
        .http()
        .post(format!("{}/mcp", world.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
        "{challenge}"
    );
    let prm: Value = world
        .http()
        .get(&metadata)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(prm["resource"], format!("{}/mcp", world.origin));
    assert_eq!(
        prm["authorization_servers"],
        json!([format!("{}/mcp", world.origin)])
    );
    assert_eq!(prm["bearer_methods_supported"], json!(["header"]));
    let asm: Value = world
        .http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server/mcp",
            world.origin
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["issuer"], format!("{}/mcp", world.origin));
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    assert_eq!(
        asm["registration_endpoint"],
        format!("{}/mcp/oauth2/register", world.origin)
    );
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));

    // Shared credentials: a token of /other for no resource works on /mcp...
    let shared = robot_token(&world, "other", None, "tools").await;
    assert_eq!(call_mcp(&world, &shared).await.status(), 200);
    // ...one minted for /other's resource does not.
    let other_resource = format!("{}/other", world.origin);
    let bound = robot_token(&world, "other", Some(&other_resource), "tools").await;
    let refused = call_mcp(&world, &bound).await;
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));
    // A resource /mcp does not serve is refused at the token endpoint.
    let resp = world
        .http()
        .post(format!("{}/mcp/oauth2/token", world.origin))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ROBOT),
            ("client_secret", ROBOT_SECRET),
            ("resource", &other_resource),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_target"
    );

    // Missing scope: 403 with the step-up challenge naming the scope needed.
    let mcp_resource = format!("{}/mcp", world.origin);
    let narrow = robot_token(&world, "mcp", Some(&mcp_resource), "admin").await;
    let stepup = call_mcp(&world, &narrow).await;
    assert_eq!(stepup.status(), 403);
    let challenge = stepup.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"tools\""), "{challenge}");
    assert!(
        challenge.contains(&format!("resource_metadata=\"{metadata}\"")),
        "{challenge}"
    );
    // OAuth 2.1: a token in the query string is not looked at.
    let good = robot_token(&world, "mcp", Some(&mcp_resource), "tools").await;
    assert_eq!(call_mcp(&world, &good).await.status(), 200);
    let in_query = world
        .http()
        .post(format!("{}/mcp?access_token={good}", world.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_urls_cannot_reach_private_hosts_or_oversize_documents() {
    let world = World::start(good_document()).await;
    let mut b = Browser::new(&world.dir_path);
    let authorize = |client_id: &str| {
        let mut u = url::Url::parse(&format!("{}/mcp/oauth2/authorize", world.origin)).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", "http://127.0.0.1:1234/callback")
            .append_pair(
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            )
            .append_pair("code_challenge_method", "S256");
        u.to_string()
    };
    let port = world.documents.addr.port();
    for (client_id, why) in [
        // Not on the allow-list (a private address would be refused even if public
        // names were allowed: see the unit tests of client_metadata).
        (
            format!("https://127.0.0.2:{port}/client.json"),
            "not accepted here",
        ),
        (
            format!("https://localhost:{port}/client.json"),
            "not accepted here",
        ),
        (
            "https://10.1.2.3/client.json".to_owned(),
            "not accepted here",
        ),
        (world.document_url("/huge.json"), "larger than"),
        (world.document_url("/moved.json"), "redirects"),
        (world.document_url("/missing.json"), "answered 404"),
    ] {
        let page = b.get(&authorize(&client_id)).await;
        assert_eq!(page.status, 400, "{client_id}: {}", page.body);
        assert!(page.location.is_none(), "never redirected: {client_id}");
        assert!(page.body.contains(why), "{client_id}: {}", page.body);
    }
    // The token endpoint refuses the same clients as invalid_client.
    let resp = world
        .http()
        .post(format!("{}/mcp/oauth2/token", world.origin))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", &world.document_url("/huge.json")),
            ("code", "x"),
            ("code_verifier", "y"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_is_cut_off() {
    let world = World::start(good_document()).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let resp = world
            .http()
            .post(format!("{}/mcp/oauth2/register", world.origin))
            .json(&json!({"redirect_uris": ["http://127.0.0.1/cb"]}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429, 429]);
}
