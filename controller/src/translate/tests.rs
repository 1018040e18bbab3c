//! Translate unit tests: one per rejection reason, the happy paths, determinism,
//! isolation of rejected objects, and digests-only secrets.

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_crds::conditions::reason;
use gatehouse_crds::*;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use rand::SeedableRng;
use sha2::{Digest as _, Sha256};

use super::ObjectStatus;
use super::*;

const NS: &str = "default";
const SECRET: &str = "a-client-secret-that-is-long-enough-0123456789";

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap())
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.to_owned()),
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn created(mut m: ObjectMeta, secs: i64) -> ObjectMeta {
    m.creation_timestamp = Some(at(secs));
    m
}

fn mk_consumer(name: &str, username: &str) -> Consumer {
    Consumer {
        metadata: meta(NS, name),
        spec: ConsumerSpec {
            username: Some(username.to_owned()),
            custom_id: None,
        },
        status: None,
    }
}

fn mk_secret(name: &str, pairs: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: meta(NS, name),
        string_data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn mk_creds(name: &str, client_id: &str) -> Secret {
    mk_secret(name, &[("client_id", client_id), ("client_secret", SECRET)])
}

fn mk_client(name: &str, consumer: &str, secret: Option<&str>) -> OAuth2Client {
    OAuth2Client {
        metadata: meta(NS, name),
        spec: OAuth2ClientSpec {
            consumer_ref: LocalRef {
                name: consumer.to_owned(),
            },
            name: format!("{name} app"),
            client_type: ClientType::Confidential,
            redirect_uris: vec!["https://app.example/callback".to_owned()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scopes: None,
            credentials_secret_ref: secret.map(|s| LocalRef { name: s.to_owned() }),
            trusted: false,
            resource_server: false,
        },
        status: None,
    }
}

fn url_backend(url: &str) -> Backend {
    Backend {
        service: None,
        url: Some(url.to_owned()),
        protocol: None,
        tls: None,
    }
}

fn service_backend(name: &str, port: i32) -> Backend {
    Backend {
        service: Some(ServiceBackend {
            name: name.to_owned(),
            port,
        }),
        url: None,
        protocol: None,
        tls: None,
    }
}

fn mk_route(name: &str, path: &str, backend: Backend) -> ProtectedRoute {
    ProtectedRoute {
        metadata: meta(NS, name),
        spec: ProtectedRouteSpec {
            hosts: vec![],
            paths: vec![path.to_owned()],
            strip_path: true,
            preserve_host: false,
            backend: Some(backend),
            timeouts: None,
            oauth2: OAuth2Spec::default(),
            tls: None,
        },
        status: None,
    }
}

fn mk_service(name: &str, ports: &[(Option<&str>, i32)]) -> Service {
    Service {
        metadata: meta(NS, name),
        spec: Some(ServiceSpec {
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: n.map(str::to_owned),
                        port: *p,
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn mk_slice(
    name: &str,
    service: &str,
    port: (Option<&str>, i32),
    endpoints: &[(&str, Option<bool>)],
) -> EndpointSlice {
    let mut m = meta(NS, name);
    m.labels = Some(BTreeMap::from([(
        "kubernetes.io/service-name".to_owned(),
        service.to_owned(),
    )]));
    EndpointSlice {
        metadata: m,
        address_type: "IPv4".to_owned(),
        ports: Some(vec![EndpointPort {
            name: port.0.map(str::to_owned),
            port: Some(port.1),
            ..EndpointPort::default()
        }]),
        endpoints: endpoints
            .iter()
            .map(|(addr, ready)| Endpoint {
                addresses: vec![addr.to_string()],
                conditions: Some(EndpointConditions {
                    ready: *ready,
                    ..EndpointConditions::default()
                }),
                ..Endpoint::default()
            })
            .collect(),
    }
}

#[derive(Default)]
struct World {
    input: Input,
}

impl World {
    fn consumer(mut self, c: Consumer) -> Self {
        self.input.consumers.push(Arc::new(c));
        self
    }
    fn client(mut self, c: OAuth2Client) -> Self {
        self.input.clients.push(Arc::new(c));
        self
    }
    fn route(mut self, r: ProtectedRoute) -> Self {
        self.input.routes.push(Arc::new(r));
        self
    }
    fn secret(mut self, s: Secret) -> Self {
        self.input.secrets.push(Arc::new(s));
        self
    }
    fn service(mut self, s: Service) -> Self {
        self.input.services.push(Arc::new(s));
        self
    }
    fn slice(mut self, s: EndpointSlice) -> Self {
        self.input.endpoint_slices.push(Arc::new(s));
        self
    }
    fn run(&self) -> Output {
        self.run_with(&Options::standalone(at(1_000)))
    }
    fn run_cluster(&self) -> Output {
        self.run_with(&Options::cluster(at(1_000)))
    }
    fn run_with(&self, options: &Options) -> Output {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        translate(&self.input, options, &mut rng)
    }
}

fn status<'a>(out: &'a Output, kind: Kind, name: &str) -> &'a ObjectStatus {
    out.statuses
        .iter()
        .find(|s| s.object.kind == kind && s.object.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}"))
}

fn reason_of(out: &Output, kind: Kind, name: &str) -> String {
    status(out, kind, name).ready().reason.clone()
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The Step On world: consumer, client with credentials, provision key, route.
fn step_on() -> World {
    let mut route = mk_route("stepon", "/stepon", url_backend("http://127.0.0.1:3000"));
    route.spec.oauth2.scopes = vec![
        "user_profile".into(),
        "biometric".into(),
        "step_counts".into(),
    ];
    route.spec.oauth2.mandatory_scope = true;
    route.spec.oauth2.provision_key_secret_ref = Some(SecretKeyRef {
        name: "stepon-provision-key".into(),
        key: "provision_key".into(),
    });
    route.spec.oauth2.rules = vec![ScopeRule {
        path: "/stepcounts".into(),
        methods: vec![Method::Get],
        required_scopes: vec!["step_counts".into()],
    }];
    World::default()
        .consumer(mk_consumer("shoeflyshoe", "shoeflyshoe"))
        .client(mk_client("shoe-fly-shoe", "shoeflyshoe", Some("sfs-creds")))
        .secret(mk_creds("sfs-creds", "shoe-fly-shoe-id"))
        .secret(mk_secret(
            "stepon-provision-key",
            &[("provision_key", "pk-0123456789")],
        ))
        .route(route)
}

#[test]
fn step_on_manifests_become_a_ready_snapshot() {
    let out = step_on().run();
    assert!(out.not_ready().next().is_none(), "{:?}", out.statuses);
    let snap = &out.snapshot;

    assert_eq!(snap.consumers.len(), 1);
    assert_eq!(snap.consumers[0].id, "default/shoeflyshoe");
    assert_eq!(snap.consumers[0].username.as_deref(), Some("shoeflyshoe"));

    let client = &snap.clients[0];
    assert_eq!(client.client_id, "shoe-fly-shoe-id");
    assert_eq!(client.consumer_id, "default/shoeflyshoe");
    assert_eq!(
        client.secret_sha256.as_deref(),
        Some(sha256_hex(SECRET).as_str())
    );
    assert_eq!(client.name, "shoe-fly-shoe app");

    let route = &snap.routes[0];
    assert_eq!(route.id, "default/stepon");
    assert_eq!(route.upstream.endpoints, vec!["http://127.0.0.1:3000"]);
    let o = route.oauth2.as_ref().unwrap();
    assert_eq!(
        o.provision_key_sha256.as_deref(),
        Some(sha256_hex("pk-0123456789").as_str())
    );
    assert_eq!(o.rules[0].methods, vec!["GET"]);
    assert_eq!(o.rules[0].required_scopes, vec!["step_counts"]);
    assert_eq!(o.token_expiration, 7200);
    assert!(o.mandatory_scope);

    let client_status = status(&out, Kind::OAuth2Client, "shoe-fly-shoe");
    match &client_status.status {
        Status::OAuth2Client(s) => assert_eq!(s.client_id.as_deref(), Some("shoe-fly-shoe-id")),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(snap.revision.len(), 16);
}

#[test]
fn secrets_and_provision_keys_appear_only_as_digests() {
    let out = step_on().run();
    let json = String::from_utf8(out.snapshot.to_json()).unwrap();
    assert!(!json.contains(SECRET));
    assert!(!json.contains("pk-0123456789"));
    assert!(json.contains(&sha256_hex(SECRET)));
}

#[test]
fn same_input_in_any_order_gives_a_byte_identical_snapshot() {
    let world = step_on()
        .consumer(mk_consumer("b", "b"))
        .client(mk_client("c2", "b", Some("c2")))
        .secret(mk_creds("c2", "c2-id"))
        .route(mk_route("r2", "/two", url_backend("http://127.0.0.1:4000")));
    let a = world.run();
    let mut reversed = World {
        input: world.input.clone(),
    };
    reversed.input.consumers.reverse();
    reversed.input.clients.reverse();
    reversed.input.routes.reverse();
    reversed.input.secrets.reverse();
    let b = reversed.run();
    assert_eq!(a.snapshot.to_json(), b.snapshot.to_json());
    assert_eq!(a.statuses, b.statuses);
    // And a different input changes the revision.
    let c = world
        .route(mk_route(
            "r3",
            "/three",
            url_backend("http://127.0.0.1:5000"),
        ))
        .run();
    assert_ne!(a.snapshot.revision, c.snapshot.revision);
}

#[test]
fn consumer_ids_are_the_uid_when_present_and_namespace_name_otherwise() {
    let mut with_uid = mk_consumer("a", "a");
    with_uid.metadata.uid = Some("5f1c-uid".into());
    let out = World::default()
        .consumer(with_uid)
        .consumer(mk_consumer("b", "b"))
        .run();
    let ids: Vec<_> = out
        .snapshot
        .consumers
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(ids, vec!["5f1c-uid", "default/b"]);
}

#[test]
fn consumer_without_username_or_custom_id_is_invalid() {
    let mut c = mk_consumer("nobody", "x");
    c.spec.username = None;
    let out = World::default().consumer(c).run();
    assert_eq!(
        reason_of(&out, Kind::Consumer, "nobody"),
        reason::INVALID_SPEC
    );
    assert!(out.snapshot.consumers.is_empty());
}

#[test]
fn unknown_consumer_ref_rejects_only_that_client() {
    let out = step_on()
        .client(mk_client("orphan", "ghost", Some("orphan-creds")))
        .secret(mk_creds("orphan-creds", "orphan-id"))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "orphan"),
        reason::CONSUMER_NOT_FOUND
    );
    assert!(status(&out, Kind::OAuth2Client, "shoe-fly-shoe").is_ready());
    let ids: Vec<_> = out
        .snapshot
        .clients
        .iter()
        .map(|c| c.client_id.as_str())
        .collect();
    assert_eq!(ids, vec!["shoe-fly-shoe-id"]);
}

#[test]
fn client_of_an_invalid_consumer_is_not_ready() {
    let mut broken = mk_consumer("broken", "x");
    broken.spec.username = None;
    let out = World::default()
        .consumer(broken)
        .client(mk_client("app", "broken", Some("creds")))
        .secret(mk_creds("creds", "app-id"))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "app"),
        reason::CONSUMER_NOT_READY
    );
}

#[test]
fn missing_credentials_secret_is_reported() {
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(mk_client("app", "c", Some("nowhere")))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "app"),
        reason::CREDENTIALS_SECRET_NOT_FOUND
    );
    assert!(out.snapshot.clients.is_empty());
    assert!(out.secrets_to_create.is_empty());
}

#[test]
fn malformed_credentials_secrets_are_reported() {
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(mk_client("no-id", "c", Some("no-id")))
        .secret(mk_secret("no-id", &[("client_secret", SECRET)]))
        .client(mk_client("no-secret", "c", Some("no-secret")))
        .secret(mk_secret("no-secret", &[("client_id", "x")]))
        .client(mk_client("newline", "c", Some("newline")))
        .secret(mk_secret(
            "newline",
            &[
                ("client_id", "y"),
                ("client_secret", &format!("{SECRET}\n")),
            ],
        ))
        .run();
    for name in ["no-id", "no-secret", "newline"] {
        assert_eq!(
            reason_of(&out, Kind::OAuth2Client, name),
            reason::CREDENTIALS_SECRET_INVALID,
            "{name}"
        );
    }
    assert!(out.snapshot.clients.is_empty());
}

#[test]
fn base64_data_is_read_like_string_data() {
    use k8s_openapi::ByteString;
    let mut s = mk_secret("creds", &[]);
    s.string_data = None;
    s.data = Some(BTreeMap::from([
        ("client_id".to_owned(), ByteString(b"from-data".to_vec())),
        (
            "client_secret".to_owned(),
            ByteString(SECRET.as_bytes().to_vec()),
        ),
    ]));
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(mk_client("app", "c", Some("creds")))
        .secret(s)
        .run();
    assert_eq!(out.snapshot.clients[0].client_id, "from-data");
}

#[test]
fn client_secret_shorter_than_32_bytes_is_rejected() {
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(mk_client("app", "c", Some("creds")))
        .secret(mk_secret(
            "creds",
            &[("client_id", "x"), ("client_secret", &"s".repeat(31))],
        ))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "app"),
        reason::CLIENT_SECRET_TOO_SHORT
    );
    assert!(out.snapshot.clients.is_empty());
}

#[test]
fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
    let cases = [
        ("https://app.example/cb", true),
        ("http://localhost:8080/cb", true),
        ("http://127.0.0.1/cb", true),
        ("http://[::1]:9000/cb", true),
        ("http://app.example/cb", false),
        ("https://app.example/cb#frag", false),
        ("/relative/cb", false),
        ("javascript:alert(1)", false),
    ];
    for (uri, ok) in cases {
        let mut client = mk_client("app", "c", Some("creds"));
        client.spec.redirect_uris = vec![uri.to_owned()];
        let out = World::default()
            .consumer(mk_consumer("c", "c"))
            .client(client)
            .secret(mk_creds("creds", "id"))
            .run();
        let reason = reason_of(&out, Kind::OAuth2Client, "app");
        if ok {
            assert_eq!(reason, reason::READY, "{uri}");
        } else {
            assert_eq!(reason, reason::INVALID_REDIRECT_URI, "{uri}");
        }
    }
}

#[test]
fn duplicate_client_id_goes_to_the_older_client() {
    let mut older = mk_client("older", "c", Some("creds-a"));
    older.metadata = created(older.metadata, 100);
    let mut newer = mk_client("aaa-newer", "c", Some("creds-b"));
    newer.metadata = created(newer.metadata, 200);
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(newer)
        .client(older)
        .secret(mk_creds("creds-a", "same"))
        .secret(mk_creds("creds-b", "same"))
        .run();
    assert!(status(&out, Kind::OAuth2Client, "older").is_ready());
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "aaa-newer"),
        reason::DUPLICATE_CLIENT_ID
    );
    assert_eq!(out.snapshot.clients.len(), 1);
    assert_eq!(out.snapshot.clients[0].name, "older app");
}

#[test]
fn public_clients_cannot_use_client_credentials() {
    let mut client = mk_client("spa", "c", Some("creds"));
    client.spec.client_type = ClientType::Public;
    client.spec.grant_types = vec![GrantType::ClientCredentials];
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(client)
        .secret(mk_secret("creds", &[("client_id", "spa-id")]))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "spa"),
        reason::INVALID_SPEC
    );
}

#[test]
fn public_clients_need_no_secret() {
    let mut client = mk_client("spa", "c", Some("creds"));
    client.spec.client_type = ClientType::Public;
    let out = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(client)
        .secret(mk_secret("creds", &[("client_id", "spa-id")]))
        .run();
    assert!(status(&out, Kind::OAuth2Client, "spa").is_ready());
    assert_eq!(out.snapshot.clients[0].secret_sha256, None);
}

#[test]
fn client_without_a_secret_gets_strong_generated_credentials() {
    let mut client = mk_client("gen", "c", None);
    client.metadata.uid = Some("client-uid".into());
    let world = World::default()
        .consumer(mk_consumer("c", "c"))
        .client(client);
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "gen"),
        reason::CREDENTIALS_PENDING
    );
    assert!(out.snapshot.clients.is_empty());
    let [generated] = out.secrets_to_create.as_slice() else {
        panic!(
            "expected one generated secret, got {:?}",
            out.secrets_to_create
        )
    };
    assert_eq!(generated.name, "gen-oauth2-credentials");
    assert_eq!(generated.client_id.len(), 32);
    let secret = generated.client_secret.clone().unwrap();
    assert!(secret.len() >= MIN_CLIENT_SECRET_BYTES);
    assert!(
        !format!("{generated:?}").contains(&secret),
        "Debug must redact"
    );

    // Once the Secret exists, the client is registered with those values.
    let k8s_secret = generated.to_secret();
    let owner = &k8s_secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("OAuth2Client", "client-uid")
    );
    let out = world.secret(k8s_secret).run();
    assert!(status(&out, Kind::OAuth2Client, "gen").is_ready());
    assert!(out.secrets_to_create.is_empty());
    assert_eq!(out.snapshot.clients[0].client_id, generated.client_id);
    assert_eq!(
        out.snapshot.clients[0].secret_sha256,
        Some(sha256_hex(&secret))
    );
}

#[test]
fn invalid_clients_get_no_generated_secret() {
    let out = World::default()
        .client(mk_client("gen", "ghost", None))
        .run();
    assert_eq!(
        reason_of(&out, Kind::OAuth2Client, "gen"),
        reason::CONSUMER_NOT_FOUND
    );
    assert!(out.secrets_to_create.is_empty());
}

#[test]
fn route_conflict_goes_to_the_older_route() {
    let mut older = mk_route("zzz-older", "/api", url_backend("http://127.0.0.1:1"));
    older.metadata = created(older.metadata, 100);
    let mut newer = mk_route("aaa-newer", "/api/", url_backend("http://127.0.0.1:2"));
    newer.metadata = created(newer.metadata, 200);
    let mut other_host = mk_route("other-host", "/api", url_backend("http://127.0.0.1:3"));
    other_host.spec.hosts = vec!["api.example.com".into()];
    let out = World::default()
        .route(newer)
        .route(older)
        .route(other_host)
        .run();
    assert!(status(&out, Kind::ProtectedRoute, "zzz-older").is_ready());
    assert!(status(&out, Kind::ProtectedRoute, "other-host").is_ready());
    let loser = status(&out, Kind::ProtectedRoute, "aaa-newer");
    assert_eq!(loser.ready().reason, reason::ROUTE_CONFLICT);
    assert!(loser.ready().message.contains("default/zzz-older"));
    let ids: Vec<_> = out.snapshot.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["default/other-host", "default/zzz-older"]);
}

#[test]
fn route_conflict_between_equally_old_routes_is_decided_by_namespace_and_name() {
    let a = mk_route("a", "/same", url_backend("http://127.0.0.1:1"));
    let b = mk_route("b", "/same", url_backend("http://127.0.0.1:2"));
    let out = World::default().route(b).route(a).run();
    assert!(status(&out, Kind::ProtectedRoute, "a").is_ready());
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "b"),
        reason::ROUTE_CONFLICT
    );
}

#[test]
fn missing_backend_service_keeps_the_route_with_no_endpoints() {
    let out = World::default()
        .route(mk_route("r", "/r", service_backend("api", 80)))
        .run_cluster();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "r"),
        reason::BACKEND_NOT_FOUND
    );
    assert_eq!(out.snapshot.routes.len(), 1);
    assert!(out.snapshot.routes[0].upstream.endpoints.is_empty());
}

#[test]
fn a_route_without_backend_is_auth_only_and_ready() {
    let mut r = mk_route("authz", "/api", service_backend("unused", 80));
    r.spec.backend = None;
    let out = World::default().route(r).run_cluster();
    let s = status(&out, Kind::ProtectedRoute, "authz");
    assert_eq!(s.ready().status, "True", "{:?}", s.ready());
    assert!(s.ready().message.contains("Auth-only"), "{:?}", s.ready());
    let route = &out.snapshot.routes[0];
    assert!(route.auth_only);
    assert!(route.upstream.endpoints.is_empty());
    assert!(route.oauth2.is_some());
    // Routes with a backend never carry the flag, so older proxies read them unchanged.
    let out = World::default()
        .route(mk_route("r", "/r", url_backend("http://127.0.0.1:3000")))
        .run();
    assert!(!out.snapshot.routes[0].auth_only);
    let json = serde_json::to_string(&out.snapshot).unwrap();
    assert!(!json.contains("auth_only"), "{json}");
}

#[test]
fn missing_backend_port_is_backend_not_found() {
    let out = World::default()
        .route(mk_route("r", "/r", service_backend("api", 8080)))
        .service(mk_service("api", &[(None, 80)]))
        .run_cluster();
    let s = status(&out, Kind::ProtectedRoute, "r");
    assert_eq!(s.ready().reason, reason::BACKEND_NOT_FOUND);
    assert!(s.ready().message.contains("8080"));
    assert_eq!(out.snapshot.routes.len(), 1);
}

#[test]
fn service_backends_use_ready_endpoints_of_the_matching_slice_port() {
    let mut v6 = mk_slice("api-v6", "api", (Some("http"), 8080), &[("fd00::1", None)]);
    v6.address_type = "IPv6".into();
    let out = World::default()
        .route(mk_route("r", "/r", service_backend("api", 80)))
        .service(mk_service(
            "api",
            &[(Some("http"), 80), (Some("metrics"), 9090)],
        ))
        .slice(mk_slice(
            "api-a",
            "api",
            (Some("http"), 8080),
            &[
                ("10.0.0.2", Some(true)),
                ("10.0.0.1", None),
                ("10.0.0.3", Some(false)),
            ],
        ))
        .slice(mk_slice(
            "api-m",
            "api",
            (Some("metrics"), 9090),
            &[("10.0.0.9", None)],
        ))
        .slice(mk_slice(
            "other",
            "other",
            (Some("http"), 8080),
            &[("10.9.9.9", None)],
        ))
        .slice(v6)
        .run_cluster();
    assert!(status(&out, Kind::ProtectedRoute, "r").is_ready());
    assert_eq!(
        out.snapshot.routes[0].upstream.endpoints,
        vec![
            "http://10.0.0.1:8080",
            "http://10.0.0.2:8080",
            "http://[fd00::1]:8080"
        ]
    );
}

#[test]
fn backend_url_is_refused_in_a_cluster() {
    let out = World::default()
        .route(mk_route("r", "/r", url_backend("http://169.254.169.254")))
        .run_cluster();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "r"),
        reason::BACKEND_URL_NOT_ALLOWED
    );
    assert!(out.snapshot.routes[0].upstream.endpoints.is_empty());
}

#[test]
fn backend_needs_exactly_one_of_service_and_url() {
    let mut both = service_backend("api", 80);
    both.url = Some("http://127.0.0.1:1".into());
    let out = World::default()
        .route(mk_route("both", "/both", both))
        .route(mk_route("neither", "/neither", Backend::default()))
        .route(mk_route("ftp", "/ftp", url_backend("ftp://127.0.0.1/")))
        .run();
    for name in ["both", "neither", "ftp"] {
        assert_eq!(
            reason_of(&out, Kind::ProtectedRoute, name),
            reason::INVALID_BACKEND,
            "{name}"
        );
    }
}

#[test]
fn backend_url_path_keeps_no_trailing_slash() {
    let out = World::default()
        .route(mk_route("a", "/a", url_backend("http://127.0.0.1:3000/")))
        .route(mk_route(
            "b",
            "/b",
            url_backend("http://127.0.0.1:3000/base/"),
        ))
        .run();
    let eps: Vec<_> = out
        .snapshot
        .routes
        .iter()
        .map(|r| r.upstream.endpoints[0].as_str())
        .collect();
    assert_eq!(
        eps,
        vec!["http://127.0.0.1:3000", "http://127.0.0.1:3000/base"]
    );
}

#[test]
fn unknown_anonymous_consumer_turns_anonymous_access_off() {
    let mut r = mk_route("r", "/r", url_backend("http://127.0.0.1:1"));
    r.spec.oauth2.anonymous_consumer = Some("guest".into());
    let world = World::default().route(r);
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "r"),
        reason::ANONYMOUS_CONSUMER_NOT_FOUND
    );
    assert_eq!(
        out.snapshot.routes[0]
            .oauth2
            .as_ref()
            .unwrap()
            .anonymous_consumer,
        None
    );

    let out = world.consumer(mk_consumer("guest", "anonymous")).run();
    assert!(status(&out, Kind::ProtectedRoute, "r").is_ready());
    assert_eq!(
        out.snapshot.routes[0]
            .oauth2
            .as_ref()
            .unwrap()
            .anonymous_consumer
            .as_deref(),
        Some("default/guest")
    );
}

#[test]
fn missing_or_empty_provision_key_secret_refuses_authorize() {
    let mut world = step_on();
    world
        .input
        .secrets
        .retain(|s| s.metadata.name.as_deref() != Some("stepon-provision-key"));
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "stepon"),
        reason::PROVISION_KEY_SECRET_NOT_FOUND
    );
    assert_eq!(
        out.snapshot.routes[0]
            .oauth2
            .as_ref()
            .unwrap()
            .provision_key_sha256,
        None
    );

    let out = world
        .secret(mk_secret("stepon-provision-key", &[("other", "x")]))
        .run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "stepon"),
        reason::PROVISION_KEY_SECRET_INVALID
    );
    // The rest of the world is unaffected.
    assert!(status(&out, Kind::OAuth2Client, "shoe-fly-shoe").is_ready());
}

#[test]
fn rules_may_only_require_scopes_the_route_offers() {
    let mut world = step_on();
    let mut bad = mk_route("bad", "/bad", url_backend("http://127.0.0.1:1"));
    bad.spec.oauth2.rules = vec![ScopeRule {
        path: "/x".into(),
        methods: vec![],
        required_scopes: vec!["admin".into()],
    }];
    world = world.route(bad);
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "bad"),
        reason::INVALID_SPEC
    );
    let ids: Vec<_> = out.snapshot.routes.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, vec!["default/stepon"]);
}

#[test]
fn invalid_route_spec_does_not_claim_its_paths() {
    let mut bad = mk_route("aaa-bad", "/same", url_backend("http://127.0.0.1:1"));
    bad.spec.oauth2.mandatory_scope = true;
    let good = mk_route("zzz-good", "/same", url_backend("http://127.0.0.1:2"));
    let out = World::default().route(bad).route(good).run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "aaa-bad"),
        reason::INVALID_SPEC
    );
    assert!(status(&out, Kind::ProtectedRoute, "zzz-good").is_ready());
}

#[test]
fn objects_of_another_instance_are_ignored() {
    let mut mine = mk_route("mine", "/mine", url_backend("http://127.0.0.1:1"));
    mine.metadata.labels = Some(BTreeMap::from([(
        INSTANCE_LABEL.to_owned(),
        "blue".to_owned(),
    )]));
    let theirs = mk_route("theirs", "/theirs", url_backend("http://127.0.0.1:1"));
    let world = World::default().route(mine).route(theirs);

    let mut options = Options::standalone(at(1));
    options.instance = Some("blue".into());
    let blue = world.run_with(&options);
    let default = world.run();
    assert_eq!(blue.statuses.len(), 1);
    assert_eq!(blue.snapshot.routes[0].id, "default/mine");
    assert_eq!(default.statuses.len(), 1);
    assert_eq!(default.snapshot.routes[0].id, "default/theirs");
}

#[test]
fn status_carries_generation_and_keeps_transition_time_when_unchanged() {
    let mut r = mk_route("r", "/r", url_backend("http://127.0.0.1:1"));
    r.metadata.generation = Some(3);
    let first = World::default()
        .route(r.clone())
        .run_with(&Options::standalone(at(10)));
    let Status::ProtectedRoute(s) = &status(&first, Kind::ProtectedRoute, "r").status else {
        unreachable!()
    };
    assert_eq!(s.observed_generation, Some(3));
    assert_eq!(s.conditions[0].observed_generation, Some(3));
    assert_eq!(s.conditions[0].last_transition_time, at(10));

    r.status = Some(s.clone());
    let second = World::default()
        .route(r)
        .run_with(&Options::standalone(at(99)));
    assert_eq!(
        status(&second, Kind::ProtectedRoute, "r")
            .ready()
            .last_transition_time,
        at(10)
    );
    assert_eq!(first.statuses, second.statuses);
}

#[test]
fn deleted_objects_are_ignored() {
    let mut r = mk_route("r", "/r", url_backend("http://127.0.0.1:1"));
    r.metadata.deletion_timestamp = Some(at(5));
    let out = World::default().route(r).run();
    assert!(out.statuses.is_empty());
    assert!(out.snapshot.routes.is_empty());
}

#[test]
fn every_reason_is_documented_in_the_crds_reason_list() {
    // The reasons produced above, all of which must be in the public list.
    for r in [
        reason::READY,
        reason::INVALID_SPEC,
        reason::CONSUMER_NOT_FOUND,
        reason::CONSUMER_NOT_READY,
        reason::CREDENTIALS_SECRET_NOT_FOUND,
        reason::CREDENTIALS_SECRET_INVALID,
        reason::CLIENT_SECRET_TOO_SHORT,
        reason::CREDENTIALS_PENDING,
        reason::INVALID_REDIRECT_URI,
        reason::DUPLICATE_CLIENT_ID,
        reason::ROUTE_CONFLICT,
        reason::BACKEND_NOT_FOUND,
        reason::BACKEND_URL_NOT_ALLOWED,
        reason::INVALID_BACKEND,
        reason::ANONYMOUS_CONSUMER_NOT_FOUND,
        reason::PROVISION_KEY_SECRET_NOT_FOUND,
        reason::PROVISION_KEY_SECRET_INVALID,
        reason::LOGIN_SECRET_NOT_FOUND,
        reason::LOGIN_KEY_MISSING,
        reason::ISSUER_UNREACHABLE,
        reason::BACKEND_TLS_INVALID,
    ] {
        assert!(reason::ALL.contains(&r), "{r}");
    }
    assert_eq!(reason::ALL.len(), 25);
}

// ---------------------------------------------------------------- oauth2.login

fn with_login(world: World) -> World {
    let mut route = mk_route("web", "/web", url_backend("http://127.0.0.1:3000"));
    route.spec.oauth2.login = Some(LoginSpec {
        oidc: OidcSpec {
            issuer_url: "https://idp.example/".into(),
            client_id: "gatehouse".into(),
            client_secret_ref: ClientSecretRef {
                name: "oidc".into(),
                key: "client_secret".into(),
            },
            scopes: vec!["openid".into(), "email".into()],
            user_claim: "email".into(),
            allowed_domains: vec!["DailyPlanet.example".into()],
            ..OidcSpec::default()
        },
        consent: ConsentMode::Skip,
        session_ttl: 3600,
        idle_timeout: 600,
        consent_ttl: 86400,
        require_session: true,
        ..LoginSpec::default()
    });
    world.route(route)
}

fn login_key() -> gatehouse_config::seal::LoginKey {
    gatehouse_config::seal::LoginKey::from_bytes(&[b'k'; 32]).unwrap()
}

#[test]
fn the_login_client_secret_is_sealed_into_the_snapshot_never_plain() {
    let mut trusted = mk_client("first-party", "shoeflyshoe", Some("fp-creds"));
    trusted.spec.trusted = true;
    let world = with_login(step_on())
        .client(trusted)
        .secret(mk_creds("fp-creds", "first-party-id"))
        .secret(mk_secret("oidc", &[("client_secret", "the-idp-secret")]));
    let mut options = Options::standalone(at(1_000));
    options.login_key = Some(login_key());
    let out = world.run_with(&options);
    assert!(out.not_ready().next().is_none(), "{:?}", out.statuses);
    let json = String::from_utf8(out.snapshot.to_json()).unwrap();
    assert!(!json.contains("the-idp-secret"));
    let route = out
        .snapshot
        .routes
        .iter()
        .find(|r| r.id == "default/web")
        .unwrap();
    let login = route.oauth2.as_ref().unwrap().login.as_ref().unwrap();
    assert_eq!(login.issuer_url, "https://idp.example");
    assert_eq!(login.allowed_domains, vec!["dailyplanet.example"]);
    assert_eq!(login.trusted_clients, vec!["first-party-id"]);
    assert!(login.require_session);
    let opened = login_key()
        .open(&login.client_secret_sealed, "default/web")
        .unwrap();
    assert_eq!(opened, b"the-idp-secret");
    // Deterministic: translating again gives the same bytes.
    assert_eq!(
        world.run_with(&options).snapshot.to_json(),
        out.snapshot.to_json()
    );
}

#[test]
fn an_unreachable_issuer_is_reported_while_the_route_keeps_serving() {
    let world =
        with_login(step_on()).secret(mk_secret("oidc", &[("client_secret", "the-idp-secret")]));
    let mut options = Options::standalone(at(1_000));
    options.login_key = Some(login_key());
    // Keyed as the snapshot keys it: without the trailing slash of the spec.
    options
        .unreachable_issuers
        .insert("https://idp.example".into(), "connection refused".into());
    let out = world.run_with(&options);
    let s = status(&out, Kind::ProtectedRoute, "web");
    assert_eq!(s.ready().reason, reason::ISSUER_UNREACHABLE);
    assert!(
        s.ready().message.contains("connection refused"),
        "{:?}",
        s.ready()
    );
    let route = out.snapshot.routes.iter().find(|r| r.id == "default/web");
    let login = route.and_then(|r| r.oauth2.as_ref()?.login.as_ref());
    assert!(
        login.is_some(),
        "sign-in stays configured; the proxy retries"
    );
    // Another issuer being down says nothing about this one.
    options.unreachable_issuers.clear();
    options
        .unreachable_issuers
        .insert("https://other.example".into(), "timeout".into());
    let out = world.run_with(&options);
    assert!(out.not_ready().next().is_none(), "{:?}", out.statuses);
}

#[test]
fn login_without_a_key_or_secret_is_reported_and_switched_off() {
    let world = with_login(step_on());
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "web"),
        reason::LOGIN_SECRET_NOT_FOUND
    );
    let world = world.secret(mk_secret("oidc", &[("client_secret", "s")]));
    let out = world.run();
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "web"),
        reason::LOGIN_KEY_MISSING
    );
    let route = out
        .snapshot
        .routes
        .iter()
        .find(|r| r.id == "default/web")
        .expect("the route stays in, with sign-in off");
    assert!(route.oauth2.as_ref().unwrap().login.is_none());
}

#[test]
fn h2c_service_ports_and_backend_protocol_choose_http2_upstreams() {
    let mut svc = mk_service("grpc", &[(Some("grpc"), 50051)]);
    svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].app_protocol =
        Some("kubernetes.io/h2c".into());
    let mut tls_route = mk_route("tls", "/tls", url_backend("https://api.example/base/"));
    tls_route.spec.backend.as_mut().unwrap().protocol = Some(gatehouse_crds::BackendProtocol::H2);
    let out = World::default()
        .route(mk_route("g", "/g", service_backend("grpc", 50051)))
        .service(svc)
        .slice(mk_slice(
            "grpc-a",
            "grpc",
            (Some("grpc"), 50051),
            &[("10.0.0.5", None)],
        ))
        .run_cluster();
    assert_eq!(
        out.snapshot.routes[0].upstream.endpoints,
        vec!["grpc://10.0.0.5:50051"]
    );
    let out = World::default()
        .route(tls_route)
        .route(mk_route("s", "/s", url_backend("grpc://127.0.0.1:50051")))
        .run();
    let by_id = |id: &str| {
        out.snapshot
            .routes
            .iter()
            .find(|r| r.id.ends_with(id))
            .unwrap()
    };
    assert_eq!(
        by_id("/tls").upstream.endpoints,
        vec!["https://api.example/base"]
    );
    assert_eq!(
        by_id("/tls").upstream.protocol,
        gatehouse_proxy::config::UpstreamProtocol::H2
    );
    assert_eq!(
        by_id("/s").upstream.endpoints,
        vec!["grpc://127.0.0.1:50051"]
    );
}

#[test]
fn route_timeouts_are_gateway_api_durations() {
    let mut timed = mk_route("t", "/t", url_backend("http://127.0.0.1:1"));
    timed.spec.timeouts = Some(gatehouse_crds::RouteTimeouts {
        request: Some("1m30s".into()),
        backend_request: Some("500ms".into()),
        idle: None,
    });
    let mut bad = mk_route("bad", "/bad", url_backend("http://127.0.0.1:1"));
    bad.spec.timeouts = Some(gatehouse_crds::RouteTimeouts {
        request: Some("soon".into()),
        ..Default::default()
    });
    let out = World::default().route(timed).route(bad).run();
    let t = &out
        .snapshot
        .routes
        .iter()
        .find(|r| r.id.ends_with("/t"))
        .unwrap()
        .timeouts;
    assert_eq!(t.request_ms, Some(90_000));
    assert_eq!(t.backend_request_ms, Some(500));
    assert_eq!(t.idle_ms, None);
    assert_eq!(
        reason_of(&out, Kind::ProtectedRoute, "bad"),
        reason::INVALID_SPEC
    );
    assert!(!out.snapshot.routes.iter().any(|r| r.id.ends_with("/bad")));
}
