//! One worker: a thread running a `current_thread` runtime that accepts on its own
//! sockets and serves its connections to the end, then drains them on shutdown.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::pipeline::{self, Shared};
use crate::admin::{self, AdminState};
use crate::compiled::{self, CompiledTx};
use crate::forwarded::{ConnInfo, TrustedProxies};
use crate::source::ConfigRx;

/// A client that has not finished the TLS handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that has not sent a complete request head by then is dropped (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// hyper refuses an HTTP/1 read buffer smaller than this.
const MIN_HTTP1_BUF: usize = 8 * 1024;

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
    pub compiler: Option<(ConfigRx, CompiledTx, Counter)>,
    pub http1_max_buf: usize,
    pub trusted: TrustedProxies,
    pub shutdown: watch::Receiver<bool>,
    pub grace: Duration,
}

/// What the accept loops of one worker share.
struct Accepting {
    builder: auto::Builder<TokioExecutor>,
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
            trusted,
            mut shutdown,
            grace,
            ..
        } = self;
        let (open_tx, mut open_rx) = mpsc::channel::<()>(1);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(http1_max_buf.max(MIN_HTTP1_BUF));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(http1_max_buf).unwrap_or(u32::MAX));
        let accepting = Arc::new(Accepting {
            builder,
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
        if let Some((config, out, reloads)) = compiler {
            tokio::spawn(compiled::follow(config, out, reloads));
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
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "Accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
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
        tokio::spawn(serve_stream(stream, tls.clone(), info, accepting.clone()));
    }
}

async fn serve_stream(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    info: Arc<ConnInfo>,
    accepting: Arc<Accepting>,
) {
    let _open = accepting.open.clone();
    let metrics = accepting.shared.metrics.clone();
    metrics.connections.inc();
    match tls {
        None => serve_io(TokioIo::new(stream), info, &accepting).await,
        Some(acceptor) => {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_io(TokioIo::new(tls_stream), info, &accepting).await,
                Ok(Err(error)) => {
                    tracing::debug!(peer = %info.peer, %error, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %info.peer, "TLS handshake timed out"),
            }
        }
    }
    metrics.connections.dec();
}

async fn serve_io<I>(io: I, info: Arc<ConnInfo>, accepting: &Accepting)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let shared = accepting.shared.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let info = info.clone();
        async move { Ok::<_, Infallible>(pipeline::handle(&shared, &info, req).await) }
    });
    let mut shutdown = accepting.shutdown.clone();
    // With upgrades: a `101` hands the socket to the tunnel (WebSocket).
    let conn = accepting
        .builder
        .serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "Connection ended with an error");
            }
        }
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            // Finish in-flight requests, refuse new ones, close idle keep-alives now.
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        }
    }
}
