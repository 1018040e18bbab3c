//! Listeners and the per-request pipeline. (to be written)

use std::net::SocketAddr;
use std::sync::Arc;

use crate::source::ConfigRx;
use crate::store::TokenStore;

/// Listener flags shared by `gatehouse proxy` and `gatehouse standalone`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Plain HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
}

/// A running proxy: its bound addresses and a way to stop it.
pub struct ServerHandle {
    /// Bound plain HTTP address (useful when listening on port 0).
    pub http_addr: SocketAddr,
}

impl ServerHandle {
    /// Stop accepting, drain in-flight requests (bounded), and wait for the workers.
    pub async fn shutdown(self) {}
}

/// Bind every listener now (so "address in use" is reported immediately) and start
/// serving on background workers.
pub fn spawn(
    args: &ServerArgs,
    config: ConfigRx,
    store: Arc<dyn TokenStore>,
) -> anyhow::Result<ServerHandle> {
    let _ = (args, config, store);
    anyhow::bail!("server is not written yet")
}
