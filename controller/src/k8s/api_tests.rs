//! Kubernetes side effects against a mock API server (see [`super::fixtures`]): the
//! exact calls for status, Secrets, Events, the Lease, the CRD check and referenced
//! Secrets, and that nothing is written when nothing changed or when not leading.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::Snapshot;
use gatehouse_crds::conditions::{self, reason};
use gatehouse_crds::{OAuth2ClientStatus, ObjectStatus as CrStatus};
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use super::fixtures::{bounded, client, Call};
use super::lease::{Elector, LeaseConfig};
use super::metrics::Metrics;
use super::referenced::ReferencedSecrets;
use super::watch::Cache;
use super::writes::Writer;
use super::{run, status, Error};
use crate::translate::{GeneratedSecret, Kind, ObjectRef, ObjectStatus, Output, Status};

const TIMEOUT: Duration = Duration::from_secs(5);

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn object(kind: Kind, name: &str, generation: i64) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: "shop".into(),
        name: name.into(),
        uid: Some(format!("uid-{name}")),
        generation: Some(generation),
    }
}

fn route_status(name: &str, generation: i64, reason_: &str, message: &str) -> ObjectStatus {
    let c = if reason_ == reason::READY {
        conditions::ready(message, Some(generation), &Time(at(0)))
    } else {
        conditions::not_ready(reason_, message, Some(generation), &Time(at(0)))
    };
    ObjectStatus {
        object: object(Kind::ProtectedRoute, name, generation),
        status: Status::ProtectedRoute(CrStatus {
            conditions: vec![c],
            observed_generation: Some(generation),
        }),
    }
}

fn output(statuses: Vec<ObjectStatus>, secrets: Vec<GeneratedSecret>) -> Output {
    Output {
        snapshot: Snapshot::default(),
        statuses,
        secrets_to_create: secrets,
        held: Vec::new(),
        last_good: Default::default(),
    }
}

fn writer(client: kube::Client, metrics: &Arc<Metrics>) -> Writer {
    Writer::new(client, "replica-a", TIMEOUT, 4, metrics.clone())
}

fn leading(yes: bool) -> watch::Receiver<bool> {
    watch::channel(yes).1
}

fn event_post(check: impl FnOnce(&Value) + Send + 'static) -> Call {
    Call::new(
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/shop/events",
    )
    .body(check)
    .respond(201, json!({}))
}

#[tokio::test]
async fn status_is_server_side_applied_with_observed_generation() {
    let (client, server) = client();
    let desired = route_status("orders", 3, reason::ROUTE_CONFLICT, "older route wins");
    let verifier = server.serve_in_order(vec![Call::new(
        Method::PATCH,
        "/apis/gatehouse.dev/v1alpha1/namespaces/shop/protectedroutes/orders/status",
    )
    .query("fieldManager", "gatehouse")
    .query("force", "true")
    .content_type("application/apply-patch+yaml")
    .body(|body| {
        assert_eq!(
            *body,
            json!({
                "apiVersion": "gatehouse.dev/v1alpha1",
                "kind": "ProtectedRoute",
                "status": {
                    "conditions": [{
                        "type": "Ready",
                        "status": "False",
                        "reason": "RouteConflict",
                        "message": "older route wins",
                        "observedGeneration": 3,
                        "lastTransitionTime": "2023-11-14T22:13:20Z"
                    }],
                    "observedGeneration": 3
                }
            })
        );
    })
    .respond(200, json!({}))]);
    bounded(status::apply(&client, &desired, TIMEOUT))
        .await
        .unwrap();
    verifier.await.unwrap();
}

#[tokio::test]
async fn changed_status_is_written_once_with_a_warning_and_unchanged_status_never() {
    let (client, server) = client();
    let metrics = Arc::new(Metrics::unregistered());
    let mut w = writer(client, &metrics);

    let unchanged = route_status("a", 1, reason::READY, "ok");
    let changed = route_status(
        "b",
        2,
        reason::BACKEND_NOT_FOUND,
        "Service \"web\" not found",
    );
    // The cluster shows `a` as desired but with another transition time, and `b` Ready.
    let cluster = |o: &ObjectRef| -> Option<Status> {
        match o.name.as_str() {
            "a" => {
                let mut s = unchanged.status.clone();
                if let Status::ProtectedRoute(r) = &mut s {
                    r.conditions[0].last_transition_time = Time(at(-500));
                }
                Some(s)
            }
            "b" => Some(route_status("b", 1, reason::READY, "ok").status),
            _ => None,
        }
    };
    let out = output(vec![unchanged.clone(), changed.clone()], vec![]);
    let plan = w.plan(&out, cluster, Instant::now());
    assert_eq!(plan.statuses.len(), 1, "only the changed status is written");

    let verifier = server.serve_any_order(vec![
        Call::new(
            Method::PATCH,
            "/apis/gatehouse.dev/v1alpha1/namespaces/shop/protectedroutes/b/status",
        )
        .content_type("application/apply-patch+yaml")
        .body(|b| assert_eq!(b["status"]["conditions"][0]["reason"], "BackendNotFound"))
        .respond(200, json!({})),
        event_post(|e| {
            assert_eq!(e["type"], "Warning");
            assert_eq!(e["reason"], "BackendNotFound");
            assert_eq!(e["note"], "Service \"web\" not found");
            assert_eq!(e["action"], "Validate");
            assert_eq!(e["reportingController"], "gatehouse.dev/controller");
            assert_eq!(e["reportingInstance"], "replica-a");
            assert_eq!(
                e["regarding"],
                json!({"apiVersion": "gatehouse.dev/v1alpha1", "kind": "ProtectedRoute",
                       "name": "b", "namespace": "shop", "uid": "uid-b"})
            );
        }),
    ]);
    let summary = bounded(w.apply(plan, &leading(true), Instant::now())).await;
    assert_eq!(
        (summary.statuses, summary.events, summary.failures),
        (1, 1, 0)
    );
    verifier.await.unwrap();

    // The watch has not caught up yet: the next pass must not write (or warn) again.
    let again = w.plan(&out, cluster, Instant::now());
    assert!(again.is_empty());
    assert_eq!(metrics.write_count("status", "ok"), 1);
    assert_eq!(metrics.write_count("event", "ok"), 1);
}

fn generated(name: &str, uid: Option<&str>) -> GeneratedSecret {
    GeneratedSecret {
        namespace: "shop".into(),
        name: format!("{name}-oauth2-credentials"),
        owner: ObjectRef {
            uid: uid.map(str::to_owned),
            ..object(Kind::OAuth2Client, name, 1)
        },
        client_id: "0123456789abcdef0123456789abcdef".into(),
        client_secret: Some("s".repeat(43)),
    }
}

#[tokio::test]
async fn missing_credentials_become_a_secret_owned_by_the_client() {
    let (client, server) = client();
    let metrics = Arc::new(Metrics::unregistered());
    let mut w = writer(client, &metrics);
    let out = output(vec![], vec![generated("rewards", Some("uid-rewards"))]);
    let plan = w.plan(&out, |_| None, Instant::now());

    let verifier = server.serve_in_order(vec![
        Call::new(Method::POST, "/api/v1/namespaces/shop/secrets")
            .query("fieldManager", "gatehouse")
            .body(|s| {
                assert_eq!(s["metadata"]["name"], "rewards-oauth2-credentials");
                assert_eq!(s["metadata"]["namespace"], "shop");
                assert_eq!(
                    s["metadata"]["ownerReferences"],
                    json!([{"apiVersion": "gatehouse.dev/v1alpha1", "kind": "OAuth2Client",
                            "name": "rewards", "uid": "uid-rewards", "controller": true}])
                );
                assert_eq!(
                    s["metadata"]["labels"]["gatehouse.dev/credentials"],
                    "generated"
                );
                assert_eq!(
                    s["metadata"]["labels"]["gatehouse.dev/credentials-for"],
                    "rewards"
                );
                assert_eq!(s["type"], "Opaque");
                assert_eq!(
                    s["stringData"]["client_id"],
                    "0123456789abcdef0123456789abcdef"
                );
                assert_eq!(s["stringData"]["client_secret"].as_str().unwrap().len(), 43);
            })
            .respond(201, json!({})),
        event_post(|e| {
            assert_eq!(e["type"], "Normal");
            assert_eq!(e["reason"], "CredentialsGenerated");
            assert_eq!(e["regarding"]["kind"], "OAuth2Client");
            assert_eq!(e["regarding"]["uid"], "uid-rewards");
            let note = e["note"].as_str().unwrap();
            assert!(
                !note.contains(&"s".repeat(43)),
                "the secret is never in an Event"
            );
        }),
    ]);
    let summary = bounded(w.apply(plan, &leading(true), Instant::now())).await;
    assert_eq!((summary.secrets, summary.events), (1, 1));
    verifier.await.unwrap();

    // Until the watch shows the Secret, later passes (which generate new values) must
    // not create another one.
    assert!(w.plan(&out, |_| None, Instant::now()).is_empty());
}

#[tokio::test]
async fn an_existing_secret_of_that_name_is_left_alone() {
    let (client, server) = client();
    let metrics = Arc::new(Metrics::unregistered());
    let mut w = writer(client, &metrics);
    let out = output(vec![], vec![generated("rewards", Some("uid-rewards"))]);
    let plan = w.plan(&out, |_| None, Instant::now());
    let verifier = server.serve_in_order(vec![Call::new(
        Method::POST,
        "/api/v1/namespaces/shop/secrets",
    )
    .fail(409, "AlreadyExists")]);
    let summary = bounded(w.apply(plan, &leading(true), Instant::now())).await;
    assert_eq!(
        (summary.secrets, summary.events, summary.failures),
        (0, 0, 0)
    );
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_client_without_uid_gets_no_ownerless_secret() {
    let (client, _server) = client();
    let metrics = Arc::new(Metrics::unregistered());
    let mut w = writer(client, &metrics);
    let out = output(vec![], vec![generated("rewards", None)]);
    let plan = w.plan(&out, |_| None, Instant::now());
    // No call expected: the mock never answers, so a call would hang the test.
    let summary = bounded(w.apply(plan, &leading(true), Instant::now())).await;
    assert_eq!(summary.secrets, 0);
}

#[tokio::test]
async fn a_standby_computes_the_same_writes_but_makes_none() {
    let (client, _server) = client();
    let metrics = Arc::new(Metrics::unregistered());
    let mut w = writer(client, &metrics);
    let out = output(
        vec![route_status("b", 1, reason::ROUTE_CONFLICT, "x")],
        vec![generated("rewards", Some("uid-rewards"))],
    );
    let plan = w.plan(&out, |_| None, Instant::now());
    w.drop_plan(&plan);
    assert_eq!(metrics.dropped_count("status"), 1);
    assert_eq!(metrics.dropped_count("secret"), 1);
    assert_eq!(metrics.dropped_count("event"), 1);

    // Leadership lost between planning and writing: still nothing goes out.
    let summary = bounded(w.apply(plan, &leading(false), Instant::now())).await;
    assert_eq!(summary, Default::default());
    assert_eq!(metrics.dropped_count("status"), 2);
    // ... and the new leader-to-be still sees everything as to be written.
    assert_eq!(w.plan(&out, |_| None, Instant::now()).statuses.len(), 1);
}

#[tokio::test]
async fn client_status_records_the_client_id() {
    let (client, server) = client();
    let desired = ObjectStatus {
        object: object(Kind::OAuth2Client, "rewards", 1),
        status: Status::OAuth2Client(OAuth2ClientStatus {
            client_id: Some("abc".into()),
            conditions: vec![conditions::ready(
                "Client is registered",
                Some(1),
                &Time(at(0)),
            )],
            observed_generation: Some(1),
        }),
    };
    let verifier = server.serve_in_order(vec![Call::new(
        Method::PATCH,
        "/apis/gatehouse.dev/v1alpha1/namespaces/shop/oauth2clients/rewards/status",
    )
    .body(|b| {
        assert_eq!(b["kind"], "OAuth2Client");
        assert_eq!(b["status"]["clientId"], "abc");
        assert_eq!(b["status"]["observedGeneration"], 1);
    })
    .respond(200, json!({}))]);
    bounded(status::apply(&client, &desired, TIMEOUT))
        .await
        .unwrap();
    verifier.await.unwrap();
}

// ---- Lease ----

const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/gatehouse-system/leases";
const LEASE: &str =
    "/apis/coordination.k8s.io/v1/namespaces/gatehouse-system/leases/gatehouse-controller";

fn lease_config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: "gatehouse-controller".into(),
        namespace: "gatehouse-system".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

fn lease(holder: Option<&str>, rv: &str, acquired: i64, renewed: i64, transitions: i32) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "gatehouse-controller", "namespace": "gatehouse-system", "resourceVersion": rv},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": MicroTime(at(acquired)),
            "renewTime": MicroTime(at(renewed)),
            "leaseTransitions": transitions
        }
    })
}

fn parse_lease(v: &Value) -> Lease {
    serde_json::from_value(v.clone()).expect("a Lease")
}

#[tokio::test]
async fn a_missing_lease_is_created_and_held() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).fail(404, "NotFound"),
        Call::new(Method::POST, LEASE_PATH)
            .body(|b| {
                let spec = parse_lease(b).spec.unwrap();
                assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
                assert_eq!(spec.lease_duration_seconds, Some(15));
                assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
                assert_eq!(spec.renew_time, Some(MicroTime(at(0))));
                assert_eq!(spec.lease_transitions, Some(0));
            })
            .respond(201, lease(Some("replica-a"), "1", 0, 0, 0)),
    ]);
    let mut e = Elector::new(client, lease_config("replica-a"));
    let won = bounded(e.try_acquire_or_renew(Instant::now(), at(0))).await;
    assert!(won.unwrap());
    verifier.await.unwrap();
}

#[tokio::test]
async fn the_holder_renews_with_its_resource_version_keeping_acquire_time() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-a"), "5", 0, 4, 2)),
        Call::new(Method::PUT, LEASE)
            .body(|b| {
                let l = parse_lease(b);
                assert_eq!(l.metadata.resource_version.as_deref(), Some("5"));
                let spec = l.spec.unwrap();
                assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
                assert_eq!(spec.acquire_time, Some(MicroTime(at(0))));
                assert_eq!(spec.renew_time, Some(MicroTime(at(6))));
                assert_eq!(spec.lease_transitions, Some(2));
            })
            .respond(200, lease(Some("replica-a"), "6", 0, 6, 2)),
    ]);
    let mut e = Elector::new(client, lease_config("replica-a"));
    assert!(bounded(e.try_acquire_or_renew(Instant::now(), at(6)))
        .await
        .unwrap());
    verifier.await.unwrap();
}

#[tokio::test]
async fn a_lease_is_taken_over_only_after_its_holder_stopped_renewing_for_the_duration() {
    let (client, server) = client();
    let t0 = Instant::now();
    // replica-b renews once (record changes at +10s), then goes silent.
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-b"), "7", 0, 0, 1)),
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-b"), "8", 0, 10, 1)),
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-b"), "8", 0, 10, 1)),
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-b"), "8", 0, 10, 1)),
        Call::new(Method::GET, LEASE).respond(200, lease(Some("replica-b"), "8", 0, 10, 1)),
        Call::new(Method::PUT, LEASE)
            .body(|b| {
                let l = parse_lease(b);
                assert_eq!(l.metadata.resource_version.as_deref(), Some("8"));
                let spec = l.spec.unwrap();
                assert_eq!(spec.holder_identity.as_deref(), Some("replica-a"));
                assert_eq!(spec.acquire_time, Some(MicroTime(at(26))));
                assert_eq!(spec.lease_transitions, Some(2));
            })
            .respond(200, lease(Some("replica-a"), "9", 26, 26, 2)),
    ]);
    let mut e = Elector::new(client, lease_config("replica-a"));
    // Our clock, not the holder's renewTime, decides: held at 0, renewed seen at 10,
    // still valid at 16 and 24 (10 + 15 = 25), free at 26.
    for (secs, expected) in [
        (0, false),
        (10, false),
        (16, false),
        (24, false),
        (26, true),
    ] {
        let now = t0 + Duration::from_secs(secs);
        let won = bounded(e.try_acquire_or_renew(now, at(secs as i64))).await;
        assert_eq!(won.unwrap(), expected, "attempt at +{secs}s");
    }
    verifier.await.unwrap();
}

#[tokio::test]
async fn losing_the_update_race_is_not_leadership() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).respond(200, lease(None, "3", 0, 0, 4)),
        Call::new(Method::PUT, LEASE).fail(409, "Conflict"),
    ]);
    let mut e = Elector::new(client, lease_config("replica-a"));
    assert!(!bounded(e.try_acquire_or_renew(Instant::now(), at(1)))
        .await
        .unwrap());
    verifier.await.unwrap();
}

#[tokio::test]
async fn release_clears_the_holder_so_a_standby_takes_over_at_once() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).fail(404, "NotFound"),
        Call::new(Method::POST, LEASE_PATH).respond(201, lease(Some("replica-a"), "1", 0, 0, 0)),
        Call::new(Method::PUT, LEASE)
            .body(|b| {
                let l = parse_lease(b);
                assert_eq!(l.metadata.resource_version.as_deref(), Some("1"));
                let spec = l.spec.unwrap();
                assert_eq!(spec.holder_identity, None);
                assert_eq!(spec.lease_duration_seconds, Some(1));
                assert_eq!(spec.lease_transitions, Some(0));
            })
            .respond(200, lease(None, "2", 3, 3, 0)),
    ]);
    let mut e = Elector::new(client, lease_config("replica-a"));
    assert!(bounded(e.try_acquire_or_renew(Instant::now(), at(0)))
        .await
        .unwrap());
    bounded(e.release(at(3))).await.unwrap();
    verifier.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_leader_stops_writing_when_it_cannot_renew_in_time_and_a_standby_never_releases() {
    let (client, server) = client();
    // Acquire, then every renewal fails: after 10 s (the renew deadline) of failures
    // the replica must stop leading, well before the 15 s lease could pass to another.
    let mut calls = vec![
        Call::new(Method::GET, LEASE).fail(404, "NotFound"),
        Call::new(Method::POST, LEASE_PATH).respond(201, lease(Some("replica-a"), "1", 0, 0, 0)),
    ];
    for _ in 0..5 {
        calls.push(Call::new(Method::GET, LEASE).fail(500, "InternalError"));
    }
    let verifier = server.serve_in_order(calls);
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::unregistered());
    let elector = Elector::new(client, lease_config("replica-a"));
    let started = Instant::now();
    let task = tokio::spawn(elector.run(leader_tx, shutdown_rx, metrics));

    bounded(leader_rx.wait_for(|l| *l)).await.unwrap();
    bounded(leader_rx.wait_for(|l| !*l)).await.unwrap();
    let stepped_down_after = started.elapsed();
    assert!(stepped_down_after >= Duration::from_secs(10));
    assert!(stepped_down_after < Duration::from_secs(15));
    // Five failed renewals were all it took; no release is attempted by a non-leader.
    verifier.await.unwrap();
    shutdown_tx.send_replace(true);
    bounded(task).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_leading_then_releases_the_lease() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, LEASE).fail(404, "NotFound"),
        Call::new(Method::POST, LEASE_PATH).respond(201, lease(Some("replica-a"), "1", 0, 0, 0)),
        Call::new(Method::PUT, LEASE)
            .body(|b| assert_eq!(parse_lease(b).spec.unwrap().holder_identity, None))
            .respond(200, lease(None, "2", 0, 0, 0)),
    ]);
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let metrics = Arc::new(Metrics::unregistered());
    let task = tokio::spawn(Elector::new(client, lease_config("replica-a")).run(
        leader_tx,
        shutdown_rx,
        metrics,
    ));
    bounded(leader_rx.wait_for(|l| *l)).await.unwrap();
    shutdown_tx.send_replace(true);
    bounded(task).await.unwrap();
    assert!(!*leader_rx.borrow());
    verifier.await.unwrap();
}

// ---- start-up and reads ----

#[tokio::test]
async fn missing_crds_stop_the_controller_with_an_install_hint() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, "/apis/gatehouse.dev/v1alpha1/consumers")
            .query("limit", "1")
            .fail(404, "NotFound"),
        Call::new(Method::GET, "/apis/gatehouse.dev/v1alpha1/oauth2clients").fail(404, "NotFound"),
        Call::new(Method::GET, "/apis/gatehouse.dev/v1alpha1/protectedroutes")
            .fail(404, "NotFound"),
        Call::new(Method::GET, "/apis/gatehouse.dev/v1alpha1/oauth2policies").fail(404, "NotFound"),
    ]);
    let err = bounded(run::check_crds(&client, None)).await.unwrap_err();
    assert!(matches!(err, Error::CrdsMissing { .. }));
    let msg = err.to_string();
    assert!(msg.contains("consumers.gatehouse.dev"), "{msg}");
    assert!(msg.contains("oauth2policies.gatehouse.dev"), "{msg}");
    assert!(msg.contains("gatehouse crds | kubectl apply"), "{msg}");
    verifier.await.unwrap();
}

#[tokio::test]
async fn forbidden_crds_give_an_rbac_hint() {
    let (client, server) = client();
    let verifier = server.serve_in_order(vec![Call::new(
        Method::GET,
        "/apis/gatehouse.dev/v1alpha1/namespaces/shop/consumers",
    )
    .fail(403, "Forbidden")]);
    let err = bounded(run::check_crds(&client, Some("shop")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }), "{err}");
    assert!(err.to_string().contains("RBAC"));
    verifier.await.unwrap();
}

#[tokio::test]
async fn unlabelled_referenced_secrets_are_read_by_name_once() {
    let (client, server) = client();
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "shop", "resourceVersion": "4"},
        "data": {"client_id": "YWJj"}
    });
    let verifier = server.serve_in_order(vec![
        Call::new(Method::GET, "/api/v1/namespaces/shop/secrets/creds").respond(200, secret),
        Call::new(Method::GET, "/api/v1/namespaces/shop/secrets/missing").fail(404, "NotFound"),
    ]);
    let labelled = Cache::<Secret>::with("Secret", []);
    let wanted: BTreeSet<_> = [("shop".to_owned(), "creds".to_owned())].into();
    let mut r = ReferencedSecrets::new(Duration::from_secs(10), TIMEOUT);
    let t0 = Instant::now();
    let got = bounded(r.resolve(&client, &wanted, &labelled, t0)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].metadata.name.as_deref(), Some("creds"));
    // Remembered: no second read.
    let got = bounded(r.resolve(&client, &wanted, &labelled, t0)).await;
    assert_eq!(got.len(), 1);
    // A missing one is looked for, and counts as missing.
    let wanted: BTreeSet<_> = [
        ("shop".to_owned(), "creds".to_owned()),
        ("shop".to_owned(), "missing".to_owned()),
    ]
    .into();
    let got = bounded(r.resolve(&client, &wanted, &labelled, t0)).await;
    assert_eq!(got.len(), 1);
    assert!(r.any_missing());
    // Within the retry interval it is not read again.
    bounded(r.resolve(&client, &wanted, &labelled, t0 + Duration::from_secs(1))).await;
    verifier.await.unwrap();
}
