//! `gatehouse controller` against a real kube-apiserver with the Gateway API CRDs of
//! `sigs.k8s.io/gateway-api` (standard channel, `kube_support::GATEWAY_API`, fetched into the Go
//! module cache with `go mod download`), installed after the controller started (it
//! picks them up without a restart): Gateway + HTTPRoute + OAuth2Policy applied
//! with kubectl, statuses read back (`HTTPRoute.status.parents` Accepted,
//! `OAuth2Policy` Ready), a token flow through a real proxy to a real upstream, the
//! Gateway's `status.addresses` from the proxy Service (`--publish-service`), and a
//! policy retargeted to a missing route keeps protecting the old one.

mod kube_support;

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::redis_server::RedisServer;
use kube_support::{
    admin_service_account, api, gateway_api_dir, proxy, ready, wait_for, Backend, DEADLINE,
};

const NS: &str = "gw";

const OBJECTS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse}
spec: {controllerName: gatehouse.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
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
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: api-oauth2, namespace: gw}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  oauth2: {clientCredentials: true, acceptHttpIfAlreadyTerminated: true}
---
apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {name: app, namespace: gw}
spec: {username: app}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: app, namespace: gw}
spec:
  consumerRef: {name: app}
  name: App
  clientType: confidential
  redirectUris: [https://app.example.test/callback]
  grantTypes: [client_credentials]
  credentialsSecretRef: {name: app-credentials}
---
apiVersion: v1
kind: Secret
metadata: {name: app-credentials, namespace: gw}
stringData: {client_id: app, client_secret: app-client-secret-0123456789abcdef01}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_httproute_and_oauth2_policy_from_the_gateway_api_crds() {
    let api = api();
    api.create_namespace(NS).unwrap();
    api.create_namespace("gatehouse-gw").unwrap();
    let kubeconfig = admin_service_account(api, "gatehouse-gw", "gw-controller");
    let redis = RedisServer::start().expect("redis-server starts");
    let backend = Backend::start();
    api.apply_yaml(&backend.service_yaml("api"), NS, "gatehouse-test")
        .expect("Service and EndpointSlice accepted");
    // Every namespace: GatewayClass is cluster-scoped.
    let admin = free_addr();
    let mut controller = Gatehouse::spawn([
        "controller".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--redis={}", redis.url()),
        format!("--admin-listen={admin}"),
        "--lease-namespace=gatehouse-gw".to_owned(),
        "--lease-name=gw".to_owned(),
        "--debounce=50ms".to_owned(),
        "--gateway-api-recheck=1s".to_owned(),
        format!("--publish-service={NS}/gatehouse-proxy"),
    ])
    .expect("controller starts");
    controller.wait_for_port(admin, DEADLINE).await.unwrap();
    // Started before the Gateway API CRDs exist: it must notice them without a restart.
    wait_for(
        "the controller to report the Gateway API CRDs missing",
        || {
            controller
                .log()
                .contains("Gateway API CRDs are not installed")
                .then_some(())
        },
    )
    .await;
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
    wait_for("the controller to notice the Gateway API CRDs", || {
        controller
            .log()
            .contains("Gateway API CRDs are installed")
            .then_some(())
    })
    .await;
    let (_proxy_process, proxy) = proxy(&redis).await;
    api.apply_yaml(OBJECTS, NS, "kubectl")
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
    wait_for("OAuth2Policy Ready=True", || {
        let p = api.get_json(NS, "oauth2policy/api-oauth2").ok()??;
        (ready(&p)?["status"] == "True").then_some(())
    })
    .await;

    // The client's credentials Secret is read by name, after the client is seen.
    wait_for("OAuth2Client Ready=True", || {
        let c = api.get_json(NS, "oauth2client/app").ok()??;
        (ready(&c)?["status"] == "True").then_some(())
    })
    .await;
    proxy.wait_status("/api/items", None, 401).await;
    let (status, body) = proxy
        .post_form(
            "/api/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", "app-client-secret-0123456789abcdef01"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    proxy.wait_status("/api/items", Some(&token), 200).await;

    // The proxy's Service (named by --publish-service) gives the Gateway its
    // addresses: the cluster IP while its load balancer is pending, then the load
    // balancer's address once it has one (only data here: nothing is sent there).
    api.apply_yaml(
        "apiVersion: v1\nkind: Service\nmetadata: {name: gatehouse-proxy}\nspec:\n  type: LoadBalancer\n  ports: [{name: http, port: 80}]\n",
        NS,
        "kubectl",
    )
    .unwrap();
    let cluster_ip = api
        .get_json(NS, "service/gatehouse-proxy")
        .unwrap()
        .unwrap()["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let addresses = |want: &str| {
        let want = want.to_owned();
        move || {
            let g = api.get_json(NS, "gateway/gw").ok()??;
            let a = &g["status"]["addresses"];
            (a[0]["value"] == want.as_str() && a[0]["type"] == "IPAddress").then_some(())
        }
    };
    wait_for(
        "the Gateway's address: the cluster IP",
        addresses(&cluster_ip),
    )
    .await;
    api.kubectl_ok(&[
        "patch",
        "-n",
        NS,
        "service/gatehouse-proxy",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"203.0.113.7"}]}}}"#,
    ])
    .unwrap();
    wait_for(
        "the Gateway's address: the load balancer's",
        addresses("203.0.113.7"),
    )
    .await;

    // A policy retargeted to a route that does not exist (a typo the CRD's schema
    // admits): the policy is not Ready at its new generation, and the route it
    // protected stays protected by its last good version instead of turning open.
    let policy = api
        .get_json(NS, "oauth2policy/api-oauth2")
        .unwrap()
        .unwrap();
    let generation = policy["metadata"]["generation"].as_i64().unwrap();
    api.apply_yaml(
        &OBJECTS.replace(
            "kind: HTTPRoute, name: api}",
            "kind: HTTPRoute, name: apii}",
        ),
        NS,
        "kubectl",
    )
    .unwrap();
    let ready_false = wait_for("OAuth2Policy Ready=False at the new generation", || {
        let p = api.get_json(NS, "oauth2policy/api-oauth2").ok()??;
        let c = ready(&p)?.clone();
        (c["observedGeneration"] == generation + 1 && c["status"] == "False").then_some(c)
    })
    .await;
    assert_eq!(ready_false["reason"], "PolicyNotAccepted", "{ready_false}");
    assert!(
        ready_false["message"].as_str().unwrap().ends_with(&format!(
            "the last good version (generation {generation}) is still served"
        )),
        "{ready_false}"
    );
    for _ in 0..10 {
        assert_eq!(proxy.status("/api/items", None).await, 401);
        assert_eq!(proxy.status("/api/items", Some(&token)).await, 200);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(controller);
}
