//! The real `gatehouse proxy` binary with `--config-redis` and `--redis`: config
//! published by the writer is served, and tokens survive a restart of the process.

use std::time::{Duration, Instant};

use gatehouse_config::publish::Publisher;
use gatehouse_e2e::binary::{free_addr, Gatehouse};
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_e2e::snapshots::stepon_route;
use gatehouse_proxy::config::{
    ClientType, Consumer, OAuth2Client, RouteOAuth2, Snapshot, FORMAT_VERSION,
};
use gatehouse_proxy::store::Digest;
use serde_json::Value;

const PROVISION_KEY: &str = "provision-key-123";

fn mk_snapshot(upstream: &str) -> Snapshot {
    Snapshot {
        format: FORMAT_VERSION,
        revision: "bin-1".into(),
        routes: vec![stepon_route(
            "/stepon",
            upstream.to_owned(),
            RouteOAuth2 {
                scopes: vec!["step_counts".into()],
                provision_key_sha256: Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex()),
                enable_client_credentials: true,
                accept_http_if_already_terminated: true,
                ..RouteOAuth2::default()
            },
        )],
        consumers: vec![Consumer {
            id: "default/shoe-fly-shoe".into(),
            username: Some("shoeflyshoe".into()),
            custom_id: None,
        }],
        clients: vec![OAuth2Client {
            client_id: "sfs".into(),
            secret_sha256: Some(Digest::of(b"sfs-secret").to_hex()),
            name: "Shoe Fly Shoe".into(),
            consumer_id: "default/shoe-fly-shoe".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec!["https://shoeflyshoe.example/cb".into()],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        ..Default::default()
    }
}

fn start_proxy(redis: &RedisServer) -> (Gatehouse, String, String) {
    let (listen, admin) = (free_addr(), free_addr());
    let proxy = Gatehouse::spawn([
        "proxy".to_owned(),
        "--config-redis".to_owned(),
        redis.url(),
        "--redis".to_owned(),
        redis.url(),
        "--listen".to_owned(),
        listen.to_string(),
        "--admin-listen".to_owned(),
        admin.to_string(),
        "--workers".to_owned(),
        "1".to_owned(),
    ])
    .unwrap();
    (proxy, format!("http://{listen}"), format!("http://{admin}"))
}

async fn wait_ready(proxy: &mut Gatehouse, admin: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{admin}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "proxy never became ready; log:\n{}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn client_credentials_token(base: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{base}/stepon/oauth2/token"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sfs"),
            ("client_secret", "sfs-secret"),
            ("scope", "step_counts"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn api_status(base: &str, token: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{base}/stepon/steps"))
        .header("x-forwarded-proto", "https")
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_binary_serves_config_from_redis_and_keeps_tokens_across_restarts() {
    let redis = RedisServer::start().unwrap();
    let upstream = gatehouse_e2e::upstream::TestUpstream::echo().await;
    let target = gatehouse_config::redis::args::RedisArgs::default()
        .target_for(&redis.url())
        .unwrap();
    Publisher::new(&target, "gatehouse:")
        .unwrap()
        .publish(&mk_snapshot(&upstream.url()))
        .await
        .unwrap();

    let (mut proxy, base, admin) = start_proxy(&redis);
    wait_ready(&mut proxy, &admin).await;
    let token = client_credentials_token(&base).await;
    assert_eq!(api_status(&base, &token).await, 200);

    proxy.terminate().unwrap();
    proxy.wait_exit(Duration::from_secs(20)).await.unwrap();
    let (mut again, base, admin) = start_proxy(&redis);
    wait_ready(&mut again, &admin).await;
    assert_eq!(
        api_status(&base, &token).await,
        200,
        "token survived the restart"
    );
}

/// POST a client-credentials token request; status, `Retry-After` and body.
async fn token_attempt(base: &str, secret: &str) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/stepon/oauth2/token"))
        .header("x-forwarded-proto", "https")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "sfs"),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxy_processes_share_one_rate_limit_budget_through_redis() {
    let redis = RedisServer::start().unwrap();
    let upstream = gatehouse_e2e::upstream::TestUpstream::echo().await;
    let mut snapshot = mk_snapshot(&upstream.url());
    let oauth = snapshot.routes[0].oauth2.as_mut().unwrap();
    // Per address: 4 at once, then one per 20 s; per client: off.
    oauth.rate_limits.per_address = Some("3/min:4".into());
    oauth.rate_limits.per_client = Some("off".into());
    let target = gatehouse_proxy::store::args::StoreArgs::default()
        .redis_conn
        .target_for(&redis.url())
        .unwrap();
    Publisher::new(&target, "gatehouse:")
        .unwrap()
        .publish(&snapshot)
        .await
        .unwrap();
    let (mut a, base_a, admin_a) = start_proxy(&redis);
    let (mut b, base_b, admin_b) = start_proxy(&redis);
    wait_ready(&mut a, &admin_a).await;
    wait_ready(&mut b, &admin_b).await;

    // Two from each process (failed authentications count too), then both refuse.
    assert_eq!(token_attempt(&base_a, "sfs-secret").await.0, 200);
    assert_eq!(
        token_attempt(&base_b, "wrong").await.2["error"],
        "invalid_client"
    );
    assert_eq!(token_attempt(&base_b, "sfs-secret").await.0, 200);
    assert_eq!(
        token_attempt(&base_a, "wrong").await.2["error"],
        "invalid_client"
    );
    for base in [&base_a, &base_b] {
        let (status, retry, body) = token_attempt(base, "sfs-secret").await;
        assert_eq!(status, 429, "{body}");
        let secs: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=20).contains(&secs), "Retry-After {secs}");
        assert_eq!(body["error"], "too_many_requests");
    }
    // The refusals and failed authentications are counted.
    let metrics = reqwest::get(format!("{admin_a}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gatehouse_proxy_oauth2_rate_limited_total{limit=\"address\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gatehouse_proxy_oauth2_client_auth_failures_total 1"),
        "{metrics}"
    );
}
