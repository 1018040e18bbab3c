//! Status reasons of the route sources beyond ProtectedRoute (issue 10): each reason
//! the Gateway API, Ingress, OAuth2Policy and TLS translators can write, produced by a
//! manifest as a user would write it. (The reasons of the first three kinds have their
//! own tests in `tests.rs`.)

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::manifest_tests::{now, translate_files};
use crate::translate::{Kind, LastGood, ObjectStatus, Options, Status};

/// Our GatewayClass, a Gateway with an HTTP listener for `*.example.com` routes of its
/// own namespace, and a Service with an endpoint.
const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse}
spec: {controllerName: gatehouse.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, port: 80, protocol: HTTP, hostname: "*.example.com"}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [127.0.0.1]}]
"#;

/// Every condition of `kind`/`name` (the summary `Ready` and the written ones) as
/// (type, status, reason).
fn conditions(extra: &str, kind: Kind, name: &str) -> Vec<(String, String, String)> {
    let out = translate_files(
        [("base.yaml", BASE), ("extra.yaml", extra)],
        &Options::standalone(now()),
        &LastGood::default(),
    );
    let s: &ObjectStatus = out
        .statuses
        .iter()
        .find(|s| s.object.kind == kind && s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}: {:?}", out.statuses));
    let mut all: Vec<&Condition> = s.status.conditions().iter().collect();
    match &s.status {
        Status::HttpRoute(st, _) => all.extend(st.parents.iter().flat_map(|p| &p.conditions)),
        Status::Gateway(st, _) => {
            all.extend(&st.conditions);
            all.extend(st.listeners.iter().flat_map(|l| &l.conditions));
        }
        Status::OAuth2Policy(st) => all.extend(st.ancestors.iter().flat_map(|a| &a.conditions)),
        Status::GatewayClass(st, _) => all.extend(&st.conditions),
        _ => {}
    }
    all.into_iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn assert_has(found: &[(String, String, String)], type_: &str, status: &str, reason: &str) {
    assert!(
        found
            .iter()
            .any(|(t, s, r)| t == type_ && s == status && r == reason),
        "no {type_}={status} {reason} in {found:?}"
    );
}

fn http_route(spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: default}}\nspec:\n{spec}\n"
    )
}

#[test]
fn an_accepted_route_and_gateway_report_accepted_resolved_refs_and_programmed() {
    let found = conditions(
        &http_route("  parentRefs: [{name: gw}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: api, port: 80}]}]"),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "Accepted", "True", "Accepted");
    assert_has(&found, "ResolvedRefs", "True", "ResolvedRefs");
    assert_has(&found, "Ready", "True", "Ready");
    let gw = conditions("", Kind::Gateway, "gw");
    assert_has(&gw, "Programmed", "True", "Programmed");
    assert_has(&gw, "Accepted", "True", "Accepted");
    assert_has(
        &conditions("", Kind::GatewayClass, "gatehouse"),
        "Accepted",
        "True",
        "Accepted",
    );
}

#[test]
fn a_route_from_another_namespace_is_not_allowed_by_same_namespace_listeners() {
    let route = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: team}\nspec:\n  parentRefs: [{name: gw, namespace: default}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: api, port: 80}]}]\n";
    let found = conditions(route, Kind::HttpRoute, "r");
    assert_has(&found, "Accepted", "False", "NotAllowedByListeners");
    assert_has(&found, "Ready", "False", "RouteNotAccepted");
}

#[test]
fn a_route_hostname_outside_the_listener_hostname_is_no_matching_listener_hostname() {
    let found = conditions(
        &http_route("  parentRefs: [{name: gw}]\n  hostnames: [a.example.org]\n  rules: [{backendRefs: [{name: api, port: 80}]}]"),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "Accepted", "False", "NoMatchingListenerHostname");
}

#[test]
fn a_section_name_no_listener_has_is_no_matching_parent() {
    let found = conditions(
        &http_route("  parentRefs: [{name: gw, sectionName: https}]\n  rules: [{backendRefs: [{name: api, port: 80}]}]"),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "Accepted", "False", "NoMatchingParent");
}

#[test]
fn an_unsupported_filter_is_unsupported_value_and_route_not_accepted() {
    // Only the type: the `extensionRef` member is not modelled, so the manifests
    // loader refuses it as an unknown field (in a cluster the API server keeps it and
    // this reason is what the route reports).
    let found = conditions(
        &http_route("  parentRefs: [{name: gw}]\n  rules:\n  - filters: [{type: ExtensionRef}]\n    backendRefs: [{name: api, port: 80}]"),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "Accepted", "False", "UnsupportedValue");
    assert_has(&found, "Ready", "False", "RouteNotAccepted");
}

#[test]
fn backend_refs_to_other_kinds_or_missing_services_do_not_resolve() {
    let found = conditions(
        &http_route("  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{group: \"\", kind: ConfigMap, name: api, port: 80}]}]"),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "ResolvedRefs", "False", "InvalidKind");
    let found = conditions(
        &http_route(
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: nowhere, port: 80}]}]",
        ),
        Kind::HttpRoute,
        "r",
    );
    assert_has(&found, "ResolvedRefs", "False", "BackendNotFound");
    assert_has(&found, "Ready", "False", "BackendNotFound");
}

#[test]
fn listener_problems_are_invalid_certificate_ref_and_unsupported_protocol() {
    let gateway = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge, namespace: default}\nspec:\n  gatewayClassName: gatehouse\n  listeners:\n  - {name: https, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: no-such-secret}]}}\n  - {name: tcp, port: 9000, protocol: TCP}\n";
    let found = conditions(gateway, Kind::Gateway, "edge");
    assert_has(&found, "ResolvedRefs", "False", "InvalidCertificateRef");
    assert_has(&found, "Accepted", "False", "UnsupportedProtocol");
    assert_has(&found, "Programmed", "False", "Invalid");
    // No listener is usable: the Gateway as a whole is not programmed either.
    let programmed_top = found
        .iter()
        .filter(|(t, s, r)| t == "Programmed" && s == "False" && r == "Invalid")
        .count();
    assert!(programmed_top >= 3, "{found:?}");
    assert_has(&found, "Ready", "False", "RouteNotAccepted");
}

#[test]
fn a_policy_naming_no_object_is_policy_not_accepted() {
    let policy = "apiVersion: gatehouse.dev/v1alpha1\nkind: OAuth2Policy\nmetadata: {name: p, namespace: default}\nspec:\n  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]\n  oauth2: {clientCredentials: true}\n";
    let found = conditions(policy, Kind::OAuth2Policy, "p");
    assert_has(&found, "Ready", "False", "PolicyNotAccepted");
    assert_has(&found, "Accepted", "False", "TargetNotFound");
}

#[test]
fn an_invalid_policy_block_is_invalid_on_its_target_and_the_ingress_is_not_served() {
    let objects = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: ing, namespace: default}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - http: {paths: [{path: /shop, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}]}\n---\napiVersion: gatehouse.dev/v1alpha1\nkind: OAuth2Policy\nmetadata: {name: p, namespace: default}\nspec:\n  targetRefs: [{group: networking.k8s.io, kind: Ingress, name: ing}]\n  oauth2: {mandatoryScope: true}\n";
    let policy = conditions(objects, Kind::OAuth2Policy, "p");
    assert_has(&policy, "Ready", "False", "InvalidSpec");
    assert_has(&policy, "Accepted", "False", "Invalid");
    let ingress = conditions(objects, Kind::Ingress, "ing");
    assert_has(&ingress, "Ready", "False", "RouteNotAccepted");
}

#[test]
fn tls_secrets_that_are_missing_or_not_pem_are_reported() {
    let route = |secret: &str| {
        format!("apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {{name: site, namespace: default}}\nspec:\n  hosts: [site.example.com]\n  paths: [/]\n  backend: {{url: \"http://127.0.0.1:9\"}}\n  tls: {{secretName: {secret}}}\n")
    };
    let found = conditions(&route("no-such-tls"), Kind::ProtectedRoute, "site");
    assert_has(&found, "Ready", "False", "TlsSecretNotFound");
    let bad = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bad-tls, namespace: default}}\ntype: kubernetes.io/tls\nstringData: {{tls.crt: not a certificate, tls.key: not a key}}\n",
        route("bad-tls")
    );
    let found = conditions(&bad, Kind::ProtectedRoute, "site");
    assert_has(&found, "Ready", "False", "TlsSecretInvalid");
}
