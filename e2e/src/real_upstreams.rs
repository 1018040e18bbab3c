//! Upstreams that are other people's servers, for the hardening tests: what a request
//! means is decided by the upstream, so these tests ask real ones.
//!
//! - [`WsgiUpstream`]: Python's `wsgiref` server (`e2e/upstreams/wsgi_echo.py`), which
//!   percent-decodes `PATH_INFO` and maps `X_Foo` and `X-Foo` to the same CGI variable.
//! - [`ServletUpstream`]: embedded Apache Tomcat 9 from Debian's `libtomcat9-java`
//!   (`e2e/upstreams/TomcatEcho.java`), which removes `;` path parameters and then
//!   resolves dot segments.
//! - [`RawLogger`]: a plain TCP server that records the exact bytes of each request
//!   head it receives and answers `200`, to see precisely what the proxy sent.
//!
//! Each listens on a loopback port it chose itself and is stopped when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::upstream::{accept_until_dropped, bind_loopback};
use anyhow::{bail, Context as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// A child process serving HTTP on the port it printed first; killed when dropped.
pub struct ChildUpstream {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl ChildUpstream {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spawn(
        mut command: Command,
        what: &str,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Self> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdout = child.stdout.take().context("child stdout is piped")?;
        // The first line is the port; a server that dies first closes stdout.
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let port: u16 = match read {
            Ok(_) => match line.trim().parse() {
                Ok(port) => port,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!("{what} did not print its port (got {line:?})");
                }
            },
            Err(error) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{what}: reading its port: {error}");
            }
        };
        Ok(ChildUpstream {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }
}

impl Drop for ChildUpstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Python's `wsgiref` server running [`wsgi_echo.py`](upstreams_dir).
pub struct WsgiUpstream;

impl WsgiUpstream {
    /// Start it (needs `python3`; the standard library is enough).
    pub fn start() -> anyhow::Result<ChildUpstream> {
        let mut command = Command::new("python3");
        command.arg(upstreams_dir().join("wsgi_echo.py"));
        ChildUpstream::spawn(command, "python3 wsgi_echo.py", None)
    }
}

/// Embedded Tomcat 9 running [`TomcatEcho.java`](upstreams_dir).
pub struct ServletUpstream;

/// Where Debian's `libtomcat9-java` puts its jars.
const TOMCAT_JARS: &str = "/usr/share/java";
const TOMCAT_MODULES: [&str; 10] = [
    "catalina",
    "coyote",
    "util",
    "util-scan",
    "api",
    "servlet-api",
    "juli",
    "jaspic-api",
    "annotations-api",
    "jni",
];

impl ServletUpstream {
    /// Start it (needs `java` 11+ and `libtomcat9-java`; `scripts/test` installs both).
    /// Java compiles the one source file at launch, which takes a few seconds.
    pub fn start() -> anyhow::Result<ChildUpstream> {
        let mut classpath = Vec::new();
        for module in TOMCAT_MODULES {
            let jar = Path::new(TOMCAT_JARS).join(format!("tomcat9-{module}.jar"));
            if !jar.exists() {
                bail!(
                    "{} is missing: install Debian's libtomcat9-java",
                    jar.display()
                );
            }
            classpath.push(jar.display().to_string());
        }
        let dir = tempfile::tempdir().context("temp dir for Tomcat")?;
        let mut command = Command::new("java");
        command
            .arg("-Xshare:auto")
            .arg("-XX:TieredStopAtLevel=1")
            .arg("-cp")
            .arg(classpath.join(":"))
            .arg(upstreams_dir().join("TomcatEcho.java"))
            .arg(dir.path());
        ChildUpstream::spawn(command, "java TomcatEcho.java", Some(dir))
    }
}

/// `e2e/upstreams/`: the sources of the real upstreams.
pub fn upstreams_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("upstreams")
}

/// A TCP server that keeps the raw head of every request and answers `200` with an
/// empty body (`Connection: close`).
pub struct RawLogger {
    /// Where it listens.
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    stop: watch::Sender<bool>,
}

impl RawLogger {
    /// Listen on a loopback port.
    pub async fn start() -> RawLogger {
        let listener = bind_loopback().await;
        let addr = listener.local_addr().expect("bound socket has an address");
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        let stop = accept_until_dropped(listener, move |mut stream| {
            let seen = seen.clone();
            async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                let read = tokio::time::timeout(Duration::from_secs(5), async {
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                })
                .await;
                if read.is_ok() {
                    seen.lock()
                        .expect("no panics while holding the log")
                        .push(String::from_utf8_lossy(&head).into_owned());
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
            }
        });
        RawLogger { addr, heads, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request head received so far, in order, exactly as sent.
    pub fn heads(&self) -> Vec<String> {
        self.heads
            .lock()
            .expect("no panics while holding the log")
            .clone()
    }
}

impl Drop for RawLogger {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
