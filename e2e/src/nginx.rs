//! A real nginx (Debian's `nginx` package) on a loopback port chosen at run time, for
//! tests of Gatehouse behind another proxy (external authorization).
//!
//! The caller writes the inside of the `http { }` block; `@LISTEN@` in it is replaced by
//! the listen address. nginx runs in the foreground as a single process (no master, no
//! daemon) with its pid, logs and temp files in a temp directory, and is killed when
//! dropped. Its error log is returned by [`Nginx::error_log`] and printed when start-up
//! fails.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::binary::free_addr;

/// A running nginx; killed when dropped.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// Where the `@LISTEN@` server listens.
    pub addr: SocketAddr,
}

/// Path of the nginx binary: `$NGINX`, else `nginx` on `PATH`, else `/usr/sbin/nginx`
/// (Debian installs it there, outside a non-root `PATH`).
pub fn nginx_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NGINX") {
        return Ok(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .context("nginx is not installed (scripts/test installs Debian's nginx package)")
}

impl Nginx {
    /// Start nginx with `http_block` as the body of its `http { }` block. A port taken
    /// between choosing it and nginx binding it is retried with another port.
    pub fn start(http_block: &str) -> anyhow::Result<Nginx> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(http_block) {
                Ok(nginx) => return Ok(nginx),
                Err(e) if format!("{e:#}").contains("Address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }

    fn start_once(http_block: &str) -> anyhow::Result<Nginx> {
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-nginx")
            .tempdir()
            .context("creating nginx's directory")?;
        let addr = free_addr();
        let d = dir.path().display();
        let config = format!(
            "worker_processes 1;\n\
             daemon off;\n\
             master_process off;\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n\
             {}\n\
             }}\n",
            http_block.replace("@LISTEN@", &addr.to_string())
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).context("writing nginx.conf")?;
        let child = Command::new(nginx_binary()?)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting nginx")?;
        let mut nginx = Nginx { child, dir, addr };
        nginx.wait_listening(Duration::from_secs(10))?;
        Ok(nginx)
    }

    fn wait_listening(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "nginx exited ({status}) before listening on {}; error log:\n{}",
                    self.addr,
                    self.error_log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on {} within {timeout:?}; error log:\n{}",
                    self.addr,
                    self.error_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Everything nginx logged so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
