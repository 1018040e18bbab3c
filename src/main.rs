//! The `gatehouse` command: one binary for every role. Only argument parsing lives
//! here; each subcommand is implemented in its crate.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use gatehouse_controller::cli as control;
use gatehouse_proxy::cli as proxy;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "Kubernetes ingress controller and OAuth2 authorization server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch Consumer/OAuth2Client/ProtectedRoute resources and publish proxy config.
    Controller(Box<control::ControllerArgs>),
    /// Run the data-plane proxy from a snapshot file or Redis.
    Proxy(Box<proxy::ProxyArgs>),
    /// Run controller logic and proxy in one process from a manifests directory.
    Standalone(Box<control::StandaloneArgs>),
    /// Translate a manifests directory and print the snapshot and object statuses.
    Render(control::RenderArgs),
    /// Print the CustomResourceDefinitions as YAML.
    Crds,
    /// End a user's sign-in sessions and remembered consents on routes (shared Redis).
    RevokeSignIn(Box<gatehouse_proxy::login::revoke::RevokeArgs>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Controller(args) => runtime()?.block_on(control::run_controller(*args)),
        // The proxy serves on its own per-core runtimes (see proxy::server); this one
        // only runs the config source and waits for signals.
        Command::Proxy(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(proxy::run(*args)),
        Command::Standalone(args) => runtime()?.block_on(control::run_standalone(*args)),
        Command::Render(args) => {
            let code = control::run_render(args)?;
            std::process::exit(code)
        }
        Command::Crds => control::print_crds(),
        Command::RevokeSignIn(args) => {
            runtime()?.block_on(gatehouse_proxy::login::revoke::run(*args))
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
