//! End-to-end: the real `gatehouse` binary in standalone mode on (a copy of)
//! `examples/stepon`, with a real loopback upstream standing in for the Step On API.
//!
//! - the Kong tutorial's flow: login app authorizes for `clark` with the provision key,
//!   the client swaps the code, calls `/stepon/stepcounts`, refreshes, and the old token
//!   dies; a token with only `user_profile` is refused on `/stepcounts`;
//! - hot reload: a new route and client appear without a restart (generated credentials
//!   printed once), an invalid object keeps its last good version, a broken edit keeps
//!   the last good config and names file + document;
//! - `gatehouse render` exit codes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gatehouse_e2e::upstream::{full, TestUpstream};
use http::Response;
use serde_json::Value;

const CLIENT_ID: &str = "shoe-fly-shoe";
const CLIENT_SECRET: &str = "shoe-fly-shoe-secret-0123456789abcdef";
const PROVISION_KEY: &str = "stepon-provision-key-0123456789abcdef";
const REDIRECT_URI: &str = "https://shoeflyshoe.store/stepon/callback";
/// Upper bound for anything asynchronous to happen (process start, file reload). Only
/// a deadline for failing, never a measurement.
const DEADLINE: Duration = Duration::from_secs(30);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The `gatehouse` binary under test (the shared helper builds it once per run).
fn binary() -> PathBuf {
    gatehouse_e2e::binary::binary_path().expect("the gatehouse binary builds")
}

/// A copy of `examples/stepon` whose backend points at `upstream`.
fn stepon_dir(upstream: SocketAddr) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(workspace_root().join("examples/stepon")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("http://127.0.0.1:3000", &format!("http://{upstream}"));
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    dir
}

/// What the Step On stand-in saw: one entry per request (path, lowercase headers).
type Seen = Arc<Mutex<Vec<(String, BTreeMap<String, String>)>>>;

/// A loopback upstream that records requests and answers with Clark's step counts:
/// its address, what it saw, and the server (stops when dropped).
async fn step_on_api() -> (SocketAddr, Seen, TestUpstream) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let upstream = TestUpstream::start(move |req| {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        record
            .lock()
            .unwrap()
            .push((req.uri().path().to_owned(), headers));
        async { Response::new(full(r#"{"clark":[{"date":"2021-03-08","steps":10432}]}"#)) }
    })
    .await;
    (upstream.addr, seen, upstream)
}

/// A running `gatehouse standalone`, killed on drop. Output lines are collected.
struct Standalone {
    child: Child,
    https: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Standalone {
    fn start(manifests: &Path) -> Standalone {
        let mut child = Command::new(binary())
            .args(["standalone", "--manifests"])
            .arg(manifests)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--self-signed-tls",
                "127.0.0.1:0",
            ])
            .args(["--workers", "1"])
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gatehouse starts");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut me = Standalone {
            child,
            https: "0.0.0.0:0".parse().unwrap(),
            stdout,
            stderr,
        };
        let line = me.wait_for_line(&me.stdout.clone(), "  HTTPS  https://");
        let addr = line
            .trim()
            .trim_start_matches("HTTPS")
            .trim()
            .trim_start_matches("https://")
            .split_whitespace()
            .next()
            .unwrap();
        me.https = addr.parse().unwrap();
        me
    }

    fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// Wait until some collected line contains `needle`; returns that line.
    fn wait_for_line(&mut self, lines: &Arc<Mutex<Vec<String>>>, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "gatehouse exited ({status}) before printing {needle:?}; stderr:\n{}",
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no line containing {needle:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.lock().unwrap().join("\n"),
                self.stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // standalone's certificate is self-signed, generated at start-up.
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let res = http.post(url).form(form).send().await.unwrap();
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn get_status(http: &reqwest::Client, url: &str, token: Option<&str>) -> u16 {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

/// The login/consent app's call: authorize `user` for `scope`, return the code.
async fn authorize(gh: &Standalone, http: &reqwest::Client, user: &str, scope: &str) -> String {
    let (status, body) = post_form(
        http,
        &gh.url("/stepon/oauth2/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("provision_key", PROVISION_KEY),
            ("authenticated_userid", user),
            ("scope", scope),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let redirect = url::Url::parse(body["redirect_uri"].as_str().expect("redirect_uri")).unwrap();
    assert!(redirect.as_str().starts_with(REDIRECT_URI), "{redirect}");
    redirect
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("redirect carries a code")
}

/// The client's back-channel call: swap a code for tokens.
async fn exchange(gh: &Standalone, http: &reqwest::Client, code: &str) -> Value {
    let (status, body) = post_form(
        http,
        &gh.url("/stepon/oauth2/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", REDIRECT_URI),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_on_flow_authorize_exchange_call_refresh_and_scope_rule() {
    let (upstream, seen, _server) = step_on_api().await;
    let dir = stepon_dir(upstream);
    let gh = Standalone::start(dir.path());
    let http = client();

    // No token, no entry.
    assert_eq!(
        get_status(&http, &gh.url("/stepon/stepcounts"), None).await,
        401
    );

    // Clark authorizes Shoe Fly Shoe for his step counts; the store swaps the code.
    let code = authorize(&gh, &http, "clark", "step_counts").await;
    let tokens = exchange(&gh, &http, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        tokens["token_type"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some("bearer")
    );
    assert_eq!(tokens["expires_in"], 7200);

    // The store reads Clark's step counts; Step On learns who is asking.
    let url = gh.url("/stepon/stepcounts");
    assert_eq!(get_status(&http, &url, Some(&access)).await, 200);
    {
        let seen = seen.lock().unwrap();
        let (path, headers) = seen.last().expect("the upstream was called");
        assert_eq!(path, "/stepcounts", "stripPath removed /stepon");
        assert_eq!(headers["x-authenticated-userid"], "clark");
        assert_eq!(headers["x-authenticated-scope"], "step_counts");
        assert_eq!(headers["x-consumer-username"], "shoeflyshoe");
        assert_eq!(headers["x-credential-identifier"], CLIENT_ID);
    }

    // Refresh: a new pair, and the old access token stops working.
    let (status, renewed) = post_form(
        &http,
        &gh.url("/stepon/oauth2/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    let new_access = renewed["access_token"].as_str().unwrap();
    assert_ne!(new_access, access);
    assert_eq!(get_status(&http, &url, Some(&access)).await, 401);
    assert_eq!(get_status(&http, &url, Some(new_access)).await, 200);

    // A token for the user profile only does not open the step counts.
    let code = authorize(&gh, &http, "clark", "user_profile").await;
    let profile_only = exchange(&gh, &http, &code).await;
    let profile_token = profile_only["access_token"].as_str().unwrap();
    let calls_before = seen.lock().unwrap().len();
    assert_eq!(get_status(&http, &url, Some(profile_token)).await, 403);
    assert_eq!(
        seen.lock().unwrap().len(),
        calls_before,
        "a 403 never reaches Step On"
    );
    // ...but it does open what the rule does not cover.
    assert_eq!(
        get_status(&http, &gh.url("/stepon/profile"), Some(profile_token)).await,
        200
    );
}

/// Poll until `GET url` answers `want` (or fail at the deadline).
async fn wait_for_status(http: &reqwest::Client, url: &str, want: u16) {
    let start = Instant::now();
    loop {
        let got = get_status(http, url, None).await;
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{url} still answers {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const EXTRA: &str = r#"
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata:
  name: step-tracker
spec:
  consumerRef: {name: shoeflyshoe}
  name: Step Tracker
  grantTypes: [client_credentials]
---
apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata:
  name: extra
spec:
  paths: [/extra]
  backend: {url: "http://UPSTREAM"}
  oauth2:
    clientCredentials: true
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_adds_routes_generates_credentials_and_survives_a_broken_edit() {
    let (upstream, _seen, _server) = step_on_api().await;
    let dir = stepon_dir(upstream);
    let mut gh = Standalone::start(dir.path());
    let http = client();
    assert_eq!(get_status(&http, &gh.url("/extra/x"), None).await, 404);

    // A new file: a route and a client without a Secret.
    std::fs::write(
        dir.path().join("extra.yaml"),
        EXTRA.replace("UPSTREAM", &upstream.to_string()),
    )
    .unwrap();
    wait_for_status(&http, &gh.url("/extra/x"), 401).await;

    // Its generated credentials were printed once, and work.
    let stdout = gh.stdout.clone();
    gh.wait_for_line(&stdout, "OAuth2Client default/step-tracker");
    let id_line = gh.wait_for_line(&stdout, "client_id:");
    let secret_line = gh.wait_for_line(&stdout, "client_secret:");
    let client_id = id_line.split_whitespace().last().unwrap().to_owned();
    let client_secret = secret_line.split_whitespace().last().unwrap().to_owned();
    assert!(client_secret.len() >= 32);
    let (status, body) = post_form(
        &http,
        &gh.url("/extra/oauth2/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &client_secret),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_status(&http, &gh.url("/extra/x"), Some(&token)).await,
        200
    );

    // An edit that parses but does not translate (a scope rule naming a scope the
    // route does not offer): the route keeps its last good version, no rule.
    let stderr = gh.stderr.clone();
    std::fs::write(
        dir.path().join("extra.yaml"),
        EXTRA.replace("UPSTREAM", &upstream.to_string()).replace(
            "    clientCredentials: true\n",
            "    clientCredentials: true\n    rules: [{path: /, requiredScopes: [nope]}]\n",
        ),
    )
    .unwrap();
    let line = gh.wait_for_line(&stderr, "the last good version is still served");
    assert!(
        line.contains("default/extra") && line.contains("InvalidSpec"),
        "{line}"
    );
    for _ in 0..10 {
        assert_eq!(
            get_status(&http, &gh.url("/extra/x"), Some(&token)).await,
            200
        );
    }

    // A broken edit: the problem is printed with file and document, and the last
    // good configuration keeps serving.
    std::fs::write(
        dir.path().join("zz-broken.yaml"),
        "apiVersion: gatehouse.dev/v1alpha1\nkind: Consumer\nmetadata: {name: ok}\nspec: {username: ok}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: bad}\nspec: {paths: /not-a-list}\n",
    )
    .unwrap();
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    let line = gh.wait_for_line(&stderr, "zz-broken.yaml document 2");
    assert!(line.contains("ProtectedRoute \"bad\""), "{line}");
    assert_eq!(
        get_status(&http, &gh.url("/extra/x"), Some(&token)).await,
        200
    );
    assert_eq!(
        get_status(&http, &gh.url("/stepon/stepcounts"), None).await,
        401
    );

    // Fixing it applies everything that changed meanwhile (extra.yaml is gone).
    std::fs::remove_file(dir.path().join("zz-broken.yaml")).unwrap();
    wait_for_status(&http, &gh.url("/extra/x"), 404).await;
    assert_eq!(
        get_status(&http, &gh.url("/stepon/stepcounts"), None).await,
        401
    );
    let printed = gh
        .stdout
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("Generated credentials"))
        .count();
    assert_eq!(printed, 1, "generated credentials are printed once");
}

#[test]
fn render_exits_zero_for_ready_manifests_and_one_otherwise() {
    let good = Command::new(binary())
        .args(["render", "--manifests"])
        .arg(workspace_root().join("examples/stepon"))
        .output()
        .unwrap();
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let snapshot: Value = serde_json::from_slice(&good.stdout).unwrap();
    assert_eq!(snapshot["routes"][0]["id"], "default/stepon");
    let json = String::from_utf8_lossy(&good.stdout);
    assert!(!json.contains(CLIENT_SECRET) && !json.contains(PROVISION_KEY));
    let table = String::from_utf8_lossy(&good.stderr);
    assert!(table.contains("OAuth2Client") && table.contains("default/shoe-fly-shoe"));

    // A client whose consumer does not exist: still rendered, but the check fails.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orphan.yaml"),
        "apiVersion: gatehouse.dev/v1alpha1\nkind: OAuth2Client\nmetadata: {name: orphan}\nspec:\n  consumerRef: {name: nobody}\n  name: Orphan\n",
    )
    .unwrap();
    let bad = Command::new(binary())
        .args(["render", "--manifests"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let table = String::from_utf8_lossy(&bad.stderr);
    assert!(table.contains("ConsumerNotFound"), "{table}");
}
