//! The Helm chart against a real kube-apiserver: `helm install` succeeds (pods never
//! run: there is no kubelet), then `gatehouse controller` runs here **as the chart's
//! controller ServiceAccount** (a TokenRequest token) with the arguments of the
//! chart's Deployment, proving the chart's RBAC is enough, for `rbac.scope=cluster`
//! and `rbac.scope=namespace`; and that a permission taken out of the Role is
//! reported clearly.

mod kube_support;

use gatehouse_e2e::binary::free_addr;
use gatehouse_e2e::binary::Gatehouse;
use gatehouse_e2e::kube_apiserver::KubeApiServer;
use gatehouse_e2e::redis_server::RedisServer;
use kube_support::{
    api, stepon_yaml, wait_ready, workspace_root, Backend, DEADLINE, STEPON_OBJECTS,
};
use serde_json::Value;

/// `helm install <release> charts/gatehouse -n <ns> --create-namespace <set...>`.
fn helm_install(api: &KubeApiServer, release: &str, ns: &str, set: &[&str]) {
    let chart = workspace_root().join("charts/gatehouse");
    let mut cmd = api.helm();
    cmd.args(["install", release])
        .arg(&chart)
        .args(["-n", ns, "--create-namespace"]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm runs");
    assert!(
        out.status.success(),
        "helm install: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The login key Secret's value (base64, as stored).
fn login_key(api: &KubeApiServer, ns: &str) -> String {
    let secret = api
        .get_json(ns, "secret/gh-gatehouse-login-key")
        .unwrap()
        .expect("the chart creates the login key Secret");
    secret["data"]["login-key"]
        .as_str()
        .expect("login-key in the Secret")
        .to_owned()
}

/// Both components mount the login key and are told where it is; `helm upgrade`
/// keeps the generated key (a new one would sign every user out).
fn login_key_is_mounted_and_kept(api: &KubeApiServer, ns: &str) {
    let key = login_key(api, ns);
    assert_eq!(key.len(), 88, "64 random characters, base64: {key}");
    for component in ["controller", "proxy"] {
        let dep = api
            .get_json(ns, &format!("deployment/gh-gatehouse-{component}"))
            .unwrap()
            .expect("Deployment");
        let pod = &dep["spec"]["template"]["spec"];
        let env = pod["containers"][0]["env"].to_string();
        assert!(
            env.contains("GATEHOUSE_LOGIN_KEY_FILE")
                && env.contains("/etc/gatehouse/login/login-key"),
            "{component}: {env}"
        );
        assert_eq!(
            pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "login-key")
                .map(|v| v["secret"]["secretName"].clone()),
            Some(Value::from("gh-gatehouse-login-key")),
            "{component}: {pod}"
        );
    }
    let chart = workspace_root().join("charts/gatehouse");
    let out = api
        .helm()
        .args(["upgrade", "gh"])
        .arg(&chart)
        .args(["-n", ns, "--reuse-values"])
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm upgrade: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        login_key(api, ns),
        key,
        "helm upgrade replaced the login key"
    );
}

/// The controller container's args from the Deployment that helm created, with the
/// in-cluster parts replaced: Redis URL, admin port.
fn chart_controller_args(
    api: &KubeApiServer,
    ns: &str,
    deployment: &str,
    redis: &RedisServer,
) -> Vec<String> {
    let dep = api
        .get_json(ns, &format!("deployment/{deployment}"))
        .unwrap()
        .expect("the chart's controller Deployment");
    let args: Vec<String> = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(args[0], "controller", "{args:?}");
    args.into_iter()
        .map(|a| {
            if a.starts_with("--redis=") {
                format!("--redis={}", redis.url())
            } else if a.starts_with("--admin-listen=") {
                format!("--admin-listen={}", free_addr())
            } else {
                a
            }
        })
        .collect()
}

/// Run the controller as the chart's ServiceAccount, apply the Step On example in
/// `app_ns` and wait until it is Ready (status writes, Secret reads, Events, Lease).
async fn controller_works_as_the_chart_account(
    api: &KubeApiServer,
    release_ns: &str,
    app_ns: &str,
) {
    let release = "gh";
    let sa = "gh-gatehouse-controller";
    let token = api
        .service_account_token(release_ns, sa)
        .expect("TokenRequest");
    let kubeconfig = api.kubeconfig_for_token(release_ns, &token).unwrap();
    let redis = RedisServer::start().unwrap();
    let mut args = chart_controller_args(
        api,
        release_ns,
        &format!("{release}-gatehouse-controller"),
        &redis,
    );
    args.push(format!("--kubeconfig={}", kubeconfig.display()));
    args.push("--debounce=50ms".to_owned());
    let backend = Backend::start();
    api.apply_yaml(&backend.service_yaml("stepon-api"), app_ns, "kubectl")
        .unwrap();
    api.apply_yaml(&stepon_yaml(), app_ns, "kubectl").unwrap();

    let c = Gatehouse::spawn(&args).expect("controller starts");
    wait_ready(app_ns, &STEPON_OBJECTS, &c);
    let lease: Value = api
        .get_json(release_ns, "lease/gh-gatehouse-controller")
        .unwrap()
        .expect("the chart's Lease");
    assert!(lease["spec"]["holderIdentity"].is_string(), "{lease}");
    let log = c.log();
    assert!(!log.contains("forbidden"), "RBAC refusals:\n{log}");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_in_both_scopes_and_a_missing_permission_is_reported() {
    let api = api();

    // rbac.scope=cluster: the controller watches every namespace.
    helm_install(api, "gh", "gh-cluster", &["rbac.scope=cluster"]);
    login_key_is_mounted_and_kept(api, "gh-cluster");
    api.create_namespace("gh-cluster-apps").unwrap();
    controller_works_as_the_chart_account(api, "gh-cluster", "gh-cluster-apps").await;
    let out = api
        .helm()
        .args(["uninstall", "gh", "-n", "gh-cluster"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // rbac.scope=namespace: a Role in the release namespace, which it watches.
    helm_install(api, "gh", "gh-ns", &["rbac.scope=namespace"]);
    let role = api
        .get_json("gh-ns", "role/gh-gatehouse-controller")
        .unwrap();
    assert!(role.is_some(), "namespace scope installs a Role");
    assert!(
        api.get_json("default", "clusterrole/gh-gatehouse-controller")
            .unwrap()
            .is_none(),
        "and no ClusterRole"
    );
    controller_works_as_the_chart_account(api, "gh-ns", "gh-ns").await;

    // Take list/watch on ProtectedRoutes out of the Role: the controller says which
    // permission is missing and exits, instead of retrying silently.
    let mut role = role.unwrap();
    let rules = role["rules"].as_array_mut().unwrap();
    let crd_rule = rules
        .iter_mut()
        .find(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|rs| rs.iter().any(|x| x == "protectedroutes"))
        })
        .expect("the CRD rule");
    crd_rule["resources"] = serde_json::json!(["consumers", "oauth2clients"]);
    for key in [
        "resourceVersion",
        "managedFields",
        "uid",
        "creationTimestamp",
    ] {
        role["metadata"].as_object_mut().unwrap().remove(key);
    }
    let out = api
        .kubectl_with_input(&["replace", "-f", "-"], &role.to_string())
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let token = api
        .service_account_token("gh-ns", "gh-gatehouse-controller")
        .unwrap();
    let kubeconfig = api.kubeconfig_for_token("gh-ns-reduced", &token).unwrap();
    let redis = RedisServer::start().unwrap();
    let mut args = chart_controller_args(api, "gh-ns", "gh-gatehouse-controller", &redis);
    args.push(format!("--kubeconfig={}", kubeconfig.display()));
    let mut c = Gatehouse::spawn(&args).expect("controller starts");
    let exit = c
        .wait_exit(DEADLINE)
        .await
        .expect("the controller gives up");
    assert!(!exit.success());
    let log = c.log();
    assert!(
        log.contains("not allowed to list protectedroutes.gatehouse.dev")
            && log.contains("grant the controller's ServiceAccount"),
        "{log}"
    );
    assert!(
        log.contains("system:serviceaccount:gh-ns:gh-gatehouse-controller"),
        "the message names the account: {log}"
    );
}
