//! Command-line arguments and entry points of `gatehouse controller`, `standalone`,
//! `render` and `crds`.

use clap::Args;

pub use crate::k8s::args::ControllerArgs;

/// `gatehouse standalone`: the same YAML, no cluster.
#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {}

/// `gatehouse render`: print the snapshot and a status table.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {}

/// `gatehouse controller` (see [`crate::k8s`]).
pub async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    crate::k8s::run::run_controller(args).await
}

pub async fn run_standalone(_args: StandaloneArgs) -> anyhow::Result<()> {
    anyhow::bail!("standalone is not wired yet")
}

/// Returns the process exit code (1 when any object is not Ready).
pub fn run_render(_args: RenderArgs) -> anyhow::Result<i32> {
    anyhow::bail!("render is not wired yet")
}

/// Print every CRD as one multi-document YAML stream.
pub fn print_crds() -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(gatehouse_crds::all_crds_yaml().as_bytes())?;
    out.flush()?;
    Ok(())
}
