//! Command-line arguments and entry points of `gatehouse controller`, `standalone`,
//! `render` and `crds`.

use clap::Args;

/// `gatehouse controller`: watch the cluster, publish snapshots.
#[derive(Args, Debug, Clone)]
pub struct ControllerArgs {}

/// `gatehouse standalone`: the same YAML, no cluster.
#[derive(Args, Debug, Clone)]
pub struct StandaloneArgs {}

/// `gatehouse render`: print the snapshot and a status table.
#[derive(Args, Debug, Clone)]
pub struct RenderArgs {}

pub async fn run_controller(_args: ControllerArgs) -> anyhow::Result<()> {
    anyhow::bail!("controller is not wired yet")
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
