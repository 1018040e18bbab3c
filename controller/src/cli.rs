//! Command-line arguments and entry points of `gatehouse controller`, `standalone`,
//! `render` and `crds`.

use std::path::PathBuf;

use clap::Args;

pub use crate::k8s::args::ControllerArgs;
pub use crate::standalone::StandaloneArgs;

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
