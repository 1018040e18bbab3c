//! Command-line arguments of `gatehouse proxy`, and the flag groups that
//! `gatehouse standalone` reuses.

use clap::Args;

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

    #[command(flatten)]
    pub server: crate::server::ServerArgs,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// Run `gatehouse proxy` until SIGTERM/SIGINT.
pub async fn run(_args: ProxyArgs) -> anyhow::Result<()> {
    anyhow::bail!("proxy is not wired yet")
}
