//! Run the built `gatehouse` binary in tests: spawn it with arguments, wait until it
//! listens, stop it with SIGTERM or kill it on drop. Its stderr (the logs) goes to a
//! temp file that [`Gatehouse::log`] returns, and that is printed when a wait fails.
//!
//! The binary is the one next to the test executable (`target/<profile>/gatehouse`),
//! rebuilt once per test process with `cargo build --workspace --bins` so a test never
//! runs a stale binary; set `GATEHOUSE_BIN=/path/to/gatehouse` to use another one
//! (then nothing is built).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A running `gatehouse` process; killed when dropped.
pub struct Gatehouse {
    child: Child,
    log: tempfile::NamedTempFile,
}

/// Path of the `gatehouse` binary under test (built on first use, see module docs).
pub fn binary_path() -> anyhow::Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| locate_and_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_and_build() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("GATEHOUSE_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/<test-exe> → target/<profile>/gatehouse
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable is not under target/<profile>/deps")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    // `--workspace` resolves features exactly as `cargo build --workspace` (scripts/test)
    // does, so after that build this one is a no-op.
    build.args(["build", "--quiet", "--workspace", "--bins"]);
    // Cargo gives the test process package-specific variables; build scripts (ring's)
    // track some of them, and inheriting them would rebuild half the tree every time.
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let per_package = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || matches!(
                key,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            );
        if per_package {
            build.env_remove(key);
        }
    }
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .context("running cargo build for the gatehouse binary")?;
    if !status.success() {
        bail!("cargo build --bin gatehouse failed ({status})");
    }
    let path = profile_dir.join("gatehouse");
    if !path.exists() {
        bail!("{} does not exist after building", path.display());
    }
    Ok(path)
}

/// A loopback address with a port that was free a moment ago (bind, read, release).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("bound socket has an address")
}

impl Gatehouse {
    /// Start `gatehouse <args...>` with `GATEHOUSE_LOG` defaulting to `info`.
    pub fn spawn<I, S>(args: I) -> anyhow::Result<Gatehouse>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn_inner(None, args)
    }

    /// Like [`Gatehouse::spawn`], with the open-files limit (soft and hard) set to
    /// `nofile` through util-linux `prlimit`, which then executes the binary.
    pub fn spawn_with_open_files_limit<I, S>(nofile: u64, args: I) -> anyhow::Result<Gatehouse>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn_inner(Some(nofile), args)
    }

    fn spawn_inner<I, S>(nofile: Option<u64>, args: I) -> anyhow::Result<Gatehouse>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let bin = binary_path()?;
        let log = tempfile::NamedTempFile::new().context("creating the log file")?;
        let mut cmd = match nofile {
            None => Command::new(&bin),
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}")).arg("--").arg(&bin);
                cmd
            }
        };
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().context("opening the log file")?);
        // Plain log lines, so tests can search them.
        cmd.env("NO_COLOR", "1");
        if std::env::var_os("GATEHOUSE_LOG").is_none() {
            cmd.env("GATEHOUSE_LOG", "info");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Gatehouse { child, log })
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Wait until `addr` accepts TCP connections. Fails early (with the log) if the
    /// process exits, or after `timeout`.
    pub async fn wait_for_port(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "gatehouse exited ({status}) before listening on {addr}; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "gatehouse did not listen on {addr} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until the log contains `needle` (or fail after `timeout`, with the log).
    pub async fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "gatehouse exited ({status}) before logging {needle:?}; log:\n{}",
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "gatehouse did not log {needle:?} within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ask the process to stop gracefully (SIGTERM).
    pub fn terminate(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        Ok(())
    }

    /// Wait for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "gatehouse still running after {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
