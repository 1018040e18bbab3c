//! The real `gatehouse proxy --config-file` process: serves the file, reloads it when
//! it changes (keeping the last good one when it breaks), reports readiness, and
//! exits cleanly on SIGTERM.

use std::path::Path;
use std::time::Duration;

use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::upstream::TestUpstream;
use serde_json::json;

const STARTUP: Duration = Duration::from_secs(60);
const RELOAD: Duration = Duration::from_secs(30);

fn snapshot(revision: &str, routes: serde_json::Value) -> serde_json::Value {
    json!({ "format": 1, "revision": revision, "routes": routes })
}

fn route(id: &str, path: &str, upstream: &str) -> serde_json::Value {
    json!({ "id": id, "paths": [path], "upstream": { "endpoints": [upstream] } })
}

/// Replace the file atomically, as a careful producer (or a ConfigMap) does.
fn write(path: &Path, value: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, value.to_string()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn status(url: &str) -> u16 {
    reqwest::get(url)
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_proxy_binary_serves_reloads_and_stops_on_sigterm() {
    let up = TestUpstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    write(
        &file,
        &snapshot("one", json!([route("default/a", "/a", &up.url())])),
    );
    let (listen, admin) = (free_addr(), free_addr());
    let mut proc = Gatehouse::spawn([
        "proxy",
        "--config-file",
        file.to_str().unwrap(),
        "--config-poll-ms",
        "50",
        "--listen",
        &listen.to_string(),
        "--admin-listen",
        &admin.to_string(),
        "--workers",
        "2",
    ])
    .unwrap();
    proc.wait_for_port(listen, STARTUP).await.unwrap();
    proc.wait_for_port(admin, STARTUP).await.unwrap();

    let echo: serde_json::Value = reqwest::get(format!("http://{listen}/a/x"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["path"], "/a/x");
    assert_eq!(echo["headers"]["x-forwarded-for"], "127.0.0.1");
    let ready: serde_json::Value = reqwest::get(format!("http://{admin}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready, json!({"ready": true, "revision": "one"}));
    assert_eq!(status(&format!("http://{listen}/b/x")).await, 404);

    // A new file version is picked up.
    write(
        &file,
        &snapshot(
            "two",
            json!([
                route("default/a", "/a", &up.url()),
                route("default/b", "/b", &up.url())
            ]),
        ),
    );
    proc.wait_for_log("Configuration loaded revision=two", RELOAD)
        .await
        .unwrap();
    assert_eq!(status(&format!("http://{listen}/b/x")).await, 200);

    // A broken version is refused and the last good one stays in force.
    std::fs::write(&file, b"{ \"format\": 1, \"routes\": [ oops").unwrap();
    proc.wait_for_log("Snapshot file rejected", RELOAD)
        .await
        .unwrap();
    assert_eq!(status(&format!("http://{listen}/b/x")).await, 200);
    assert_eq!(status(&format!("http://{admin}/readyz")).await, 200);

    proc.terminate().unwrap();
    let exit = proc.wait_exit(Duration::from_secs(30)).await.unwrap();
    assert!(exit.success(), "exit status {exit}; log:\n{}", proc.log());
    assert!(proc.log().contains("Stopped"), "{}", proc.log());
}

#[tokio::test]
async fn the_proxy_binary_refuses_to_start_on_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.json");
    std::fs::write(&file, b"not json").unwrap();
    let listen = free_addr();
    let mut proc = Gatehouse::spawn([
        "proxy",
        "--config-file",
        file.to_str().unwrap(),
        "--listen",
        &listen.to_string(),
    ])
    .unwrap();
    let exit = proc.wait_exit(STARTUP).await.unwrap();
    assert!(!exit.success());
    assert!(
        proc.log().contains("snapshot.json"),
        "the error names the file: {}",
        proc.log()
    );
}
