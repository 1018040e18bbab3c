//! Several in-process proxies (`server::spawn`) sharing one real `redis-server`
//! behave as one: tokens, codes, revocations and config are shared; Redis outages
//! give 503 and heal without restarting the proxies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::follow::spawn_follow;
use gatehouse_config::publish::Publisher;
use gatehouse_e2e::redis_server::{RedisCluster, RedisServer};
use gatehouse_e2e::snapshots::stepon_route;
use gatehouse_e2e::upstream::{full, TestUpstream};
use gatehouse_proxy::config::{
    ClientType, Consumer, OAuth2Client, RateLimits, RouteOAuth2, Snapshot, FORMAT_VERSION,
};
use gatehouse_proxy::server::{self, ServerArgs, ServerHandle};
use gatehouse_proxy::source::{channel, ConfigTx};
use gatehouse_proxy::store::args::StoreArgs;
use gatehouse_proxy::store::{Digest, TokenStore};
use serde_json::Value;

const PROVISION_KEY: &str = "provision-key-123";
const CLIENT: &str = "shoe-fly-shoe";
const SECRET: &str = "sfs-secret";
const CALLBACK: &str = "https://shoeflyshoe.example/callback";

/// A tiny upstream that greets the authenticated user.
async fn start_upstream() -> TestUpstream {
    TestUpstream::start(|req| async move {
        let user = req
            .headers()
            .get("x-authenticated-userid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nobody")
            .to_owned();
        http::Response::new(full(format!("steps for {user}")))
    })
    .await
}

fn mk_snapshot(upstream: SocketAddr, revision: &str, path: &str) -> Snapshot {
    Snapshot {
        format: FORMAT_VERSION,
        revision: revision.into(),
        routes: vec![stepon_route(
            path,
            format!("http://{upstream}"),
            RouteOAuth2 {
                scopes: vec!["step_counts".into()],
                provision_key_sha256: Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex()),
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
            client_id: CLIENT.into(),
            secret_sha256: Some(Digest::of(SECRET.as_bytes()).to_hex()),
            name: "Shoe Fly Shoe".into(),
            consumer_id: "default/shoe-fly-shoe".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec![CALLBACK.into()],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        ..Default::default()
    }
}

fn store_args(redis: &RedisServer, cache_ttl: Duration) -> StoreArgs {
    StoreArgs {
        redis: Some(redis.url()),
        token_cache_ttl: cache_ttl,
        ..Default::default()
    }
}

/// One proxy replica with its own store (and cache) on the shared Redis.
struct Replica {
    handle: Option<ServerHandle>,
    base: String,
    admin: String,
    _config: ConfigTx,
}

impl Replica {
    async fn start(args: &StoreArgs, snapshot: Snapshot) -> Replica {
        let (tx, rx) = channel();
        tx.send_replace(Some(Arc::new(snapshot)));
        Self::start_with(args, tx, rx).await
    }

    async fn start_with(
        args: &StoreArgs,
        tx: ConfigTx,
        rx: gatehouse_proxy::source::ConfigRx,
    ) -> Replica {
        let store: Arc<dyn TokenStore> = args.build().await.unwrap();
        let server_args = ServerArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            admin_listen: Some("127.0.0.1:0".parse().unwrap()),
            workers: Some(1),
            shutdown_grace: 1,
            ..ServerArgs::default()
        };
        let handle = server::spawn(&server_args, rx, store).unwrap();
        let base = format!("http://{}", handle.http_addr);
        let admin = format!("http://{}", handle.admin_addr.unwrap());
        Replica {
            handle: Some(handle),
            base,
            admin,
            _config: tx,
        }
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(base: &str, endpoint: &str, form: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{base}/stepon/oauth2/{endpoint}"))
        .header("x-forwarded-proto", "https")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// The login app asks for a code for clark.
async fn authorize(base: &str) -> String {
    let (status, body) = post(
        base,
        "authorize",
        &format!(
            "response_type=code&client_id={CLIENT}&provision_key={PROVISION_KEY}\
             &authenticated_userid=clark&scope=step_counts"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let uri = url::Url::parse(body["redirect_uri"].as_str().unwrap()).unwrap();
    uri.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn redeem(base: &str, code: &str) -> (u16, Value) {
    post(
        base,
        "token",
        &format!(
            "grant_type=authorization_code&code={code}&client_id={CLIENT}\
             &client_secret={SECRET}&redirect_uri={}",
            url::form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
        ),
    )
    .await
}

/// A fresh access/refresh pair via `base`.
async fn tokens(base: &str) -> (String, String) {
    let code = authorize(base).await;
    let (status, body) = redeem(base, &code).await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn refresh(base: &str, refresh_token: &str) -> (u16, Value) {
    post(
        base,
        "token",
        &format!(
            "grant_type=refresh_token&refresh_token={refresh_token}\
             &client_id={CLIENT}&client_secret={SECRET}"
        ),
    )
    .await
}

/// Call the protected API; returns status and body.
async fn api(base: &str, token: &str) -> (u16, String) {
    let resp = http()
        .get(format!("{base}/stepon/steps"))
        .header("x-forwarded-proto", "https")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn ready(admin: &str) -> u16 {
    http()
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A Redis, the upstream, and replicas A and B serving route `/stepon` from them, each
/// with a token cache of `cache_ttl`.
async fn two_replicas(cache_ttl: Duration) -> (RedisServer, TestUpstream, Replica, Replica) {
    let redis = RedisServer::start().unwrap();
    let upstream = start_upstream().await;
    let args = store_args(&redis, cache_ttl);
    let a = Replica::start(&args, mk_snapshot(upstream.addr, "r1", "/stepon")).await;
    let b = Replica::start(&args, mk_snapshot(upstream.addr, "r1", "/stepon")).await;
    (redis, upstream, a, b)
}

/// The same on a three-master Redis Cluster.
async fn two_replicas_on_a_cluster(
    cache_ttl: Duration,
) -> (RedisCluster, TestUpstream, Replica, Replica) {
    let cluster = RedisCluster::start(3).unwrap();
    let upstream = start_upstream().await;
    let args = StoreArgs {
        redis_cluster: cluster.seed_urls(),
        token_cache_ttl: cache_ttl,
        ..Default::default()
    };
    // Enough flows to show the spread, faster than the default token-endpoint quota.
    let mut snapshot = mk_snapshot(upstream.addr, "r1", "/stepon");
    snapshot.routes[0].oauth2.as_mut().unwrap().rate_limits = RateLimits {
        per_address: Some("off".into()),
        per_client: Some("off".into()),
    };
    let a = Replica::start(&args, snapshot.clone()).await;
    let b = Replica::start(&args, snapshot).await;
    (cluster, upstream, a, b)
}

/// Poll `f` until it returns true, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_issued_by_one_replica_works_on_the_other() {
    let (_redis, _upstream, a, b) = two_replicas(Duration::from_secs(1)).await;
    shares_tokens(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn shares_tokens(a: &Replica, b: &Replica) {
    let (access, _) = tokens(&a.base).await;
    assert_eq!(api(&b.base, &access).await, (200, "steps for clark".into()));
    assert_eq!(api(&a.base, &access).await.0, 200);
    assert_eq!(api(&b.base, "not-a-token").await.0, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_on_one_replica_is_rejected_by_the_other_without_waiting_for_its_cache() {
    // A cache TTL far longer than the test: only the invalidation message can make
    // replica A reject the token in time.
    let (_redis, _upstream, a, b) = two_replicas(Duration::from_secs(600)).await;
    revocation_reaches_the_other_cache(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn revocation_reaches_the_other_cache(a: &Replica, b: &Replica) {
    let (access, _) = tokens(&a.base).await;
    assert_eq!(api(&a.base, &access).await.0, 200, "A has it cached now");

    let (status, body) = post(
        &b.base,
        "revoke",
        &format!("token={access}&client_id={CLIENT}&client_secret={SECRET}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(api(&b.base, &access).await.0, 401, "B rejects at once");
    eventually(
        Duration::from_secs(10),
        "A rejects the revoked token",
        || async { api(&a.base, &access).await.0 == 401 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_redemptions_of_one_code_on_two_replicas_give_exactly_one_token() {
    let (_redis, _upstream, a, b) = two_replicas(Duration::from_secs(1)).await;
    racing_redemptions(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn racing_redemptions(a: &Replica, b: &Replica) {
    for _ in 0..5 {
        let code = authorize(&a.base).await;
        let mut racers = Vec::new();
        for i in 0..6 {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let code = code.clone();
            racers.push(tokio::spawn(async move { redeem(&base, &code).await }));
        }
        let mut winners = Vec::new();
        for r in racers {
            let (status, body) = r.await.unwrap();
            match status {
                200 => winners.push(body["access_token"].as_str().unwrap().to_owned()),
                400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
                other => panic!("unexpected {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one winner");
        // The losers replayed the code, which revokes what the winner got.
        assert_eq!(api(&b.base, &winners[0]).await.0, 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_rotated_refresh_token_on_another_replica_revokes_the_family() {
    let (_redis, _upstream, a, b) = two_replicas(Duration::from_secs(600)).await;
    refresh_reuse_revokes_the_family(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

async fn refresh_reuse_revokes_the_family(a: &Replica, b: &Replica) {
    let (access1, refresh1) = tokens(&a.base).await;

    let (status, body) = refresh(&a.base, &refresh1).await;
    assert_eq!(status, 200, "{body}");
    let access2 = body["access_token"].as_str().unwrap().to_owned();
    let refresh2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(api(&b.base, &access1).await.0, 401, "rotated away");
    assert_eq!(
        api(&a.base, &access2).await.0,
        200,
        "A caches the new token"
    );

    // The stolen first refresh token is replayed on B.
    let (status, body) = refresh(&b.base, &refresh1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    eventually(Duration::from_secs(10), "A drops the family", || async {
        api(&a.base, &access2).await.0 == 401
    })
    .await;
    let (status, _) = refresh(&a.base, &refresh2).await;
    assert_eq!(
        status, 400,
        "the legitimate refresh token died with its family"
    );
}

/// Every cross-replica guarantee above, on a Redis Cluster whose token families
/// spread over its three masters (`store::slot`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_replicas_share_tokens_revocations_codes_and_reuse_detection() {
    let (cluster, _upstream, a, b) = two_replicas_on_a_cluster(Duration::from_secs(600)).await;
    shares_tokens(&a, &b).await;
    revocation_reaches_the_other_cache(&a, &b).await;
    racing_redemptions(&a, &b).await;
    refresh_reuse_revokes_the_family(&a, &b).await;
    // The flows' families landed on more than one master.
    for _ in 0..30 {
        tokens(&b.base).await;
    }
    let holding = cluster
        .nodes()
        .iter()
        .filter(|n| n.command(&["DBSIZE"]).unwrap().trim() != ":0")
        .count();
    assert_eq!(holding, 3, "token keys on {holding} of 3 masters");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_proxy_keeps_every_issued_token() {
    let redis = RedisServer::start().unwrap();
    let upstream = start_upstream().await;
    let up = upstream.addr;
    let args = store_args(&redis, Duration::from_secs(1));
    let a = Replica::start(&args, mk_snapshot(up, "r1", "/stepon")).await;
    let (access, refresh_token) = tokens(&a.base).await;
    a.stop().await;

    let again = Replica::start(&args, mk_snapshot(up, "r1", "/stepon")).await;
    assert_eq!(api(&again.base, &access).await.0, 200);
    assert_eq!(refresh(&again.base, &refresh_token).await.0, 200);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_gives_503_and_the_proxy_recovers_without_restart() {
    let mut redis = RedisServer::start().unwrap();
    let upstream = start_upstream().await;
    let up = upstream.addr;
    // No local cache: every check needs Redis, so the outage shows at once.
    let args = store_args(&redis, Duration::ZERO);
    let a = Replica::start(&args, mk_snapshot(up, "r1", "/stepon")).await;
    let (access, _) = tokens(&a.base).await;
    assert_eq!(api(&a.base, &access).await.0, 200);
    assert_eq!(ready(&a.admin).await, 200);

    redis.kill();
    let resp = http()
        .get(format!("{}/stepon/steps", a.base))
        .header("x-forwarded-proto", "https")
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(
        api(&a.base, "unknown-token").await.0,
        503,
        "never 401/200 unverified"
    );
    let (status, body) = post(
        &a.base,
        "token",
        &format!("grant_type=authorization_code&code=x&client_id={CLIENT}&client_secret={SECRET}"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("temporarily_unavailable"))
    );
    assert_eq!(ready(&a.admin).await, 503);

    redis.restart().unwrap();
    eventually(
        Duration::from_secs(20),
        "the proxy serves again",
        || async { api(&a.base, &access).await.0 == 200 },
    )
    .await;
    assert_eq!(ready(&a.admin).await, 200);
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_published_by_the_writer_reaches_a_running_proxy() {
    let redis = RedisServer::start().unwrap();
    let upstream = start_upstream().await;
    let up = upstream.addr;
    let args = store_args(&redis, Duration::from_secs(1));
    let target = args.redis_conn.target_for(&redis.url()).unwrap();
    let (tx, rx) = channel();
    let follower = spawn_follow(
        target.clone(),
        args.redis_conn.redis_prefix.clone(),
        tx.clone(),
    );
    let proxy = Replica::start_with(&args, tx, rx).await;
    assert_eq!(ready(&proxy.admin).await, 503, "no config yet");

    let mut publisher = Publisher::new(&target, &args.redis_conn.redis_prefix).unwrap();
    publisher
        .publish(&mk_snapshot(up, "v1", "/stepon"))
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "v1 is served", || async {
        ready(&proxy.admin).await == 200
    })
    .await;
    let (access, _) = tokens(&proxy.base).await;
    assert_eq!(api(&proxy.base, &access).await.0, 200);

    // Move the route: the old path stops matching, the new one works.
    publisher
        .publish(&mk_snapshot(up, "v2", "/steps-v2"))
        .await
        .unwrap();
    let base = proxy.base.clone();
    let access2 = access.clone();
    eventually(Duration::from_secs(10), "v2 is served", move || {
        let (base, access) = (base.clone(), access2.clone());
        async move {
            let resp = http()
                .get(format!("{base}/steps-v2/x"))
                .header("x-forwarded-proto", "https")
                .bearer_auth(&access)
                .send()
                .await
                .unwrap();
            resp.status().as_u16() == 200
        }
    })
    .await;
    follower.abort();
    proxy.stop().await;
}
