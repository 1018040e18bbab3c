//! A network namespace made by the test, joined to the host by a veth pair, for
//! upstreams that must have a non-loopback address: a real API server refuses
//! loopback addresses in EndpointSlices. Traffic goes only to the namespace's own
//! address, which exists only while the test runs. Needs root (`ip netns`).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};

use anyhow::{bail, Context as _};

/// A namespace `ghk-<pid>-<n>` with `10.<a>.<b>.2/30` inside and `.1/30` on the host
/// side; deleted (with its veth pair) on drop.
pub struct TestNetns {
    name: String,
    inner: Ipv4Addr,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TestNetns {
    /// Create the namespace and its link to the host.
    pub fn create() -> anyhow::Result<TestNetns> {
        static NEXT: AtomicU8 = AtomicU8::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("ghk-{pid}-{n}");
        // A /30 per namespace, spread by pid so concurrent test processes differ.
        let (a, b) = (200 + (pid % 50) as u8, ((pid / 50) % 64) as u8 * 4 + n % 4);
        let subnet_host = Ipv4Addr::new(10, a, b, 1);
        let inner = Ipv4Addr::new(10, a, b, 2);
        let host_if = format!("ghh{pid}{n}");
        let inner_if = format!("ghn{pid}{n}");
        ip(&["netns", "add", &name])?;
        let ns = TestNetns { name, inner };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &inner_if,
        ])?;
        ip(&["link", "set", &inner_if, "netns", &ns.name])?;
        ip(&["addr", "add", &format!("{subnet_host}/30"), "dev", &host_if])?;
        ip(&["link", "set", &host_if, "up"])?;
        let exec = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &ns.name, "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        exec(&["addr", "add", &format!("{inner}/30"), "dev", &inner_if])?;
        exec(&["link", "set", &inner_if, "up"])?;
        exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's address (reachable from the host through the veth pair).
    pub fn addr(&self) -> Ipv4Addr {
        self.inner
    }

    /// A TCP listener on `<addr>:0` inside the namespace. The socket keeps its
    /// namespace, so it can be served from any thread.
    pub fn listen(&self) -> anyhow::Result<TcpListener> {
        let path = format!("/var/run/netns/{}", self.name);
        let inner = self.inner;
        // setns changes only the calling thread: do it on a thread of its own.
        std::thread::spawn(move || -> anyhow::Result<TcpListener> {
            let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: setns on a valid namespace fd; affects only this short-lived thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns: {}", std::io::Error::last_os_error());
            }
            let listener = TcpListener::bind(SocketAddr::from((inner, 0)))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the setns thread panicked"))?
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair too.
        let _ = ip(&["netns", "del", &self.name]);
    }
}
