//! Upgraded connections (WebSocket and other `Connection: Upgrade` protocols): once the
//! upstream has answered `101 Switching Protocols`, the client's and the upstream's
//! connections are spliced and bytes copied both ways until either side closes or the
//! tunnel has been idle for the route's idle timeout.
//!
//! The token is checked once, on the handshake request; a tunnel outlives the token's
//! expiry or revocation (as with every proxy that checks at the handshake). Only
//! HTTP/1.1 clients can upgrade: an HTTP/2 client's RFC 8441 extended CONNECT is
//! refused like any other CONNECT.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The protocol a request asks to switch to, if it is an upgrade request: HTTP/1.1,
/// `Upgrade` present and `upgrade` among the `Connection` tokens (RFC 9110 §7.8).
pub fn requested(version: Version, method: &Method, headers: &HeaderMap) -> Option<HeaderValue> {
    if version != Version::HTTP_11 || method == Method::CONNECT {
        return None;
    }
    let upgrade = headers.get(UPGRADE)?;
    let listed = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    listed.then(|| upgrade.clone())
}

/// Put back the two hop-by-hop headers an upgrade needs on the next hop (they were
/// removed with the other hop-by-hop headers).
pub fn restore_headers(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, protocol);
}

/// Bytes copied through one tunnel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
}

/// Why a tunnel ended.
#[derive(Debug)]
pub enum Ended {
    /// One side closed; both directions were shut down.
    Closed(Copied),
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// An upgrade never completed or a socket failed.
    Failed(io::Error),
}

/// Wait for both upgrades, then copy until one side closes or nothing moved for
/// `idle`. Runs as its own task; the result is for logging.
pub async fn splice(client: OnUpgrade, upstream: OnUpgrade, idle: Duration) -> Ended {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(error) => return Ended::Failed(io::Error::other(error)),
    };
    copy_with_idle_timeout(TokioIo::new(client), TokioIo::new(upstream), idle).await
}

/// Copy both ways between `a` and `b` until either closes, or until no byte has moved
/// in either direction for `idle`.
pub async fn copy_with_idle_timeout<A, B>(a: A, b: B, idle: Duration) -> Ended
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        inner: a,
        start,
        last: last.clone(),
    };
    let mut b = Activity {
        inner: b,
        start,
        last: last.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    let mut deadline = start + idle;
    loop {
        tokio::select! {
            result = &mut copy => {
                return match result {
                    Ok((up, down)) => Ended::Closed(Copied { client_to_upstream: up, upstream_to_client: down }),
                    Err(error) => Ended::Failed(error),
                };
            }
            _ = tokio::time::sleep_until(deadline) => {
                let active_at = start + Duration::from_millis(last.load(Ordering::Relaxed));
                if active_at + idle <= Instant::now() {
                    return Ended::Idle;
                }
                deadline = active_at + idle;
            }
        }
    }
}

/// A stream that notes when bytes last moved through it (in milliseconds since the
/// tunnel started), so one timer can police both directions.
struct Activity<T> {
    inner: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Activity<T> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Activity<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Activity<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn mk_headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn an_upgrade_needs_the_upgrade_header_and_the_connection_token_on_http11() {
        let ws = mk_headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(
            requested(Version::HTTP_11, &Method::GET, &ws).unwrap(),
            "websocket"
        );
        assert!(requested(Version::HTTP_2, &Method::GET, &ws).is_none());
        assert!(requested(Version::HTTP_11, &Method::CONNECT, &ws).is_none());
        let no_token = mk_headers(&[("connection", "keep-alive"), ("upgrade", "websocket")]);
        assert!(requested(Version::HTTP_11, &Method::GET, &no_token).is_none());
        let no_upgrade = mk_headers(&[("connection", "upgrade")]);
        assert!(requested(Version::HTTP_11, &Method::GET, &no_upgrade).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_tunnel_is_closed_after_the_idle_timeout_and_traffic_resets_it() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(copy_with_idle_timeout(
            client,
            upstream,
            Duration::from_secs(10),
        ));
        // Traffic every 6 s keeps it open past 10 s.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client_peer.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            upstream_peer.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ping");
        }
        assert!(!tunnel.is_finished());
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert!(matches!(tunnel.await.unwrap(), Ended::Idle));
    }

    #[tokio::test]
    async fn bytes_flow_both_ways_until_one_side_closes() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let tunnel = tokio::spawn(copy_with_idle_timeout(
            client,
            upstream,
            Duration::from_secs(60),
        ));
        client_peer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        upstream_peer.read_exact(&mut buf).await.unwrap();
        upstream_peer.write_all(b"back!!").await.unwrap();
        let mut back = [0u8; 6];
        client_peer.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back!!");
        drop(upstream_peer);
        client_peer.shutdown().await.unwrap();
        match tunnel.await.unwrap() {
            Ended::Closed(c) => assert_eq!(
                c,
                Copied {
                    client_to_upstream: 5,
                    upstream_to_client: 6
                }
            ),
            other => panic!("{other:?}"),
        }
    }
}
