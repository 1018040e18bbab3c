//! Translate tests for the Gateway API, Ingress and OAuth2Policy sources, driven by
//! manifests as a user writes them.

use super::manifest_tests::{now, translate_files};
use crate::translate::{Kind, LastGood, Options, Output, Status};
use gatehouse_crds::gateway_api::HttpRouteStatus;

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
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
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

fn run(extra: &str) -> Output {
    translate_files(
        [("base.yaml", BASE), ("extra.yaml", extra)],
        &Options::standalone(now()),
        &LastGood::default(),
    )
}

/// The HTTPRoute status translate wrote for `name`.
fn route_status<'a>(out: &'a Output, name: &str) -> &'a HttpRouteStatus {
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::HttpRoute && s.object.name == name)
        .expect("route has a status");
    let Status::HttpRoute(st, _) = &s.status else {
        unreachable!("HTTPRoute status")
    };
    st
}

fn route_conditions(out: &Output, name: &str) -> Vec<(String, String, String)> {
    route_status(out, name).parents[0]
        .conditions
        .iter()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn an_oauth2policy_on_an_httproute_protects_its_matches() {
    let out = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [api.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: p, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  oauth2: {clientCredentials: true}
"#);
    let route = &out.snapshot.routes[0];
    assert_eq!(route.id, "oauth2policy/default/p");
    assert_eq!(route.hosts, ["api.example.com"]);
    assert_eq!(route.upstream.endpoints, ["http://127.0.0.1:8080"]);
    assert!(route.oauth2.as_ref().unwrap().enable_client_credentials);
    assert!(route_conditions(&out, "r")
        .iter()
        .all(|(_, s, _)| s == "True"));
}

#[test]
fn a_cross_namespace_backend_needs_a_reference_grant() {
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: team}
spec:
  parentRefs: [{name: gw, namespace: default}]
  rules:
  - backendRefs: [{name: api, namespace: default, port: 80}]
"#;
    let out = run(route);
    assert!(route_conditions(&out, "r").contains(&(
        "ResolvedRefs".into(),
        "False".into(),
        "RefNotPermitted".into()
    )));
    assert!(out.snapshot.routes[0].upstream.endpoints.is_empty());

    let granted = format!(
        "{route}---\napiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: default}}\nspec:\n  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: team}}]\n  to: [{{group: \"\", kind: Service}}]\n"
    );
    let out = run(&granted);
    assert_eq!(
        out.snapshot.routes[0].upstream.endpoints,
        ["http://127.0.0.1:8080"]
    );
}

#[test]
fn an_ingress_conflicting_with_an_older_protectedroute_is_reported() {
    let out = run(r#"
apiVersion: gatehouse.dev/v1alpha1
kind: ProtectedRoute
metadata: {name: pr, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {hosts: [a.example.com], paths: [/x], backend: {url: "http://127.0.0.1:9"}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing, namespace: default, creationTimestamp: "2025-01-01T00:00:00Z"}
spec:
  ingressClassName: gatehouse
  rules:
  - host: a.example.com
    http: {paths: [{path: /x, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}]}
"#);
    let ing = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::Ingress)
        .unwrap();
    assert_eq!(ing.ready().reason, "RouteConflict");
    assert_eq!(out.snapshot.routes.len(), 1);
    assert_eq!(out.snapshot.routes[0].id, "default/pr");
}

fn policy_accepted(out: &Output, name: &str) -> Vec<(String, String)> {
    let s = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::OAuth2Policy && s.object.name == name)
        .expect("policy has a status");
    let Status::OAuth2Policy(st) = &s.status else {
        unreachable!("OAuth2Policy status")
    };
    st.ancestors
        .iter()
        .flat_map(|a| &a.conditions)
        .filter(|c| c.type_ == "Accepted")
        .map(|c| (c.status.clone(), c.reason.clone()))
        .collect()
}

#[test]
fn a_policy_naming_no_object_is_target_not_found() {
    let out = run(r#"
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: p, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]
  oauth2: {clientCredentials: true}
"#);
    assert_eq!(
        policy_accepted(&out, "p"),
        [("False".to_owned(), "TargetNotFound".to_owned())]
    );
}

#[test]
fn the_newer_of_two_policies_on_one_route_is_conflicted() {
    let out = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: a, namespace: default, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  oauth2: {clientCredentials: true}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: b, namespace: default, creationTimestamp: "2024-06-01T00:00:00Z"}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  oauth2: {clientCredentials: true}
"#);
    assert_eq!(
        policy_accepted(&out, "a"),
        [("True".to_owned(), "Accepted".to_owned())]
    );
    assert_eq!(
        policy_accepted(&out, "b"),
        [("False".to_owned(), "Conflicted".to_owned())]
    );
}

#[test]
fn a_route_whose_parent_does_not_exist_is_not_served_and_gets_no_parent_status() {
    let out = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: nowhere}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
"#);
    // The parent is no Gateway of ours: GEP-1364 leaves its status entry to whoever
    // owns it, so Gatehouse writes none and serves nothing.
    let st = route_status(&out, "r");
    assert!(st.parents.is_empty(), "{:?}", st.parents);
    assert!(out.snapshot.routes.is_empty());
}

#[test]
fn other_controllers_parent_entries_are_kept_when_ours_are_written() {
    // The route is attached to our Gateway and to another implementation's; the list
    // is atomic, so writing ours must carry theirs along, and drop our own stale entry.
    let out = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}, {name: theirs}]
  rules: [{backendRefs: [{name: api, port: 80}]}]
status:
  parents:
  - parentRef: {name: theirs}
    controllerName: example.net/other-controller
    conditions:
    - {type: Accepted, status: "True", reason: Accepted, message: ok, observedGeneration: 1,
       lastTransitionTime: "2026-01-01T00:00:00Z"}
  - parentRef: {name: gone}
    controllerName: gatehouse.dev/gateway-controller
    conditions:
    - {type: Accepted, status: "True", reason: Accepted, message: old, observedGeneration: 1,
       lastTransitionTime: "2026-01-01T00:00:00Z"}
"#);
    let st = route_status(&out, "r");
    let entries: Vec<(&str, &str)> = st
        .parents
        .iter()
        .map(|p| (p.parent_ref.name.as_str(), p.controller_name.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            ("gw", "gatehouse.dev/gateway-controller"),
            ("theirs", "example.net/other-controller"),
        ]
    );
    assert_eq!(st.parents[1].conditions[0].message, "ok");
    assert_eq!(out.snapshot.routes.len(), 1);
}

#[test]
fn a_policy_allowing_encoded_slashes_applies_it_to_every_route_it_protects() {
    let out = run(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /files}}, {path: {type: Exact, value: /blob}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: ing, namespace: default}
spec:
  ingressClassName: gatehouse
  rules:
  - http: {paths: [{path: /docs, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: plain, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /plain}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: p, namespace: default}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}
  - {group: networking.k8s.io, kind: Ingress, name: ing}
  oauth2: {clientCredentials: true, allowEncodedSlashes: true}
"#);
    let by_path = |p: &str| {
        out.snapshot
            .routes
            .iter()
            .find(|r| r.paths == [p])
            .unwrap_or_else(|| panic!("a route for {p}"))
    };
    for p in ["/files", "/blob", "/docs"] {
        assert!(by_path(p).allow_encoded_slashes, "{p}");
        assert!(by_path(p).oauth2.is_some(), "{p}");
    }
    assert!(!by_path("/plain").allow_encoded_slashes);
}

#[test]
fn without_readable_gateway_classes_the_assumed_class_is_served_and_says_so() {
    let objects = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: team}
spec:
  gatewayClassName: gatehouse
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: team}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
"#;
    let mut options = Options::standalone(now());
    let gateways = |options: &Options| {
        let out = translate_files([("objects.yaml", objects)], options, &LastGood::default());
        out.statuses
            .into_iter()
            .filter(|s| s.object.kind == Kind::Gateway)
            .collect::<Vec<_>>()
    };
    // Nothing is served on trust unless asked.
    assert!(gateways(&options).is_empty());

    options.assumed_gateway_class = Some("gatehouse".into());
    let served = gateways(&options);
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0].object.name, "gw");
    let Status::Gateway(st, _) = &served[0].status else {
        unreachable!("Gateway status")
    };
    let accepted = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .unwrap();
    assert_eq!(accepted.status, "True");
    assert!(
        accepted
            .message
            .contains("cannot be read by this installation"),
        "{}",
        accepted.message
    );
}

#[test]
fn gateways_report_the_proxy_addresses_as_ingresses_do() {
    let mut options = Options::standalone(now());
    options.load_balancer = vec![
        k8s_openapi::api::networking::v1::IngressLoadBalancerIngress {
            ip: Some("203.0.113.7".into()),
            ..Default::default()
        },
        k8s_openapi::api::networking::v1::IngressLoadBalancerIngress {
            hostname: Some("lb.example.net".into()),
            ..Default::default()
        },
    ];
    let out = translate_files([("base.yaml", BASE)], &options, &LastGood::default());
    let gw = out
        .statuses
        .iter()
        .find(|s| s.object.kind == Kind::Gateway)
        .unwrap();
    let Status::Gateway(st, _) = &gw.status else {
        unreachable!("Gateway status")
    };
    let shown: Vec<(Option<&str>, &str)> = st
        .addresses
        .iter()
        .map(|a| (a.type_.as_deref(), a.value.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (Some("IPAddress"), "203.0.113.7"),
            (Some("Hostname"), "lb.example.net")
        ]
    );
}
