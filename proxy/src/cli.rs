//! Command-line arguments of `gatehouse proxy`, and the flag groups that
//! `gatehouse standalone` reuses.

use anyhow::Context as _;
use clap::Args;

use crate::signal::shutdown_signal;
use crate::source::file::FileSource;

use crate::store::args::StoreArgs;

/// `gatehouse proxy`: serve a snapshot from a file or from Redis.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    /// Snapshot JSON file to serve (re-read when it changes).
    #[arg(long, value_name = "PATH", conflicts_with = "config_redis")]
    pub config_file: Option<std::path::PathBuf>,

    /// Redis URL to load the snapshot from (key `<prefix>config`, follows updates).
    #[arg(long, value_name = "URL")]
    pub config_redis: Option<String>,

    /// How often --config-file is checked for changes, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub config_poll_ms: u64,

    #[command(flatten)]
    pub server: crate::server::ServerArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// Run `gatehouse proxy` until SIGTERM/SIGINT, then shut down gracefully.
pub async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let store = args.store.build().await.context("token store")?;
    let (tx, rx) = crate::source::channel();
    let follower = match (&args.config_redis, args.config_file) {
        // --- --config-redis (redis area): load `<prefix>config` and follow updates;
        // the proxy answers 503 until the first snapshot arrives.
        (Some(url), _) => {
            crate::source::follow_redis(url, &args.store, tx).context("--config-redis")?
        }
        // --- end --config-redis
        (None, Some(path)) => {
            let interval = std::time::Duration::from_millis(args.config_poll_ms.max(10));
            let mut source = FileSource::with_interval(path, interval);
            source.load_initial(&tx)?;
            tokio::spawn(source.follow(tx))
        }
        (None, None) => {
            anyhow::bail!("gatehouse proxy needs --config-file PATH or --config-redis URL")
        }
    };
    let mut server = crate::server::spawn(&args.server, rx, store)?;
    tokio::select! {
        signal = shutdown_signal() => signal?,
        _ = server.worker_exited() => {
            follower.abort();
            anyhow::bail!("a proxy worker stopped unexpectedly; exiting");
        }
    }
    tracing::info!("Shutting down");
    server.shutdown().await;
    follower.abort();
    tracing::info!("Stopped");
    Ok(())
}
