//! BackendTLSPolicy and ProtectedRoute `backend.tls`, from manifests as a user writes
//! them: the policy applies to HTTPRoute, Ingress and ProtectedRoute backends (TLS
//! scheme, SNI hostname, CA bundle), fails closed when its CA cannot be used, and
//! the older of two policies on one Service wins.

use gatehouse_config::snapshot::{Route, Snapshot};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::manifest_tests::{now, translate_files};
use crate::translate::{Kind, LastGood, Options, Output, Status};

/// A test CA certificate in PEM.
fn ca_pem() -> String {
    rcgen::generate_simple_self_signed(vec!["test-ca".into()])
        .unwrap()
        .cert
        .pem()
}

/// Our Gateway, an HTTPRoute `/api` → Service `api` port 443 (named `https`) with one
/// endpoint, an Ingress and a ProtectedRoute to the same Service.
fn base() -> String {
    r#"
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
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [a.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 443}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing, namespace: default}
spec:
  ingressClassName: gatehouse
  rules:
  - host: b.example.com
    http:
      paths: [{path: /, pathType: Prefix, backend: {service: {name: api, port: {number: 443}}}}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{name: https, port: 443}, {name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{name: https, port: 8443}, {name: grpc, port: 9000}]
endpoints: [{addresses: [10.0.0.7]}]
"#
    .to_owned()
}

fn ca_config_map(name: &str, pem: &str) -> String {
    let pem = pem.replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata:\n  ca.crt: |\n    {pem}\n"
    )
}

fn policy(name: &str, created: &str, target: &str, validation: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {{name: {name}, namespace: default, creationTimestamp: \"{created}\"}}\nspec:\n  targetRefs: [{target}]\n  validation: {validation}\n"
    )
}

fn run(extra: &[String]) -> Output {
    let mut files = vec![("base.yaml".to_owned(), base())];
    for (i, e) in extra.iter().enumerate() {
        files.push((format!("extra{i}.yaml"), e.clone()));
    }
    translate_files(
        files.iter().map(|(a, b)| (a.as_str(), b.as_str())),
        &Options::standalone(now()),
        &LastGood::default(),
    )
}

fn route<'s>(s: &'s Snapshot, prefix: &str) -> &'s Route {
    s.routes
        .iter()
        .find(|r| r.id.starts_with(prefix))
        .unwrap_or_else(|| panic!("no route {prefix}: {:?}", s.routes))
}

/// Every condition of a policy's ancestors plus its summary, as (type, status, reason).
fn policy_conditions(out: &Output, name: &str) -> Vec<(String, String, String)> {
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::BackendTlsPolicy && s.object.name == name)
        .expect("a status for the policy");
    let Status::BackendTlsPolicy(st, summary) = &s.status else {
        unreachable!()
    };
    let mut all: Vec<&Condition> = summary.iter().collect();
    all.extend(st.ancestors.iter().flat_map(|a| &a.conditions));
    all.into_iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn has(found: &[(String, String, String)], t: &str, s: &str, r: &str) -> bool {
    found.iter().any(|(a, b, c)| a == t && b == s && c == r)
}

const SVC: &str = "{group: '', kind: Service, name: api}";

#[test]
fn a_policy_makes_every_route_to_the_service_speak_tls_with_its_ca_and_hostname() {
    let pem = ca_pem();
    let out = run(&[
        ca_config_map("api-ca", &pem),
        policy(
            "api-tls",
            "2024-01-01T00:00:00Z",
            SVC,
            "{caCertificateRefs: [{group: '', kind: ConfigMap, name: api-ca}], hostname: backend.internal}",
        ),
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: pr, namespace: default}\nspec:\n  hosts: [c.example.com]\n  paths: [/]\n  backend: {service: {name: api, port: 443}}\n".to_owned(),
    ]);
    for prefix in ["httproute/", "ingress/", "default/pr"] {
        let r = route(&out.snapshot, prefix);
        assert_eq!(r.upstream.endpoints, ["https://10.0.0.7:8443"], "{prefix}");
        let tls = r.upstream.tls.as_ref().expect("TLS settings");
        assert_eq!(tls.server_name.as_deref(), Some("backend.internal"));
        assert_eq!(tls.ca_pem.as_deref().map(str::trim), Some(pem.trim()));
    }
    let found = policy_conditions(&out, "api-tls");
    assert!(has(&found, "Accepted", "True", "Accepted"), "{found:?}");
    assert!(
        has(&found, "ResolvedRefs", "True", "ResolvedRefs"),
        "{found:?}"
    );
    assert!(has(&found, "Ready", "True", "Ready"), "{found:?}");
    // One ancestor per object whose traffic reaches the Service.
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::BackendTlsPolicy)
        .unwrap();
    let Status::BackendTlsPolicy(st, _) = &s.status else {
        unreachable!()
    };
    let kinds: Vec<(&str, &str)> = st
        .ancestors
        .iter()
        .map(|a| (a.ancestor_ref.kind.as_str(), a.ancestor_ref.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("ProtectedRoute", "pr"),
            ("Gateway", "gw"),
            ("Ingress", "ing")
        ]
    );
    assert!(st
        .ancestors
        .iter()
        .all(|a| a.controller_name == "gatehouse.dev/gateway-controller"));
}

#[test]
fn a_policy_on_one_port_leaves_the_other_ports_alone_and_h2_ports_use_grpcs() {
    let out = run(&[
        ca_config_map("api-ca", &ca_pem()),
        policy(
            "grpc-tls",
            "2024-01-01T00:00:00Z",
            "{group: '', kind: Service, name: api, sectionName: grpc}",
            "{caCertificateRefs: [{group: '', kind: ConfigMap, name: api-ca}], hostname: grpc.internal}",
        ),
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: pr, namespace: default}\nspec:\n  hosts: [c.example.com]\n  paths: [/]\n  backend: {service: {name: api, port: 9000}}\n".to_owned(),
    ]);
    let pr = route(&out.snapshot, "default/pr");
    assert_eq!(pr.upstream.endpoints, ["grpcs://10.0.0.7:9000"]);
    assert_eq!(
        pr.upstream.tls.as_ref().unwrap().server_name.as_deref(),
        Some("grpc.internal")
    );
    let http = route(&out.snapshot, "httproute/");
    assert_eq!(http.upstream.endpoints, ["http://10.0.0.7:8443"]);
    assert!(http.upstream.tls.is_none());
}

#[test]
fn well_known_system_roots_send_the_hostname_without_a_ca_bundle() {
    let out = run(&[policy(
        "sys",
        "2024-01-01T00:00:00Z",
        SVC,
        "{wellKnownCACertificates: System, hostname: api.example.org}",
    )]);
    let tls = route(&out.snapshot, "httproute/")
        .upstream
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.ca_pem, None);
    assert_eq!(tls.server_name.as_deref(), Some("api.example.org"));
}

#[test]
fn a_missing_ca_config_map_fails_closed_and_says_why_everywhere() {
    let out = run(&[policy(
        "api-tls",
        "2024-01-01T00:00:00Z",
        SVC,
        "{caCertificateRefs: [{group: '', kind: ConfigMap, name: nowhere}], hostname: backend.internal}",
    )]);
    // Routes stay (their claims hold) but have no endpoints: 503, never plain/unverified.
    for prefix in ["httproute/", "ingress/"] {
        let r = route(&out.snapshot, prefix);
        assert!(r.upstream.endpoints.is_empty(), "{prefix}: {r:?}");
    }
    let found = policy_conditions(&out, "api-tls");
    assert!(
        has(&found, "Accepted", "False", "NoValidCACertificate"),
        "{found:?}"
    );
    assert!(
        has(&found, "ResolvedRefs", "False", "InvalidCACertificateRef"),
        "{found:?}"
    );
    assert!(
        has(&found, "Ready", "False", "BackendTlsInvalid"),
        "{found:?}"
    );
    let http = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::HttpRoute)
        .unwrap();
    let Status::HttpRoute(st, summary) = &http.status else {
        unreachable!()
    };
    assert!(st.parents[0]
        .conditions
        .iter()
        .any(|c| c.type_ == "ResolvedRefs"
            && c.status == "False"
            && c.reason == "BackendTlsInvalid"));
    assert_eq!(summary[0].reason, "BackendTlsInvalid");
    let ing = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::Ingress)
        .unwrap();
    assert_eq!(ing.ready().reason, "BackendTlsInvalid");
}

#[test]
fn a_ca_that_is_not_pem_and_an_unsupported_kind_are_invalid_references() {
    let out = run(&[
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: junk, namespace: default}\ndata: {ca.crt: not a certificate}\n".to_owned(),
        policy(
            "junk",
            "2024-01-01T00:00:00Z",
            SVC,
            "{caCertificateRefs: [{group: '', kind: ConfigMap, name: junk}], hostname: backend.internal}",
        ),
    ]);
    assert!(route(&out.snapshot, "httproute/")
        .upstream
        .endpoints
        .is_empty());
    let found = policy_conditions(&out, "junk");
    assert!(
        has(&found, "ResolvedRefs", "False", "InvalidCACertificateRef"),
        "{found:?}"
    );

    let out = run(&[policy(
        "kind",
        "2024-01-01T00:00:00Z",
        SVC,
        "{caCertificateRefs: [{group: example.com, kind: Bundle, name: b}], hostname: backend.internal}",
    )]);
    assert!(route(&out.snapshot, "httproute/")
        .upstream
        .endpoints
        .is_empty());
    let found = policy_conditions(&out, "kind");
    assert!(
        has(&found, "ResolvedRefs", "False", "InvalidKind"),
        "{found:?}"
    );
    assert!(
        has(&found, "Accepted", "False", "NoValidCACertificate"),
        "{found:?}"
    );
}

#[test]
fn subject_alt_names_cannot_be_honoured_so_the_policy_is_invalid_and_fails_closed() {
    let out = run(&[policy(
        "sans",
        "2024-01-01T00:00:00Z",
        SVC,
        "{wellKnownCACertificates: System, hostname: a.internal, subjectAltNames: [{type: Hostname, hostname: b.internal}]}",
    )]);
    assert!(route(&out.snapshot, "httproute/")
        .upstream
        .endpoints
        .is_empty());
    assert!(has(
        &policy_conditions(&out, "sans"),
        "Accepted",
        "False",
        "Invalid"
    ));
}

#[test]
fn the_older_of_two_policies_on_one_service_wins_and_the_newer_is_conflicted() {
    let out = run(&[
        ca_config_map("api-ca", &ca_pem()),
        policy(
            "newer",
            "2025-01-01T00:00:00Z",
            SVC,
            "{wellKnownCACertificates: System, hostname: newer.internal}",
        ),
        policy(
            "older",
            "2024-01-01T00:00:00Z",
            SVC,
            "{caCertificateRefs: [{group: '', kind: ConfigMap, name: api-ca}], hostname: older.internal}",
        ),
    ]);
    let tls = route(&out.snapshot, "httproute/")
        .upstream
        .tls
        .clone()
        .unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("older.internal"));
    assert!(has(
        &policy_conditions(&out, "older"),
        "Accepted",
        "True",
        "Accepted"
    ));
    let newer = policy_conditions(&out, "newer");
    assert!(has(&newer, "Accepted", "False", "Conflicted"), "{newer:?}");
    assert!(
        has(&newer, "Ready", "False", "PolicyNotAccepted"),
        "{newer:?}"
    );
}

#[test]
fn a_policy_on_a_missing_service_is_target_not_found_with_the_service_as_ancestor() {
    let out = run(&[policy(
        "lost",
        "2024-01-01T00:00:00Z",
        "{group: '', kind: Service, name: gone}",
        "{wellKnownCACertificates: System, hostname: a.internal}",
    )]);
    assert!(has(
        &policy_conditions(&out, "lost"),
        "Accepted",
        "False",
        "TargetNotFound"
    ));
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::BackendTlsPolicy)
        .unwrap();
    let Status::BackendTlsPolicy(st, _) = &s.status else {
        unreachable!()
    };
    assert_eq!(st.ancestors[0].ancestor_ref.kind, "Service");
    assert_eq!(st.ancestors[0].ancestor_ref.name, "gone");
}

fn protected_route(tls: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {{name: pr, namespace: default}}\nspec:\n  hosts: [c.example.com]\n  paths: [/]\n  backend:\n    service: {{name: api, port: 443}}\n    tls: {tls}\n"
    )
}

#[test]
fn a_protected_route_reads_its_backend_ca_from_a_config_map_or_a_secret() {
    let pem = ca_pem();
    let out = run(&[
        ca_config_map("route-ca", &pem),
        protected_route(
            "{caCertificateRef: {kind: ConfigMap, name: route-ca}, hostname: backend.internal}",
        ),
    ]);
    let r = route(&out.snapshot, "default/pr");
    assert_eq!(r.upstream.endpoints, ["https://10.0.0.7:8443"]);
    let tls = r.upstream.tls.as_ref().unwrap();
    assert_eq!(tls.ca_pem.as_deref().map(str::trim), Some(pem.trim()));
    assert_eq!(tls.server_name.as_deref(), Some("backend.internal"));

    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: route-ca, namespace: default}}\nstringData:\n  bundle.pem: |\n    {}\n",
        pem.replace('\n', "\n    ")
    );
    let out = run(&[
        secret,
        protected_route("{caCertificateRef: {kind: Secret, name: route-ca, key: bundle.pem}}"),
    ]);
    let r = route(&out.snapshot, "default/pr");
    assert_eq!(r.upstream.endpoints, ["https://10.0.0.7:8443"]);
    let tls = r.upstream.tls.as_ref().unwrap();
    assert_eq!(tls.ca_pem.as_deref().map(str::trim), Some(pem.trim()));
    assert_eq!(tls.server_name, None);
    assert!(out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::ProtectedRoute)
        .unwrap()
        .is_ready());
}

#[test]
fn a_protected_route_whose_backend_ca_is_missing_gets_no_endpoints() {
    let out = run(&[protected_route(
        "{caCertificateRef: {kind: ConfigMap, name: nowhere}, hostname: backend.internal}",
    )]);
    assert!(route(&out.snapshot, "default/pr")
        .upstream
        .endpoints
        .is_empty());
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::ProtectedRoute)
        .unwrap();
    assert_eq!(s.ready().reason, "BackendTlsInvalid");
    assert!(
        s.ready().message.contains("nowhere"),
        "{}",
        s.ready().message
    );
}

#[test]
fn a_protected_route_with_backend_tls_on_a_plain_http_url_is_refused() {
    let out = run(&["apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: pr, namespace: default}\nspec:\n  hosts: [c.example.com]\n  paths: [/]\n  backend:\n    url: http://127.0.0.1:8080\n    tls: {hostname: backend.internal}\n".to_owned()]);
    assert!(route(&out.snapshot, "default/pr")
        .upstream
        .endpoints
        .is_empty());
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::ProtectedRoute)
        .unwrap();
    assert_eq!(s.ready().reason, "InvalidBackend");
}

#[test]
fn backend_tls_without_a_ca_or_a_hostname_is_an_invalid_spec_as_the_crd_says() {
    for tls in ["{}", "{hostname: '*.internal'}"] {
        let out = run(&[protected_route(tls)]);
        let s = out
            .statuses
            .iter()
            .find(|s| s.object.kind == Kind::ProtectedRoute)
            .unwrap();
        assert_eq!(s.ready().reason, "InvalidSpec", "{tls}");
        assert!(out.snapshot.routes.iter().all(|r| r.id != "default/pr"));
    }
}

#[test]
fn other_controllers_ancestor_entries_are_kept() {
    let mut p = policy(
        "api-tls",
        "2024-01-01T00:00:00Z",
        SVC,
        "{wellKnownCACertificates: System, hostname: a.internal}",
    );
    p.push_str("status:\n  ancestors:\n  - ancestorRef: {group: gateway.networking.k8s.io, kind: Gateway, name: theirs, namespace: default}\n    controllerName: example.com/other\n    conditions: []\n");
    let out = run(&[p]);
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::BackendTlsPolicy)
        .unwrap();
    let Status::BackendTlsPolicy(st, _) = &s.status else {
        unreachable!()
    };
    let names: Vec<(&str, &str)> = st
        .ancestors
        .iter()
        .map(|a| (a.controller_name.as_str(), a.ancestor_ref.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("gatehouse.dev/gateway-controller", "gw"),
            ("gatehouse.dev/gateway-controller", "ing"),
            ("example.com/other", "theirs")
        ]
    );
}
