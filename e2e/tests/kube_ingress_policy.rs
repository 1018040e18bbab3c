//! `gatehouse controller` against a real kube-apiserver serving an `Ingress` (class
//! `gatehouse`) that an `OAuth2Policy` protects: the policy's status (GEP-713
//! `ancestors` + `Ready`) read back with kubectl, and the client-credentials flow
//! through a real `gatehouse proxy --config-redis` to a real upstream (in a test
//! network namespace) under the Ingress path.

mod kube_support;

use gatehouse_e2e::manifests::{machine_client, oauth2_policy};
use kube_support::{api, controller, proxy, wait_ready_true, Scene};

const NS: &str = "shop";

const CLIENT_SECRET: &str = "shop-client-secret-0123456789abcdef";

/// Ingress `shop` (class `gatehouse`) to Service `shop-api`, its OAuth2Policy, and a
/// machine client.
fn objects() -> String {
    let ingress = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop}
spec:
  ingressClassName: gatehouse
  rules:
  - http:
      paths:
      - {path: /shop, pathType: Prefix, backend: {service: {name: shop-api, port: {name: http}}}}
";
    [
        ingress.to_owned(),
        oauth2_policy(
            NS,
            "shop-oauth2",
            ("networking.k8s.io", "Ingress", "shop"),
            "{clientCredentials: true, acceptHttpIfAlreadyTerminated: true}",
        ),
        machine_client(NS, "shop", "shop-client", CLIENT_SECRET),
    ]
    .join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_policy_on_an_ingress_is_accepted_and_enforced() {
    let api = api();
    let scene = Scene::create(
        NS,
        "gatehouse-ingress",
        "ingress-controller",
        "shop-api",
        "gatehouse-test",
    );
    let (_controller, _) = controller(
        &scene.kubeconfig,
        &scene.redis,
        NS,
        "gatehouse-ingress",
        "ingress",
        "replica-a",
    )
    .await;
    let (_proxy_process, proxy) = proxy(&scene.redis).await;
    api.apply_yaml(&objects(), NS, "kubectl")
        .expect("objects accepted");

    let policy = wait_ready_true(NS, "oauth2policy/shop-oauth2").await;
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
    wait_ready_true(NS, "oauth2client/shop-client").await;
    proxy.wait_status("/shop/items", None, 401).await;
    let token = proxy
        .client_credentials_token("/shop", "shop-client", CLIENT_SECRET)
        .await;
    proxy.wait_status("/shop/items", Some(&token), 200).await;
}
