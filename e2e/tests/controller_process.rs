//! End-to-end: the real `gatehouse controller` binary against a loopback stand-in for
//! the Kubernetes API (`gatehouse_e2e::fake_apiserver`), publishing to a real
//! `redis-server`, followed by a real `gatehouse proxy --config-redis` in front of a
//! real upstream. Applying, editing and deleting resources in the API changes what the
//! proxy serves; statuses, generated Secrets, Events and the Lease appear in the API.
//!
//! The fake API ends every watch after two seconds and, midway, forgets its change
//! history, so the controller's watches resume from resourceVersions (with bookmarks)
//! and relist after `410 Gone` while the test runs. Those faults, an object that fails
//! the CRD schema, and the exact shape of the requests are what a real API server
//! cannot be made to produce or show on demand; the same flow against a real
//! kube-apiserver is in `kube_controller.rs`.

mod kube_support;

use std::time::Duration;

use base64::Engine as _;
use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::fake_apiserver::FakeApiServer;
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::upstream::TestUpstream;
use kube_support::{proxy, ready, spawn_controller};
use serde_json::{json, Value};

/// Upper bound for anything asynchronous to happen. Only a deadline for failing,
/// never a measurement.
const DEADLINE: Duration = Duration::from_secs(30);
const NS: &str = "shop";

fn consumer() -> Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "Consumer",
        "metadata": {"name": "rewards", "namespace": NS},
        "spec": {"username": "shoeflyshoe"}
    })
}

fn client() -> Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "OAuth2Client",
        "metadata": {"name": "rewards-app", "namespace": NS},
        "spec": {
            "consumerRef": {"name": "rewards"},
            "name": "Shoe Fly Shoe Customer Rewards",
            "grantTypes": ["client_credentials"]
        }
    })
}

fn route(path: &str, service: &str) -> Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "ProtectedRoute",
        "metadata": {"name": "orders", "namespace": NS},
        "spec": {
            "paths": [path],
            "backend": {"service": {"name": service, "port": 80}},
            "oauth2": {"clientCredentials": true, "acceptHttpIfAlreadyTerminated": true}
        }
    })
}

fn service_and_slice(upstream_port: u16) -> [Value; 2] {
    [
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "orders", "namespace": NS},
            "spec": {"ports": [{"port": 80, "targetPort": upstream_port}]}
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "orders-abc12", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": "orders"}},
            "addressType": "IPv4",
            "ports": [{"port": upstream_port}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}]
        }),
    ]
}

/// The Ready reason of `kind/name` once its status describes `generation`.
fn reason_at(api: &FakeApiServer, kind: &str, name: &str, generation: i64) -> Option<String> {
    let obj = api.get(kind, NS, name)?;
    let c = ready(&obj)?;
    (obj["status"]["observedGeneration"] == generation && c["observedGeneration"] == generation)
        .then(|| c["reason"].as_str().unwrap_or_default().to_owned())
}

fn secret_value(secret: &Value, key: &str) -> String {
    let b64 = secret["data"][key].as_str().expect("key present");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64"),
    )
    .expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_editing_and_deleting_resources_changes_what_the_proxy_serves() {
    let redis = RedisServer::start().expect("redis-server starts");
    let api = FakeApiServer::start().await.expect("fake API starts");
    api.set_watch_cap(Duration::from_secs(2));
    let upstream = TestUpstream::echo().await;
    let upstream_port = upstream.addr.port();

    let (mut controller, admin) = spawn_controller(
        api.kubeconfig(),
        &redis,
        [
            "--lease-namespace=gatehouse-system".to_owned(),
            "--lease-identity=controller-0".to_owned(),
            "--debounce=50ms".to_owned(),
        ],
    )
    .await;

    let (proxy_process, proxy) = proxy(&redis).await;

    // The controller leads, is ready, and has published an (empty) snapshot.
    api.wait_for("the Lease to be held", DEADLINE, |api| {
        api.get("Lease", "gatehouse-system", "gatehouse-controller")
            .filter(|l| l["spec"]["holderIdentity"] == "controller-0")
    })
    .await;
    let readyz = format!("http://{admin}/readyz");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while proxy
        .http
        .get(&readyz)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok()
        != Some(200)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "controller never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.wait_status("/orders/items", None, 404).await;

    // --- apply: consumer, client (no Secret: one is generated), route, backend.
    for obj in service_and_slice(upstream_port) {
        api.apply(obj);
    }
    api.apply(consumer());
    let app = api.apply(client());
    api.apply(route("/orders", "orders"));

    let secret = api
        .wait_for("the generated credentials Secret", DEADLINE, |api| {
            api.get("Secret", NS, "rewards-app-oauth2-credentials")
        })
        .await;
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"], app["metadata"]["uid"],
        "the Secret is owned by its OAuth2Client"
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "OAuth2Client"
    );
    assert_eq!(
        secret["metadata"]["labels"]["gatehouse.dev/credentials"],
        "generated"
    );
    let client_id = secret_value(&secret, "client_id");
    let client_secret = secret_value(&secret, "client_secret");
    assert!(client_secret.len() >= 32);

    let status = api
        .wait_for(
            "the client to be Ready with its clientId",
            DEADLINE,
            |api| {
                let c = api.get("OAuth2Client", NS, "rewards-app")?;
                (ready(&c)?["status"] == "True").then_some(c)
            },
        )
        .await;
    assert_eq!(status["status"]["clientId"], client_id.as_str());
    assert_eq!(status["status"]["observedGeneration"], 1);
    api.wait_for("the route to be Ready at generation 1", DEADLINE, |api| {
        (reason_at(api, "ProtectedRoute", "orders", 1)? == "Ready").then_some(())
    })
    .await;
    assert_eq!(
        reason_at(&api, "Consumer", "rewards", 1).as_deref(),
        Some("Ready")
    );

    // Status went out as server-side apply, owned by `gatehouse`, forced.
    let ssa: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .collect();
    assert!(!ssa.is_empty());
    for r in &ssa {
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(r.param("fieldManager").as_deref(), Some("gatehouse"));
        assert_eq!(r.param("force").as_deref(), Some("true"));
    }

    // The proxy now serves the route and knows the client.
    proxy.wait_status("/orders/items", None, 401).await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let token = loop {
        let (code, body) = proxy
            .client_credentials("/orders", &client_id, &client_secret)
            .await;
        if code == 200 {
            break body["access_token"].as_str().expect("a token").to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no token: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let echo = proxy.echo("/orders/items", &token).await;
    assert_eq!(echo["path"], "/items");
    assert_eq!(echo["headers"]["x-consumer-username"], "shoeflyshoe");

    // Nothing changes: statuses are not re-written (compare ignoring timestamps).
    let patches_before = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .count();

    // --- edit: move the route (generation 2), after the API forgot its history (the
    // watches must relist after 410 Gone).
    let lists = |api: &FakeApiServer| {
        api.requests()
            .iter()
            .filter(|r| {
                r.method == "GET"
                    && r.path.ends_with("/protectedroutes")
                    && r.param("watch").is_none()
            })
            .count()
    };
    let lists_before = lists(&api);
    api.compact();
    // The watcher's error backoff (kube-runtime default: up to 30 s, reset after two
    // quiet minutes) may already be raised by start-up errors on a loaded machine.
    api.wait_for("a relist after 410 Gone", DEADLINE * 3, |api| {
        (lists(api) > lists_before).then_some(())
    })
    .await;
    let resumed = api
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/protectedroutes") && r.param("watch").is_some())
        .filter(|r| r.param("allowWatchBookmarks").as_deref() == Some("true"))
        .count();
    assert!(resumed >= 2, "watches resumed with bookmarks enabled");
    api.apply(route("/v2/orders", "orders"));
    proxy
        .wait_status("/v2/orders/items", Some(&token), 200)
        .await;
    proxy.wait_status("/orders/items", Some(&token), 404).await;
    api.wait_for("the route status at generation 2", DEADLINE, |api| {
        (reason_at(api, "ProtectedRoute", "orders", 2)? == "Ready").then_some(())
    })
    .await;
    let patches_after = api
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.ends_with("/status"))
        .count();
    assert_eq!(
        patches_after,
        patches_before + 1,
        "only the edited route's status is written again"
    );

    // --- a broken edit: the route names a Service that does not exist. Its last good
    // version (generation 2) keeps serving, the status says why; a Warning Event is
    // recorded once. Meanwhile a malformed object and another instance's route are
    // ignored.
    api.apply(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "ProtectedRoute",
        "metadata": {"name": "broken", "namespace": NS},
        "spec": {"paths": 42, "backend": {"service": {"name": "orders", "port": 80}}}
    }));
    let mut other = route("/other", "orders");
    other["metadata"]["name"] = json!("other-instance");
    other["metadata"]["labels"] = json!({"gatehouse.dev/instance": "blue"});
    api.apply(other);
    api.apply(route("/v2/orders", "missing"));
    api.wait_for("BackendNotFound on the route", DEADLINE, |api| {
        (reason_at(api, "ProtectedRoute", "orders", 3)? == "BackendNotFound").then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(proxy.status("/v2/orders/items", Some(&token)).await, 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warnings = api
        .wait_for("the Warning Event", DEADLINE, |api| {
            let w: Vec<Value> = api
                .list("Event")
                .into_iter()
                .filter(|e| e["reason"] == "BackendNotFound")
                .collect();
            (!w.is_empty()).then_some(w)
        })
        .await;
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0]["type"], "Warning");
    assert_eq!(warnings[0]["regarding"]["name"], "orders");
    assert_eq!(proxy.status("/other/items", Some(&token)).await, 404);
    assert!(api.get("ProtectedRoute", NS, "other-instance").unwrap()["status"].is_null());
    controller
        .wait_for_log("Ignoring malformed object", DEADLINE)
        .await
        .expect("the malformed route is reported");

    // --- repair: Ready again (a Normal Event), traffic flows.
    api.apply(route("/v2/orders", "orders"));
    proxy
        .wait_status("/v2/orders/items", Some(&token), 200)
        .await;
    api.wait_for("the recovery Event", DEADLINE, |api| {
        api.list("Event")
            .into_iter()
            .find(|e| e["reason"] == "Ready" && e["type"] == "Normal")
    })
    .await;

    // --- delete the client: its Secret goes with it (owner reference), and the proxy
    // stops accepting its credentials.
    assert!(api.delete("OAuth2Client", NS, "rewards-app"));
    assert!(api
        .get("Secret", NS, "rewards-app-oauth2-credentials")
        .is_none());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (code, body) = proxy
            .client_credentials("/v2/orders", &client_id, &client_secret)
            .await;
        if body["error"] == "invalid_client" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "client still accepted: {code}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- delete the route: no longer served.
    assert!(api.delete("ProtectedRoute", NS, "orders"));
    proxy
        .wait_status("/v2/orders/items", Some(&token), 404)
        .await;

    // --- graceful shutdown releases the Lease.
    controller.terminate().unwrap();
    let exit = controller.wait_exit(DEADLINE).await.unwrap();
    assert!(
        exit.success(),
        "controller exit: {exit}\n{}",
        controller.log()
    );
    let lease = api
        .get("Lease", "gatehouse-system", "gatehouse-controller")
        .unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
    let log = controller.log();
    assert!(
        !log.contains(&client_secret),
        "the controller never logs secrets"
    );
    proxy_process.terminate().unwrap();
}

#[tokio::test]
async fn without_the_crds_the_controller_exits_with_an_install_hint() {
    let api = FakeApiServer::start().await.expect("fake API starts");
    api.set_crds_installed(false);
    let mut controller = Gatehouse::spawn([
        "controller".to_owned(),
        format!("--kubeconfig={}", api.kubeconfig().display()),
        "--redis=redis://127.0.0.1:1".to_owned(),
        format!("--admin-listen={}", free_addr()),
    ])
    .expect("controller starts");
    let exit = controller.wait_exit(DEADLINE).await.unwrap();
    assert!(!exit.success());
    let log = controller.log();
    assert!(
        log.contains("gatehouse crds | kubectl apply --server-side -f -"),
        "{log}"
    );
}

/// Start a controller against `api`/`redis` with fast Lease timing; returns it and its
/// admin address.
async fn controller_replica(
    api: &FakeApiServer,
    redis: &RedisServer,
    identity: &str,
) -> (Gatehouse, std::net::SocketAddr) {
    spawn_controller(
        api.kubeconfig(),
        redis,
        [
            "--lease-namespace=gatehouse-system".to_owned(),
            format!("--lease-identity={identity}"),
            "--lease-duration=2s".to_owned(),
            "--lease-renew-deadline=1s".to_owned(),
            "--lease-retry-period=100ms".to_owned(),
            "--debounce=50ms".to_owned(),
        ],
    )
    .await
}

async fn metric(admin: std::net::SocketAddr, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_only_computes_until_the_leader_leaves_then_takes_over() {
    let redis = RedisServer::start().expect("redis-server starts");
    let api = FakeApiServer::start().await.expect("fake API starts");
    let lease = |api: &FakeApiServer| api.get("Lease", "gatehouse-system", "gatehouse-controller");

    let (mut leader, _) = controller_replica(&api, &redis, "replica-a").await;
    api.wait_for("replica-a to lead", DEADLINE, |api| {
        lease(api).filter(|l| l["spec"]["holderIdentity"] == "replica-a")
    })
    .await;
    let (standby, standby_admin) = controller_replica(&api, &redis, "replica-b").await;

    api.apply(consumer());
    api.wait_for("the leader's status write", DEADLINE, |api| {
        (reason_at(api, "Consumer", "rewards", 1)? == "Ready").then_some(())
    })
    .await;
    // The standby translated too (its first snapshot counts as a dropped publish) but
    // does not lead, and the Lease still names replica-a.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let dropped = metric(
            standby_admin,
            "gatehouse_controller_dropped_writes_total{kind=\"snapshot\"}",
        )
        .await;
        if dropped.is_some_and(|d| d >= 1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "standby never computed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(standby_admin, "gatehouse_controller_leader").await,
        Some(0.0)
    );
    assert_eq!(lease(&api).unwrap()["spec"]["holderIdentity"], "replica-a");

    // The leader leaves gracefully: it releases the Lease and the standby takes over
    // at once (well before the 2 s lease duration would expire), then writes.
    leader.terminate().unwrap();
    assert!(leader.wait_exit(DEADLINE).await.unwrap().success());
    let taken = api
        .wait_for("replica-b to lead", DEADLINE, |api| {
            lease(api).filter(|l| l["spec"]["holderIdentity"] == "replica-b")
        })
        .await;
    assert_eq!(taken["spec"]["leaseTransitions"], 1);

    let mut edited = consumer();
    edited["spec"]["customId"] = json!("c-42");
    api.apply(edited);
    api.wait_for("the new leader's status write", DEADLINE, |api| {
        (reason_at(api, "Consumer", "rewards", 2)? == "Ready").then_some(())
    })
    .await;
    assert_eq!(
        metric(standby_admin, "gatehouse_controller_leader").await,
        Some(1.0)
    );
    drop(standby);
}
