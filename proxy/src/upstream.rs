//! Calling upstreams: endpoint URLs compiled once per snapshot, round robin, and a
//! pooled keep-alive HTTP/1.1 client per worker thread with the route's timeouts.
//!
//! Bodies are streamed both ways: the request body is handed to the client as the
//! stream it arrived as, and the response body is returned unread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::ProxyBody;
use crate::config::Upstream;
use crate::error::Rejection;

/// Idle upstream connections are closed after this long (upstreams commonly close
/// theirs after 60–75 s; closing first avoids reusing a connection being closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// One upstream base URL, pre-parsed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    authority: Authority,
    /// Base path without trailing `/` (empty for none).
    base_path: String,
    /// `Host` header value when the route does not preserve the client's.
    host: HeaderValue,
}

impl Endpoint {
    /// Parse `http://host:port[/base]`. Only plain HTTP endpoints are supported.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if uri.scheme() != Some(&Scheme::HTTP) {
            return Err(format!(
                "`{url}`: only http:// upstream endpoints are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|e| format!("`{url}`: {e}"))?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint {
            authority,
            base_path,
            host,
        })
    }

    /// The upstream URI for a (possibly stripped) request path and raw query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let pq = PathAndQuery::from_maybe_shared(pq).map_err(|_| Rejection::BadRequest)?;
        Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| Rejection::BadRequest)
    }

    /// The endpoint's own `Host` header value.
    pub fn host(&self) -> &HeaderValue {
        &self.host
    }
}

/// A route's endpoints with its round-robin cursor and timeouts.
#[derive(Debug)]
pub struct UpstreamSet {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    connect_timeout: Duration,
    response_timeout: Duration,
}

impl UpstreamSet {
    /// Compile a route's upstream; endpoints that cannot be used are reported and left
    /// out (the route answers 503 when none remain).
    pub fn new(upstream: &Upstream) -> (Self, Vec<String>) {
        let mut endpoints = Vec::new();
        let mut problems = Vec::new();
        for url in &upstream.endpoints {
            match Endpoint::parse(url) {
                Ok(e) => endpoints.push(e),
                Err(p) => problems.push(p),
            }
        }
        let set = UpstreamSet {
            endpoints,
            next: AtomicUsize::new(0),
            connect_timeout: Duration::from_millis(upstream.connect_timeout_ms),
            response_timeout: Duration::from_millis(upstream.response_timeout_ms),
        };
        (set, problems)
    }

    /// Next endpoint, round robin across every worker.
    pub fn pick(&self) -> Result<&Endpoint, Rejection> {
        if self.endpoints.is_empty() {
            return Err(Rejection::NoEndpoints);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        Ok(&self.endpoints[i])
    }

    /// Send a fully prepared request (absolute URI, headers rewritten) and wait for the
    /// response headers within the route's response timeout. Connection failures
    /// (including the connect timeout) are 502, the response timeout 504.
    pub async fn send(&self, mut req: Request<ProxyBody>) -> Result<Response<Incoming>, Rejection> {
        // Upstream connections are HTTP/1.1 whatever the client spoke.
        *req.version_mut() = Version::HTTP_11;
        let client = client_for(self.connect_timeout);
        match tokio::time::timeout(self.response_timeout, client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(error)) => {
                tracing::debug!(%error, connect = error.is_connect(), "Upstream request failed");
                Err(Rejection::UpstreamUnavailable)
            }
            Err(_) => Err(Rejection::UpstreamTimeout),
        }
    }
}

type UpstreamClient = Client<HttpConnector, ProxyBody>;

thread_local! {
    /// One pool per worker thread and connect timeout: workers never contend on a
    /// pool lock, and routes share keep-alive connections to the same upstream.
    static CLIENTS: RefCell<HashMap<Duration, UpstreamClient>> = RefCell::new(HashMap::new());
}

fn client_for(connect_timeout: Duration) -> UpstreamClient {
    CLIENTS.with(|clients| {
        clients
            .borrow_mut()
            .entry(connect_timeout)
            .or_insert_with(|| new_client(connect_timeout))
            .clone()
    })
}

fn new_client(connect_timeout: Duration) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(connect_timeout));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        // The proxy always sets Host itself (preserve_host or the endpoint's).
        .set_host(false)
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_base_paths_are_joined_with_the_request_path() {
        let e = Endpoint::parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(
            e.uri("/x/y", Some("a=1")).unwrap(),
            "http://127.0.0.1:9000/base/x/y?a=1"
        );
        assert_eq!(e.host(), "127.0.0.1:9000");
        let e = Endpoint::parse("http://upstream").unwrap();
        assert_eq!(e.uri("/", None).unwrap(), "http://upstream/");
    }

    #[test]
    fn only_plain_http_endpoints_are_accepted() {
        assert!(Endpoint::parse("https://a").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn endpoints_are_used_round_robin_and_empty_sets_are_503() {
        let up = Upstream {
            endpoints: vec!["http://a:1".into(), "http://b:2".into(), "ftp://bad".into()],
            connect_timeout_ms: 1,
            response_timeout_ms: 1,
        };
        let (set, problems) = UpstreamSet::new(&up);
        assert_eq!(problems.len(), 1);
        let picks: Vec<_> = (0..4).map(|_| set.pick().unwrap().host().clone()).collect();
        assert_eq!(picks, ["a:1", "b:2", "a:1", "b:2"]);
        let (empty, _) = UpstreamSet::new(&Upstream {
            endpoints: vec![],
            ..up
        });
        assert_eq!(empty.pick().unwrap_err(), Rejection::NoEndpoints);
    }
}
