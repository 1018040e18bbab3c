//! Real HTTP upstreams on loopback for tests.
//!
//! - [`TestUpstream::echo`] answers every request with a JSON description of what it
//!   received (method, path, query, headers, body) — see [`Echo`] for the shape. The
//!   request body is consumed as a stream and summarised (length + SHA-256), so large
//!   uploads are never held in memory.
//! - [`TestUpstream::slow`] waits before sending response headers (timeouts).
//! - [`TestUpstream::streaming`] answers with a large body produced chunk by chunk.
//! - [`TestUpstream::start`] runs any handler you give it.
//!
//! Every upstream listens on `127.0.0.1:<random port>` and stops when dropped.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Body type of test upstream responses (and handy for test requests too).
pub type TestBody = BoxBody<Bytes, std::io::Error>;

/// The first this-many bytes of a request body are echoed verbatim in `body`.
pub const ECHO_BODY_PREFIX: usize = 1024 * 1024;

/// A running upstream; stops when dropped.
pub struct TestUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: watch::Sender<bool>,
}

impl TestUpstream {
    /// Serve every request with `handler` (HTTP/1.1 and HTTP/2 cleartext).
    pub async fn start<F, Fut>(handler: F) -> TestUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        Self::serve(bind_loopback().await, handler, None)
    }

    /// Like [`TestUpstream::start`] behind TLS with `config` (HTTP/2 when its ALPN
    /// offers `h2` and the client picks it).
    pub async fn start_tls<F, Fut>(handler: F, config: Arc<rustls::ServerConfig>) -> TestUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        Self::serve(
            bind_loopback().await,
            handler,
            Some(tokio_rustls::TlsAcceptor::from(config)),
        )
    }

    /// Serve `listener` (e.g. one bound inside a test network namespace, see
    /// [`crate::netns`]) with `handler`.
    pub fn start_on<F, Fut>(listener: std::net::TcpListener, handler: F) -> TestUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        listener
            .set_nonblocking(true)
            .expect("listener set non-blocking");
        Self::serve(
            TcpListener::from_std(listener).expect("listener registered with tokio"),
            handler,
            None,
        )
    }

    /// Like [`TestUpstream::start_on`] behind TLS with `config`.
    pub fn start_tls_on<F, Fut>(
        listener: std::net::TcpListener,
        handler: F,
        config: Arc<rustls::ServerConfig>,
    ) -> TestUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        listener
            .set_nonblocking(true)
            .expect("listener set non-blocking");
        Self::serve(
            TcpListener::from_std(listener).expect("listener registered with tokio"),
            handler,
            Some(tokio_rustls::TlsAcceptor::from(config)),
        )
    }

    fn serve<F, Fut>(
        listener: TcpListener,
        handler: F,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> TestUpstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let addr = listener.local_addr().expect("bound socket has an address");
        let requests = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let counter = requests.clone();
        let stop = accept_until_dropped(listener, move |stream| {
            let handler = handler.clone();
            let counter = counter.clone();
            let tls = tls.clone();
            async move {
                let service = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let fut = handler(req);
                    async move { Ok::<_, Infallible>(fut.await) }
                });
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match tls {
                    None => {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                    Some(acceptor) => {
                        // A refused handshake (the proxy distrusts us) just ends here.
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        }
                    }
                }
            }
        });
        TestUpstream {
            addr,
            requests,
            stop,
        }
    }

    /// Answer with a JSON [`Echo`] of the request.
    pub async fn echo() -> TestUpstream {
        Self::start(|req| async move { echo_response(req).await }).await
    }

    /// Wait `delay` before answering with an echo.
    pub async fn slow(delay: Duration) -> TestUpstream {
        Self::start(move |req| async move {
            tokio::time::sleep(delay).await;
            echo_response(req).await
        })
        .await
    }

    /// Answer every request with `total` bytes of [`pattern_body`], produced lazily.
    pub async fn streaming(total: u64) -> TestUpstream {
        Self::start(move |_req| async move { Response::new(pattern_body(total)) }).await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `127.0.0.1:<random port>`, bound.
pub async fn bind_loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

/// The accept loop of every loopback server here: each connection `listener` accepts
/// goes to `serve` on a task of its own, until the returned sender is dropped (or
/// sent to).
pub fn accept_until_dropped<F, Fut>(listener: TcpListener, serve: F) -> watch::Sender<bool>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(_) => continue,
                },
                _ = stopped.changed() => return,
            };
            tokio::spawn(serve(stream));
        }
    });
    stop
}

/// What [`TestUpstream::echo`] answers, as JSON:
/// `{"method","path","query","headers":{name: value},"body","body_len","body_sha256"}`.
/// Header names are lowercase; repeated headers are joined with `", "`. `query` is
/// `null` without a query string. `body` holds (lossy UTF-8) the first
/// [`ECHO_BODY_PREFIX`] bytes.
pub struct Echo;

/// Build the echo response for `req`, streaming its body through a hash.
pub async fn echo_response(req: Request<Incoming>) -> Response<TestBody> {
    let (parts, mut body) = req.into_parts();
    let mut hasher = Sha256::new();
    let mut len: u64 = 0;
    let mut prefix = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            len += data.len() as u64;
            let room = ECHO_BODY_PREFIX.saturating_sub(prefix.len());
            prefix.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let joined = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_owned(), joined.into());
    }
    let echo = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&prefix),
        "body_len": len,
        "body_sha256": hex_digest(hasher),
        "version": format!("{:?}", parts.version),
    });
    let mut resp = Response::new(full(echo.to_string()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Consume a request body and check it is the [`pattern_body`] byte stream; answers
/// `{"body_len": n, "pattern_ok": bool}`. Cheaper than hashing for multi-MiB bodies.
pub async fn pattern_check_response(req: Request<Incoming>) -> Response<TestBody> {
    let mut body = req.into_body();
    let (mut len, mut ok) = (0u64, true);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            ok = false;
            break;
        };
        if let Ok(data) = frame.into_data() {
            ok &= matches_pattern(len, &data);
            len += data.len() as u64;
        }
    }
    Response::new(full(
        serde_json::json!({ "body_len": len, "pattern_ok": ok }).to_string(),
    ))
}

/// Whether `data` equals the pattern bytes starting at `offset`.
pub fn matches_pattern(offset: u64, data: &[u8]) -> bool {
    data.chunks(PATTERN_CHUNK).enumerate().all(|(i, part)| {
        part == pattern_chunk(offset + (i * PATTERN_CHUNK) as u64, part.len()).as_ref()
    })
}

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> TestBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// The deterministic byte at offset `i` of a [`pattern_body`].
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

/// SHA-256 (hex) of the first `total` bytes of the pattern, as [`Echo`] reports it.
pub fn pattern_sha256(total: u64) -> String {
    let mut hasher = Sha256::new();
    let mut offset = 0;
    while offset < total {
        let n = (total - offset).min(PATTERN_CHUNK as u64);
        hasher.update(pattern_chunk(offset, n as usize));
        offset += n;
    }
    hex_digest(hasher)
}

/// SHA-256 (hex) of arbitrary bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(data);
    hex_digest(hasher)
}

fn hex_digest(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

const PATTERN_CHUNK: usize = 64 * 1024;

/// The pattern repeats every 251 bytes: one pre-built run is sliced (no copy) for
/// every chunk, which keeps multi-MiB tests cheap even in debug builds.
fn pattern_chunk(offset: u64, len: usize) -> Bytes {
    static RUN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let run = RUN.get_or_init(|| {
        (0..(PATTERN_CHUNK + 251) as u64)
            .map(pattern_byte)
            .collect::<Vec<u8>>()
            .into()
    });
    let start = (offset % 251) as usize;
    run.slice(start..start + len)
}

/// A body of `total` pattern bytes generated chunk by chunk as it is polled (never
/// materialised whole), without a declared length (sent chunked).
pub fn pattern_body(total: u64) -> TestBody {
    PatternBody { total, offset: 0 }.boxed()
}

struct PatternBody {
    total: u64,
    offset: u64,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.offset >= self.total {
            return Poll::Ready(None);
        }
        let n = (self.total - self.offset).min(PATTERN_CHUNK as u64);
        let chunk = pattern_chunk(self.offset, n as usize);
        self.offset += n;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.total
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A body fed by hand: push chunks through the returned sender, drop it to finish.
/// Useful to prove a proxy forwards data before the whole body exists.
pub fn channel_body() -> (
    http_body_util::channel::Sender<Bytes, std::io::Error>,
    TestBody,
) {
    let (tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    (tx, body.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_check_accepts_the_pattern_and_nothing_else() {
        let expected: Vec<u8> = (70_000..70_000 + 3 * PATTERN_CHUNK as u64)
            .map(pattern_byte)
            .collect();
        assert!(matches_pattern(70_000, &expected));
        assert!(!matches_pattern(70_001, &expected));
        let mut corrupt = expected.clone();
        corrupt[PATTERN_CHUNK + 5] ^= 1;
        assert!(!matches_pattern(70_000, &corrupt));
    }

    #[test]
    fn the_pattern_hash_matches_hashing_the_bytes() {
        let bytes: Vec<u8> = (0..100_000).map(pattern_byte).collect();
        assert_eq!(pattern_sha256(100_000), sha256_hex(&bytes));
    }
}
