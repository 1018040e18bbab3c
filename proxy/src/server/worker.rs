//! One worker: a thread running a `current_thread` runtime that accepts on its own
//! sockets and serves its connections to the end, then drains them on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::conns::{Admission, ConnGuard, ConnTable, TrackedBody};
use super::limits::LimitArgs;
use super::pipeline::{self, Shared};
use crate::admin::{self, AdminState};
use crate::compiled::{self, CompiledTx};
use crate::forwarded::{ConnInfo, TrustedProxies};
use crate::source::ConfigRx;

/// How long an idle connection told to close gets to do so before it is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The sockets one worker accepts on.
pub struct WorkerListeners {
    pub http: std::net::TcpListener,
    pub tls: Option<(TlsAcceptor, std::net::TcpListener)>,
    pub admin: Option<(std::net::TcpListener, Arc<AdminState>)>,
}

/// Everything a worker thread needs.
pub struct Worker {
    pub index: usize,
    pub listeners: WorkerListeners,
    pub shared: Arc<Shared>,
    /// The snapshot compiler (worker 0 only), with the login key that opens sealed
    /// TLS keys.
    pub compiler: Option<(
        ConfigRx,
        CompiledTx,
        Counter,
        Option<gatehouse_config::seal::LoginKey>,
    )>,
    pub http1_max_buf: usize,
    pub limits: LimitArgs,
    /// This worker's connection cap.
    pub max_connections: usize,
    pub trusted: TrustedProxies,
    pub shutdown: watch::Receiver<bool>,
    pub grace: Duration,
}

/// What the accept loops of one worker share.
struct Accepting {
    builder: auto::Builder<TokioExecutor>,
    limits: LimitArgs,
    conns: Arc<ConnTable>,
    shared: Arc<Shared>,
    trusted: TrustedProxies,
    shutdown: watch::Receiver<bool>,
    /// Each open connection holds a clone; the worker waits for all to drop.
    open: mpsc::Sender<()>,
}

impl Worker {
    /// Start the worker thread; the receiver fires when it has fully stopped.
    pub fn start(self) -> anyhow::Result<oneshot::Receiver<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("gatehouse-worker-{}", self.index))
            .spawn(move || {
                if let Err(error) = runtime.block_on(self.run()) {
                    tracing::error!(%error, "Worker failed");
                }
                // Dropping the runtime cancels connections still open after the grace period.
                drop(runtime);
                let _ = done_tx.send(());
            })?;
        Ok(done_rx)
    }

    async fn run(self) -> std::io::Result<()> {
        let Worker {
            listeners,
            shared,
            compiler,
            http1_max_buf,
            limits,
            max_connections,
            trusted,
            mut shutdown,
            grace,
            ..
        } = self;
        let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
        let accepting = Arc::new(Accepting {
            builder: limits.builder(http1_max_buf),
            limits,
            conns: ConnTable::new(max_connections),
            shared,
            trusted,
            shutdown: shutdown.clone(),
            open: open_tx,
        });

        let mut loops = vec![tokio::spawn(accept_loop(
            TcpListener::from_std(listeners.http)?,
            None,
            accepting.clone(),
        ))];
        if let Some((acceptor, socket)) = listeners.tls {
            loops.push(tokio::spawn(accept_loop(
                TcpListener::from_std(socket)?,
                Some(acceptor),
                accepting.clone(),
            )));
        }
        if let Some((socket, state)) = listeners.admin {
            loops.push(tokio::spawn(admin::serve(
                TcpListener::from_std(socket)?,
                state,
                shutdown.clone(),
            )));
        }
        if let Some((config, out, reloads, login_key)) = compiler {
            tokio::spawn(compiled::follow(config, out, reloads, login_key));
        }
        drop(accepting);

        // Accept loops only end on shutdown; one ending earlier (a panic) is fatal for
        // the worker, which then exits so the process can fail fast.
        let mut loops = futures::future::select_all(loops);
        let remaining = tokio::select! {
            // Biased: on shutdown the accept loops end too, and that must not be
            // mistaken for a crash (which would skip draining in-flight requests).
            biased;
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => loops.into_inner(),
            (result, _, rest) = &mut loops => {
                if !*shutdown.borrow() {
                    tracing::error!(?result, "Listener task ended unexpectedly; stopping this worker");
                    return Err(std::io::Error::other("listener task ended unexpectedly"));
                }
                rest
            }
        };
        let _ = futures::future::join_all(remaining).await;
        // Every connection task holds a sender; recv() yields None once all are gone.
        if tokio::time::timeout(grace, open_rx.recv()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "Shutdown grace period over; closing connections"
            );
        }
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, accepting: Arc<Accepting>) {
    let mut shutdown = accepting.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors: close the longest-idle connection and let
                    // its task run, or back off briefly when every connection is busy.
                    if is_out_of_files(&error) && accepting.conns.relieve() {
                        tokio::task::yield_now().await;
                    } else {
                        tracing::warn!(%error, "Accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
        };
        let guard = match accepting.conns.admit() {
            Admission::Admitted(guard) => guard,
            // Dropping the stream closes it; the table logs the pressure.
            Admission::Refused => continue,
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let info = Arc::new(ConnInfo::new(
            peer,
            local,
            tls.is_some(),
            &accepting.trusted,
        ));
        tokio::spawn(serve_stream(
            stream,
            tls.clone(),
            info,
            guard,
            accepting.clone(),
        ));
    }
}

fn is_out_of_files(error: &std::io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux and the BSDs.
    matches!(error.raw_os_error(), Some(23 | 24))
}

async fn serve_stream(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    info: Arc<ConnInfo>,
    guard: ConnGuard,
    accepting: Arc<Accepting>,
) {
    let _open = accepting.open.clone();
    let metrics = accepting.shared.metrics.clone();
    metrics.connections.inc();
    match tls {
        None => serve_io(TokioIo::new(stream), info, guard, &accepting).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(
                accepting.limits.tls_handshake_timeout(),
                acceptor.accept(stream),
            );
            let handshake = tokio::select! {
                done = handshake => done,
                _ = guard.evicted() => {
                    tracing::debug!(peer = %info.peer, "Closed during TLS handshake to make room");
                    metrics.connections.dec();
                    return;
                }
            };
            match handshake {
                Ok(Ok(tls_stream)) => {
                    serve_io(TokioIo::new(tls_stream), info, guard, &accepting).await
                }
                Ok(Err(error)) => {
                    tracing::debug!(peer = %info.peer, %error, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %info.peer, "TLS handshake timed out"),
            }
        }
    }
    metrics.connections.dec();
}

async fn serve_io<I>(io: I, info: Arc<ConnInfo>, guard: ConnGuard, accepting: &Accepting)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let guard = Arc::new(guard);
    let shared = accepting.shared.clone();
    let tracker = guard.clone();
    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        let info = info.clone();
        let in_flight = tracker.begin(req.version() == http::Version::HTTP_2);
        async move {
            let resp = pipeline::handle(&shared, &info, req).await;
            Ok::<_, Infallible>(resp.map(|body| TrackedBody::new(body, in_flight)))
        }
    });
    let mut shutdown = accepting.shutdown.clone();
    // With upgrades: a `101` hands the socket to the tunnel (WebSocket).
    let conn = accepting
        .builder
        .serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let header = accepting.limits.header_timeout();
    let idle = accepting.limits.idle_timeout();
    loop {
        // Re-checked at least this often, since requests come and go between checks
        // (an HTTP/2 connection switches from the header to the idle timeout).
        let wait = guard
            .idle_deadline(header, idle)
            .unwrap_or(Duration::MAX)
            .min(header.min(idle));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "Connection ended with an error");
                }
                return;
            }
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                // Finish in-flight requests, refuse new ones, close idle keep-alives now.
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
                return;
            }
            // Idle and needed elsewhere: close at once (nothing is in flight).
            _ = guard.evicted() => return,
            _ = tokio::time::sleep(wait) => {
                if guard.idle_deadline(header, idle).is_some_and(|left| left.is_zero()) {
                    // Silent since accept, or idle too long between requests.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                    return;
                }
            }
        }
    }
}
