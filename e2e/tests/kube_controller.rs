//! `gatehouse controller` against a real kube-apiserver (+ etcd + garbage collector),
//! publishing to a real `redis-server`, read by a real `gatehouse proxy
//! --config-redis` in front of a real upstream (inside a test network namespace: the
//! API server refuses loopback addresses in EndpointSlices).
//!
//! - the Step On example: applied with kubectl, `kubectl wait --for=condition=Ready`,
//!   the authorization-code flow through the proxy; an edit bumps `generation` and
//!   `observedGeneration` follows; a broken edit gives `Ready=False` with its reason
//!   and a Warning Event while the last good version keeps serving; a generated credentials Secret is owned by its client and
//!   garbage-collected with it; the leader is killed and the standby takes over
//!   within the lease time; a deleted route is gone from the proxy;
//! - idle: over 30 s without changes the controller writes nothing but its Lease
//!   (audit log), after a GitOps-style apply (`--field-manager=argocd-controller`)
//!   whose spec fields the controller's status writes never take, and a re-apply
//!   that meets no conflict.

mod kube_support;

use std::time::{Duration, Instant};

use kube_support::{
    api, controller, proxy, ready, stepon_yaml, wait_for, wait_ready, Scene, DEADLINE,
    STEPON_OBJECTS,
};
use serde_json::Value;

/// The Lease's holder, read with kubectl.
fn holder(ns: &str, lease: &str) -> Option<String> {
    let l = api().get_json(ns, &format!("lease/{lease}")).ok()??;
    l["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// `Ready` status/reason of `what` once its status describes `generation`.
fn ready_at(ns: &str, what: &str, generation: i64) -> Option<(String, String)> {
    let obj = api().get_json(ns, what).ok()??;
    let c = ready(&obj)?;
    (obj["metadata"]["generation"] == generation
        && obj["status"]["observedGeneration"] == generation
        && c["observedGeneration"] == generation)
        .then(|| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_on_example_with_two_replicas_against_a_real_api_server() {
    const NS: &str = "stepon";
    let api = api();
    let Scene {
        kubeconfig,
        redis,
        backend,
    } = Scene::create(
        NS,
        "gatehouse-system",
        "stepon-controller",
        "stepon-api",
        "gatehouse-test",
    );

    let lease = |_: ()| holder("gatehouse-system", "stepon");
    let (leader, _) = controller(
        &kubeconfig,
        &redis,
        NS,
        "gatehouse-system",
        "stepon",
        "replica-a",
    )
    .await;
    wait_for("replica-a to hold the Lease", || {
        lease(()).filter(|h| h == "replica-a")
    })
    .await;
    let (mut standby, _) = controller(
        &kubeconfig,
        &redis,
        NS,
        "gatehouse-system",
        "stepon",
        "replica-b",
    )
    .await;
    let (_proxy_process, proxy) = proxy(&redis).await;

    // --- apply the example; kubectl wait sees every object Ready.
    api.apply_yaml(&stepon_yaml(), NS, "kubectl")
        .expect("example accepted");
    wait_ready(NS, &STEPON_OBJECTS, &leader);

    // --- the token flow through the proxy, to the upstream in the namespace.
    proxy.wait_status("/stepon/stepcounts", None, 401).await;
    let token = proxy.stepon_token().await;
    proxy
        .wait_status("/stepon/stepcounts", Some(&token), 200)
        .await;
    assert!(backend.upstream.requests() >= 1);

    // --- an edit bumps generation; observedGeneration follows.
    let edited = stepon_yaml().replace("tokenExpiration: 7200", "tokenExpiration: 3600");
    api.apply_yaml(&edited, NS, "kubectl").unwrap();
    wait_for("the route Ready at generation 2", || {
        ready_at(NS, "protectedroute/stepon", 2).filter(|(s, _)| s == "True")
    })
    .await;

    // --- a broken edit: a missing Service. Ready=False with the reason and the bad
    // generation, an Event, and the last good version (generation 2) keeps serving.
    let broken = edited.replace("name: stepon-api, port", "name: no-such-api, port");
    api.apply_yaml(&broken, NS, "kubectl").unwrap();
    let (status, reason) = wait_for("the route not Ready at generation 3", || {
        ready_at(NS, "protectedroute/stepon", 3)
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BackendNotFound")
    );
    let route = api.get_json(NS, "protectedroute/stepon").unwrap().unwrap();
    let message = ready(&route).unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.ends_with("the last good version (generation 2) is still served"),
        "{message}"
    );
    let event = wait_for("the BackendNotFound Event", || {
        let events = api.get_json(NS, "events").ok()??;
        events["items"]
            .as_array()?
            .iter()
            .find(|e| e["reason"] == "BackendNotFound")
            .cloned()
    })
    .await;
    assert_eq!(event["type"], "Warning", "{event}");
    assert_eq!(event["involvedObject"]["name"], "stepon", "{event}");
    assert_eq!(event["involvedObject"]["kind"], "ProtectedRoute", "{event}");
    // The status above was written after the snapshot of generation 3 was published:
    // the proxy serves generation 2, with its token rules, on every request.
    for _ in 0..20 {
        assert_eq!(proxy.status("/stepon/stepcounts", Some(&token)).await, 200);
        assert_eq!(proxy.status("/stepon/stepcounts", None).await, 401);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Fixed (generation 4): Ready again, and served.
    api.apply_yaml(
        &edited.replace("tokenExpiration: 3600", "tokenExpiration: 1800"),
        NS,
        "kubectl",
    )
    .unwrap();
    wait_for("the route Ready at generation 4", || {
        ready_at(NS, "protectedroute/stepon", 4).filter(|(s, _)| s == "True")
    })
    .await;
    proxy
        .wait_status("/stepon/stepcounts", Some(&token), 200)
        .await;

    // --- a client without credentials gets a generated Secret it owns; deleting the
    // client lets the garbage collector delete the Secret.
    api.apply_yaml(
        "apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {name: rewards-app}
spec:
  consumerRef: {name: shoeflyshoe}
  name: Rewards
  grantTypes: [authorization_code]
  redirectUris: [https://rewards.example/cb]
",
        NS,
        "kubectl",
    )
    .unwrap();
    let client = api
        .get_json(NS, "oauth2client/rewards-app")
        .unwrap()
        .unwrap();
    let secret = wait_for("the generated credentials Secret", || {
        api.get_json(NS, "secret/rewards-app-oauth2-credentials")
            .ok()?
    })
    .await;
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], client["metadata"]["uid"], "{secret}");
    assert_eq!(owner["kind"], "OAuth2Client");
    assert_eq!(owner["apiVersion"], "gatehouse.dev/v1alpha1");
    assert_eq!(owner["controller"], true);
    api.kubectl_ok(&["delete", "-n", NS, "oauth2client/rewards-app"])
        .unwrap();
    wait_for("the garbage collector to delete the Secret", || {
        matches!(
            api.get_json(NS, "secret/rewards-app-oauth2-credentials"),
            Ok(None)
        )
        .then_some(())
    })
    .await;

    // --- kill the leader (no Lease release): the standby takes over once the 4 s
    // lease has run out, then serves edits.
    drop(leader);
    let killed = Instant::now();
    wait_for("replica-b to hold the Lease", || {
        lease(()).filter(|h| h == "replica-b")
    })
    .await;
    let took = killed.elapsed();
    eprintln!("standby took over {took:?} after the leader was killed (lease 4 s)");
    assert!(
        took < Duration::from_secs(4 + 6),
        "takeover took {took:?}; standby log:\n{}",
        standby.log()
    );
    let moved = edited.replace("    - /stepon\n", "    - /stepon\n    - /stepon-v2\n");
    api.apply_yaml(&moved, NS, "kubectl").unwrap();
    wait_for("the new leader's status at generation 5", || {
        ready_at(NS, "protectedroute/stepon", 5).filter(|(s, _)| s == "True")
    })
    .await;
    proxy
        .wait_status("/stepon-v2/stepcounts", Some(&token), 200)
        .await;

    // --- delete the route: gone from the proxy.
    api.kubectl_ok(&["delete", "-n", NS, "protectedroute/stepon"])
        .unwrap();
    proxy
        .wait_status("/stepon/stepcounts", Some(&token), 404)
        .await;

    standby.terminate().unwrap();
    assert!(standby.wait_exit(DEADLINE).await.unwrap().success());
    assert!(!standby.log().contains(kube_support::CLIENT_SECRET));
}

/// The spec field owners of an object: `manager -> fields` for `Apply`/`Update`
/// entries outside the status subresource.
fn spec_managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["manager"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{}:{}",
                    m["subresource"].as_str().unwrap_or(""),
                    m["fieldsV1"]
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_apply_coexists_and_an_idle_controller_writes_nothing() {
    const NS: &str = "gitops";
    const IDLE: Duration = Duration::from_secs(30);
    let api = api();
    let scene = Scene::create(
        NS,
        "gatehouse-system",
        "gitops-controller",
        "stepon-api",
        "argocd-controller",
    );
    let user = "system:serviceaccount:gatehouse-system:gitops-controller";
    let (c, _) = controller(
        &scene.kubeconfig,
        &scene.redis,
        NS,
        "gatehouse-system",
        "gitops",
        "gitops-0",
    )
    .await;

    // An Argo CD-style apply: server-side, its own field manager.
    api.apply_yaml(&stepon_yaml(), NS, "argocd-controller")
        .unwrap();
    wait_ready(NS, &STEPON_OBJECTS, &c);

    // The controller's entries are on the status subresource only; the spec stays
    // with argocd-controller.
    for what in STEPON_OBJECTS {
        let obj: Value = serde_json::from_str(
            &api.kubectl_ok(&["get", "-n", NS, what, "-o", "json", "--show-managed-fields"])
                .unwrap(),
        )
        .unwrap();
        let managers = spec_managers(&obj);
        let gatehouse: Vec<_> = managers.iter().filter(|(m, _)| m == "gatehouse").collect();
        assert!(
            !gatehouse.is_empty(),
            "{what}: no gatehouse status entry: {managers:?}"
        );
        for (_, fields) in &gatehouse {
            assert!(
                fields.starts_with("status:"),
                "{what}: gatehouse owns {fields}"
            );
            assert!(
                !fields.contains("f:spec"),
                "{what}: gatehouse owns {fields}"
            );
        }
        let argo: Vec<_> = managers
            .iter()
            .filter(|(m, _)| m == "argocd-controller")
            .collect();
        assert!(
            argo.iter().any(|(_, f)| f.contains("f:spec")),
            "{what}: spec not owned by argocd-controller: {managers:?}"
        );
    }
    // Re-applying (no --force-conflicts) meets no conflict with the status writes.
    api.apply_yaml(&stepon_yaml(), NS, "argocd-controller")
        .expect("re-apply without conflicts");

    // Idle: let the last writes settle, then nothing but Lease renewals for 30 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let controller_writes = || -> Vec<Value> {
        api.audit_writes()
            .into_iter()
            .filter(|e| e["user"]["username"] == user)
            .filter(|e| e["objectRef"]["resource"] != "leases")
            .collect()
    };
    let before = controller_writes().len();
    assert!(
        before > 0,
        "the audit log records the controller's status writes"
    );
    tokio::time::sleep(IDLE).await;
    let after = controller_writes();
    assert_eq!(
        after.len(),
        before,
        "the idle controller wrote: {:#?}",
        &after[before..]
    );
    let renewals = api
        .audit_writes()
        .into_iter()
        .filter(|e| e["user"]["username"] == user && e["objectRef"]["resource"] == "leases")
        .count();
    assert!(
        renewals > 0,
        "Lease renewals are audited, so the log is live"
    );
    drop(c);
}
