//! `gatehouse controller` against a real kube-apiserver with the standard-channel
//! Gateway API CRDs (`kube_support::GATEWAY_API`, BackendTLSPolicy included): an
//! HTTPRoute to a Service whose pod is a real HTTPS server (in a test network
//! namespace, certificate for `backend.internal` from a throw-away CA), a
//! BackendTLSPolicy naming a ConfigMap with that CA. Requests through a real proxy get
//! 200; the policy's `status.ancestors` (the Gateway) says Accepted and ResolvedRefs.
//! Then the ConfigMap is changed to something that is not PEM: the controller sees the
//! change at once (it watches that ConfigMap), the proxy answers 503 and nothing more
//! reaches the upstream, and the policy reports `InvalidCACertificateRef`.

mod kube_support;

use gatehouse_e2e::pki::TestCa;
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::upstream::{echo_response, TestUpstream};
use kube_support::{
    admin_service_account, api, install_gateway_api_crds, proxy, spawn_controller, wait_for,
};
use serde_json::Value;

const NS: &str = "btls";

fn objects(ip: std::net::Ipv4Addr, port: u16) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: gatehouse}}
spec: {{controllerName: gatehouse.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: {NS}}}
spec:
  gatewayClassName: gatehouse
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api, namespace: {NS}}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /api}}}}]
    backendRefs: [{{name: api, port: 443}}]
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: {NS}}}
spec:
  ports: [{{name: https, port: 443, targetPort: {port}}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-1
  namespace: {NS}
  labels: {{kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{{name: https, port: {port}}}]
endpoints: [{{addresses: ["{ip}"], conditions: {{ready: true}}}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{name: api-tls, namespace: {NS}}}
spec:
  targetRefs: [{{group: "", kind: Service, name: api}}]
  validation:
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: api-ca}}]
    hostname: backend.internal
"#
    )
}

fn config_map(ca_crt: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: api-ca, namespace: {NS}}}\ndata:\n  ca.crt: |\n    {}\n",
        ca_crt.trim_end().replace('\n', "\n    ")
    )
}

/// The gatehouse ancestor entry's condition `type` of the policy, if written.
fn policy_condition(
    api: &gatehouse_e2e::kube_apiserver::KubeApiServer,
    type_: &str,
) -> Option<Value> {
    let p = api.get_json(NS, "backendtlspolicy/api-tls").ok()??;
    let ancestor = p["status"]["ancestors"]
        .as_array()?
        .iter()
        .find(|a| a["controllerName"] == "gatehouse.dev/gateway-controller")?
        .clone();
    assert_eq!(ancestor["ancestorRef"]["kind"], "Gateway", "{ancestor}");
    assert_eq!(ancestor["ancestorRef"]["name"], "gw", "{ancestor}");
    ancestor["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_tls_policy_from_a_config_map_reaches_an_https_pod_and_reports_status() {
    let api = api();
    api.create_namespace(NS).unwrap();
    api.create_namespace("gatehouse-btls").unwrap();
    let kubeconfig = admin_service_account(api, "gatehouse-btls", "btls-controller");
    install_gateway_api_crds(
        api,
        &[
            "gatewayclasses",
            "gateways",
            "httproutes",
            "referencegrants",
            "backendtlspolicies",
        ],
    );
    let redis = RedisServer::start().expect("redis-server starts");

    let ca = TestCa::new();
    let leaf = ca.leaf(&["backend.internal"]);
    let netns = gatehouse_e2e::netns::TestNetns::create().expect("network namespace (needs root)");
    let listener = netns.listen().expect("listen inside the namespace");
    let upstream = TestUpstream::start_tls_on(
        listener,
        |req| async move { echo_response(req).await },
        ca.server_config(&leaf, &[b"http/1.1"], false),
    );

    let (controller, _admin) = spawn_controller(
        &kubeconfig,
        &redis,
        [
            "--lease-namespace=gatehouse-btls".to_owned(),
            "--lease-name=btls".to_owned(),
            "--debounce=50ms".to_owned(),
            "--gateway-api-recheck=1s".to_owned(),
        ],
    )
    .await;
    let (_proxy_process, proxy) = proxy(&redis).await;
    api.apply_yaml(&config_map(&ca.cert_pem), NS, "kubectl")
        .expect("ConfigMap accepted");
    api.apply_yaml(&objects(netns.addr(), upstream.addr.port()), NS, "kubectl")
        .expect("objects accepted");

    proxy.wait_status("/api/items", None, 200).await;
    assert!(upstream.requests() >= 1);
    wait_for("BackendTLSPolicy Accepted=True on the Gateway", || {
        let c = policy_condition(api, "Accepted")?;
        (c["status"] == "True").then_some(())
    })
    .await;
    let resolved = policy_condition(api, "ResolvedRefs").expect("ResolvedRefs written");
    assert_eq!(resolved["status"], "True", "{resolved}");

    // A ConfigMap that no longer holds a certificate: fail closed, at once.
    api.apply_yaml(&config_map("not a certificate"), NS, "kubectl")
        .expect("ConfigMap updated");
    proxy.wait_status("/api/items", None, 503).await;
    let before = upstream.requests();
    for _ in 0..3 {
        assert_eq!(proxy.status("/api/items", None).await, 503);
    }
    assert_eq!(upstream.requests(), before, "{}", controller.log());
    wait_for(
        "BackendTLSPolicy ResolvedRefs=False InvalidCACertificateRef",
        || {
            let c = policy_condition(api, "ResolvedRefs")?;
            (c["status"] == "False" && c["reason"] == "InvalidCACertificateRef").then_some(())
        },
    )
    .await;
    let accepted = policy_condition(api, "Accepted").unwrap();
    assert_eq!(accepted["reason"], "NoValidCACertificate", "{accepted}");
    let route = api.get_json(NS, "httproute/api").unwrap().unwrap();
    let parent = &route["status"]["parents"][0];
    assert!(
        parent["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "ResolvedRefs" && c["reason"] == "BackendTlsInvalid"),
        "{parent}"
    );
}
