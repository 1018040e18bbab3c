//! A tiny built-in upstream for the quickstart: answers every request with JSON
//! describing it (method, path, query, headers), so a newcomer sees exactly what
//! Gatehouse forwarded, including the `X-Consumer-*` / `X-Authenticated-*` headers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Where the embedded quickstart's route sends traffic.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9099";

/// Bind `addr` and serve the echo upstream in the background. Returns the bound
/// address (useful with port 0).
pub async fn spawn(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::debug!(%error, "Echo upstream accept failed");
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(echo))
                    .await;
            });
        }
    });
    Ok((bound, task))
}

async fn echo<B>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(describe(&req))))
        .expect("static response parts are valid"))
}

/// The JSON description of a request (headers sorted, repeated ones joined by ", ").
pub fn describe<B>(req: &Request<B>) -> Vec<u8> {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "headers": headers,
    });
    let mut out = serde_json::to_vec_pretty(&body).expect("JSON values serialize");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_answers_with_the_request_it_received() {
        let (addr, task) = spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nX-Consumer-Username: clark\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["method"], "GET");
        assert_eq!(json["path"], "/hello");
        assert_eq!(json["query"], "x=1");
        assert_eq!(json["headers"]["x-consumer-username"], "clark");
        task.abort();
    }
}
