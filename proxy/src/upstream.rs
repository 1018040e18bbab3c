//! Calling upstreams: the pipeline's last step ([`forward`]: header and URI rewriting,
//! upgrades, then the call), endpoint URLs compiled once per snapshot, round robin over
//! the endpoints not ejected, and a request sent with the route's timeouts over a
//! pooled HTTP/1.1 or HTTP/2 connection, plain or TLS ([`conn`]).
//!
//! Bodies are streamed both ways: the request body is handed to the connection as the
//! stream it arrived as, and the response body is returned unread.

mod conn;
mod health;
pub mod tls;
pub mod tunnel;
mod upload;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HOST, TE, UPGRADE};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use prometheus_client::metrics::gauge::Gauge;

use crate::body::ProxyBody;
use crate::config::{Route, Timeouts, Upstream, UpstreamProtocol};
use crate::error::Rejection;
use crate::filters;
use crate::forwarded::ConnInfo;
use crate::headers::strip_hop_by_hop;
use crate::router::Routed;
use conn::{ConnectFailed, Sender, Target};
use health::{EndpointHealth, Policy};
use tls::ClientTls;
use upload::UpstreamBody;

/// What [`forward`] reports about the call (for the access log and metrics).
#[derive(Debug, Default)]
pub struct Trace {
    /// `scheme://host:port` of the endpoint used.
    pub address: Option<Arc<str>>,
    /// Time from sending to the response headers.
    pub elapsed: Option<Duration>,
    /// The connection was upgraded (WebSocket) and is now a tunnel.
    pub upgraded: bool,
}

/// Forward a routed (and, on a protected route, checked) request to one of the route's
/// endpoints: the path that was matched (stripped of the route prefix when the route
/// says so) under the endpoint's base path, hop-by-hop headers removed both ways
/// (`Connection`/`Upgrade` restored for an upgrade), `X-Forwarded-*` set, and the
/// upstream's own `Host` unless the route preserves it. A `101` answer to an upgrade
/// starts a tunnel task counted in `tunnels`.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    upstreams: &UpstreamSet,
    route: &Route,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    mut parts: Parts,
    body: ProxyBody,
    tunnels: &Gauge,
    trace: &mut Trace,
) -> Result<Response<ProxyBody>, Rejection> {
    let endpoint = upstreams.pick()?;
    let rewrite = route.filters.rewrite.as_ref();
    // A rewrite applies to the path routing checked (after the path policy).
    let rewritten = rewrite
        .and_then(|r| r.path.as_ref())
        .map(|rw| filters::rewrite_path(rw, routed.path.matched(), routed.prefix_len));
    let upstream_path = match &rewritten {
        Some(p) => p.as_str(),
        None => routed.forward_path(route.strip_path),
    };
    // Enforcement may have rewritten the query (hide_credentials), so read it here.
    // The common case, the request's own path and query sent as they came, reuses the
    // request's parsed target instead of building and re-parsing a copy.
    let same_target = (upstream_path == parts.uri.path())
        .then(|| endpoint.forward_target(&parts.uri))
        .flatten();
    let target = match same_target {
        Some(target) => target,
        None => endpoint.origin_uri(upstream_path, parts.uri.query())?,
    };
    let upgrade = tunnel::requested(parts.version, &parts.method, &parts.headers);
    strip_hop_by_hop(&mut parts.headers);
    conn.set_forwarded_headers(&mut parts.headers, routed.host.as_ref());
    filters::edit_request_headers(&mut parts.headers, &route.filters.request_headers);
    let rewrite_host = rewrite
        .and_then(|r| r.hostname.as_deref())
        .and_then(|h| HeaderValue::from_str(h).ok());
    let upstream_host = match (rewrite_host, &routed.host, route.preserve_host) {
        (Some(h), _, _) => h,
        (None, Some(h), true) => h.clone(),
        _ => endpoint.host().clone(),
    };
    parts.headers.insert(HOST, upstream_host);
    parts.uri = target;
    trace.address = Some(endpoint.address.clone());
    let sent_at = tokio::time::Instant::now();
    let Some(protocol) = upgrade else {
        let mut resp = upstreams
            .send(endpoint, Request::from_parts(parts, body))
            .await?;
        trace.elapsed = Some(sent_at.elapsed());
        strip_hop_by_hop(resp.headers_mut());
        filters::edit_response_headers(resp.headers_mut(), &route.filters.response_headers);
        return Ok(resp.map(Either::Left));
    };
    tunnel::restore_headers(&mut parts.headers, protocol);
    let client_side = parts.extensions.remove::<OnUpgrade>();
    // Boxed: rare, and it would otherwise size every request's future.
    let mut resp =
        Box::pin(upstreams.send_upgrade(endpoint, Request::from_parts(parts, body))).await?;
    trace.elapsed = Some(sent_at.elapsed());
    let accepted = resp.headers().get(UPGRADE).cloned();
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(resp.headers_mut());
    if !switching {
        return Ok(resp.map(Either::Left));
    }
    let Some(client_side) = client_side else {
        return Err(Rejection::BadRequest);
    };
    let upstream_side = hyper::upgrade::on(&mut resp);
    if let Some(protocol) = accepted {
        tunnel::restore_headers(resp.headers_mut(), protocol);
    }
    let idle = upstreams.tunnel_idle();
    let tunnels = tunnels.clone();
    let route_id = route.id.clone();
    tokio::spawn(async move {
        tunnels.inc();
        let ended = tunnel::splice(client_side, upstream_side, idle).await;
        tunnels.dec();
        tracing::debug!(route.id = %route_id, ?ended, "Tunnel closed");
    });
    trace.upgraded = true;
    Ok(resp.map(Either::Left))
}

/// Upgraded connections idle this long are closed when the route sets no idle timeout.
const DEFAULT_TUNNEL_IDLE: Duration = Duration::from_secs(3600);

/// One upstream base URL, pre-parsed.
#[derive(Debug)]
pub struct Endpoint {
    /// `http` or `https` (what the request URI carries for HTTP/2).
    scheme: Scheme,
    authority: Authority,
    /// Host name or IP literal (without IPv6 brackets) to connect to.
    connect_host: String,
    /// Port to connect to (the scheme's default when the URL names none).
    port: u16,
    /// Base path without trailing `/` (empty for none).
    base_path: String,
    /// `Host` header value when the route does not preserve the client's.
    host: HeaderValue,
    /// Spoken to over TLS.
    tls: bool,
    /// Spoken to over HTTP/2 (`grpc://`, `grpcs://`, or the upstream's protocol).
    h2: bool,
    /// Pool key: connections are shared only between identical scheme/authority/protocol.
    key: String,
    /// `scheme://host:port`, for logs.
    address: Arc<str>,
    health: EndpointHealth,
    /// Share of the traffic relative to the other endpoints (Gateway API `weight`).
    weight: u32,
}

impl Endpoint {
    /// Parse `http://`, `https://`, `grpc://` (HTTP/2 cleartext) or `grpcs://` (HTTP/2
    /// over TLS) `host[:port][/base]`, spoken to with `protocol`.
    pub fn parse(url: &str, protocol: UpstreamProtocol) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let (tls, grpc) = match uri.scheme_str() {
            Some("http") => (false, false),
            Some("https") => (true, false),
            Some("grpc") => (false, true),
            Some("grpcs") => (true, true),
            _ => {
                return Err(format!(
                    "`{url}`: upstream endpoints are http://, https://, grpc:// or grpcs:// URLs"
                ))
            }
        };
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
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let h2 = grpc || protocol != UpstreamProtocol::Http1;
        let scheme = if tls { Scheme::HTTPS } else { Scheme::HTTP };
        let address: Arc<str> = format!("{scheme}://{authority}").into();
        let key = format!("{address}{}", if h2 { "#h2" } else { "" });
        Ok(Endpoint {
            scheme,
            authority,
            connect_host,
            port,
            base_path,
            host,
            tls,
            h2,
            key,
            address,
            weight: 1,
            health: EndpointHealth::default(),
        })
    }

    /// The absolute upstream URI for a (possibly stripped) request path and raw query.
    pub fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        let pq = self.path_and_query(path, query)?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| Rejection::BadRequest)
    }

    /// The request target sent on the upstream connection for a (possibly stripped)
    /// request path and raw query: origin-form (`/base/path?query`) for HTTP/1.1,
    /// absolute for HTTP/2 (which needs `:scheme` and `:authority`).
    pub fn origin_uri(&self, path: &str, query: Option<&str>) -> Result<Uri, Rejection> {
        if self.h2 {
            return self.uri(path, query);
        }
        Ok(Uri::from(self.path_and_query(path, query)?))
    }

    /// The request target for a request forwarded with the path and query it came
    /// with: `original`'s own origin form (no copy, no parsing), when this endpoint
    /// has no base path and speaks HTTP/1.1; `None` otherwise.
    pub fn forward_target(&self, original: &Uri) -> Option<Uri> {
        if self.h2 || !self.base_path.is_empty() {
            return None;
        }
        original
            .path_and_query()
            .filter(|pq| pq.as_str().starts_with('/'))
            .cloned()
            .map(Uri::from)
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

    /// `scheme://host:port`, for logs.
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// A route's endpoints with its round-robin cursor, timeouts and limits.
#[derive(Debug)]
pub struct UpstreamSet {
    endpoints: Vec<Endpoint>,
    /// Running sums of the endpoints' weights (empty when all weigh the same).
    cumulative: Vec<u64>,
    next: AtomicUsize,
    tls: Option<ClientTls>,
    connect_timeout: Duration,
    /// One attempt, from the end of the upload to the response headers.
    response_timeout: Duration,
    /// The whole exchange, retries included.
    request_timeout: Option<Duration>,
    tunnel_idle: Duration,
    policy: Policy,
}

impl UpstreamSet {
    /// Compile a route's upstream; endpoints that cannot be used are reported and left
    /// out (the route answers 503 when none remain).
    pub fn new(upstream: &Upstream, timeouts: &Timeouts) -> (Self, Vec<String>) {
        let mut endpoints = Vec::new();
        let mut problems = Vec::new();
        let weighted = upstream.weights.len() == upstream.endpoints.len();
        if !upstream.weights.is_empty() && !weighted {
            problems.push("weights do not match endpoints; using equal weights".to_owned());
        }
        for (i, url) in upstream.endpoints.iter().enumerate() {
            let weight = if weighted { upstream.weights[i] } else { 1 };
            match Endpoint::parse(url, upstream.protocol) {
                // Weight 0 keeps an endpoint out of rotation (Gateway API).
                Ok(_) if weight == 0 => {}
                Ok(e) => endpoints.push(Endpoint { weight, ..e }),
                Err(p) => problems.push(p),
            }
        }
        let mut tls = None;
        if endpoints.iter().any(|e| e.tls) {
            // Pooled TLS connections are only shared between routes that verify and
            // authenticate the same way: a route must never ride on a connection
            // another route's CA or client certificate established.
            let tag = tls_tag(upstream.tls.as_ref());
            for e in endpoints.iter_mut().filter(|e| e.tls) {
                e.key = format!("{}#tls={tag:016x}", e.key);
            }
            let h2 = endpoints.iter().any(|e| e.h2);
            let alpn: &[&[u8]] = if h2 {
                &[b"h2", b"http/1.1"]
            } else {
                &[b"http/1.1"]
            };
            match ClientTls::new(upstream.tls.as_ref(), alpn) {
                Ok(client) => tls = Some(client),
                Err(problem) => {
                    // Never fall back to an unverified connection: drop TLS endpoints.
                    problems.push(format!("TLS settings unusable: {problem}"));
                    endpoints.retain(|e| !e.tls);
                }
            }
        }
        let cumulative = if endpoints.iter().all(|e| e.weight == 1) {
            Vec::new()
        } else {
            endpoints
                .iter()
                .scan(0u64, |sum, e| {
                    *sum += u64::from(e.weight);
                    Some(*sum)
                })
                .collect()
        };
        let set = UpstreamSet {
            endpoints,
            cumulative,
            next: AtomicUsize::new(0),
            tls,
            connect_timeout: Duration::from_millis(upstream.connect_timeout_ms),
            response_timeout: Duration::from_millis(
                timeouts
                    .backend_request_ms
                    .unwrap_or(upstream.response_timeout_ms),
            ),
            request_timeout: timeouts.request_ms.map(Duration::from_millis),
            tunnel_idle: timeouts
                .idle_ms
                .map_or(DEFAULT_TUNNEL_IDLE, Duration::from_millis),
            policy: Policy {
                consecutive_failures: upstream.outlier_detection.consecutive_failures,
                ejection: Duration::from_millis(upstream.outlier_detection.ejection_ms),
                max_connections: upstream.max_connections,
            },
        };
        (set, problems)
    }

    /// Whether a set compiled from `upstream` may be taken over by the next config
    /// when the route's upstream and timeouts are unchanged. [`UpstreamSet::new`]
    /// reads nothing but its two arguments, except files named in the TLS settings
    /// (a CA bundle, a client certificate and key): those can change on disk while
    /// the snapshot stays the same (a rotated Secret), so a set that names any is
    /// always built afresh, re-reading them as a fresh compile would.
    pub fn reusable(upstream: &Upstream) -> bool {
        upstream.tls.as_ref().is_none_or(|tls| {
            tls.ca_file.is_none() && tls.client_cert_file.is_none() && tls.client_key_file.is_none()
        })
    }

    /// Next endpoint not ejected, round robin across every worker; when every
    /// endpoint is ejected, the next one anyway.
    pub fn pick(&self) -> Result<&Endpoint, Rejection> {
        let n = self.endpoints.len();
        if n == 0 {
            return Err(Rejection::NoEndpoints);
        }
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        // Weighted: the ticket falls into one endpoint's share of the total; from
        // there the search for an available endpoint is the same as round robin.
        let start = match self.cumulative.last() {
            None => ticket,
            Some(&total) => {
                let point = ticket as u64 % total;
                self.cumulative.partition_point(|&c| c <= point)
            }
        };
        for i in 0..n {
            let endpoint = &self.endpoints[(start + i) % n];
            if endpoint.health.available() {
                if i > 0 {
                    // Skip the cursor past the ejected ones for the next pick too.
                    self.next.fetch_add(i, Ordering::Relaxed);
                }
                return Ok(endpoint);
            }
        }
        Ok(&self.endpoints[start % n])
    }

    /// How long an upgraded connection may stay silent.
    pub fn tunnel_idle(&self) -> Duration {
        self.tunnel_idle
    }

    /// Send a fully prepared request (target from [`Endpoint::origin_uri`], headers
    /// rewritten) to `endpoint` and wait for the response headers. Connection failures
    /// (including the connect timeout and TLS verification) are 502; the response
    /// timeout (counted once the request body is sent) and the request timeout are 504;
    /// too many requests in flight to the endpoint is 503.
    pub async fn send(
        &self,
        endpoint: &Endpoint,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        let Some(_permit) = endpoint.health.acquire(self.policy.max_connections) else {
            tracing::debug!(
                upstream = endpoint.address(),
                "Upstream connection limit reached"
            );
            return Err(Rejection::UpstreamOverloaded);
        };
        let exchange = self.exchange(endpoint, req, false);
        match self.request_timeout {
            Some(limit) => tokio::time::timeout(limit, exchange)
                .await
                .unwrap_or(Err(Rejection::UpstreamTimeout)),
            None => exchange.await,
        }
    }

    /// Send an upgrade request (`Connection: upgrade` restored by the caller) on a
    /// fresh HTTP/1.1 connection that can hand its socket over. A `101` answer carries
    /// the upstream side of the tunnel (`hyper::upgrade::on`).
    pub async fn send_upgrade(
        &self,
        endpoint: &Endpoint,
        req: Request<ProxyBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        let Some(_permit) = endpoint.health.acquire(self.policy.max_connections) else {
            return Err(Rejection::UpstreamOverloaded);
        };
        self.exchange(endpoint, req, true).await
    }

    async fn exchange(
        &self,
        endpoint: &Endpoint,
        req: Request<ProxyBody>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, Rejection> {
        let (mut parts, body) = req.into_parts();
        let (body, uploaded) = UpstreamBody::new(body);
        if endpoint.h2 && !upgrade {
            parts.version = Version::HTTP_2;
            if crate::grpc::is_grpc(&parts.headers) {
                // gRPC servers require it (it was removed with the hop-by-hop headers).
                parts
                    .headers
                    .insert(TE, HeaderValue::from_static("trailers"));
            }
        } else {
            // HTTP/1.1 upstream connections whatever the client spoke.
            parts.version = Version::HTTP_11;
        }
        // An idempotent request without a body can be sent again as it is.
        let replay = (body.is_empty() && is_idempotent(&parts.method)).then(|| {
            let mut again = Request::new(());
            *again.method_mut() = parts.method.clone();
            *again.uri_mut() = parts.uri.clone();
            *again.version_mut() = parts.version;
            *again.headers_mut() = parts.headers.clone();
            again
        });
        let response_timer = async {
            // An error means the body was dropped unsent: the attempt is over anyway.
            if let Some(uploaded) = uploaded {
                let _ = uploaded.await;
            }
            tokio::time::sleep(self.response_timeout).await;
        };
        let attempt = self.attempts(endpoint, Request::from_parts(parts, body), replay, upgrade);
        tokio::select! {
            result = attempt => result,
            _ = response_timer => {
                tracing::debug!(upstream = endpoint.address(), "Upstream response timed out");
                Err(Rejection::UpstreamTimeout)
            }
        }
    }

    async fn attempts(
        &self,
        endpoint: &Endpoint,
        mut req: Request<UpstreamBody>,
        mut replay: Option<Request<()>>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, Rejection> {
        let target = Target {
            key: &endpoint.key,
            host: &endpoint.connect_host,
            port: endpoint.port,
            tls: if endpoint.tls {
                self.tls.as_ref()
            } else {
                None
            },
            connect_timeout: self.connect_timeout,
        };
        loop {
            let pooled = if upgrade {
                None
            } else {
                conn::checkout(&endpoint.key)
            };
            let reused = pooled.is_some();
            let sender = match pooled {
                Some(sender) => sender,
                None => {
                    // Boxed: connecting (TCP, TLS, handshake) is a large future that a
                    // request on a pooled connection never needs.
                    let fresh = if upgrade || !endpoint.h2 {
                        Box::pin(conn::connect_h1(&target, upgrade)).await
                    } else {
                        Box::pin(conn::connect_h2(&target)).await
                    };
                    match fresh {
                        Ok(sender) => sender,
                        Err(ConnectFailed) => {
                            if endpoint.health.failed(&self.policy) {
                                tracing::warn!(
                                    upstream = endpoint.address(),
                                    "Upstream endpoint ejected after repeated connection failures"
                                );
                            }
                            return Err(Rejection::UpstreamUnavailable);
                        }
                    }
                }
            };
            let result = match sender {
                Sender::H1(mut sender) => {
                    let result = sender.try_send_request(req).await;
                    if !upgrade {
                        // Back at once; checkout skips it until it wants the next request.
                        conn::checkin(&endpoint.key, Sender::H1(sender));
                    }
                    result
                }
                Sender::H2(mut sender) => {
                    let result = sender.try_send_request(req).await;
                    conn::checkin(&endpoint.key, Sender::H2(sender));
                    result
                }
            };
            match result {
                Ok(resp) => {
                    endpoint.health.succeeded();
                    return Ok(resp);
                }
                Err(mut error) => match (error.take_message(), replay.take()) {
                    // A kept-alive connection closed before the request was written
                    // (the upstream closed it while idle): retry on another one.
                    (Some(unsent), again) if reused => {
                        req = unsent;
                        replay = again;
                    }
                    // It broke after the request left: an idempotent request without a
                    // body is sent once more, on a fresh connection.
                    (None, Some(again)) if reused => {
                        tracing::debug!(error = %error.error(), upstream = endpoint.address(), "Retrying an idempotent request");
                        let (parts, ()) = again.into_parts();
                        let (body, _) = UpstreamBody::new(crate::body::empty());
                        req = Request::from_parts(parts, body);
                        return Box::pin(self.fresh_attempt(endpoint, &target, req)).await;
                    }
                    _ => {
                        tracing::debug!(error = %error.error(), upstream = endpoint.address(), "Upstream request failed");
                        return Err(Rejection::UpstreamUnavailable);
                    }
                },
            }
        }
    }

    /// One attempt on a new connection, not from the pool.
    async fn fresh_attempt(
        &self,
        endpoint: &Endpoint,
        target: &Target<'_>,
        req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, Rejection> {
        let fresh = if endpoint.h2 {
            conn::connect_h2(target).await
        } else {
            conn::connect_h1(target, false).await
        };
        let result = match fresh {
            Ok(Sender::H1(mut sender)) => {
                let result = sender.try_send_request(req).await;
                conn::checkin(&endpoint.key, Sender::H1(sender));
                result
            }
            Ok(Sender::H2(mut sender)) => {
                let result = sender.try_send_request(req).await;
                conn::checkin(&endpoint.key, Sender::H2(sender));
                result
            }
            Err(ConnectFailed) => {
                endpoint.health.failed(&self.policy);
                return Err(Rejection::UpstreamUnavailable);
            }
        };
        result.map_err(|error| {
            tracing::debug!(error = %error.error(), upstream = endpoint.address(), "Upstream request failed");
            Rejection::UpstreamUnavailable
        })
    }
}

#[cfg(test)]
impl UpstreamSet {
    /// Everything [`UpstreamSet::new`] derived from its inputs, as text: tests compare
    /// a set taken over from the previous config with a freshly compiled one.
    pub(crate) fn fingerprint(&self) -> String {
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| {
                format!(
                    "{} {} {} {} {} {} {:?} {} {} {}",
                    e.scheme,
                    e.authority,
                    e.key,
                    e.address,
                    e.connect_host,
                    e.port,
                    e.host,
                    e.base_path,
                    e.tls,
                    e.h2
                ) + &format!(" w={}", e.weight)
            })
            .collect();
        format!(
            "{endpoints:?} cumulative={:?} tls={} connect={:?} response={:?} request={:?} idle={:?} policy={:?}",
            self.cumulative,
            self.tls.is_some(),
            self.connect_timeout,
            self.response_timeout,
            self.request_timeout,
            self.tunnel_idle,
            self.policy
        )
    }
}

/// A digest of TLS settings, for pool keys.
fn tls_tag(settings: Option<&crate::config::UpstreamTls>) -> u64 {
    use std::hash::{Hash, Hasher};
    let text = serde_json::to_string(&settings).expect("TLS settings are plain data");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// RFC 9110 §9.2.2.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Endpoint, String> {
        Endpoint::parse(url, UpstreamProtocol::Http1)
    }

    #[test]
    fn endpoint_base_paths_are_joined_with_the_request_path() {
        let e = parse("http://127.0.0.1:9000/base/").unwrap();
        assert_eq!(
            e.uri("/x/y", Some("a=1")).unwrap(),
            "http://127.0.0.1:9000/base/x/y?a=1"
        );
        assert_eq!(e.host(), "127.0.0.1:9000");
        assert_eq!(e.origin_uri("/x/y", Some("a=1")).unwrap(), "/base/x/y?a=1");
        let e = parse("http://upstream").unwrap();
        assert_eq!(e.uri("/", None).unwrap(), "http://upstream/");
        assert_eq!((e.connect_host.as_str(), e.port), ("upstream", 80));
        let e = parse("http://[::1]:8080").unwrap();
        assert_eq!((e.connect_host.as_str(), e.port), ("::1", 8080));
    }

    #[test]
    fn schemes_choose_tls_and_http2() {
        let e = parse("https://api.example").unwrap();
        assert!(e.tls && !e.h2);
        assert_eq!(e.port, 443);
        assert_eq!(e.uri("/", None).unwrap(), "https://api.example/");
        let e = parse("grpc://10.0.0.1:50051").unwrap();
        assert!(!e.tls && e.h2);
        // HTTP/2 requests carry :scheme and :authority, so the target is absolute.
        assert_eq!(
            e.origin_uri("/svc/M", None).unwrap(),
            "http://10.0.0.1:50051/svc/M"
        );
        let e = parse("grpcs://g.example").unwrap();
        assert!(e.tls && e.h2);
        let e = Endpoint::parse("http://h:1", UpstreamProtocol::H2c).unwrap();
        assert!(e.h2 && !e.tls);
        assert_ne!(
            e.key,
            parse("http://h:1").unwrap().key,
            "h2 and h1 pools apart"
        );
        assert!(parse("ftp://a").is_err());
        assert!(parse("not a url").is_err());
    }

    #[test]
    fn endpoints_are_used_round_robin_and_empty_sets_are_503() {
        let up = Upstream {
            endpoints: vec!["http://a:1".into(), "http://b:2".into(), "ftp://bad".into()],
            connect_timeout_ms: 1,
            response_timeout_ms: 1,
            ..Default::default()
        };
        let (set, problems) = UpstreamSet::new(&up, &Timeouts::default());
        assert_eq!(problems.len(), 1);
        let picks: Vec<_> = (0..4).map(|_| set.pick().unwrap().host().clone()).collect();
        assert_eq!(picks, ["a:1", "b:2", "a:1", "b:2"]);
        let (empty, _) = UpstreamSet::new(
            &Upstream {
                endpoints: vec![],
                ..up
            },
            &Timeouts::default(),
        );
        assert_eq!(empty.pick().unwrap_err(), Rejection::NoEndpoints);
    }

    #[test]
    fn weighted_endpoints_get_their_share_and_weight_zero_gets_none() {
        let up = Upstream {
            endpoints: vec![
                "http://a:1".into(),
                "http://b:2".into(),
                "http://c:3".into(),
            ],
            weights: vec![1, 3, 0],
            ..Default::default()
        };
        let (set, problems) = UpstreamSet::new(&up, &Timeouts::default());
        assert!(problems.is_empty());
        let picks: Vec<_> = (0..8).map(|_| set.pick().unwrap().host().clone()).collect();
        let a = picks.iter().filter(|h| *h == "a:1").count();
        let b = picks.iter().filter(|h| *h == "b:2").count();
        assert_eq!((a, b), (2, 6));
    }

    #[test]
    fn ejected_endpoints_are_skipped_until_all_are() {
        let up = Upstream {
            endpoints: vec!["http://a:1".into(), "http://b:2".into()],
            ..Default::default()
        };
        let (set, _) = UpstreamSet::new(&up, &Timeouts::default());
        let policy = Policy {
            consecutive_failures: 1,
            ejection: Duration::from_secs(60),
            max_connections: 0,
        };
        assert!(set.endpoints[0].health.failed(&policy));
        for _ in 0..4 {
            assert_eq!(set.pick().unwrap().host(), "b:2");
        }
        assert!(set.endpoints[1].health.failed(&policy));
        // Both out: better to try one than to answer 503 for certain.
        assert!(set.pick().is_ok());
    }

    #[test]
    fn unusable_tls_settings_drop_only_the_tls_endpoints() {
        let up = Upstream {
            endpoints: vec!["https://a:1".into(), "http://b:2".into()],
            tls: Some(crate::config::UpstreamTls {
                ca_pem: Some("garbage".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (set, problems) = UpstreamSet::new(&up, &Timeouts::default());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(set.endpoints.len(), 1);
        assert_eq!(set.pick().unwrap().host(), "b:2");
    }

    #[test]
    fn routes_with_different_tls_settings_never_share_pooled_connections() {
        use crate::config::UpstreamTls;
        let named = |name: &str| UpstreamTls {
            server_name: Some(name.into()),
            ..Default::default()
        };
        let with_cert = UpstreamTls {
            client_cert_file: Some("/c.pem".into()),
            client_key_file: Some("/c.key".into()),
            ..Default::default()
        };
        let tags = [
            tls_tag(None),
            tls_tag(Some(&named("x.example"))),
            tls_tag(Some(&named("y.example"))),
            tls_tag(Some(&with_cert)),
        ];
        for (i, a) in tags.iter().enumerate() {
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(tls_tag(Some(&named("x.example"))), tags[1]);
    }
}
