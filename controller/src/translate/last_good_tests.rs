//! Last good versions (issue 17 item 4): a changed object that turns bad keeps its
//! previous version in force, for every kind that reaches the snapshot; driven by
//! manifests as a user writes them, passing each output's memory to the next pass.

use gatehouse_config::snapshot::Route;

use super::manifest_tests::{now, translate_files};
use crate::translate::{Kind, LastGood, ObjectStatus, Options, Output, Status};

/// A Service with one endpoint, and a Gateway for the Gateway API cases.
const WORLD: &str = r#"
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
endpoints: [{addresses: [10.0.0.1]}]
---
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
"#;

/// Translate `yaml` (plus [`WORLD`]) as a cluster controller would, with `memory`.
fn pass(yaml: &str, memory: &LastGood) -> Output {
    pass_with(yaml, memory, Options::cluster(now()))
}

fn pass_with(yaml: &str, memory: &LastGood, options: Options) -> Output {
    translate_files(
        [("world.yaml", WORLD), ("objects.yaml", yaml)],
        &options,
        memory,
    )
}

fn status<'a>(out: &'a Output, kind: Kind, name: &str) -> &'a ObjectStatus {
    out.statuses
        .iter()
        .find(|s| s.object.kind == kind && s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}: {:?}", out.statuses))
}

fn route<'a>(out: &'a Output, id: &str) -> Option<&'a Route> {
    out.snapshot.routes.iter().find(|r| r.id == id)
}

/// A ProtectedRoute at `generation` with `spec` (indented YAML under `spec:`).
fn protected_route(name: &str, uid: &str, generation: i64, spec: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {{name: {name}, namespace: default, uid: {uid}, generation: {generation}, creationTimestamp: \"2024-01-01T00:00:00Z\"}}\nspec:\n{spec}\n---\n"
    )
}

const ADMIN_GOOD: &str = "  paths: [/api/admin]
  backend: {service: {name: api, port: 80}}
  oauth2:
    scopes: [admin]
    rules: [{path: /, requiredScopes: [admin]}]";

#[test]
fn a_route_changed_to_a_missing_service_keeps_serving_its_last_good_version() {
    let good = protected_route("admin", "u-admin", 1, ADMIN_GOOD);
    let first = pass(&good, &LastGood::default());
    assert!(status(&first, Kind::ProtectedRoute, "admin").is_ready());
    // The route and WORLD's Gateway.
    assert_eq!(first.last_good.len(), 2);

    let bad = protected_route(
        "admin",
        "u-admin",
        2,
        &ADMIN_GOOD.replace("name: api,", "name: no-such-api,"),
    );
    let second = pass(&bad, &first.last_good);
    let s = status(&second, Kind::ProtectedRoute, "admin");
    let ready = s.ready();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "BackendNotFound")
    );
    assert_eq!(ready.observed_generation, Some(2));
    assert_eq!(s.object.generation, Some(2));
    assert!(
        ready
            .message
            .ends_with("the last good version (generation 1) is still served"),
        "{}",
        ready.message
    );
    let Status::ProtectedRoute(written) = &s.status else {
        unreachable!("ProtectedRoute status")
    };
    assert_eq!(written.observed_generation, Some(2));
    // Served exactly as before, endpoints and all.
    assert_eq!(second.snapshot, first.snapshot);
    assert_eq!(second.held.len(), 1);
    assert_eq!(second.held[0].generation, Some(2));

    // Still bad at generation 3: generation 1 is still what is served.
    let worse = protected_route(
        "admin",
        "u-admin",
        3,
        &ADMIN_GOOD.replace("requiredScopes: [admin]", "requiredScopes: [root]"),
    );
    let third = pass(&worse, &second.last_good);
    assert_eq!(
        status(&third, Kind::ProtectedRoute, "admin").ready().reason,
        "InvalidSpec"
    );
    assert_eq!(third.snapshot, first.snapshot);

    // Fixed at generation 4: the new version is served and becomes the last good one.
    let fixed = protected_route(
        "admin",
        "u-admin",
        4,
        &ADMIN_GOOD.replace("[/api/admin]", "[/api/admin, /api/ops]"),
    );
    let fourth = pass(&fixed, &third.last_good);
    assert!(status(&fourth, Kind::ProtectedRoute, "admin").is_ready());
    assert!(fourth.held.is_empty());
    assert_eq!(
        route(&fourth, "default/admin").unwrap().paths,
        ["/api/admin", "/api/ops"]
    );
}

#[test]
fn an_invalid_scope_rule_never_lets_a_broader_route_take_the_path() {
    let broad = protected_route(
        "public",
        "u-public",
        1,
        "  paths: [/api]\n  backend: {service: {name: api, port: 80}}",
    );
    let good = format!(
        "{broad}{}",
        protected_route("admin", "u-admin", 1, ADMIN_GOOD)
    );
    let first = pass(&good, &LastGood::default());
    assert_eq!(first.snapshot.routes.len(), 2);

    // A rule naming a scope the route does not offer: the spec is rejected.
    let bad = format!(
        "{broad}{}",
        protected_route(
            "admin",
            "u-admin",
            2,
            &ADMIN_GOOD.replace("requiredScopes: [admin]", "requiredScopes: [admins]"),
        )
    );
    let second = pass(&bad, &first.last_good);
    assert_eq!(
        status(&second, Kind::ProtectedRoute, "admin")
            .ready()
            .reason,
        "InvalidSpec"
    );
    let admin = route(&second, "default/admin").expect("/api/admin is still its own route");
    assert_eq!(admin.paths, ["/api/admin"]);
    assert_eq!(
        admin.oauth2.as_ref().unwrap().rules[0].required_scopes,
        ["admin"]
    );

    // Without memory (a fresh controller, render) the bad version is left out.
    let fresh = pass(&bad, &LastGood::default());
    assert!(route(&fresh, "default/admin").is_none());
}

#[test]
fn a_held_version_keeps_following_the_endpoints_of_its_service() {
    let first = pass(
        &protected_route("admin", "u-admin", 1, ADMIN_GOOD),
        &LastGood::default(),
    );
    let bad = protected_route(
        "admin",
        "u-admin",
        2,
        &ADMIN_GOOD.replace("name: api,", "name: no-such-api,"),
    );
    let moved = format!(
        "{bad}apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: api-2, namespace: default, labels: {{kubernetes.io/service-name: api}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints: [{{addresses: [10.0.0.2]}}]\n"
    );
    let second = pass(&moved, &first.last_good);
    assert_eq!(
        route(&second, "default/admin").unwrap().upstream.endpoints,
        ["http://10.0.0.1:8080", "http://10.0.0.2:8080"]
    );
}

#[test]
fn an_unchanged_object_that_stops_being_ready_is_not_replaced() {
    let good = protected_route("admin", "u-admin", 1, ADMIN_GOOD);
    let first = pass(&good, &LastGood::default());
    // The Service's endpoints move away; the route itself did not change.
    // (Without the world: no Service any more.)
    let second = translate_files(
        [("objects.yaml", good.as_str())],
        &Options::cluster(now()),
        &first.last_good,
    );
    assert_eq!(
        status(&second, Kind::ProtectedRoute, "admin")
            .ready()
            .reason,
        "BackendNotFound"
    );
    assert!(second.held.is_empty());
    assert!(route(&second, "default/admin")
        .unwrap()
        .upstream
        .endpoints
        .is_empty());
    assert_eq!(second.last_good.len(), 1, "the version is still remembered");
}

#[test]
fn a_deleted_object_is_forgotten_and_a_recreated_one_starts_without_memory() {
    let first = pass(
        &protected_route("admin", "u-admin", 1, ADMIN_GOOD),
        &LastGood::default(),
    );
    let gone = pass("", &first.last_good);
    assert_eq!(
        gone.last_good.len(),
        1,
        "only WORLD's Gateway is remembered"
    );
    assert!(route(&gone, "default/admin").is_none());

    // Recreated under the same name (new uid) and bad from the start: nothing to keep,
    // even when the memory from before the deletion is passed in.
    let bad = protected_route(
        "admin",
        "u-admin-2",
        1,
        &ADMIN_GOOD.replace("name: api,", "name: no-such-api,"),
    );
    for memory in [&gone.last_good, &first.last_good] {
        let out = pass(&bad, memory);
        assert!(out.held.is_empty());
        assert!(route(&out, "default/admin")
            .unwrap()
            .upstream
            .endpoints
            .is_empty());
    }
}

#[test]
fn a_newer_route_cannot_take_the_paths_of_a_held_route() {
    let first = pass(
        &protected_route("admin", "u-admin", 1, ADMIN_GOOD),
        &LastGood::default(),
    );
    let bad = protected_route(
        "admin",
        "u-admin",
        2,
        &ADMIN_GOOD.replace("[/api/admin]", "[api/admin]"),
    );
    let newer = "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: grab, namespace: default, uid: u-grab, generation: 1, creationTimestamp: \"2025-01-01T00:00:00Z\"}\nspec:\n  paths: [/api/admin]\n  backend: {service: {name: api, port: 80}}\n";
    let second = pass(&format!("{bad}{newer}"), &first.last_good);
    assert_eq!(
        status(&second, Kind::ProtectedRoute, "admin")
            .ready()
            .reason,
        "InvalidSpec"
    );
    assert_eq!(
        status(&second, Kind::ProtectedRoute, "grab").ready().reason,
        "RouteConflict"
    );
    assert!(route(&second, "default/grab").is_none());
    assert!(route(&second, "default/admin").unwrap().oauth2.is_some());
}

const CONSUMER: &str = "apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {name: acme, namespace: default, uid: u-acme, generation: GEN}
spec: {username: USERNAME}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: app, namespace: default, uid: u-app, generation: 1}
spec:
  consumerRef: {name: acme}
  name: App
  redirectUris: [https://app.example/cb]
  credentialsSecretRef: {name: app-creds}
---
apiVersion: v1
kind: Secret
metadata: {name: app-creds, namespace: default}
stringData: {client_id: app, client_secret: a-client-secret-that-is-long-enough-0123456789}
";

#[test]
fn a_consumer_changed_to_invalid_keeps_its_clients_working() {
    let good = CONSUMER.replace("GEN", "1").replace("USERNAME", "acme");
    let first = pass(&good, &LastGood::default());
    assert!(status(&first, Kind::OAuth2Client, "app").is_ready());

    // Neither username nor customId: invalid.
    let bad = CONSUMER.replace("GEN", "2").replace("USERNAME", "\"\"");
    let second = pass(&bad, &first.last_good);
    assert_eq!(
        status(&second, Kind::Consumer, "acme").ready().reason,
        "InvalidSpec"
    );
    assert!(status(&second, Kind::OAuth2Client, "app").is_ready());
    assert_eq!(second.snapshot.clients, first.snapshot.clients);
    assert_eq!(second.snapshot.consumers, first.snapshot.consumers);
}

#[test]
fn an_oauth2client_changed_to_a_missing_secret_keeps_its_credentials() {
    let good = CONSUMER.replace("GEN", "1").replace("USERNAME", "acme");
    let first = pass(&good, &LastGood::default());
    let bad = good
        .replace(
            "generation: 1}\nspec:\n  consumerRef",
            "generation: 2}\nspec:\n  consumerRef",
        )
        .replace("{name: app-creds}", "{name: app-creds-typo}");
    let second = pass(&bad, &first.last_good);
    let s = status(&second, Kind::OAuth2Client, "app");
    assert_eq!(s.ready().reason, "CredentialsSecretNotFound");
    assert_eq!(s.ready().observed_generation, Some(2));
    assert_eq!(second.snapshot.clients, first.snapshot.clients);
}

const HTTP_ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: default, uid: u-r, generation: GEN}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PATH_TYPE, value: /orders}}]
    backendRefs: [{name: api, port: 80}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {name: p, namespace: default, uid: u-p, generation: PGEN}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  oauth2:
    scopes: [orders]
    rules: [{path: /, requiredScopes: [RULE_SCOPE]}]
";

fn http_route(gen: i64, path_type: &str, policy_gen: i64, rule_scope: &str) -> String {
    HTTP_ROUTE
        .replace("PGEN", &policy_gen.to_string())
        .replace("GEN", &gen.to_string())
        .replace("PATH_TYPE", path_type)
        .replace("RULE_SCOPE", rule_scope)
}

#[test]
fn an_invalid_policy_change_keeps_the_route_protected_by_the_old_policy() {
    let first = pass(
        &http_route(1, "PathPrefix", 1, "orders"),
        &LastGood::default(),
    );
    let served = route(&first, "oauth2policy/default/p").expect("protected route");
    assert_eq!(
        served.oauth2.as_ref().unwrap().rules[0].required_scopes,
        ["orders"]
    );

    let second = pass(&http_route(1, "PathPrefix", 2, "unknown"), &first.last_good);
    let p = status(&second, Kind::OAuth2Policy, "p");
    assert!(!p.is_ready());
    assert_eq!(p.ready().observed_generation, Some(2));
    assert_eq!(second.snapshot, first.snapshot);
    assert!(status(&second, Kind::HttpRoute, "r").is_ready());

    // Without memory the target is not served at all (fail closed), never open.
    let fresh = pass(
        &http_route(1, "PathPrefix", 2, "unknown"),
        &LastGood::default(),
    );
    assert!(fresh.snapshot.routes.is_empty());
}

#[test]
fn an_httproute_changed_to_an_unsupported_match_keeps_its_last_good_rules() {
    let first = pass(
        &http_route(1, "PathPrefix", 1, "orders"),
        &LastGood::default(),
    );
    let second = pass(
        &http_route(2, "RegularExpression", 1, "orders"),
        &first.last_good,
    );
    let s = status(&second, Kind::HttpRoute, "r");
    let Status::HttpRoute(written, _) = &s.status else {
        unreachable!("HTTPRoute status")
    };
    let accepted = written.parents[0]
        .conditions
        .iter()
        .find(|c| c.type_ == "Accepted")
        .unwrap();
    assert_eq!(
        (accepted.status.as_str(), accepted.reason.as_str()),
        ("False", "UnsupportedValue")
    );
    assert_eq!(accepted.observed_generation, Some(2));
    assert!(accepted.message.contains("generation 1) is still served"));
    assert_eq!(second.snapshot, first.snapshot);
}

#[test]
fn an_ingress_changed_to_an_unsupported_path_type_keeps_its_last_good_paths() {
    let ingress = |gen: i64, path_type: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: ing, namespace: default, uid: u-ing, generation: {gen}}}\nspec:\n  ingressClassName: gatehouse\n  rules:\n  - http: {{paths: [{{path: /shop, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}, {{path: /cart, pathType: {path_type}, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}]}}\n"
        )
    };
    let first = pass(&ingress(1, "Exact"), &LastGood::default());
    assert_eq!(first.snapshot.routes.len(), 2);
    let second = pass(&ingress(2, "Regex"), &first.last_good);
    let s = status(&second, Kind::Ingress, "ing");
    assert_eq!(s.ready().reason, "InvalidSpec");
    assert_eq!(s.ready().observed_generation, Some(2));
    // Not just /shop: /cart stays served as well, exactly as before.
    assert_eq!(second.snapshot, first.snapshot);
}

#[test]
fn standalone_manifests_without_generations_compare_content() {
    let good = "apiVersion: gatehouse.dev/v1alpha1\nkind: ProtectedRoute\nmetadata: {name: admin}\nspec:\n  paths: [/api/admin]\n  backend: {url: \"http://127.0.0.1:9000\"}\n  oauth2: {scopes: [admin], rules: [{path: /, requiredScopes: [admin]}]}\n";
    let first = pass_with(good, &LastGood::default(), Options::standalone(now()));
    assert!(status(&first, Kind::ProtectedRoute, "admin").is_ready());

    let bad = good.replace("requiredScopes: [admin]", "requiredScopes: [admni]");
    let second = pass_with(&bad, &first.last_good, Options::standalone(now()));
    let ready = status(&second, Kind::ProtectedRoute, "admin")
        .ready()
        .clone();
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready
            .message
            .ends_with("the last good version is still served"),
        "{}",
        ready.message
    );
    assert_eq!(second.snapshot, first.snapshot);

    // The same bad content again (a reload of an unrelated file) stays held.
    let third = pass_with(&bad, &second.last_good, Options::standalone(now()));
    assert_eq!(third.snapshot, first.snapshot);
}
