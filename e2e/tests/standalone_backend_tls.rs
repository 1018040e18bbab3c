//! End-to-end: the real `gatehouse` binary in standalone mode reaching an HTTPS
//! upstream through a Gateway API `BackendTLSPolicy`. The upstream is a real rustls +
//! hyper server on loopback presenting a certificate for `backend.internal` signed by a
//! throw-away CA; the HTTPRoute's Service resolves to `127.0.0.1` through an
//! EndpointSlice, so only the policy's hostname (SNI + verified name) and its CA
//! bundle (a ConfigMap `ca.crt`) make the connection succeed.
//!
//! Fail closed: with another CA in the ConfigMap the handshake is refused (502) and
//! nothing reaches the upstream; with a ConfigMap that is not PEM the backend gets no
//! endpoints at all (503). Fixing the ConfigMap file is picked up without a restart.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::manifests::GATEWAY_CLASS;
use gatehouse_e2e::pki::TestCa;
use gatehouse_e2e::upstream::{echo_response, TestUpstream};
use serde_json::Value;

/// Only a deadline for failing, never a measurement.
const DEADLINE: Duration = Duration::from_secs(30);

/// Gateway (plain HTTP listener) + HTTPRoute `/v1` → Service `echo` port `https` →
/// `127.0.0.1:upstream_port`, and the BackendTLSPolicy on that Service.
fn manifests(upstream_port: u16) -> String {
    let resources = format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: gatehouse
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v1}}}}]
    backendRefs: [{{name: echo, port: 443}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec: {{ports: [{{name: https, port: 443}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: default, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
ports: [{{name: https, port: {upstream_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: echo-tls, namespace: default}}
spec:
  targetRefs: [{{group: "", kind: Service, name: echo}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: echo-ca}}]
    hostname: backend.internal
"#
    );
    [GATEWAY_CLASS.to_owned(), resources].join("---\n")
}

/// The ConfigMap `echo-ca` holding `ca_crt` under `ca.crt`, written atomically.
fn write_ca(dir: &Path, ca_crt: &str) {
    let body = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: echo-ca, namespace: default}}\ndata:\n  ca.crt: |\n    {}\n",
        ca_crt.trim_end().replace('\n', "\n    ")
    );
    let tmp = dir.join(".echo-ca.tmp");
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(&tmp, dir.join("echo-ca.yaml")).unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    proxy: Gatehouse,
    http: std::net::SocketAddr,
    ca: TestCa,
    upstream: TestUpstream,
}

/// The upstream, Gatehouse standalone, and the ConfigMap holding `ca_crt(&ca)`.
async fn setup(ca_crt: impl FnOnce(&TestCa) -> String) -> Setup {
    let ca = TestCa::new();
    let leaf = ca.leaf(&["backend.internal"]);
    let config = ca.server_config(&leaf, &[b"http/1.1"], false);
    let upstream =
        TestUpstream::start_tls(|req| async move { echo_response(req).await }, config).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifests");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("routes.yaml"), manifests(upstream.addr.port())).unwrap();
    write_ca(&path, &ca_crt(&ca));
    let http = free_addr();
    let mut proxy = Gatehouse::spawn([
        "standalone".as_ref(),
        "--manifests".as_ref(),
        path.as_os_str(),
        "--listen".as_ref(),
        http.to_string().as_ref(),
        "--no-tls".as_ref(),
        "--workers".as_ref(),
        "1".as_ref(),
    ] as [&std::ffi::OsStr; 8])
    .unwrap();
    proxy.wait_for_port(http, DEADLINE).await.unwrap();
    Setup {
        _dir: dir,
        dir: path,
        proxy,
        http,
        ca,
        upstream,
    }
}

impl Setup {
    async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("http://{}{path}", self.http))
            .send()
            .await
            .unwrap()
    }

    /// Ask until the answer has `status` (config reloads are asynchronous).
    async fn eventually(&self, status: u16) -> reqwest::Response {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let resp = self.get("/v1/items").await;
            if resp.status() == status {
                return resp;
            }
            assert!(
                Instant::now() < deadline,
                "still {} instead of {status}\n{}",
                resp.status(),
                self.proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn a_backend_tls_policy_reaches_an_https_upstream_by_its_hostname_and_ca() {
    let s = setup(|ca| ca.cert_pem.clone()).await;
    let ok = s.eventually(200).await;
    let echo: Value = ok.json().await.unwrap();
    assert_eq!(echo["path"], "/v1/items");
    assert_eq!(s.upstream.requests(), 1);
}

#[tokio::test]
async fn another_ca_refuses_the_handshake_and_nothing_reaches_the_upstream_until_fixed() {
    let s = setup(|_| TestCa::new().cert_pem).await;
    // The snapshot is in force when the route answers at all (not 404).
    let refused = s.eventually(502).await;
    drop(refused);
    for _ in 0..3 {
        assert_eq!(s.get("/v1/items").await.status(), 502);
    }
    assert_eq!(s.upstream.requests(), 0, "{}", s.proxy.log());

    // Fixing the ConfigMap is picked up without a restart.
    write_ca(&s.dir, &s.ca.cert_pem);
    s.eventually(200).await;
    assert_eq!(s.upstream.requests(), 1);
}

#[tokio::test]
async fn a_ca_config_map_that_is_not_pem_leaves_the_backend_without_endpoints() {
    let s = setup(|_| "not a certificate".to_owned()).await;
    s.eventually(503).await;
    assert_eq!(s.upstream.requests(), 0);
    let log = s.proxy.log();
    assert!(
        log.contains("BackendTLSPolicy") && log.contains("echo-ca"),
        "the log names the policy and the ConfigMap:\n{log}"
    );
}
