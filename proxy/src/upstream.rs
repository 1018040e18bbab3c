//! Calling upstreams: the pipeline's last step ([`forward`]: header and URI rewriting,
//! then the call), endpoint URLs compiled once per snapshot, round robin, and a
//! keep-alive HTTP/1.1 connection pool per worker thread with the route's timeouts.
//!
//! Each worker is its own `current_thread` runtime, so the pool is a thread-local
//! list of idle `hyper::client::conn::http1` senders per upstream address: no lock,
//! no checkout future, no background task per request (the generic pooled client
//! cost a few microseconds per request in those). A connection's driver task runs
//! on the worker that opened it.
//!
//! Bodies are streamed both ways: the request body is handed to the connection as the
//! stream it arrived as, and the response body is returned unread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::HOST;
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::body::ProxyBody;
use crate::config::{Route, Upstream};
use crate::error::Rejection;
use crate::forwarded::ConnInfo;
use crate::headers::strip_hop_by_hop;
use crate::router::Routed;

/// Forward a routed (and, on a protected route, checked) request to one of the route's
/// endpoints: the path that was matched (stripped of the route prefix when the route
/// says so) under the endpoint's base path, hop-by-hop headers removed both ways,
/// `X-Forwarded-*` set, and the upstream's own `Host` unless the route preserves it.
pub async fn forward(
    upstreams: &UpstreamSet,
    route: &Route,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    mut parts: Parts,
    body: ProxyBody,
) -> Result<Response<ProxyBody>, Rejection> {
    let endpoint = upstreams.pick()?;
    let upstream_path = if route.strip_path {
        routed.suffix()
    } else {
        &routed.path
    };
    // Enforcement may have rewritten the query (hide_credentials), so read it here.
    let target = endpoint.origin_uri(upstream_path, parts.uri.query())?;
    strip_hop_by_hop(&mut parts.headers);
    conn.set_forwarded_headers(&mut parts.headers, routed.host.as_ref());
    let upstream_host = match (&routed.host, route.preserve_host) {
        (Some(h), true) => h.clone(),
        _ => endpoint.host().clone(),
    };
    parts.headers.insert(HOST, upstream_host);
    parts.uri = target;
    let mut resp = upstreams
        .send(endpoint, Request::from_parts(parts, body))
        .await?;
    strip_hop_by_hop(resp.headers_mut());
    Ok(resp.map(Either::Left))
}

/// Idle upstream connections are closed after this long (upstreams commonly close
/// theirs after 60–75 s; closing first avoids reusing a connection being closed).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// One upstream base URL, pre-parsed.
#[derive(Debug, Clone)]
pub struct Endpoint {
    authority: Authority,
    /// Host name or IP literal (without IPv6 brackets) to connect to.
    connect_host: String,
    /// Port to connect to (80 when the URL names none).
    port: u16,
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
        let connect_host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let base_path = uri.path().trim_end_matches('/').to_owned();
        Ok(Endpoint {
            authority,
            connect_host,
            port,
            base_path,
            host,
        })
    }

    /// The origin-form request target (`/base/path?query`) sent on the upstream
    /// connection for a (possibly stripped) request path and raw query.
    pub fn origin_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        Ok(Uri::from(self.path_and_query(path, query)?))
    }

    fn path_and_query(&self, path: &str, query: Option<&str>) -> Result<PathAndQuery, Rejection> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        PathAndQuery::from_maybe_shared(pq).map_err(|_| Rejection::BadRequest)
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

    /// Send a fully prepared request (origin-form URI from [`Endpoint::origin_uri`],
    /// headers rewritten) to `endpoint` and wait for the response headers within the
    /// route's response timeout. Connection failures (including the connect timeout)
    /// are 502, the response timeout 504.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        // Upstream connections are HTTP/1.1 whatever the client spoke.
        *req.version_mut() = Version::HTTP_11;
        match tokio::time::timeout(self.response_timeout, self.exchange(endpoint, req)).await {
            Ok(result) => result,
            Err(_) => Err(Rejection::UpstreamTimeout),
        }
    }

    async fn exchange(
        &self,
        endpoint: &Endpoint,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        loop {
            let (mut sender, reused) = match checkout(&endpoint.authority) {
                Some(sender) => (sender, true),
                None => (connect(endpoint, self.connect_timeout).await?, false),
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    // The sender goes back at once; checkout skips it until the
                    // connection has finished this response and wants the next.
                    checkin(&endpoint.authority, sender);
                    return Ok(resp);
                }
                Err(mut error) => match error.take_message() {
                    // A kept-alive connection closed before the request was written
                    // (the upstream closed it while idle): retry on another one.
                    Some(unsent) if reused => req = unsent,
                    _ => {
                        tracing::debug!(error = %error.error(), "Upstream request failed");
                        return Err(Rejection::UpstreamUnavailable);
                    }
                },
            }
        }
    }
}

/// A kept-alive connection waiting in the pool.
struct Idle {
    sender: SendRequest<ProxyBody>,
    since: Instant,
}

thread_local! {
    /// One pool per worker thread: workers never contend on a pool lock, and routes
    /// share keep-alive connections to the same upstream address.
    static POOL: RefCell<HashMap<Authority, Vec<Idle>>> = RefCell::new(HashMap::new());
}

/// A pooled connection ready for a request, if there is one. Closed and expired
/// connections met on the way are dropped (dropping the sender closes the connection);
/// connections still busy with a response stay.
fn checkout(authority: &Authority) -> Option<SendRequest<ProxyBody>> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(authority)?;
        let now = Instant::now();
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || now.duration_since(entry.since) > POOL_IDLE_TIMEOUT {
                idle.swap_remove(i);
            } else if entry.sender.is_ready() {
                return Some(idle.swap_remove(i).sender);
            }
        }
        None
    })
}

fn checkin(authority: &Authority, sender: SendRequest<ProxyBody>) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = Idle {
            sender,
            since: Instant::now(),
        };
        match pool.get_mut(authority) {
            Some(list) => list.push(idle),
            None => {
                pool.insert(authority.clone(), vec![idle]);
            }
        }
    })
}

/// Open a new connection to `endpoint` within `timeout` and start its driver task on
/// this worker.
async fn connect(
    endpoint: &Endpoint,
    timeout: Duration,
) -> Result<SendRequest<ProxyBody>, Rejection> {
    let stream = match tokio::time::timeout(timeout, open_tcp(endpoint)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%error, upstream = %endpoint.authority, "Upstream connect failed");
            return Err(Rejection::UpstreamUnavailable);
        }
        Err(_) => {
            tracing::debug!(upstream = %endpoint.authority, "Upstream connect timed out");
            return Err(Rejection::UpstreamUnavailable);
        }
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| {
            tracing::debug!(%error, "Upstream handshake failed");
            Rejection::UpstreamUnavailable
        })?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "Upstream connection ended with an error");
        }
    });
    Ok(sender)
}

async fn open_tcp(endpoint: &Endpoint) -> std::io::Result<TcpStream> {
    if let Ok(ip) = endpoint.connect_host.parse::<IpAddr>() {
        return TcpStream::connect(SocketAddr::new(ip, endpoint.port)).await;
    }
    let mut last = None;
    for addr in tokio::net::lookup_host((endpoint.connect_host.as_str(), endpoint.port)).await? {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("host name resolved to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_base_paths_are_joined_with_the_request_path() {
        let e = Endpoint::parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(e.host(), "127.0.0.1:9000");
        assert_eq!(e.origin_uri("/x/y", Some("a=1")).unwrap(), "/base/x/y?a=1");
        let e = Endpoint::parse("http://upstream").unwrap();
        assert_eq!(e.origin_uri("/", None).unwrap(), "/");
        assert_eq!((e.connect_host.as_str(), e.port), ("upstream", 80));
        let e = Endpoint::parse("http://[::1]:8080").unwrap();
        assert_eq!((e.connect_host.as_str(), e.port), ("::1", 8080));
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
