//! Process signals: when to begin a graceful shutdown. Every long-running command
//! (`proxy`, `controller`, `standalone`) waits on [`shutdown_signal`].

use anyhow::Context as _;

/// Resolves on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            result = tokio::signal::ctrl_c() => result.context("installing the SIGINT handler")?,
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("installing the Ctrl-C handler")?;
    Ok(())
}
