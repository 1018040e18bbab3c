//! The CRDs against a real kube-apiserver: `gatehouse crds | kubectl apply
//! --server-side -f -` is accepted (every CEL rule compiles within the server's cost
//! budget), each CEL rule rejects an invalid object with its own message, defaults are
//! stored, and kubectl's printer columns, `gatehouse` category and `explain` work.

mod kube_support;

use std::collections::BTreeSet;

use gatehouse_e2e::binary::binary_path;
use kube_support::api;

const NS: &str = "crds";

/// One invalid object per CEL rule, with the message the rule must answer.
fn cel_cases() -> Vec<(&'static str, String)> {
    let route = |oauth2: &str, backend: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata: {{name: bad-route}}
spec:
  paths: [/x]
  backend: {backend}
  oauth2: {oauth2}
"
        )
    };
    let service = "{service: {name: api, port: 80}}";
    vec![
        (
            "set username, customId or both",
            "apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {name: bad-consumer}
spec: {}
"
            .to_owned(),
        ),
        (
            "public clients cannot use the client_credentials grant",
            "apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: bad-client}
spec:
  consumerRef: {name: someone}
  name: Bad
  clientType: public
  grantTypes: [client_credentials]
"
            .to_owned(),
        ),
        (
            "set exactly one of service or url",
            route(
                "{clientCredentials: true}",
                "{service: {name: api, port: 80}, url: 'http://example.test'}",
            ),
        ),
        (
            "set caCertificateRef, hostname or both",
            route(
                "{clientCredentials: true}",
                "{service: {name: api, port: 443}, tls: {}}",
            ),
        ),
        (
            "mandatoryScope needs at least one scope in scopes",
            route("{authorizationCode: true, mandatoryScope: true}", service),
        ),
        (
            "every rules[].requiredScopes entry must be listed in scopes",
            route(
                "{authorizationCode: true, scopes: [a], rules: [{path: /x, requiredScopes: [b]}]}",
                service,
            ),
        ),
        (
            "targetRefs may name gateway.networking.k8s.io HTTPRoute or Gateway, or networking.k8s.io Ingress",
            "apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: bad-policy}
spec:
  targetRefs: [{group: apps, kind: Deployment, name: api}]
  oauth2: {clientCredentials: true}
"
            .to_owned(),
        ),
    ]
}

#[test]
fn crds_apply_and_every_cel_rule_rejects_an_invalid_object_with_its_message() {
    let api = api();
    api.create_namespace(NS).unwrap();

    // Every rule in the generated CRDs has a case here (a new rule needs one).
    let crds = std::process::Command::new(binary_path().unwrap())
        .arg("crds")
        .output()
        .unwrap();
    let crds = String::from_utf8(crds.stdout).unwrap();
    let messages: BTreeSet<String> = crds
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- message: "))
        .map(|m| m.trim_matches(|c| c == '\'' || c == '"').to_owned())
        .collect();
    let cases = cel_cases();
    let covered: BTreeSet<String> = cases.iter().map(|(m, _)| (*m).to_owned()).collect();
    assert_eq!(
        messages, covered,
        "CEL rules in `gatehouse crds` vs. cases here"
    );

    for (message, yaml) in cases {
        let out = api
            .kubectl_with_input(&["apply", "--server-side", "-n", NS, "-f", "-"], &yaml)
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted:\n{yaml}");
        assert!(
            stderr.contains(message) && stderr.contains("is invalid"),
            "expected {message:?} from the API server, got: {stderr}"
        );
    }
    // Nothing invalid was stored.
    let listed = api
        .kubectl_ok(&["get", "gatehouse", "-n", NS, "-o", "name"])
        .unwrap();
    assert_eq!(listed.trim(), "", "{listed}");
}

#[test]
fn defaults_are_stored_and_kubectl_shows_columns_category_and_explain() {
    let api = api();
    let ns = "crds-defaults";
    api.create_namespace(ns).unwrap();
    api.apply_yaml(
        "apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: app}
spec:
  consumerRef: {name: someone}
  name: App
  grantTypes: [client_credentials]
---
apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata: {name: orders}
spec:
  paths: [/orders]
  backend: {service: {name: orders, port: 80}}
  oauth2: {authorizationCode: true, scopes: [read]}
",
        ns,
        "gatehouse-test",
    )
    .unwrap();

    let client = api.get_json(ns, "oauth2client/app").unwrap().unwrap();
    assert_eq!(client["spec"]["clientType"], "confidential", "{client}");
    let route = api.get_json(ns, "protectedroute/orders").unwrap().unwrap();
    let oauth2 = &route["spec"]["oauth2"];
    assert_eq!(oauth2["tokenExpiration"], 7200, "{route}");
    assert_eq!(oauth2["mandatoryScope"], false, "{route}");
    assert_eq!(oauth2["provisionKeySecretRef"], serde_json::Value::Null);
    assert_eq!(oauth2["refreshTokenTtl"], 1_209_600, "{route}");
    assert_eq!(route["metadata"]["generation"], 1);

    // `kubectl get gatehouse` (the category) lists all kinds with their columns.
    let table = api.kubectl_ok(&["get", "gatehouse", "-n", ns]).unwrap();
    for column in ["HOSTS", "PATHS", "READY", "REASON", "AGE"] {
        assert!(table.contains(column), "no {column} column:\n{table}");
    }
    assert!(
        table.contains("protectedroute.gatehouse.dev/orders"),
        "{table}"
    );
    assert!(table.contains("oauth2client.gatehouse.dev/app"), "{table}");
    assert!(table.contains("[\"/orders\"]"), "{table}");

    // The OpenAPI v3 document `explain` reads is published a moment after Established.
    let explain = api
        .kubectl_eventually(
            &["explain", "protectedroutes.spec.oauth2.tokenExpiration"],
            kube_support::DEADLINE,
        )
        .unwrap();
    assert!(
        explain.contains("KIND:     ProtectedRoute")
            || explain.contains("KIND:       ProtectedRoute"),
        "{explain}"
    );
    assert!(explain.contains("tokenExpiration"), "{explain}");
    let explain = api
        .kubectl_eventually(&["explain", "oauth2clients.spec"], kube_support::DEADLINE)
        .unwrap();
    assert!(explain.contains("consumerRef"), "{explain}");
}
