//! `gatehouse controller` against a real kube-apiserver serving an `Ingress` (class
//! `gatehouse`) that an `OAuth2Policy` protects: the policy's status (GEP-713
//! `ancestors` + `Ready`) read back with kubectl, and the client-credentials flow
//! through a real `gatehouse proxy --config-redis` to a real upstream (in a test
//! network namespace) under the Ingress path.

mod kube_support;

use gatehouse_e2e::redis_server::RedisServer;
use kube_support::{admin_service_account, api, controller, proxy, ready, wait_for, Backend};

const NS: &str = "shop";

const OBJECTS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  ingressClassName: gatehouse
  rules:
  - http:
      paths:
      - {path: /shop, pathType: Prefix, backend: {service: {name: shop-api, port: {name: http}}}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: shop-oauth2}
spec:
  targetRefs: [{group: networking.k8s.io, kind: Ingress, name: shop}]
  oauth2: {clientCredentials: true, acceptHttpIfAlreadyTerminated: true}
---
apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {name: shop}
spec: {username: shop}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: shop-client}
spec:
  consumerRef: {name: shop}
  name: Shop
  clientType: confidential
  redirectUris: [https://shop.example.test/callback]
  grantTypes: [client_credentials]
  credentialsSecretRef: {name: shop-client-credentials}
---
apiVersion: v1
kind: Secret
metadata: {name: shop-client-credentials}
stringData: {client_id: shop-client, client_secret: shop-client-secret-0123456789abcdef}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_policy_on_an_ingress_is_accepted_and_enforced() {
    let api = api();
    api.create_namespace(NS).unwrap();
    api.create_namespace("gatehouse-ingress").unwrap();
    let kubeconfig = admin_service_account(api, "gatehouse-ingress", "ingress-controller");
    let redis = RedisServer::start().expect("redis-server starts");
    let backend = Backend::start();
    api.apply_yaml(&backend.service_yaml("shop-api"), NS, "gatehouse-test")
        .expect("Service and EndpointSlice accepted");
    let (_controller, _) = controller(
        &kubeconfig,
        &redis,
        NS,
        "gatehouse-ingress",
        "ingress",
        "replica-a",
    )
    .await;
    let (_proxy_process, proxy) = proxy(&redis).await;
    api.apply_yaml(OBJECTS, NS, "kubectl")
        .expect("objects accepted");

    let policy = wait_for("OAuth2Policy Ready=True", || {
        let p = api.get_json(NS, "oauth2policy/shop-oauth2").ok()??;
        (ready(&p)?["status"] == "True").then_some(p)
    })
    .await;
    let ancestor = &policy["status"]["ancestors"][0];
    assert_eq!(ancestor["ancestorRef"]["kind"], "Ingress", "{policy}");
    assert_eq!(ancestor["ancestorRef"]["name"], "shop");
    let accepted = ancestor["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Accepted")
        .unwrap();
    assert_eq!(accepted["status"], "True", "{policy}");

    // The client's credentials Secret is read by name, after the client is seen.
    wait_for("OAuth2Client Ready=True", || {
        let c = api.get_json(NS, "oauth2client/shop-client").ok()??;
        (ready(&c)?["status"] == "True").then_some(())
    })
    .await;
    proxy.wait_status("/shop/items", None, 401).await;
    let (status, body) = proxy
        .post_form(
            "/shop/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "shop-client"),
                ("client_secret", "shop-client-secret-0123456789abcdef"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    proxy.wait_status("/shop/items", Some(&token), 200).await;
}
