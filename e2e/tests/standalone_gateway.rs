//! End-to-end: the real `gatehouse` binary in standalone mode serving Gateway API,
//! Ingress and OAuth2Policy manifests (with Service + EndpointSlice manifests resolving
//! backends), a real echo upstream on loopback, and real TLS clients (reqwest/rustls
//! trusting a throw-away CA) to check which certificate each SNI name gets.
//!
//! Every host name resolves to the proxy's loopback HTTPS port through reqwest's
//! `resolve`, so the client sends the real SNI and `Host` and verifies the certificate
//! against that name: a successful request proves the right certificate was served.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::manifests::{machine_client, oauth2_policy, GATEWAY_CLASS};
use gatehouse_e2e::pki::{Leaf, TestCa};
use gatehouse_e2e::upstream::TestUpstream;
use serde_json::Value;

const CLIENT_ID: &str = "shop-client";
const CLIENT_SECRET: &str = "shop-client-secret-0123456789abcdef";
/// Only a deadline for failing, never a measurement.
const DEADLINE: Duration = Duration::from_secs(30);

fn tls_secret(name: &str, leaf: &Leaf) -> String {
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: default}}\n\
         type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n    {}\n  tls.key: |\n    {}\n",
        indent(&leaf.cert_pem),
        indent(&leaf.key_pem)
    )
}

/// Gateway + HTTPRoutes + Ingress + policies, backends on `upstream_port`.
fn manifests(upstream_port: u16) -> String {
    let resources = format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: gatehouse
  listeners:
  - name: https-api
    port: 443
    protocol: HTTPS
    hostname: api.example.test
    tls: {{certificateRefs: [{{name: api-tls}}]}}
  - name: https-other
    port: 443
    protocol: HTTPS
    hostname: other.example.test
    tls: {{certificateRefs: [{{name: other-tls}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: default}}
spec: {{ports: [{{name: web, port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: echo-1, namespace: default, labels: {{kubernetes.io/service-name: echo}}}}
addressType: IPv4
ports: [{{name: web, port: {upstream_port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: https-api}}]
  hostnames: [api.example.test]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /v1}}}}]
    backendRefs: [{{name: echo, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-route, value: prefix}}]}}
  - matches: [{{path: {{type: Exact, value: /v1/health}}}}]
    backendRefs: [{{name: echo, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-route, value: exact}}]}}
  - matches: [{{path: {{type: PathPrefix, value: /v1}}, headers: [{{name: x-canary, value: "1"}}]}}]
    backendRefs: [{{name: echo, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-route, value: canary}}]}}
  - matches: [{{path: {{type: PathPrefix, value: /v1}}, method: DELETE}}]
    backendRefs: [{{name: echo, port: 80}}]
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-route, value: method}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: other, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  hostnames: [other.example.test]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /o}}}}]
    backendRefs: [{{name: echo, port: 80}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop, namespace: default}}
spec:
  ingressClassName: gatehouse
  tls: [{{hosts: [shop.example.test], secretName: shop-tls}}]
  rules:
  - host: shop.example.test
    http:
      paths:
      - {{path: /shop, pathType: Prefix, backend: {{service: {{name: echo, port: {{name: web}}}}}}}}
"#
    );
    [
        GATEWAY_CLASS.to_owned(),
        resources,
        oauth2_policy(
            "default",
            "api-oauth2",
            ("gateway.networking.k8s.io", "HTTPRoute", "api"),
            "{scopes: [read], clientCredentials: true}",
        ),
        oauth2_policy(
            "default",
            "gw-oauth2",
            ("gateway.networking.k8s.io", "Gateway", "gw"),
            "{scopes: [admin], clientCredentials: false}",
        ),
        oauth2_policy(
            "default",
            "shop-oauth2",
            ("networking.k8s.io", "Ingress", "shop"),
            "{clientCredentials: true}",
        ),
        machine_client("default", "shop", CLIENT_ID, CLIENT_SECRET),
    ]
    .join("---\n")
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    proxy: Gatehouse,
    https: SocketAddr,
    ca: TestCa,
    _upstream: TestUpstream,
}

async fn setup() -> Setup {
    let upstream = TestUpstream::echo().await;
    let port = upstream.addr.port();
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("manifests");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("routes.yaml"), manifests(port)).unwrap();
    write_secret(&path, "api-tls", &ca.leaf(&["api.example.test"]));
    write_secret(&path, "shop-tls", &ca.leaf(&["shop.example.test"]));
    write_secret(&path, "other-tls", &ca.leaf(&["other.example.test"]));
    // The default certificate covers only names no Secret serves.
    let default = ca.leaf(&["*.fallback.test"]);
    let (cert, key) = (
        dir.path().join("default.crt"),
        dir.path().join("default.key"),
    );
    std::fs::write(&cert, &default.cert_pem).unwrap();
    std::fs::write(&key, &default.key_pem).unwrap();
    let (http, https) = (free_addr(), free_addr());
    let mut proxy = Gatehouse::spawn([
        "standalone".as_ref(),
        "--manifests".as_ref(),
        path.as_os_str(),
        "--listen".as_ref(),
        http.to_string().as_ref(),
        "--listen-tls".as_ref(),
        https.to_string().as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "--workers".as_ref(),
        "1".as_ref(),
    ] as [&std::ffi::OsStr; 13])
    .unwrap();
    proxy.wait_for_port(https, DEADLINE).await.unwrap();
    Setup {
        _dir: dir,
        dir: path,
        proxy,
        https,
        ca,
        _upstream: upstream,
    }
}

fn write_secret(dir: &Path, name: &str, leaf: &Leaf) {
    // Write then rename, as a file sync (or a kubelet) would: never a half file.
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, tls_secret(name, leaf)).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.yaml"))).unwrap();
}

impl Setup {
    /// A client trusting `ca_pem` only, with every test name resolving to the proxy.
    fn client_trusting(&self, ca_pem: &str) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .redirect(reqwest::redirect::Policy::none());
        for host in [
            "api.example.test",
            "other.example.test",
            "shop.example.test",
            "x.fallback.test",
            "unknown.example.test",
        ] {
            b = b.resolve(host, self.https);
        }
        b.build().unwrap()
    }

    fn client(&self) -> reqwest::Client {
        self.client_trusting(&self.ca.cert_pem)
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.port())
    }

    async fn token(&self, host: &str, prefix: &str) -> reqwest::Response {
        self.client()
            .post(self.url(host, &format!("{prefix}/oauth2/token")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("scope", "read"),
            ])
            .send()
            .await
            .unwrap()
    }

    async fn access_token(&self, host: &str, prefix: &str) -> String {
        let resp = self.token(host, prefix).await;
        assert_eq!(resp.status(), 200, "{}", self.proxy.log());
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn httproute_with_an_oauth2_policy_enforces_tokens_and_serves_oauth2_under_its_prefix() {
    let s = setup().await;
    let c = s.client();
    let denied = c
        .get(s.url("api.example.test", "/v1/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert!(denied.headers().contains_key("www-authenticate"));
    let token = s.access_token("api.example.test", "/v1").await;
    let ok = c
        .get(s.url("api.example.test", "/v1/items"))
        .bearer_auth(&token)
        .header("x-consumer-id", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echo: Value = ok.json().await.unwrap();
    assert_eq!(echo["path"], "/v1/items");
    assert_eq!(
        echo["headers"]["host"],
        format!("api.example.test:{}", s.https.port())
    );
    assert_eq!(echo["headers"]["x-authenticated-scope"], "read");
    assert_ne!(echo["headers"]["x-consumer-id"], "forged");
    // The metadata endpoint is served under the route's prefix as well.
    let meta = c
        .get(s.url(
            "api.example.test",
            "/v1/.well-known/oauth-authorization-server",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), 200);
    let meta: Value = meta.json().await.unwrap();
    assert!(meta["token_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/v1/oauth2/token"));
}

#[tokio::test]
async fn ingress_with_an_oauth2_policy_enforces_tokens() {
    let s = setup().await;
    let c = s.client();
    let denied = c
        .get(s.url("shop.example.test", "/shop/cart"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let token = s.access_token("shop.example.test", "/shop").await;
    let ok = c
        .get(s.url("shop.example.test", "/shop/cart"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let echo: Value = ok.json().await.unwrap();
    assert_eq!(echo["path"], "/shop/cart");
    // A token is bound to the policy that issued it: the HTTPRoute's refuses it.
    let elsewhere = c
        .get(s.url("api.example.test", "/v1/items"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 401);
}

#[tokio::test]
async fn a_policy_on_the_route_overrides_the_one_on_its_gateway() {
    let s = setup().await;
    let c = s.client();
    // `api` has its own policy (client credentials on); `other` only the Gateway's
    // (client credentials off), so the same request for a token differs.
    assert_eq!(s.token("api.example.test", "/v1").await.status(), 200);
    let refused = s.token("other.example.test", "/o").await;
    assert_eq!(refused.status(), 400, "{}", s.proxy.log());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    // And `other` is protected by the Gateway's policy.
    let denied = c
        .get(s.url("other.example.test", "/o/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}

#[tokio::test]
async fn match_precedence_follows_the_gateway_api_order() {
    let s = setup().await;
    let c = s.client();
    let token = s.access_token("api.example.test", "/v1").await;
    let route_of = |req: reqwest::RequestBuilder| {
        let token = token.clone();
        async move {
            let resp = req.bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.headers()["x-route"].to_str().unwrap().to_owned()
        }
    };
    let url = |p: &str| s.url("api.example.test", p);
    // An exact path beats every prefix, even one with a header match.
    assert_eq!(
        route_of(c.get(url("/v1/health")).header("x-canary", "1")).await,
        "exact"
    );
    assert_eq!(route_of(c.get(url("/v1/healthz"))).await, "prefix");
    assert_eq!(
        route_of(c.get(url("/v1/a")).header("x-canary", "1")).await,
        "canary"
    );
    assert_eq!(
        route_of(c.get(url("/v1/a")).header("x-canary", "2")).await,
        "prefix"
    );
    // A method match outranks header matches on the same path.
    assert_eq!(
        route_of(c.delete(url("/v1/a")).header("x-canary", "1")).await,
        "method"
    );
}

#[tokio::test]
async fn sni_picks_the_certificate_and_a_rotated_secret_is_served_to_new_connections() {
    let mut s = setup().await;
    let c = s.client();
    // Each request verifies the certificate against its own name: success is proof.
    for (host, path) in [
        ("api.example.test", "/v1/x"),
        ("shop.example.test", "/shop/x"),
        ("other.example.test", "/o/x"),
        ("x.fallback.test", "/"),
    ] {
        let resp = c.get(s.url(host, path)).send().await;
        assert!(resp.is_ok(), "{host}: {resp:?}");
    }
    // A name no certificate covers gets the default one, which is not valid for it.
    let err = c
        .get(s.url("unknown.example.test", "/"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // cert-manager renews `api-tls` with a certificate from another CA: new
    // connections get it without a restart.
    let other_ca = TestCa::new();
    let renewed_client = s.client_trusting(&other_ca.cert_pem);
    assert!(renewed_client
        .get(s.url("api.example.test", "/v1/x"))
        .send()
        .await
        .is_err());
    write_secret(&s.dir, "api-tls", &other_ca.leaf(&["api.example.test"]));
    let start = Instant::now();
    loop {
        // A fresh client: a new connection, a new handshake.
        let fresh = s.client_trusting(&other_ca.cert_pem);
        if fresh
            .get(s.url("api.example.test", "/v1/x"))
            .send()
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "renewed certificate not served; log:\n{}",
            s.proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A Secret that turns bad keeps the previous (renewed) certificate.
    std::fs::write(
        s.dir.join("api-tls.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: api-tls, namespace: default}\n\
         type: kubernetes.io/tls\nstringData: {tls.crt: garbage, tls.key: garbage}\n",
    )
    .unwrap();
    s.proxy
        .wait_for_log("the previous certificate stays in use", DEADLINE)
        .await
        .unwrap();
    let fresh = s.client_trusting(&other_ca.cert_pem);
    assert!(fresh
        .get(s.url("api.example.test", "/v1/x"))
        .send()
        .await
        .is_ok());
}
