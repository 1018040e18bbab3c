//! Listeners and the per-request pipeline. (to be written)

/// Listener flags shared by `gatehouse proxy` and `gatehouse standalone`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Plain HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,
}
