//! The Redis token store against a real `redis-server`: atomicity across replicas
//! (two store instances on one Redis), reuse/replay detection, key hygiene, expiry,
//! outage and recovery, cache invalidation, Cluster and Sentinel.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_config::redis::args::RedisArgs;
use gatehouse_config::redis::conn::{ConnectOptions, Target};
use gatehouse_e2e::redis_server::{RedisCluster, RedisSentinel, RedisServer};
use gatehouse_proxy::store::args::StoreArgs;
use gatehouse_proxy::store::redis::RedisStore;
use gatehouse_proxy::store::{
    AccessToken, AuthorizationCode, CodeRedemption, Digest, Grant, IssuedPair, RefreshToken,
    Rotation, StoreError, TokenStore,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        timeout: Duration::from_secs(1),
        ..Default::default()
    }
}

fn store_on(url: &str) -> RedisStore {
    RedisStore::new(&Target::from_url(url, opts()).unwrap(), "gatehouse:").unwrap()
}

/// Two independent stores (two "replicas") on one server.
fn replicas(redis: &RedisServer) -> (RedisStore, RedisStore) {
    (store_on(&redis.url()), store_on(&redis.url()))
}

/// A fresh access+refresh pair in `family`; returns it with the raw access and
/// refresh values' digests.
fn mk_pair(family: &str, access_ttl: u64) -> IssuedPair {
    // Tokens start with their family's slot tag, as the token endpoint mints them.
    let token = || Digest::of(gatehouse_proxy::secret::random_token_in(family).as_bytes());
    let access_digest = token();
    let refresh_digest = token();
    let t = now();
    let grant = Grant {
        route_id: "default/stepon".into(),
        global: false,
        client_id: "shoe-fly".into(),
        consumer_id: "default/shoe-fly-shoe".into(),
        authenticated_userid: Some("clark".into()),
        scopes: vec!["read_steps".into()],
        issued_at: t,
        expires_at: Some(t + access_ttl),
        family: family.into(),
        audience: Vec::new(),
    };
    IssuedPair {
        access_digest,
        access: AccessToken {
            grant: grant.clone(),
            refresh: Some(refresh_digest),
        },
        refresh: Some((
            refresh_digest,
            RefreshToken {
                grant: Grant {
                    expires_at: Some(t + 1_209_600),
                    ..grant
                },
                access: access_digest,
            },
        )),
    }
}

fn refresh_of(pair: &IssuedPair) -> Digest {
    pair.refresh.as_ref().unwrap().0
}

/// Whether `store` finds the access token of `pair`.
async fn has_access(store: &dyn TokenStore, pair: &IssuedPair) -> bool {
    store
        .access_token(pair.access_digest)
        .await
        .unwrap()
        .is_some()
}

/// Whether `store` finds the refresh token of `pair`.
async fn has_refresh(store: &dyn TokenStore, pair: &IssuedPair) -> bool {
    store
        .refresh_token(refresh_of(pair))
        .await
        .unwrap()
        .is_some()
}

/// The remaining lifetime of `key` in milliseconds (`PTTL`).
fn pttl(redis: &RedisServer, key: &str) -> i64 {
    let reply = redis.command(&["PTTL", key]).unwrap();
    reply.trim_start_matches(':').trim().parse().unwrap()
}

fn mk_code(family: &str) -> AuthorizationCode {
    AuthorizationCode {
        route_id: "default/stepon".into(),
        global: false,
        client_id: "shoe-fly".into(),
        consumer_id: "default/shoe-fly-shoe".into(),
        authenticated_userid: "clark".into(),
        scopes: vec!["read_steps".into()],
        redirect_uri: "https://shoeflyshoe.example/callback".into(),
        redirect_uri_sent: false,
        code_challenge: None,
        expires_at: now() + 60,
        family: family.into(),
        resources: Vec::new(),
    }
}

#[tokio::test]
async fn a_token_issued_through_one_replica_is_found_by_the_other() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let pair = mk_pair("fam-1", 7200);
    a.issue(pair.clone()).await.unwrap();
    let found = b.access_token(pair.access_digest).await.unwrap().unwrap();
    assert_eq!(found, pair.access);
    let refresh = b.refresh_token(refresh_of(&pair)).await.unwrap().unwrap();
    assert_eq!(refresh.access, pair.access_digest);
    assert!(b
        .access_token(Digest::of(b"never issued"))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn keys_hold_only_digests_and_expire_with_the_token() {
    let redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    let raw = gatehouse_proxy::secret::random_token();
    let mut pair = mk_pair("fam-keys", 120);
    pair.access_digest = Digest::of(raw.as_bytes());
    pair.refresh.as_mut().unwrap().1.access = pair.access_digest;
    store.issue(pair.clone()).await.unwrap();
    let code = gatehouse_proxy::secret::random_token();
    store
        .put_code(Digest::of(code.as_bytes()), mk_code("fam-keys"))
        .await
        .unwrap();

    let keys = redis.command(&["KEYS", "*"]).unwrap();
    assert!(keys.contains(&format!("gatehouse:at:{}", pair.access_digest.to_hex())));
    assert!(keys.contains(&format!(
        "gatehouse:code:{}",
        Digest::of(code.as_bytes()).to_hex()
    )));
    let dump = redis.command(&[
        "GET",
        &format!("gatehouse:at:{}", pair.access_digest.to_hex()),
    ]);
    for secret in [&raw, &code] {
        assert!(!keys.contains(secret.as_str()), "raw secret in a key name");
        assert!(
            !dump.as_ref().unwrap().contains(secret.as_str()),
            "raw secret in a value"
        );
    }
    let ttl = pttl(
        &redis,
        &format!("gatehouse:at:{}", pair.access_digest.to_hex()),
    );
    assert!(
        ttl > 0 && ttl <= 120_000,
        "access key TTL follows the token: {ttl}"
    );
    let ttl = pttl(&redis, "gatehouse:fam:fam-keys");
    assert!(
        ttl > 120_000,
        "family lives as long as its longest member: {ttl}"
    );
}

#[tokio::test]
async fn racing_replicas_redeem_a_code_exactly_once() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let (a, b) = (Arc::new(a), Arc::new(b));
    for round in 0..20 {
        let code = Digest::of(format!("code-{round}").as_bytes());
        a.put_code(code, mk_code(&format!("fam-race-{round}")))
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { store.take_code(code).await }));
        }
        let mut redeemed = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                CodeRedemption::Redeemed(_) => redeemed += 1,
                CodeRedemption::Replayed { family } => {
                    assert_eq!(family, format!("fam-race-{round}"))
                }
                CodeRedemption::Unknown => panic!("a redeemed code must read as replayed"),
            }
        }
        assert_eq!(redeemed, 1, "round {round}: exactly one winner");
    }
}

#[tokio::test]
async fn replayed_code_revokes_tokens_issued_from_it() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let code = Digest::of(b"the-code");
    a.put_code(code, mk_code("fam-replay")).await.unwrap();
    let CodeRedemption::Redeemed(record) = a.take_code(code).await.unwrap() else {
        panic!("first take redeems");
    };
    let pair = mk_pair(&record.family, 7200);
    a.issue(pair.clone()).await.unwrap();
    assert!(has_access(&b, &pair).await);

    let replay = b.take_code(code).await.unwrap();
    assert_eq!(
        replay,
        CodeRedemption::Replayed {
            family: "fam-replay".into()
        }
    );
    assert!(!has_access(&a, &pair).await);
    assert!(!has_refresh(&a, &pair).await);
}

#[tokio::test]
async fn tokens_issued_after_their_code_was_replayed_are_dead_on_arrival() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let code = Digest::of(b"slow-code");
    a.put_code(code, mk_code("fam-slow")).await.unwrap();
    assert!(matches!(
        a.take_code(code).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    // The replay lands before the winner has stored its tokens.
    assert!(matches!(
        b.take_code(code).await.unwrap(),
        CodeRedemption::Replayed { .. }
    ));
    let pair = mk_pair("fam-slow", 7200);
    a.issue(pair.clone()).await.unwrap();
    assert!(!has_access(&b, &pair).await);
}

#[tokio::test]
async fn unknown_codes_are_unknown() {
    let redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    assert_eq!(
        store.take_code(Digest::of(b"nope")).await.unwrap(),
        CodeRedemption::Unknown
    );
}

#[tokio::test]
async fn rotation_retires_the_old_pair_in_the_step_the_new_one_is_born() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let first = mk_pair("fam-rot", 7200);
    a.issue(first.clone()).await.unwrap();
    let second = mk_pair("fam-rot", 7200);
    assert_eq!(
        b.rotate(refresh_of(&first), second.clone()).await.unwrap(),
        Rotation::Rotated
    );
    assert!(!has_access(&a, &first).await);
    assert!(!has_refresh(&a, &first).await);
    assert!(has_access(&a, &second).await);
    assert!(has_refresh(&a, &second).await);
    // The tombstone keeps the old refresh token's remaining lifetime.
    let tomb = pttl(
        &redis,
        &format!("gatehouse:rt-used:{}", refresh_of(&first).to_hex()),
    );
    assert!(tomb > 1_209_000_000, "tombstone TTL {tomb}");
    assert_eq!(
        a.rotate(Digest::of(b"never issued"), mk_pair("fam-x", 10))
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_on_another_replica_revokes_the_family() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let first = mk_pair("fam-reuse", 7200);
    a.issue(first.clone()).await.unwrap();
    let second = mk_pair("fam-reuse", 7200);
    assert_eq!(
        a.rotate(refresh_of(&first), second.clone()).await.unwrap(),
        Rotation::Rotated
    );
    // An attacker replays the stolen first refresh token on replica B.
    let third = mk_pair("fam-reuse", 7200);
    assert_eq!(
        b.rotate(refresh_of(&first), third.clone()).await.unwrap(),
        Rotation::Reused {
            family: "fam-reuse".into()
        }
    );
    for store in [&a, &b] {
        assert!(!has_access(store, &second).await);
        assert!(!has_refresh(store, &second).await);
        assert!(!has_access(store, &third).await);
    }
    // The legitimate holder's next refresh fails too.
    assert_eq!(
        a.rotate(refresh_of(&second), mk_pair("fam-reuse", 7200))
            .await
            .unwrap(),
        Rotation::Unknown
    );
}

#[tokio::test]
async fn racing_rotations_of_one_refresh_token_leave_one_winner_and_revoke_the_family() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let first = mk_pair("fam-race-rot", 7200);
    a.issue(first.clone()).await.unwrap();
    let old = refresh_of(&first);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let next = mk_pair("fam-race-rot", 7200);
        tasks.push(tokio::spawn(async move { store.rotate(old, next).await }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Rotation::Rotated => rotated += 1,
            Rotation::Reused { .. } => {}
            Rotation::Unknown => panic!("a rotated token must read as reused"),
        }
    }
    assert_eq!(rotated, 1);
    let members = redis
        .command(&["SCARD", "gatehouse:fam:fam-race-rot"])
        .unwrap();
    assert_eq!(members.trim(), ":0", "reuse revoked every member");
}

#[tokio::test]
async fn revoking_either_token_of_a_pair_kills_both() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let p1 = mk_pair("fam-rev", 7200);
    let p2 = mk_pair("fam-rev", 7200);
    a.issue(p1.clone()).await.unwrap();
    a.issue(p2.clone()).await.unwrap();

    assert!(b.revoke(p1.access_digest).await.unwrap());
    assert!(!has_refresh(&a, &p1).await);
    assert!(b.revoke(refresh_of(&p2)).await.unwrap());
    assert!(!has_access(&a, &p2).await);
    assert!(!b.revoke(p1.access_digest).await.unwrap(), "already gone");
}

#[tokio::test]
async fn revoking_a_family_kills_every_member() {
    let redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    let pairs: Vec<_> = (0..3).map(|_| mk_pair("fam-all", 7200)).collect();
    for p in &pairs {
        store.issue(p.clone()).await.unwrap();
    }
    let other = mk_pair("fam-other", 7200);
    store.issue(other.clone()).await.unwrap();
    store.revoke_family("fam-all").await.unwrap();
    for p in &pairs {
        assert!(!has_access(&store, p).await);
    }
    assert!(has_access(&store, &other).await);
}

#[tokio::test]
async fn never_expiring_tokens_have_no_ttl() {
    let redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    let mut pair = mk_pair("fam-forever", 0);
    pair.access.grant.expires_at = None;
    pair.refresh = None;
    pair.access.refresh = None;
    store.issue(pair.clone()).await.unwrap();
    let key = format!("gatehouse:at:{}", pair.access_digest.to_hex());
    assert_eq!(redis.command(&["PTTL", &key]).unwrap().trim(), ":-1");
    assert!(has_access(&store, &pair).await);
}

#[tokio::test]
async fn a_dead_redis_is_reported_unavailable_and_the_store_recovers_by_itself() {
    let mut redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    let pair = mk_pair("fam-outage", 7200);
    store.issue(pair.clone()).await.unwrap();
    store.ping().await.unwrap();

    redis.kill();
    let err = store.access_token(pair.access_digest).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));

    redis.restart().unwrap();
    // The connection manager reconnects in the background; poll instead of sleeping.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.access_token(pair.access_digest).await {
            Ok(found) => {
                assert_eq!(found.unwrap(), pair.access, "AOF kept the token");
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("store did not recover: {e}"),
        }
    }
    store.ping().await.unwrap();
}

#[tokio::test]
async fn a_hung_redis_fails_requests_after_the_timeout_instead_of_hanging() {
    let redis = RedisServer::start().unwrap();
    let short = ConnectOptions {
        timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let store = RedisStore::new(
        &Target::from_url(&redis.url(), short).unwrap(),
        "gatehouse:",
    )
    .unwrap();
    store.ping().await.unwrap();
    // DEBUG SLEEP blocks the whole server, like a hung Redis.
    let addr = redis.addr();
    let hang = std::thread::spawn(move || {
        gatehouse_e2e::redis_server::raw_command(addr, &["DEBUG", "SLEEP", "0.8"])
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = store.access_token(Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)));
    let _ = hang.join();
}

fn cached_args(url: &str, ttl: Duration) -> StoreArgs {
    StoreArgs {
        redis: Some(url.to_owned()),
        token_cache_ttl: ttl,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_revocation_on_one_replica_reaches_the_other_replicas_cache_at_once() {
    let redis = RedisServer::start().unwrap();
    // A long cache TTL: only the invalidation message can make A forget the token.
    let a = cached_args(&redis.url(), Duration::from_secs(300))
        .build()
        .await
        .unwrap();
    let b = cached_args(&redis.url(), Duration::from_secs(300))
        .build()
        .await
        .unwrap();
    let pairs: Vec<_> = (0..3).map(|_| mk_pair("fam-inv", 7200)).collect();
    for p in &pairs {
        b.issue(p.clone()).await.unwrap();
    }
    // Let A subscribe, then warm its cache.
    wait_subscribed(&redis, 2).await;
    for p in &pairs {
        assert!(has_access(&*a, p).await);
    }

    // Single revocation, rotation and family revocation all reach A.
    b.revoke(pairs[0].access_digest).await.unwrap();
    b.rotate(refresh_of(&pairs[1]), mk_pair("fam-inv", 7200))
        .await
        .unwrap();
    eventually_gone(&*a, pairs[0].access_digest).await;
    eventually_gone(&*a, pairs[1].access_digest).await;
    assert!(a
        .access_token(pairs[2].access_digest)
        .await
        .unwrap()
        .is_some());
    b.revoke_family("fam-inv").await.unwrap();
    eventually_gone(&*a, pairs[2].access_digest).await;
}

#[tokio::test]
async fn cached_tokens_are_answered_without_redis_within_the_staleness_bound_only() {
    let mut redis = RedisServer::start().unwrap();
    let store = cached_args(&redis.url(), Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let pair = mk_pair("fam-cache", 7200);
    store.issue(pair.clone()).await.unwrap();
    assert!(has_access(&*store, &pair).await);
    redis.kill();
    // Right after Redis died the cached answer may still be used (that is the point
    // of the cache)... but after the staleness bound it must not be.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(
        store.access_token(pair.access_digest).await,
        Err(StoreError::Unavailable(_))
    ));
}

/// Wait until `n` clients are subscribed to the invalidation channel.
async fn wait_subscribed(redis: &RedisServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = redis
            .command(&["PUBSUB", "NUMSUB", "gatehouse:invalidate"])
            .unwrap();
        if reply.trim_end().ends_with(&format!(":{n}")) {
            return;
        }
        assert!(Instant::now() < deadline, "subscribers: {reply:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn eventually_gone(store: &dyn TokenStore, token: Digest) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.access_token(token).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "invalidation never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_store_works_on_a_three_master_cluster() {
    let cluster = RedisCluster::start(3).unwrap();
    let args = StoreArgs {
        redis_cluster: cluster.seed_urls(),
        ..Default::default()
    };
    let a = args.build().await.unwrap();
    let b = args.build().await.unwrap();
    let family = gatehouse_proxy::secret::random_token();
    let code = Digest::of(gatehouse_proxy::secret::random_token_in(&family).as_bytes());
    a.put_code(code, mk_code(&family)).await.unwrap();
    assert!(matches!(
        b.take_code(code).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    let first = mk_pair(&family, 7200);
    a.issue(first.clone()).await.unwrap();
    assert!(has_access(&*b, &first).await);
    let second = mk_pair(&family, 7200);
    assert_eq!(
        b.rotate(refresh_of(&first), second.clone()).await.unwrap(),
        Rotation::Rotated
    );
    assert!(matches!(
        a.rotate(refresh_of(&first), mk_pair(&family, 60))
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(matches!(
        a.take_code(code).await.unwrap(),
        CodeRedemption::Replayed { .. }
    ));
    eventually_gone(&*b, second.access_digest).await;
    a.ping().await.unwrap();

    // Revoking one token takes its partner, in the family's slot.
    let third = mk_pair(&gatehouse_proxy::secret::random_token(), 7200);
    a.issue(third.clone()).await.unwrap();
    assert!(b.revoke(refresh_of(&third)).await.unwrap());
    eventually_gone(&*a, third.access_digest).await;
    assert!(!has_refresh(&*a, &third).await);

    // A token that does not carry its family's tag would be written where nobody
    // looks it up: refused. Values Gatehouse never issued are unknown without a
    // round trip (their keys would not even share a slot).
    let mut stray = mk_pair(&family, 60);
    stray.access_digest = Digest::of(b"zzz-not-in-the-family");
    assert!(matches!(a.issue(stray).await, Err(StoreError::Corrupt(_))));
    let odd = Digest::of(b"}{ not a token");
    assert_eq!(a.access_token(odd).await.unwrap(), None);
    assert!(!a.revoke(odd).await.unwrap());
    assert_eq!(
        a.rotate(odd, mk_pair(&family, 60)).await.unwrap(),
        Rotation::Unknown
    );
    assert_eq!(a.take_code(odd).await.unwrap(), CodeRedemption::Unknown);
}

/// Each master's key count (`DBSIZE`).
fn key_counts(cluster: &RedisCluster) -> Vec<u64> {
    cluster
        .nodes()
        .iter()
        .map(|n| {
            let reply = n.command(&["DBSIZE"]).unwrap();
            reply.trim_start_matches(':').trim().parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn token_families_spread_over_every_cluster_master_and_each_family_stays_in_one_slot() {
    let cluster = RedisCluster::start(3).unwrap();
    let store = StoreArgs {
        redis_cluster: cluster.seed_urls(),
        ..Default::default()
    }
    .build()
    .await
    .unwrap();
    const FAMILIES: u64 = 300;
    let mut pairs = Vec::new();
    for _ in 0..FAMILIES {
        let pair = mk_pair(&gatehouse_proxy::secret::random_token(), 7200);
        store.issue(pair.clone()).await.unwrap();
        pairs.push(pair);
    }
    // Three keys per family (access, refresh, family set), all in the family's slot.
    let counts = key_counts(&cluster);
    assert_eq!(counts.iter().sum::<u64>(), 3 * FAMILIES, "{counts:?}");
    for &n in &counts {
        // One slot for everything (the old `{gatehouse}` tag) would put all 900 on one
        // master; an even spread is 300 each.
        assert!((150..=450).contains(&n), "uneven spread: {counts:?}");
        assert_eq!(n % 3, 0, "a family split across masters: {counts:?}");
    }
    let keys = gatehouse_proxy::store::redis::keys::Keys::new("gatehouse:", true);
    let slot_of = |key: String| {
        cluster.nodes()[0]
            .command(&["CLUSTER", "KEYSLOT", &key])
            .unwrap()
    };
    let mut slots = std::collections::HashSet::new();
    for pair in &pairs {
        assert!(has_access(&*store, pair).await);
        assert!(has_refresh(&*store, pair).await);
        let slot = slot_of(keys.access(&pair.access_digest));
        assert_eq!(slot_of(keys.refresh(&refresh_of(pair))), slot);
        assert_eq!(slot_of(keys.family(&pair.access.family)), slot);
        slots.insert(slot);
    }
    assert!(
        slots.len() > 250,
        "families share few slots: {}",
        slots.len()
    );
    // A family's revocation (code replay, refresh reuse) is one atomic script.
    store.revoke_family(&pairs[0].access.family).await.unwrap();
    assert!(!has_access(&*store, &pairs[0]).await);
    assert!(!has_refresh(&*store, &pairs[0]).await);
    assert!(has_access(&*store, &pairs[1]).await);
}

#[tokio::test]
async fn the_store_follows_a_sentinel_failover_when_the_master_dies() {
    let mut master = RedisServer::start().unwrap();
    let replica =
        RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port().to_string()]).unwrap();
    let sentinel = RedisSentinel::start(&master, "gh", &[&replica]).unwrap();
    let store = StoreArgs {
        redis: Some(sentinel.url()),
        ..Default::default()
    }
    .build()
    .await
    .unwrap();
    let pair = mk_pair("fam-sentinel", 7200);
    store.issue(pair.clone()).await.unwrap();

    // Wait until the replica has the data.
    let key = format!("gatehouse:at:{}", pair.access_digest.to_hex());
    let deadline = Instant::now() + Duration::from_secs(20);
    while replica
        .command(&["EXISTS", &key])
        .unwrap_or_default()
        .trim()
        != ":1"
    {
        assert!(Instant::now() < deadline, "replica never synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The master crashes; the sentinel promotes the replica.
    master.kill();
    assert!(matches!(
        store.access_token(pair.access_digest).await,
        Err(StoreError::Unavailable(_))
    ));
    // Generous: a sentinel whose timer was starved (a loaded CI machine) enters TILT
    // mode for 30 s and refuses to act until it leaves it.
    let deadline = Instant::now() + Duration::from_secs(90);
    while sentinel.master_port().unwrap() != replica.port() {
        assert!(Instant::now() < deadline, "failover did not happen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The store asks the sentinel again and carries on with the new master.
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = mk_pair("fam-sentinel", 7200);
    loop {
        match store.issue(next.clone()).await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("store did not follow the failover: {e}"),
        }
    }
    let on_new_master = replica
        .command(&[
            "EXISTS",
            &format!("gatehouse:at:{}", next.access_digest.to_hex()),
        ])
        .unwrap();
    assert_eq!(on_new_master.trim(), ":1");
    assert!(has_access(&*store, &pair).await);
}

/// A throw-away CA (`ca.pem`) and a server certificate for 127.0.0.1
/// (`server.pem`, `server.key`) signed by it.
fn make_certs(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
}

#[tokio::test]
async fn the_store_speaks_tls_to_rediss_urls_with_a_custom_ca() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = gatehouse_e2e::redis_server::free_loopback_port().unwrap();
    let path = |f: &str| certs.path().join(f).display().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ])
    .unwrap();
    let args = StoreArgs {
        redis: Some(format!("rediss://127.0.0.1:{tls_port}")),
        redis_conn: RedisArgs {
            redis_ca_file: Some(certs.path().join("ca.pem")),
            ..Default::default()
        },
        ..Default::default()
    };
    let store = args.build().await.unwrap();
    let pair = mk_pair("fam-tls", 7200);
    store.issue(pair.clone()).await.unwrap();
    assert!(has_access(&*store, &pair).await);
    // The record really went through the TLS listener into this server.
    let key = format!("gatehouse:at:{}", pair.access_digest.to_hex());
    assert_eq!(redis.command(&["EXISTS", &key]).unwrap().trim(), ":1");

    // Without the CA the server certificate is not trusted: unavailable, not insecure.
    let untrusted = StoreArgs {
        redis: Some(format!("rediss://127.0.0.1:{tls_port}")),
        ..Default::default()
    }
    .build()
    .await
    .unwrap();
    assert!(matches!(
        untrusted.ping().await,
        Err(StoreError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_store_built_while_redis_is_down_starts_and_works_once_redis_appears() {
    let mut redis = RedisServer::start().unwrap();
    redis.kill();
    let store = cached_args(&redis.url(), Duration::from_secs(1))
        .build()
        .await
        .expect("start-up does not need Redis");
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "store never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pair = mk_pair("fam-late", 7200);
    store.issue(pair.clone()).await.unwrap();
    assert!(has_access(&*store, &pair).await);
}

#[tokio::test]
async fn rate_limit_budgets_are_shared_by_replicas_and_refill_at_the_quota_rate() {
    let redis = RedisServer::start().unwrap();
    let (a, b) = replicas(&redis);
    let quota: gatehouse_proxy::ratelimit::Quota = "10/s:3".parse().unwrap();
    use gatehouse_proxy::ratelimit::Decision;
    // Three at once across both replicas, then the fourth is refused on either.
    assert_eq!(
        a.rate_hit("addr:10.0.0.1", &quota).await.unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        b.rate_hit("addr:10.0.0.1", &quota).await.unwrap(),
        Decision::Allowed
    );
    assert_eq!(
        a.rate_hit("addr:10.0.0.1", &quota).await.unwrap(),
        Decision::Allowed
    );
    let refused = b.rate_hit("addr:10.0.0.1", &quota).await.unwrap();
    let Decision::Limited { retry_after } = refused else {
        panic!("fourth request passed: {refused:?}");
    };
    assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}");
    // Another key has its own budget.
    assert_eq!(
        a.rate_hit("addr:10.0.0.2", &quota).await.unwrap(),
        Decision::Allowed
    );
    // After the advertised delay, one more passes.
    tokio::time::sleep(retry_after + Duration::from_millis(20)).await;
    assert_eq!(
        a.rate_hit("addr:10.0.0.1", &quota).await.unwrap(),
        Decision::Allowed
    );
    // The budget key expires on its own once the bucket is full again.
    let ttl = pttl(&redis, "gatehouse:rl:addr:10.0.0.1");
    assert!((1..=400).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn a_rate_limit_check_against_a_dead_redis_fails_closed() {
    let mut redis = RedisServer::start().unwrap();
    let store = store_on(&redis.url());
    redis.kill();
    let quota: gatehouse_proxy::ratelimit::Quota = "10/s".parse().unwrap();
    assert!(matches!(
        store.rate_hit("addr:10.0.0.1", &quota).await,
        Err(StoreError::Unavailable(_))
    ));
}
