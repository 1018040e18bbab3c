//! Restarting kube-apiserver (etcd keeps the data) while the controller runs and the
//! proxy serves under load: the proxy keeps serving its last good config with zero
//! failed requests, and the controller resumes its watches and picks up a change made
//! right after the API server came back, before its watches had reconnected.

mod kube_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kube_support::{api, controller, proxy, stepon_yaml, wait_ready, Scene};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_serves_through_an_api_server_restart_and_the_controller_resumes() {
    const NS: &str = "resilience";
    let api = api();
    let scene = Scene::create(
        NS,
        "gatehouse-system",
        "resilience-controller",
        "stepon-api",
        "kubectl",
    );
    let (c, admin) = controller(
        &scene.kubeconfig,
        &scene.redis,
        NS,
        "gatehouse-system",
        "resilience",
        "r-0",
    )
    .await;
    let (_proxy_process, proxy) = proxy(&scene.redis).await;
    api.apply_yaml(&stepon_yaml(), NS, "kubectl").unwrap();
    wait_ready(
        NS,
        &["protectedroute/stepon", "oauth2client/shoe-fly-shoe"],
        &c,
    );
    proxy.wait_status("/stepon/stepcounts", None, 401).await;
    let token = proxy.stepon_token().await;
    proxy
        .wait_status("/stepon/stepcounts", Some(&token), 200)
        .await;

    // Load: one client in a loop (bounded: stops when told, or after 5 minutes).
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let url = format!("{}/stepon/stepcounts", proxy.base);
        let http = proxy.http.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            while !stop.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(300) {
                let res = http
                    .get(&url)
                    .header("x-forwarded-proto", "https")
                    .bearer_auth(&token)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The API server goes away for a while, the controller's watches fail.
    tokio::time::sleep(Duration::from_secs(1)).await;
    api.stop_apiserver().expect("API server stops");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = ok.load(Ordering::SeqCst);
    api.start_apiserver().expect("API server starts again");

    // A change right away, while the controller's watches are still backing off.
    let moved = stepon_yaml().replace("    - /stepon\n", "    - /stepon\n    - /steps\n");
    api.apply_yaml(&moved, NS, "kubectl").unwrap();
    proxy
        .wait_status("/steps/stepcounts", Some(&token), 200)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("requests through the restart: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "requests failed while the API server restarted");
    assert!(
        during > 0 && ok > during,
        "load ran throughout ({during} before the restart, {ok} in all)"
    );
    // The watches really broke (and resumed: the change above arrived through them).
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let watch_errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("gatehouse_controller_watch_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(watch_errors > 0.0, "no watch error counted:\n{metrics}");
    drop(c);
}
