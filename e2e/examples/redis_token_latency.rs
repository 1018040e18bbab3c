//! Median latency of one access-token check through the store: answered by the local
//! cache vs. a Redis round trip (loopback `redis-server`, spawned here).
//!
//! `cargo run --release -p gatehouse-e2e --example redis_token_latency`

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_proxy::store::args::StoreArgs;
use gatehouse_proxy::store::{AccessToken, Digest, Grant, IssuedPair, TokenStore};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() - 1) as f64 * p) as usize]
}

async fn measure(store: &dyn TokenStore, token: Digest, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let found = store.access_token(token).await.expect("store up");
        samples.push(t.elapsed());
        assert!(found.is_some());
    }
    samples
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let redis = RedisServer::start()?;
        let cached = StoreArgs {
            redis: Some(redis.url()),
            // Long enough that every measured lookup after the first is a hit.
            token_cache_ttl: Duration::from_secs(3600),
            ..Default::default()
        }
        .build()
        .await?;
        let uncached = StoreArgs {
            redis: Some(redis.url()),
            token_cache_ttl: Duration::ZERO,
            ..Default::default()
        }
        .build()
        .await?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let digest = Digest::of(b"benchmark-token");
        cached
            .issue(IssuedPair {
                access_digest: digest,
                access: AccessToken {
                    grant: Grant {
                        route_id: "default/stepon".into(),
                        global: false,
                        client_id: "c".into(),
                        consumer_id: "default/c".into(),
                        authenticated_userid: Some("clark".into()),
                        scopes: vec!["step_counts".into()],
                        issued_at: now,
                        expires_at: Some(now + 7200),
                        family: "bench".into(),
                        audience: Vec::new(),
                    },
                    refresh: None,
                },
                refresh: None,
            })
            .await?;
        // Warm up both paths (connection, script cache, allocator).
        measure(&*cached, digest, 1_000).await;
        measure(&*uncached, digest, 1_000).await;
        for round in 1..=3 {
            let mut hit = measure(&*cached, digest, 100_000).await;
            let mut miss = measure(&*uncached, digest, 10_000).await;
            println!(
                "round {round}: cache hit median {:?} p99 {:?} | redis round trip median {:?} p99 {:?}",
                percentile(&mut hit, 0.5),
                percentile(&mut hit, 0.99),
                percentile(&mut miss, 0.5),
                percentile(&mut miss, 0.99),
            );
        }
        anyhow::Ok(())
    })
}
