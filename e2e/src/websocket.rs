//! A real WebSocket upstream (tokio-tungstenite) on loopback for the Upgrade tests and
//! the bench: it echoes every text and binary message, and records the handshake
//! headers it received so tests can check what the proxy forwarded.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use futures::{SinkExt, StreamExt};
use http::HeaderMap;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::upstream::{accept_until_dropped, bind_loopback};

/// A running WebSocket echo server; stops when dropped.
pub struct WsEcho {
    /// Where it listens.
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<(String, HeaderMap)>>>,
    stop: watch::Sender<bool>,
}

impl WsEcho {
    /// Listen on `127.0.0.1:<random port>`.
    pub async fn start() -> WsEcho {
        let listener = bind_loopback().await;
        let addr = listener.local_addr().expect("bound socket has an address");
        let handshakes = Arc::new(Mutex::new(Vec::new()));
        let seen = handshakes.clone();
        let stop = accept_until_dropped(listener, move |stream| {
            let seen = seen.clone();
            async move {
                // The callback's signature is tungstenite's (its error is large).
                #[allow(clippy::result_large_err)]
                let record = |req: &Request, resp: Response| {
                    seen.lock()
                        .expect("no test thread panics while holding the lock")
                        .push((req.uri().to_string(), req.headers().clone()));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let echo = match &msg {
                        Message::Text(t) if t.as_str() == "close" => {
                            let _ = ws.close(None).await;
                            return;
                        }
                        Message::Close(_) => return,
                        Message::Text(_) | Message::Binary(_) => true,
                        _ => false,
                    };
                    if echo && ws.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        });
        WsEcho {
            addr,
            handshakes,
            stop,
        }
    }

    /// `http://127.0.0.1:<port>` (the proxy's upstream URL).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request target and headers of every handshake received so far.
    pub fn handshakes(&self) -> Vec<(String, HeaderMap)> {
        self.handshakes
            .lock()
            .expect("no test thread panics while holding the lock")
            .clone()
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A client connection.
pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a WebSocket to `url` (`ws://host:port/path`) with extra handshake headers.
/// Returns the connection, or the HTTP response that refused the upgrade.
pub async fn connect(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<WsClient, Box<http::Response<Option<Vec<u8>>>>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let mut req = url.into_client_request().expect("a valid ws:// URL");
    for (name, value) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("valid header name"),
            value.parse().expect("valid header value"),
        );
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(resp)) => Err(Box::new(resp.map(|b| b.map(|b| b.to_vec())))),
        Err(other) => panic!("WebSocket connect to {url} failed: {other}"),
    }
}
