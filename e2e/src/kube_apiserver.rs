//! A real Kubernetes control plane for tests: etcd + kube-apiserver (+ the garbage
//! collector of kube-controller-manager), the Go program in `e2e/kube/`, built once
//! with `e2e/kube/build` and started on loopback ports chosen at run time in a temp dir.
//!
//! The API server authenticates a static admin token (in [`KubeApiServer::kubeconfig`])
//! and bearer tokens from its own service-account issuer (TokenRequest), authorizes
//! with RBAC, and writes an audit log of every write ([`KubeApiServer::audit_writes`]).
//! `kubectl` and `helm` come from `scripts/kube-tools`.
//!
//! [`KubeApiServer::shared`] gives one control plane per test process (tests in one
//! binary use separate namespaces); it stops when the test process exits (the Go
//! supervisor watches its parent). [`KubeApiServer::start`] gives a private one that
//! stops on drop.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

/// How long a start (or an API server restart) may take on a loaded 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(240);

/// A running control plane.
pub struct KubeApiServer {
    dir: PathBuf,
    tools: PathBuf,
    child: Mutex<Option<Child>>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Run a helper script that prints a path on its last line.
fn script_path(script: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let text = String::from_utf8(out.stdout)?;
    let last = text.lines().last().context("no path printed")?;
    Ok(PathBuf::from(last.trim()))
}

/// The control-plane binary (`GATEHOUSE_KUBE_BIN`, or built by `e2e/kube/build`) and
/// the directory with kubectl and helm; resolved once per process.
fn binaries() -> anyhow::Result<(PathBuf, PathBuf)> {
    static PATHS: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    PATHS
        .get_or_init(|| {
            let root = workspace_root();
            let bin = match std::env::var_os("GATEHOUSE_KUBE_BIN") {
                Some(path) => Ok(PathBuf::from(path)),
                None => script_path(&root.join("e2e/kube/build")),
            };
            let tools = script_path(&root.join("scripts/kube-tools"));
            bin.and_then(|b| Ok((b, tools?)))
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

impl KubeApiServer {
    /// The control plane of this test process, started on first use.
    pub fn shared() -> &'static KubeApiServer {
        static SHARED: OnceLock<KubeApiServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            // One retry: a port picked as free can be taken before the server binds it.
            let server = KubeApiServer::spawn(true)
                .or_else(|e| {
                    eprintln!("the test control plane did not start, retrying: {e:#}");
                    KubeApiServer::spawn(true)
                })
                .expect("the test control plane starts");
            // Statics are never dropped: the supervisor exits with this process instead.
            drop(server.child.lock().expect("child lock").take());
            server
        })
    }

    /// A control plane of its own, stopped (and its dir removed) on drop.
    pub fn start() -> anyhow::Result<KubeApiServer> {
        KubeApiServer::spawn(false)
    }

    fn spawn(exit_with_parent: bool) -> anyhow::Result<KubeApiServer> {
        let (bin, tools) = binaries()?;
        // The supervisor removes the dir itself when it outlives this process.
        let dir = tempfile::Builder::new()
            .prefix("gatehouse-kube.")
            .tempdir()?
            .keep();
        let log = std::fs::File::create(dir.join("supervisor.log"))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("run").arg("--dir").arg(&dir);
        if exit_with_parent {
            cmd.arg("--exit-with-parent");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let server = KubeApiServer {
            dir,
            tools,
            child: Mutex::new(Some(child)),
        };
        server.wait_for_file("ready", None)?;
        Ok(server)
    }

    fn wait_for_file(&self, name: &str, content: Option<&str>) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_DEADLINE;
        let path = self.dir.join(name);
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if content.is_none_or(|c| text.trim() == c) {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.lock().expect("child lock").as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "the control plane exited ({status}); logs:\n{}",
                        self.logs()
                    );
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "the control plane did not get {name} within {START_DEADLINE:?}; logs:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every log in the dir, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["supervisor.log", "apiserver.log", "gc.log", "etcd.log"] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("--- {name}\n{}\n", tail.join("\n")));
        }
        out
    }

    /// The control plane's directory (kubeconfig, audit.log, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (static token, the `system:masters` group).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The API server's URL, `https://127.0.0.1:<port>`.
    pub fn server_url(&self) -> String {
        let config = std::fs::read_to_string(self.kubeconfig()).unwrap_or_default();
        config
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .unwrap_or_default()
            .to_owned()
    }

    /// A kubeconfig next to the admin one that authenticates with `token` instead
    /// (e.g. a ServiceAccount token from [`KubeApiServer::service_account_token`]).
    pub fn kubeconfig_for_token(&self, name: &str, token: &str) -> anyhow::Result<PathBuf> {
        let admin = std::fs::read_to_string(self.kubeconfig())?;
        let mut out = String::new();
        for line in admin.lines() {
            match line.trim().strip_prefix("token: ") {
                Some(_) => out.push_str(&format!("      token: {token}\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        let path = self.dir.join(format!("kubeconfig-{name}"));
        std::fs::write(&path, out)?;
        Ok(path)
    }

    /// `kubectl` with this control plane's admin kubeconfig.
    pub fn kubectl(&self) -> Command {
        let mut cmd = Command::new(self.tools.join("kubectl"));
        cmd.env("KUBECONFIG", self.kubeconfig())
            .env("HOME", &self.dir)
            .stdin(Stdio::null());
        cmd
    }

    /// `helm` with this control plane's admin kubeconfig (its caches in the dir).
    pub fn helm(&self) -> Command {
        let mut cmd = Command::new(self.tools.join("helm"));
        cmd.env("KUBECONFIG", self.kubeconfig())
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"))
            .stdin(Stdio::null());
        cmd
    }

    /// Run `kubectl args...`, feeding `stdin`; returns the output whatever the exit.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> anyhow::Result<Output> {
        let mut child = self
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes())?;
        Ok(child.wait_with_output()?)
    }

    /// Run `kubectl args...`; fails with its stderr unless it exits 0; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.kubectl_with_input(args, "")?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `kubectl_ok`, retried until it succeeds or `limit` passes: for what the server
    /// publishes asynchronously after a CRD is Established (its OpenAPI v3 document,
    /// which `kubectl explain` reads, lags discovery by a moment).
    pub fn kubectl_eventually(&self, args: &[&str], limit: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            match self.kubectl_ok(args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(250)),
            }
        }
    }

    /// `kubectl apply --server-side --field-manager=<manager> -f -` of `yaml`
    /// (namespace `ns` for namespaced objects without one); fails on any error.
    pub fn apply_yaml(&self, yaml: &str, ns: &str, manager: &str) -> anyhow::Result<String> {
        let out = self.kubectl_with_input(
            &[
                "apply",
                "--server-side",
                &format!("--field-manager={manager}"),
                "-n",
                ns,
                "-f",
                "-",
            ],
            yaml,
        )?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Install the Gatehouse CRDs (`gatehouse crds`, server-side apply) and wait until
    /// they are Established.
    pub fn install_crds(&self, gatehouse: &Path) -> anyhow::Result<()> {
        let crds = Command::new(gatehouse).arg("crds").output()?;
        if !crds.status.success() {
            bail!("gatehouse crds failed");
        }
        self.apply_yaml(
            &String::from_utf8(crds.stdout)?,
            "default",
            "gatehouse-test",
        )?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/consumers.gatehouse.dev",
            "crd/oauth2clients.gatehouse.dev",
            "crd/protectedroutes.gatehouse.dev",
            "crd/oauth2policies.gatehouse.dev",
        ])?;
        Ok(())
    }

    /// `kubectl create namespace <ns>` (fine if it exists).
    pub fn create_namespace(&self, ns: &str) -> anyhow::Result<()> {
        let yaml = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n");
        self.apply_yaml(&yaml, "default", "gatehouse-test")
            .map(|_| ())
    }

    /// `kubectl get <what> -o json`, or `None` when it does not exist.
    pub fn get_json(&self, ns: &str, what: &str) -> anyhow::Result<Option<Value>> {
        let out = self.kubectl_with_input(&["get", "-n", ns, what, "-o", "json"], "")?;
        if out.status.success() {
            return Ok(Some(serde_json::from_slice(&out.stdout)?));
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("NotFound") || err.contains("not found") {
            return Ok(None);
        }
        bail!("kubectl get {what} failed: {err}")
    }

    /// A token for ServiceAccount `ns/name` from the TokenRequest API.
    pub fn service_account_token(&self, ns: &str, name: &str) -> anyhow::Result<String> {
        let token = self.kubectl_ok(&["create", "token", "-n", ns, name, "--duration=1h"])?;
        Ok(token.trim().to_owned())
    }

    /// Every audit event so far (the policy records writes only, at Metadata level).
    pub fn audit_writes(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Stop kube-apiserver (etcd keeps running with the data).
    pub fn stop_apiserver(&self) -> anyhow::Result<()> {
        self.signal("USR1")?;
        self.wait_for_file("apiserver.state", Some("stopped"))
    }

    /// Start kube-apiserver again on the same port; returns once `/readyz` answers.
    pub fn start_apiserver(&self) -> anyhow::Result<()> {
        self.signal("USR2")?;
        self.wait_for_file("apiserver.state", Some("ready"))
    }

    fn signal(&self, sig: &str) -> anyhow::Result<()> {
        let pid = std::fs::read_to_string(self.dir.join("supervisor.pid"))?;
        let status = Command::new("kill")
            .args([&format!("-{sig}"), pid.trim()])
            .status()?;
        if !status.success() {
            bail!("kill -{sig} {} failed", pid.trim());
        }
        Ok(())
    }
}

impl Drop for KubeApiServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).unwrap_or(None);
        if let Some(mut child) = child {
            let _ = self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
