//! Connections to upstream endpoints: TCP (with the connect timeout), optional TLS,
//! then an HTTP/1.1 or HTTP/2 handshake, and the per-worker pools that keep them.
//!
//! Each worker is its own `current_thread` runtime, so the pools are thread-local: no
//! lock, no checkout future, no background task per request (the generic pooled client
//! cost a few microseconds per request in those). A connection's driver task runs on
//! the worker that opened it.
//! - HTTP/1.1: a list of idle senders per endpoint; a sender is taken out for one
//!   request and put back at once (checkout skips it until it is ready again).
//! - HTTP/2: one multiplexed connection per endpoint, shared by the worker's requests.

use foldhash::{HashMap, HashMapExt as _};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::tls::{self, ClientTls};
use super::upload::UpstreamBody;

/// Idle upstream connections are closed after this long (upstreams commonly close
/// theirs after 60–75 s; closing first avoids reusing a connection being closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Where and how to connect (borrowed from an endpoint).
pub struct Target<'a> {
    /// Pool key: the endpoint's scheme, authority and protocol.
    pub key: &'a str,
    /// Host name or IP literal (without IPv6 brackets).
    pub host: &'a str,
    pub port: u16,
    pub tls: Option<&'a ClientTls>,
    pub connect_timeout: Duration,
}

/// Why no connection could be made (logged where it happens; the caller only needs
/// to know it was a connection failure, which counts against the endpoint).
#[derive(Debug)]
pub struct ConnectFailed;

/// A sender for one request on a fresh or pooled connection.
pub enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2(http2::SendRequest<UpstreamBody>),
}

/// An open transport, before the HTTP handshake.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn open(target: &Target<'_>, alpn_h2: &mut bool) -> Result<Io, ConnectFailed> {
    let tcp = match tokio::time::timeout(target.connect_timeout, open_tcp(target)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, upstream = target.key, "Upstream connect failed");
            return Err(ConnectFailed);
        }
        Err(_) => {
            tracing::debug!(upstream = target.key, "Upstream connect timed out");
            return Err(ConnectFailed);
        }
    };
    let _ = tcp.set_nodelay(true);
    let Some(client_tls) = target.tls else {
        return Ok(Io::Plain(tcp));
    };
    // The handshake shares the connect timeout: both are "reaching the upstream".
    match tokio::time::timeout(target.connect_timeout, client_tls.connect(target.host, tcp)).await {
        Ok(Ok(stream)) => {
            *alpn_h2 = tls::negotiated_h2(&stream);
            Ok(Io::Tls(Box::new(stream)))
        }
        Ok(Err(error)) if tls::is_verification_failure(&error) => {
            tracing::warn!(%error, upstream = target.key, "Upstream TLS certificate verification failed");
            Err(ConnectFailed)
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, upstream = target.key, "Upstream TLS handshake failed");
            Err(ConnectFailed)
        }
        Err(_) => {
            tracing::debug!(upstream = target.key, "Upstream TLS handshake timed out");
            Err(ConnectFailed)
        }
    }
}

async fn open_tcp(target: &Target<'_>) -> std::io::Result<TcpStream> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, target.port)).await;
    }
    let mut last = None;
    for addr in tokio::net::lookup_host((target.host, target.port)).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("host name resolved to no address")))
}

/// Open a new HTTP/1.1 connection. With `upgrades` the connection hands its socket
/// over after a `101` (it is then never pooled).
pub async fn connect_h1(target: &Target<'_>, upgrades: bool) -> Result<Sender, ConnectFailed> {
    let mut h2 = false;
    match open(target, &mut h2).await? {
        Io::Plain(io) => h1_handshake(io, upgrades).await,
        Io::Tls(io) => h1_handshake(io, upgrades).await,
    }
}

async fn h1_handshake<T>(io: T, upgrades: bool) -> Result<Sender, ConnectFailed>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(io)).await.map_err(|error| {
        tracing::debug!(%error, "Upstream handshake failed");
        ConnectFailed
    })?;
    tokio::spawn(async move {
        let result = if upgrades {
            conn.with_upgrades().await
        } else {
            conn.await
        };
        if let Err(error) = result {
            tracing::debug!(%error, "Upstream connection ended with an error");
        }
    });
    Ok(Sender::H1(sender))
}

/// Open a new HTTP/2 connection (prior knowledge on cleartext; over TLS, HTTP/2 when
/// the upstream picked `h2` by ALPN and HTTP/1.1 otherwise).
pub async fn connect_h2(target: &Target<'_>) -> Result<Sender, ConnectFailed> {
    let mut alpn_h2 = false;
    let io = open(target, &mut alpn_h2).await?;
    match io {
        Io::Plain(io) => h2_handshake(io).await,
        Io::Tls(io) if alpn_h2 => h2_handshake(io).await,
        Io::Tls(io) => h1_handshake(io, false).await,
    }
}

async fn h2_handshake<T>(io: T) -> Result<Sender, ConnectFailed>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(|error| {
            tracing::debug!(%error, "Upstream HTTP/2 handshake failed");
            ConnectFailed
        })?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "Upstream HTTP/2 connection ended with an error");
        }
    });
    Ok(Sender::H2(sender))
}

/// A kept-alive connection waiting in the pool.
struct Idle {
    sender: http1::SendRequest<UpstreamBody>,
    since: Instant,
}

thread_local! {
    /// One pool per worker thread: workers never contend on a pool lock, and routes
    /// share keep-alive connections to the same upstream address.
    static H1_POOL: RefCell<HashMap<String, Vec<Idle>>> = RefCell::new(HashMap::new());
    /// One shared HTTP/2 connection per upstream address and worker.
    static H2_POOL: RefCell<HashMap<String, http2::SendRequest<UpstreamBody>>> =
        RefCell::new(HashMap::new());
}

/// A pooled connection ready for a request, if there is one. Closed and expired
/// HTTP/1.1 connections met on the way are dropped (which closes them); ones still
/// busy with a response stay.
pub fn checkout(key: &str) -> Option<Sender> {
    let shared = H2_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        match pool.get(key) {
            Some(s) if !s.is_closed() => Some(Sender::H2(s.clone())),
            Some(_) => {
                pool.remove(key);
                None
            }
            None => None,
        }
    });
    if shared.is_some() {
        return shared;
    }
    H1_POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(key)?;
        let now = Instant::now();
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || now.duration_since(entry.since) > POOL_IDLE_TIMEOUT {
                idle.swap_remove(i);
            } else if entry.sender.is_ready() {
                return Some(Sender::H1(idle.swap_remove(i).sender));
            }
        }
        None
    })
}

/// Return a connection after its request was sent.
pub fn checkin(key: &str, sender: Sender) {
    match sender {
        Sender::H2(sender) => H2_POOL.with(|pool| {
            pool.borrow_mut().insert(key.to_owned(), sender);
        }),
        Sender::H1(sender) => H1_POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let idle = Idle {
                sender,
                since: Instant::now(),
            };
            match pool.get_mut(key) {
                Some(list) => list.push(idle),
                None => {
                    pool.insert(key.to_owned(), vec![idle]);
                }
            }
        }),
    }
}
