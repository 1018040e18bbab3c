//! A real OpenID Connect provider for the sign-in tests: Django OAuth Toolkit in OIDC
//! mode (`e2e/idp/`), served by gunicorn on a random loopback port, with its own
//! sqlite state and RS256 key in a temp dir. Two users: `clark` (group `reporters`,
//! email `clark@dailyplanet.example`) and `lex`; passwords are `<user>-password`.
//!
//! The Python environment comes from `scripts/test` (a venv built from
//! `e2e/idp/requirements.txt`); `GATEHOUSE_IDP_PYTHON` names its interpreter, else
//! `target/e2e-tools/idp-venv/bin/python` is used. A missing interpreter is an error
//! with that hint, never a skipped test.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Gatehouse's client at the provider.
pub const CLIENT_ID: &str = "gatehouse";
/// Its secret (the tests seal it into the snapshot like the controller would).
pub const CLIENT_SECRET: &str = "gatehouse-secret-at-the-provider-0123456789";

/// A running provider; stopped on drop.
pub struct Idp {
    child: Option<Child>,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    keys: Vec<PathBuf>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e sits inside the workspace")
        .to_path_buf()
}

fn python() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("GATEHOUSE_IDP_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace().join("target/e2e-tools/idp-venv/bin/python"),
    };
    if !path.exists() {
        bail!(
            "the test identity provider's Python ({}) is missing: run scripts/test once, \
             or set GATEHOUSE_IDP_PYTHON to a venv with e2e/idp/requirements.txt",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Idp {
    /// Start a provider whose Gatehouse client accepts `redirect_uris` and
    /// `post_logout_uris`.
    pub fn start(redirect_uris: &[String], post_logout_uris: &[String]) -> anyhow::Result<Idp> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut idp = Idp {
            child: None,
            dir,
            addr,
            keys: Vec::new(),
        };
        idp.new_key()?;
        let status = idp
            .command()?
            .arg("setup")
            .env("IDP_CLIENT_ID", CLIENT_ID)
            .env("IDP_CLIENT_SECRET", CLIENT_SECRET)
            .env("IDP_REDIRECT_URIS", redirect_uris.join(" "))
            .env("IDP_POST_LOGOUT_URIS", post_logout_uris.join(" "))
            .status()
            .context("running e2e/idp/setup_idp.py")?;
        if !status.success() {
            bail!("setting up the test identity provider failed ({status})");
        }
        idp.serve()?;
        Ok(idp)
    }

    /// The issuer URL (`http://127.0.0.1:PORT/o`).
    pub fn issuer(&self) -> String {
        format!("http://{}/o", self.addr)
    }

    /// Rotate the signing key: restart on the same port with a new active key; the
    /// old one stays published as inactive (as a provider does during rotation).
    pub fn rotate_key(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.new_key()?;
        self.serve()
    }

    fn new_key(&mut self) -> anyhow::Result<()> {
        let path = self.dir.path().join(format!("key-{}.pem", self.keys.len()));
        let status = Command::new(python()?)
            .arg(workspace().join("e2e/idp/setup_idp.py"))
            .arg("keygen")
            .arg(&path)
            .status()?;
        if !status.success() {
            bail!("generating the provider key failed ({status})");
        }
        self.keys.push(path);
        Ok(())
    }

    fn command(&self) -> anyhow::Result<Command> {
        let mut cmd = Command::new(python()?);
        cmd.arg(workspace().join("e2e/idp/setup_idp.py"));
        self.env(&mut cmd);
        Ok(cmd)
    }

    fn env(&self, cmd: &mut Command) {
        let (active, old) = self.keys.split_last().expect("a key exists");
        let old: Vec<String> = old.iter().map(|p| p.display().to_string()).collect();
        cmd.current_dir(workspace().join("e2e/idp"))
            .env("DJANGO_SETTINGS_MODULE", "idp.settings")
            .env("IDP_STATE_DIR", self.dir.path())
            .env("IDP_KEY_FILE", active)
            .env("IDP_OLD_KEY_FILES", old.join(":"))
            .env("IDP_ISSUER", self.issuer());
    }

    fn serve(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("gunicorn.log"))?;
        let mut cmd = Command::new(python()?);
        cmd.args([
            "-m",
            "gunicorn",
            "idp.wsgi",
            "--workers",
            "1",
            "--no-control-socket",
        ])
        .arg("--bind")
        .arg(self.addr.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
        self.env(&mut cmd);
        self.child = Some(cmd.spawn().context("starting gunicorn")?);
        let deadline = Instant::now() + Duration::from_secs(90);
        let url = "/o/.well-known/openid-configuration";
        while Instant::now() < deadline {
            if http_ok(self.addr, url) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!("the identity provider exited ({status}): {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "the identity provider did not answer in time: {}",
            self.log()
        )
    }

    /// gunicorn's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gunicorn.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets the gunicorn master stop its worker; SIGKILL after a grace.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bare HTTP/1.0 GET that reports whether the answer was 200.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
