//! A real `redis-server` on a loopback port chosen at run time, with its own temp dir,
//! stopped (SIGKILL) on drop. Also: stop/restart on the same port for outage tests,
//! a small Redis Cluster (`RedisCluster`) and a Sentinel (`RedisSentinel`).
//!
//! Only `std` is used to talk to the server (a raw RESP `PING`) so the helper does not
//! depend on the client library under test.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long a freshly started server may take to answer `PING`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// One `redis-server` process on `127.0.0.1:<port>`.
///
/// Data is persisted with an append-only file (fsync on every write) in the temp dir,
/// so [`RedisServer::restart`] after [`RedisServer::kill`] comes back with the same
/// keys, like a production Redis with AOF would.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a standalone server on a free port.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// Start a server with extra `redis-server` arguments (e.g. `--replicaof h p`).
    pub fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        // A port picked by binding :0 can be taken by someone else before redis binds
        // it; retry with a new port in that (rare) case.
        let mut last_err = None;
        for _ in 0..5 {
            match RedisServer::spawn_on(free_port(false)?, extra) {
                Ok(server) => return Ok(server),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's working directory (AOF, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kill the server abruptly (SIGKILL), like a crash or a network loss; the port is
    /// kept so [`restart`](Self::restart) comes back at the same address.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port with the same data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Send one command (as RESP) and return the raw reply (first read).
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        raw_command(self.addr(), args)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(redis_server_binary()?);
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .args(["--logfile", &log.display().to_string()])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(["--protected-mode", "no"])
            .args(["--enable-debug-command", "local"])
            .args(["--daemonize", "no"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().context("spawning redis-server")?;
        self.child = Some(child);
        if let Err(e) = wait_ready(self.addr(), self.child.as_mut().expect("just set")) {
            self.kill();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{e}; redis log:\n{}", last_lines(&tail, 10));
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of `n` masters (no replicas) on loopback ports.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Start `n` (≥ 3) cluster-enabled servers and join them into one cluster that
    /// covers all 16384 slots; returns when every node reports `cluster_state:ok`.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        if n < 3 {
            bail!("a Redis Cluster needs at least 3 masters");
        }
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            // The cluster bus listens on port + 10000, so pick ports that leave room.
            let mut last = None;
            let mut started = None;
            for _ in 0..5 {
                let port = free_port(true)?;
                match RedisServer::spawn_on(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ],
                ) {
                    Ok(s) => {
                        started = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            nodes.push(started.ok_or_else(|| last.expect("at least one attempt"))?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let out = Command::new(redis_cli_binary()?)
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create")?;
        if !out.status.success() {
            bail!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let deadline = Instant::now() + START_DEADLINE;
        for node in &nodes {
            loop {
                let info = node.command(&["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("cluster did not reach state ok: {info}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(RedisCluster { nodes })
    }

    /// The member servers.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Seed nodes for `--redis-cluster` / `StoreArgs::redis_cluster`:
    /// `redis://127.0.0.1:p1`, ...
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// A Redis Sentinel watching one master under a service name.
pub struct RedisSentinel {
    server: RedisServer,
    name: String,
}

impl RedisSentinel {
    /// Start a sentinel (quorum 1, master considered down after 1 s) that monitors
    /// `master` as `name` and knows `replicas` from the start (instead of discovering
    /// them on its next INFO poll, which takes seconds).
    pub fn start(
        master: &RedisServer,
        name: &str,
        replicas: &[&RedisServer],
    ) -> anyhow::Result<Self> {
        let known: String = replicas
            .iter()
            .map(|r| format!("sentinel known-replica {name} 127.0.0.1 {}\n", r.port()))
            .collect();
        let mut last = None;
        for _ in 0..5 {
            let port = free_port(false)?;
            let dir = tempfile::tempdir().context("temp dir for redis-sentinel")?;
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\n\
                     logfile {dir}/sentinel.log\n\
                     sentinel monitor {name} 127.0.0.1 {mport} 1\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n{known}",
                    dir = dir.path().display(),
                    mport = master.port(),
                ),
            )?;
            let mut server = RedisServer {
                port,
                dir,
                extra: Vec::new(),
                child: None,
            };
            let child = Command::new(redis_server_binary()?)
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning redis-server --sentinel")?;
            server.child = Some(child);
            match wait_ready(server.addr(), server.child.as_mut().expect("just set")) {
                Ok(()) => {
                    return Ok(RedisSentinel {
                        server,
                        name: name.to_owned(),
                    })
                }
                Err(e) => {
                    server.kill();
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one attempt"))
    }

    /// The sentinel's own address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `redis+sentinel://127.0.0.1:<port>/<name>`.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{}",
            self.server.port, self.name
        )
    }

    /// Send one command to the sentinel.
    pub fn command(&self, args: &[&str]) -> anyhow::Result<String> {
        self.server.command(args)
    }

    /// Port of the master the sentinel currently reports.
    pub fn master_port(&self) -> anyhow::Result<u16> {
        let reply = self.command(&["SENTINEL", "get-master-addr-by-name", &self.name])?;
        // *2\r\n$9\r\n127.0.0.1\r\n$5\r\n12345\r\n
        let port = reply
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("unexpected sentinel reply {reply:?}"))?;
        Ok(port.parse()?)
    }
}

impl RedisServer {
    fn spawn_on(port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let mut server = RedisServer {
            port,
            dir: tempfile::tempdir().context("temp dir for redis-server")?,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// Send a command as a RESP array over a fresh TCP connection; return what the server
/// answered in its first reply chunk (enough for the small replies tests look at).
pub fn raw_command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
    }
    stream.write_all(req.as_bytes())?;
    let mut buf = vec![0u8; 64 * 1024];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn wait_ready(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("redis-server on {addr} exited early with {status}");
        }
        if let Ok(reply) = raw_command(addr, &["PING"]) {
            if reply.starts_with("+PONG") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("redis-server on {addr} did not answer PING in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port that is free now.
pub fn free_loopback_port() -> anyhow::Result<u16> {
    free_port(false)
}

/// A loopback port that is free now (and, for cluster nodes, whose bus port
/// `port + 10000` is free too).
fn free_port(with_bus: bool) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        if !with_bus {
            return Ok(port);
        }
        if port > 55_000 {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free loopback port found")
}

fn redis_server_binary() -> anyhow::Result<PathBuf> {
    find_binary("redis-server")
}

fn redis_cli_binary() -> anyhow::Result<PathBuf> {
    find_binary("redis-cli")
}

fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!("{name} not found on PATH (scripts/test installs it: apt-get install redis-server)")
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
