//! Command-line arguments and entry points of `gatehouse controller`, `standalone`,
//! `render` and `crds`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

pub use crate::k8s::args::ControllerArgs;

/// `gatehouse standalone`: the same YAML, no cluster.
#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {
    /// Directory of manifests (*.yaml, *.yml), watched for changes. Without it the
    /// built-in quickstart runs, with the echo upstream.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,

    /// Run the built-in echo upstream on this address (the built-in quickstart
    /// always runs it on 127.0.0.1:9099).
    #[arg(long, value_name = "ADDR")]
    pub echo_listen: Option<SocketAddr>,

    /// HTTPS address served with a self-signed certificate generated at start-up
    /// (unless --listen-tls with --tls-cert/--tls-key is given).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub self_signed_tls: SocketAddr,

    /// Do not start the self-signed HTTPS listener (the /oauth2 endpoints need HTTPS).
    #[arg(long)]
    pub no_tls: bool,

    /// Only handle objects labelled gatehouse.dev/instance=NAME (default: unlabelled).
    #[arg(long, value_name = "NAME")]
    pub instance: Option<String>,

    #[command(flatten)]
    pub server: gatehouse_proxy::server::ServerArgs,

    #[command(flatten)]
    pub store: gatehouse_proxy::store::args::StoreArgs,
}

/// `gatehouse render`: print the snapshot and a status table.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {
    /// Directory of manifests (*.yaml, *.yml) to translate.
    #[arg(long, value_name = "DIR")]
    pub manifests: PathBuf,
}

/// `gatehouse controller` (see [`crate::k8s`]).
pub async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    crate::k8s::run::run_controller(args).await
}

/// Run `gatehouse standalone` until SIGINT/SIGTERM.
pub async fn run_standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    crate::standalone::run(args).await
}

/// Returns the process exit code (1 when a manifest is broken or any object is not
/// Ready).
pub fn run_render(args: RenderArgs) -> anyhow::Result<i32> {
    let code = crate::render::run(
        &args.manifests,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(code)
}

/// Print every CRD as one multi-document YAML stream.
pub fn print_crds() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(gatehouse_crds::all_crds_yaml().as_bytes())?;
    out.flush()?;
    Ok(())
}
