//! Shared by the tests against the real API server (`kube_*.rs`): the Step On example
//! as cluster resources, its upstream in a test network namespace, a controller and a
//! proxy process, and an HTTP client for the proxy. `controller_process.rs` (the same
//! flow against a stand-in API) uses the proxy process and its client too.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_e2e::binary::{binary_path, free_addr, Gatehouse};
use gatehouse_e2e::kube_apiserver::KubeApiServer;
use gatehouse_e2e::netns::TestNetns;
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::upstream::{echo_response, TestUpstream};
use serde_json::Value;

/// Upper bound for anything asynchronous; a deadline for failing, never a measurement.
pub const DEADLINE: Duration = Duration::from_secs(60);
pub const CLIENT_ID: &str = "shoe-fly-shoe";
pub const CLIENT_SECRET: &str = "shoe-fly-shoe-secret-0123456789abcdef";
pub const PROVISION_KEY: &str = "stepon-provision-key-0123456789abcdef";
pub const REDIRECT_URI: &str = "https://shoeflyshoe.store/stepon/callback";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// The shared control plane with the Gatehouse CRDs installed (once per process).
pub fn api() -> &'static KubeApiServer {
    static CRDS: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let api = KubeApiServer::shared();
    CRDS.get_or_init(|| {
        api.install_crds(&binary_path().expect("gatehouse binary"))
            .expect("CRDs install");
    });
    api
}

/// The Step On example (`examples/stepon`), its route pointed at Service
/// `stepon-api:8080` instead of the standalone-only `backend.url`.
pub fn stepon_yaml() -> String {
    let dir = workspace_root().join("examples/stepon");
    let stepon = std::fs::read_to_string(dir.join("stepon.yaml")).expect("stepon.yaml");
    let secrets = std::fs::read_to_string(dir.join("secrets.yaml")).expect("secrets.yaml");
    let stepon = stepon.replace(
        "    url: http://127.0.0.1:3000",
        "    service: {name: stepon-api, port: 8080}",
    );
    // The proxy is reached over plain HTTP here, as behind a TLS-terminating balancer.
    let stepon = stepon.replace(
        "  oauth2:\n",
        "  oauth2:\n    acceptHttpIfAlreadyTerminated: true\n",
    );
    assert!(
        stepon.contains("stepon-api") && stepon.contains("acceptHttpIfAlreadyTerminated"),
        "the example's route changed shape"
    );
    format!("{stepon}\n---\n{secrets}")
}

/// A test's corner of the cluster: namespaces `ns` and `system_ns`, a cluster-admin
/// kubeconfig for the controller (ServiceAccount `account` in `system_ns`), a Redis,
/// and the upstream behind Service `service` in `ns` (applied by `field_manager`).
pub struct Scene {
    pub kubeconfig: PathBuf,
    pub redis: RedisServer,
    pub backend: Backend,
}

impl Scene {
    pub fn create(
        ns: &str,
        system_ns: &str,
        account: &str,
        service: &str,
        field_manager: &str,
    ) -> Scene {
        let api = api();
        api.create_namespace(ns).unwrap();
        api.create_namespace(system_ns).unwrap();
        let kubeconfig = admin_service_account(api, system_ns, account);
        let redis = RedisServer::start().expect("redis-server starts");
        let backend = Backend::start();
        api.apply_yaml(&backend.service_yaml(service), ns, field_manager)
            .expect("Service and EndpointSlice accepted");
        Scene {
            kubeconfig,
            redis,
            backend,
        }
    }
}

/// The Step On example's three objects, as `kubectl wait` names them.
pub const STEPON_OBJECTS: [&str; 3] = [
    "consumer/shoeflyshoe",
    "oauth2client/shoe-fly-shoe",
    "protectedroute/stepon",
];

/// `kubectl wait --for=condition=Ready` on `objects` in `ns`; on failure the panic
/// carries the log of `controller`, the process that should have made them Ready.
pub fn wait_ready(ns: &str, objects: &[&str], controller: &Gatehouse) {
    let mut args = vec!["wait", "-n", ns, "--for=condition=Ready", "--timeout=90s"];
    args.extend_from_slice(objects);
    api()
        .kubectl_ok(&args)
        .unwrap_or_else(|e| panic!("{e:#}\ncontroller log:\n{}", controller.log()));
}

/// Wait until `what` (`kind/name` in `ns`) has condition `Ready=True`; returns it.
pub async fn wait_ready_true(ns: &str, what: &str) -> Value {
    wait_for(&format!("{what} Ready=True"), || {
        let obj = api().get_json(ns, what).ok()??;
        (ready(&obj)?["status"] == "True").then_some(obj)
    })
    .await
}

/// The Step On API: a real HTTP server (echo) listening inside a test network
/// namespace, and the Service + EndpointSlice that point at it.
pub struct Backend {
    pub netns: TestNetns,
    pub upstream: TestUpstream,
}

impl Backend {
    pub fn start() -> Backend {
        let netns = TestNetns::create().expect("network namespace (needs root)");
        let listener = netns.listen().expect("listen inside the namespace");
        let upstream =
            TestUpstream::start_on(listener, |req| async move { echo_response(req).await });
        Backend { netns, upstream }
    }

    /// Service `name` (port 8080) with one ready endpoint: the upstream.
    pub fn service_yaml(&self, name: &str) -> String {
        let port = self.upstream.addr.port();
        let ip = self.netns.addr();
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{name: http, port: 8080, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {name}-1
  labels: {{kubernetes.io/service-name: {name}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [\"{ip}\"], conditions: {{ready: true}}}}]
"
        )
    }
}

/// `gatehouse controller` against `kubeconfig`, publishing to `redis`, with `flags`
/// besides; returns it once its admin port (also returned) listens.
pub async fn spawn_controller(
    kubeconfig: &Path,
    redis: &RedisServer,
    flags: impl IntoIterator<Item = String>,
) -> (Gatehouse, SocketAddr) {
    let admin = free_addr();
    let mut args = vec![
        "controller".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--redis={}", redis.url()),
        format!("--admin-listen={admin}"),
    ];
    args.extend(flags);
    let mut c = Gatehouse::spawn(args).expect("controller starts");
    c.wait_for_port(admin, DEADLINE)
        .await
        .expect("controller admin listens");
    (c, admin)
}

/// `gatehouse controller` against `kubeconfig`, watching `ns` only, Lease `lease` in
/// `lease_ns`, with fast Lease timing (lease duration 4 s).
pub async fn controller(
    kubeconfig: &Path,
    redis: &RedisServer,
    ns: &str,
    lease_ns: &str,
    lease: &str,
    identity: &str,
) -> (Gatehouse, SocketAddr) {
    spawn_controller(
        kubeconfig,
        redis,
        [
            format!("--namespace={ns}"),
            format!("--lease-namespace={lease_ns}"),
            format!("--lease-name={lease}"),
            format!("--lease-identity={identity}"),
            "--lease-duration=4s".to_owned(),
            "--lease-renew-deadline=3s".to_owned(),
            "--lease-retry-period=500ms".to_owned(),
            "--debounce=50ms".to_owned(),
        ],
    )
    .await
}

/// `gatehouse proxy --config-redis` on a free loopback port.
pub async fn proxy(redis: &RedisServer) -> (Gatehouse, Proxy) {
    let listen = free_addr();
    let mut p = Gatehouse::spawn([
        "proxy".to_owned(),
        format!("--config-redis={}", redis.url()),
        format!("--listen={listen}"),
        "--workers=1".to_owned(),
    ])
    .expect("proxy starts");
    p.wait_for_port(listen, DEADLINE)
        .await
        .expect("proxy listens");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client");
    (
        p,
        Proxy {
            base: format!("http://{listen}"),
            http,
        },
    )
}

/// Requests to the proxy, as if TLS had been terminated in front of it.
pub struct Proxy {
    pub base: String,
    pub http: reqwest::Client,
}

impl Proxy {
    pub async fn status(&self, path: &str, token: Option<&str>) -> u16 {
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-forwarded-proto", "https");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    pub async fn wait_status(&self, path: &str, token: Option<&str>, want: u16) {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let got = self.status(path, token).await;
            if got == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "GET {path} answered {got}, never {want}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` with `token`, which must answer 200; the echo upstream's JSON.
    pub async fn echo(&self, path: &str, token: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-forwarded-proto", "https")
            .bearer_auth(token)
            .send()
            .await
            .expect("the proxy answers");
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().await.expect("the echo upstream answers JSON")
    }

    /// The client-credentials grant at `{prefix}/oauth2/token`: status and body.
    pub async fn client_credentials(&self, prefix: &str, id: &str, secret: &str) -> (u16, Value) {
        self.post_form(
            &format!("{prefix}/oauth2/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
        .await
    }

    /// [`Self::client_credentials`] that must succeed; the access token.
    pub async fn client_credentials_token(&self, prefix: &str, id: &str, secret: &str) -> String {
        let (status, body) = self.client_credentials(prefix, id, secret).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-forwarded-proto", "https")
            .form(form)
            .send()
            .await
            .expect("the proxy answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The Step On flow: the login app authorizes Clark with the provision key, the
    /// store swaps the code for a token; returns the access token.
    pub async fn stepon_token(&self) -> String {
        let (status, body) = self
            .post_form(
                "/stepon/oauth2/authorize",
                &[
                    ("response_type", "code"),
                    ("client_id", CLIENT_ID),
                    ("provision_key", PROVISION_KEY),
                    ("authenticated_userid", "clark"),
                    ("scope", "step_counts"),
                    ("redirect_uri", REDIRECT_URI),
                ],
            )
            .await;
        assert_eq!(status, 200, "authorize: {body}");
        let redirect =
            url::Url::parse(body["redirect_uri"].as_str().expect("redirect_uri")).expect("a URL");
        let code = redirect
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("redirect carries a code");
        let (status, body) = self
            .post_form(
                "/stepon/oauth2/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("client_id", CLIENT_ID),
                    ("client_secret", CLIENT_SECRET),
                    ("redirect_uri", REDIRECT_URI),
                ],
            )
            .await;
        assert_eq!(status, 200, "token: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }
}

/// Poll `f` until it returns `Some`, failing with `what` after [`DEADLINE`].
pub async fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `Ready` condition of an object.
pub fn ready(obj: &Value) -> Option<&Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

/// A ServiceAccount `ns/name` bound to `cluster-admin`, and a kubeconfig with its
/// token: lets a test tell the controller's writes from its own in the audit log.
pub fn admin_service_account(api: &KubeApiServer, ns: &str, name: &str) -> PathBuf {
    api.apply_yaml(
        &format!(
            "apiVersion: v1
kind: ServiceAccount
metadata: {{name: {name}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-{name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}
subjects: [{{kind: ServiceAccount, name: {name}, namespace: {ns}}}]
"
        ),
        ns,
        "gatehouse-test",
    )
    .expect("service account");
    let token = api.service_account_token(ns, name).expect("token");
    api.kubeconfig_for_token(&format!("{ns}-{name}"), &token)
        .expect("kubeconfig")
}

/// The Gateway API release whose standard-channel CRDs the tests install.
pub const GATEWAY_API: &str = "sigs.k8s.io/gateway-api@v1.6.3";

/// The module's directory in the Go module cache (downloaded if missing).
pub fn gateway_api_dir() -> PathBuf {
    let out = std::process::Command::new("go")
        .args(["mod", "download", "-json", GATEWAY_API])
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(
        info["Dir"]
            .as_str()
            .expect("go reports the module directory"),
    )
}

/// Apply the standard-channel CRDs of `kinds` (plural names) and wait until each is
/// Established.
pub fn install_gateway_api_crds(api: &KubeApiServer, kinds: &[&str]) {
    let crds = gateway_api_dir().join("config/crd/standard");
    for kind in kinds {
        let file = crds.join(format!("gateway.networking.k8s.io_{kind}.yaml"));
        api.kubectl_ok(&["apply", "--server-side", "-f", file.to_str().unwrap()])
            .expect("Gateway API CRD applies");
        // Retried: right after creation the CRD has no status for `wait` to read.
        api.kubectl_eventually(
            &[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{kind}.gateway.networking.k8s.io"),
            ],
            DEADLINE,
        )
        .expect("CRD established");
    }
}
