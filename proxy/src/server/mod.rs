//! Listeners and workers.
//!
//! One tokio `current_thread` runtime per worker thread, each with its own listening
//! socket on the shared port (`SO_REUSEPORT`): the kernel spreads connections over the
//! workers, and a connection lives its whole life on one core without cross-thread
//! wakeups. (Measured on 2-core machines: ~0.95–0.99× nginx this way, ~0.81–0.86× on
//! the multi-thread runtime; see `docs/architecture.md`.) Worker 0 also runs the admin
//! listener and the task that compiles each new snapshot.

mod conns;
pub mod limits;
mod listen;
mod observe;
pub mod pipeline;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::sync::{oneshot, watch};

use crate::access_log::{AccessLog, Destination, Mode};
use crate::admin::AdminState;
use crate::audit::{AuditLog, AuditTarget};
use crate::compiled::{self, CompiledRx, CompiledTx};
use crate::forwarded::TrustedProxies;
use crate::metrics::{CertificateExpiry, Metrics};
use crate::source::ConfigRx;
use crate::store::TokenStore;

use pipeline::{Limits, Shared};
use worker::{Worker, WorkerListeners};

/// Listener flags shared by `gatehouse proxy` and `gatehouse standalone`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Plain HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,

    /// HTTPS listen address (HTTP/1.1 and HTTP/2 via ALPN); needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Option<SocketAddr>,

    /// PEM certificate chain for --listen-tls.
    #[arg(long, value_name = "PEM", requires = "listen_tls")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --listen-tls.
    #[arg(long, value_name = "PEM", requires = "listen_tls")]
    pub tls_key: Option<PathBuf>,

    /// Admin listen address serving /healthz, /readyz and /metrics (off when unset).
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,

    /// Comma-separated CIDRs whose X-Forwarded-* headers are believed ("" = none).
    #[arg(long, value_name = "CIDRS", default_value = "127.0.0.0/8,::1/128")]
    pub trusted_proxies: TrustedProxies,

    /// Largest request head (request line + headers) accepted; larger gets 431.
    #[arg(long, value_name = "BYTES", default_value_t = 32 * 1024)]
    pub max_header_bytes: usize,

    /// Largest body read for /oauth2/* requests and form-encoded token lookups; larger gets 413.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    pub max_oauth_body_bytes: usize,

    /// Worker threads, each with its own event loop and listening socket (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,

    /// Seconds in-flight requests get to finish on shutdown before connections are cut.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub shutdown_grace: u64,

    #[command(flatten)]
    pub limits: limits::LimitArgs,

    /// Access log: off, on, or a sampling ratio (0.01 logs about one request in 100).
    #[arg(long, value_name = "MODE", default_value_t = Mode::Off)]
    pub access_log: Mode,

    /// Append access log lines to this file instead of standard output.
    #[arg(long, value_name = "PATH")]
    pub access_log_file: Option<PathBuf>,

    /// Audit log of security events (one JSON line each, never a secret): a file path
    /// (appended to), `-` or `stderr`, `stdout`, or `off`.
    #[arg(long, value_name = "PATH|-", default_value_t = AuditTarget::Stderr)]
    pub audit_log: AuditTarget,

    #[command(flatten)]
    pub login: crate::login::LoginArgs,
}

impl Default for ServerArgs {
    fn default() -> Self {
        ServerArgs {
            listen: "127.0.0.1:8000".parse().expect("literal address"),
            listen_tls: None,
            tls_cert: None,
            tls_key: None,
            admin_listen: None,
            trusted_proxies: TrustedProxies::loopback(),
            max_header_bytes: 32 * 1024,
            max_oauth_body_bytes: 64 * 1024,
            workers: None,
            shutdown_grace: 10,
            limits: limits::LimitArgs::default(),
            access_log: Mode::Off,
            access_log_file: None,
            audit_log: AuditTarget::Off,
            login: crate::login::LoginArgs::default(),
        }
    }
}

/// A running proxy: its bound addresses and a way to stop it.
pub struct ServerHandle {
    /// Bound plain HTTP address (useful when listening on port 0).
    pub http_addr: SocketAddr,
    /// Bound HTTPS address, when `--listen-tls` was given.
    pub tls_addr: Option<SocketAddr>,
    /// Bound admin address, when `--admin-listen` was given.
    pub admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    done: Vec<oneshot::Receiver<()>>,
    compiled: CompiledRx,
}

impl ServerHandle {
    /// Resolves when any worker has stopped on its own (it failed): callers that wait
    /// for a signal should also wait on this and exit, so a supervisor restarts them.
    /// Never resolves while every worker runs.
    pub async fn worker_exited(&mut self) {
        if self.done.is_empty() {
            return std::future::pending().await;
        }
        let (_, index, _) = futures::future::select_all(self.done.iter_mut()).await;
        self.done.remove(index);
    }

    /// Revision of the configuration being served, if one is loaded.
    pub fn revision(&self) -> Option<String> {
        self.compiled
            .borrow()
            .as_ref()
            .map(|c| c.snapshot.revision.clone())
    }

    /// Wait until the configuration with `revision` is being served (snapshots are
    /// compiled in the background after they are published).
    pub async fn wait_for_revision(&self, revision: &str) {
        let mut rx = self.compiled.clone();
        // The sender lives as long as worker 0; if it is gone nothing will change.
        let _ = rx
            .wait_for(|c| c.as_ref().is_some_and(|c| c.snapshot.revision == revision))
            .await;
    }

    /// Stop accepting, drain in-flight requests (bounded by `--shutdown-grace`), and
    /// wait for the workers.
    pub async fn shutdown(mut self) {
        self.shutdown.send_replace(true);
        for done in std::mem::take(&mut self.done) {
            // An error means the worker thread died (panicked): nothing left to wait for.
            let _ = done.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        // Dropping the handle without `shutdown()` still stops the workers.
        self.shutdown.send_replace(true);
    }
}

/// Bind every listener now (so "address in use" is reported immediately) and start
/// serving on background workers. May be called from inside a tokio runtime.
pub fn spawn(
    args: &ServerArgs,
    config: ConfigRx,
    store: Arc<dyn TokenStore>,
) -> anyhow::Result<ServerHandle> {
    let workers = args
        .workers
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);

    let (http, http_addr) = listen::bind_shared(args.listen, workers)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let (tls_default, tls_sockets, tls_addr) =
        match (&args.listen_tls, &args.tls_cert, &args.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let default = crate::tls::load_default(cert, key).context("TLS configuration")?;
                let (sockets, bound) = listen::bind_shared(*addr, workers)
                    .with_context(|| format!("cannot listen on {addr}"))?;
                (Some(default), sockets, Some(bound))
            }
            (Some(_), _, _) => anyhow::bail!("--listen-tls needs --tls-cert and --tls-key"),
            _ => (None, Vec::new(), None),
        };
    let admin = match args.admin_listen {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)
                .with_context(|| format!("cannot listen on {addr}"))?;
            listener.set_nonblocking(true)?;
            Some(listener)
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|l| l.local_addr()).transpose()?;

    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    // Opens sealed TLS keys and `oauth2.login` client secrets, encrypts cookies.
    let login_key = args.login.load().context("--login-key-file")?;
    store.register_metrics(&mut registry);
    let default_certificate = tls_default
        .as_ref()
        .and_then(|key| crate::tls::not_after(key))
        .map(|not_after| CertificateExpiry {
            certificate: "default".into(),
            host: "*".into(),
            not_after,
        });
    let (compiled_tx, compiled_rx): (CompiledTx, _) =
        watch::channel(compiled::compile_current(&config, login_key.as_ref()));
    if compiled_rx.borrow().is_some() {
        metrics.config_reloads.inc();
    }
    let tls_acceptor = tls_default
        .map(|default| crate::tls::sni_acceptor(compiled_rx.clone(), default))
        .transpose()
        .context("TLS configuration")?;
    let access_log = AccessLog::start(
        args.access_log,
        match &args.access_log_file {
            Some(path) => Destination::File(path.clone()),
            None => Destination::Stdout,
        },
        metrics.access_log_dropped.clone(),
    )
    .context("cannot open the access log")?;
    let audit = AuditLog::open(&args.audit_log).context("cannot open the audit log")?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let signin = Arc::new(crate::login::Signin::with_documents(
        login_key.clone(),
        args.login.documents().context("--client-metadata-ca")?,
    ));
    let limits = Limits {
        body: args.limits.body(args.max_oauth_body_bytes),
    };
    let open_files = limits::raise_open_files_limit();
    let max_connections = args.limits.connections_per_worker(workers);

    let mut http = http.into_iter();
    let mut tls_sockets = tls_sockets.into_iter();
    let mut admin_task = admin.map(|listener| {
        (
            listener,
            Arc::new(AdminState {
                compiled: compiled_rx.clone(),
                store: store.clone(),
                registry,
                metrics: metrics.clone(),
                serves_tls: tls_acceptor.is_some(),
                default_certificate,
            }),
        )
    });
    let mut compiler = Some((
        config,
        compiled_tx,
        metrics.config_reloads.clone(),
        login_key,
    ));
    let mut done = Vec::with_capacity(workers);
    for index in 0..workers {
        let listeners = WorkerListeners {
            http: http
                .next()
                .expect("bind_shared returns one socket per worker"),
            tls: tls_acceptor.as_ref().map(|acceptor| {
                (
                    acceptor.clone(),
                    tls_sockets.next().expect("one TLS socket per worker"),
                )
            }),
            // Admin listener and compiler live on worker 0 only.
            admin: if index == 0 { admin_task.take() } else { None },
        };
        let worker = Worker {
            index,
            listeners,
            shared: Arc::new(Shared {
                compiled: compiled_rx.clone(),
                store: store.clone(),
                limits,
                metrics: metrics.clone(),
                access_log: access_log.clone(),
                audit: audit.clone(),
                signin: signin.clone(),
            }),
            compiler: if index == 0 { compiler.take() } else { None },
            http1_max_buf: args.max_header_bytes,
            limits: args.limits,
            max_connections,
            trusted: args.trusted_proxies.clone(),
            shutdown: shutdown_rx.clone(),
            grace: Duration::from_secs(args.shutdown_grace),
        };
        done.push(worker.start()?);
    }
    tracing::info!(%http_addr, ?tls_addr, ?admin_addr, workers, max_connections, ?open_files, "Proxy listening");
    Ok(ServerHandle {
        http_addr,
        tls_addr,
        admin_addr,
        shutdown: shutdown_tx,
        done,
        compiled: compiled_rx,
    })
}
