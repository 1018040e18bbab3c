//! Config distribution through a real `redis-server`: the controller-side writer and
//! the proxy-side follower.

use std::time::Duration;

use gatehouse_config::follow::spawn_follow;
use gatehouse_config::publish::{Publication, Publisher};
use gatehouse_config::redis::conn::{ConnectOptions, Target};
use gatehouse_e2e::redis_server::RedisServer;
use gatehouse_proxy::source::{channel, ConfigRx};
use gatehouse_proxy::Snapshot;

fn snapshot(revision: &str) -> Snapshot {
    Snapshot {
        format: gatehouse_proxy::config::FORMAT_VERSION,
        revision: revision.into(),
        ..Snapshot::default()
    }
}

fn target(redis: &RedisServer) -> Target {
    Target::from_url(
        &redis.url(),
        ConnectOptions {
            timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Wait (bounded) until the channel holds `revision`.
async fn wait_for(rx: &mut ConfigRx, revision: &str) {
    let wait = async {
        loop {
            if rx.borrow_and_update().as_ref().map(|s| s.revision.as_str()) == Some(revision) {
                return;
            }
            rx.changed().await.expect("follower alive");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "revision {revision} never arrived; have {:?}",
                rx.borrow().as_ref().map(|s| s.revision.clone())
            )
        });
}

#[tokio::test]
async fn the_writer_publishes_only_when_the_snapshot_changed() {
    let redis = RedisServer::start().unwrap();
    let mut publisher = Publisher::new(&target(&redis), "gatehouse:").unwrap();
    assert_eq!(
        publisher.publish(&snapshot("r1")).await.unwrap(),
        Publication::Published { version: 1 }
    );
    assert_eq!(
        publisher.publish(&snapshot("r1")).await.unwrap(),
        Publication::Unchanged { version: 1 }
    );
    assert_eq!(
        publisher.publish(&snapshot("r2")).await.unwrap(),
        Publication::Published { version: 2 }
    );
    let stored = redis
        .command(&["HGET", "gatehouse:config", "snapshot"])
        .unwrap();
    assert!(stored.contains("\"revision\":\"r2\""), "{stored}");
}

#[tokio::test]
async fn a_running_follower_receives_every_published_snapshot() {
    let redis = RedisServer::start().unwrap();
    let mut publisher = Publisher::new(&target(&redis), "gatehouse:").unwrap();
    publisher.publish(&snapshot("before-start")).await.unwrap();

    let (tx, mut rx) = channel();
    let follower = spawn_follow(target(&redis), "gatehouse:".into(), tx);
    wait_for(&mut rx, "before-start").await;
    publisher.publish(&snapshot("update-1")).await.unwrap();
    wait_for(&mut rx, "update-1").await;
    publisher.publish(&snapshot("update-2")).await.unwrap();
    wait_for(&mut rx, "update-2").await;
    follower.abort();
}

#[tokio::test]
async fn a_follower_started_before_any_config_picks_up_the_first_one() {
    let redis = RedisServer::start().unwrap();
    let (tx, mut rx) = channel();
    let follower = spawn_follow(target(&redis), "gatehouse:".into(), tx);
    assert!(rx.borrow().is_none());
    // Publish only once the follower listens, so the announcement is what delivers it.
    wait_subscribers(&redis, "gatehouse:config:changed").await;
    Publisher::new(&target(&redis), "gatehouse:")
        .unwrap()
        .publish(&snapshot("first"))
        .await
        .unwrap();
    wait_for(&mut rx, "first").await;
    follower.abort();
}

#[tokio::test]
async fn the_last_good_snapshot_survives_an_outage_and_is_re_read_after_the_reconnect() {
    let mut redis = RedisServer::start().unwrap();
    let mut publisher = Publisher::new(&target(&redis), "gatehouse:").unwrap();
    publisher.publish(&snapshot("good")).await.unwrap();
    let (tx, mut rx) = channel();
    let follower = spawn_follow(target(&redis), "gatehouse:".into(), tx);
    wait_for(&mut rx, "good").await;

    redis.kill();
    // Give the follower time to hit the closed socket and fail a re-read.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.borrow().as_ref().unwrap().revision, "good");

    // Redis comes back (AOF kept the old config) and a new config is written while the
    // follower may still be reconnecting: it must end up with the new one.
    redis.restart().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while publisher.publish(&snapshot("after-outage")).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "publisher never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(&mut rx, "after-outage").await;
    follower.abort();
}

#[tokio::test]
async fn an_unparsable_config_is_skipped_and_the_last_good_snapshot_kept() {
    let redis = RedisServer::start().unwrap();
    let mut publisher = Publisher::new(&target(&redis), "gatehouse:").unwrap();
    publisher.publish(&snapshot("good")).await.unwrap();
    let (tx, mut rx) = channel();
    let follower = spawn_follow(target(&redis), "gatehouse:".into(), tx);
    wait_for(&mut rx, "good").await;

    // A newer proxy format written by someone else.
    redis
        .command(&[
            "HSET",
            "gatehouse:config",
            "snapshot",
            r#"{"format": 99}"#,
            "sha256",
            "bogus",
        ])
        .unwrap();
    redis
        .command(&["PUBLISH", "gatehouse:config:changed", "99"])
        .unwrap();
    // Then a good one again: it arrives, and nothing in between replaced "good".
    publisher.publish(&snapshot("good-again")).await.unwrap();
    let mut seen = Vec::new();
    let wait = async {
        loop {
            rx.changed().await.unwrap();
            let rev = rx.borrow_and_update().as_ref().unwrap().revision.clone();
            seen.push(rev.clone());
            if rev == "good-again" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("good-again arrives");
    assert_eq!(seen, vec!["good-again".to_owned()]);
    follower.abort();
}

async fn wait_subscribers(redis: &RedisServer, channel: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = redis.command(&["PUBSUB", "NUMSUB", channel]).unwrap();
        if reply.trim_end().ends_with(":1") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no subscriber: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
