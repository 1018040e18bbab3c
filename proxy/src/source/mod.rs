//! Config sources: where the proxy gets its [`Snapshot`](crate::Snapshot) from. Every
//! source publishes into one channel ([`gatehouse_config::channel`]): a file here
//! ([`file`]), or the snapshot in Redis ([`gatehouse_config::follow`]).

pub mod file;

pub use gatehouse_config::channel::{channel, publish, ConfigRx, ConfigTx};

/// `--config-redis URL`: follow the snapshot in Redis into `tx`, with the token
/// store's credentials, CA, timeout and key prefix. The task runs until aborted.
pub fn follow_redis(
    url: &str,
    store: &crate::store::args::StoreArgs,
    tx: ConfigTx,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let target = store.redis_conn.target_for(url)?;
    tracing::info!(source = %target.describe(), "Following config from Redis");
    Ok(gatehouse_config::follow::spawn_follow(
        target,
        store.redis_conn.redis_prefix.clone(),
        tx,
    ))
}
