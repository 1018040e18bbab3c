//! `gatehouse revoke-sign-in`: end every session of a user on some routes and forget
//! the consents they remembered there, across all replicas at once.
//!
//! It writes one record per route into the shared store (the time of the
//! revocation); replicas compare each session's creation time and each remembered
//! consent's time against it on use, so nothing has to be enumerated or deleted and
//! the effect is immediate. Tokens already issued to clients are not touched: revoke
//! those at `/oauth2/revoke` or let them expire.

use clap::Args;

use super::state::Records;
use crate::store::args::StoreArgs;

/// Flags of `gatehouse revoke-sign-in`.
#[derive(Args, Debug, Clone)]
pub struct RevokeArgs {
    /// The user, as the route's `authenticated_userid` (its `userClaim`, `sub` by default).
    #[arg(long)]
    pub user: String,

    /// Route id (`namespace/name`, or the route's id in standalone manifests); repeat
    /// for several routes.
    #[arg(long = "route", required = true, value_name = "ID")]
    pub routes: Vec<String>,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// Write the revocations; the store must be the shared Redis the proxies use.
pub async fn run(args: RevokeArgs) -> anyhow::Result<()> {
    if args.store.redis.is_none()
        && args.store.redis_cluster.is_empty()
        && args.store.redis_sentinel.is_empty()
    {
        anyhow::bail!(
            "revoke-sign-in writes to the Redis the proxies share (--redis, --redis-cluster or \
             --redis-sentinel); an in-memory store lives inside one process: restart it instead"
        );
    }
    if args.user.is_empty() || args.user.chars().any(char::is_control) {
        anyhow::bail!("--user must be a non-empty user id without control characters");
    }
    let store = args.store.build().await?;
    let records = Records {
        store: store.as_ref(),
    };
    let now = crate::server::pipeline::unix_now();
    for route in &args.routes {
        records.revoke(route, &args.user, now).await?;
        tracing::info!(route.id = %route, "Sign-in revoked");
        println!(
            "revoked: sessions and remembered consents of {:?} on {route}",
            args.user
        );
    }
    Ok(())
}
