//! `gatehouse controller` against a real kube-apiserver with the Gateway API CRDs of
//! `sigs.k8s.io/gateway-api` (standard channel, [`GATEWAY_API`], fetched into the Go
//! module cache with `go mod download`): Gateway + HTTPRoute + OAuth2Policy applied
//! with kubectl, statuses read back (`HTTPRoute.status.parents` Accepted,
//! `OAuth2Policy` Ready), and a token flow through a real proxy to a real upstream.

mod kube_support;

use std::path::PathBuf;

use gatehouse_e2e::manifests::{machine_client, oauth2_policy, GATEWAY_CLASS};
use kube_support::{api, proxy, spawn_controller, wait_for, wait_ready_true, Scene, DEADLINE};
use serde_json::Value;

/// The Gateway API release whose standard-channel CRDs the test installs.
const GATEWAY_API: &str = "sigs.k8s.io/gateway-api@v1.6.3";
const NS: &str = "gw";

/// The module's directory in the Go module cache (downloaded if missing).
fn gateway_api_dir() -> PathBuf {
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

const CLIENT_SECRET: &str = "app-client-secret-0123456789abcdef01";

/// Gateway `gw` (class `gatehouse`), HTTPRoute `api` to Service `api`, the route's
/// OAuth2Policy, and a machine client.
fn objects() -> String {
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: gw}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: gw}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 8080}]
";
    [
        GATEWAY_CLASS.to_owned(),
        gateway.to_owned(),
        oauth2_policy(
            NS,
            "api-oauth2",
            ("gateway.networking.k8s.io", "HTTPRoute", "api"),
            "{clientCredentials: true, acceptHttpIfAlreadyTerminated: true}",
        ),
        machine_client(NS, "app", "app", CLIENT_SECRET),
    ]
    .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_httproute_and_oauth2_policy_from_the_gateway_api_crds() {
    let api = api();
    let crds = gateway_api_dir().join("config/crd/standard");
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "referencegrants",
    ] {
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
    let scene = Scene::create(NS, "gatehouse-gw", "gw-controller", "api", "gatehouse-test");
    // Every namespace: GatewayClass is cluster-scoped.
    let (controller, _) = spawn_controller(
        &scene.kubeconfig,
        &scene.redis,
        [
            "--lease-namespace=gatehouse-gw".to_owned(),
            "--lease-name=gw".to_owned(),
            "--debounce=50ms".to_owned(),
        ],
    )
    .await;
    let (_proxy_process, proxy) = proxy(&scene.redis).await;
    api.apply_yaml(&objects(), NS, "kubectl")
        .expect("objects accepted");

    let route = wait_for("HTTPRoute Accepted by gatehouse", || {
        let r = api.get_json(NS, "httproute/api").ok()??;
        let parent = r["status"]["parents"]
            .as_array()?
            .iter()
            .find(|p| p["controllerName"] == "gatehouse.dev/gateway-controller")?
            .clone();
        parent["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Accepted" && c["status"] == "True")
            .then_some(parent)
    })
    .await;
    assert!(route["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["type"] == "ResolvedRefs" && c["status"] == "True"));
    wait_ready_true(NS, "oauth2policy/api-oauth2").await;

    // The client's credentials Secret is read by name, after the client is seen.
    wait_ready_true(NS, "oauth2client/app").await;
    proxy.wait_status("/api/items", None, 401).await;
    let token = proxy
        .client_credentials_token("/api", "app", CLIENT_SECRET)
        .await;
    proxy.wait_status("/api/items", Some(&token), 200).await;
    drop(controller);
}
