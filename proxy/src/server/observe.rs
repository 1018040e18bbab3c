//! What is recorded about each request once it is answered: the access log line and
//! the per-route metrics. The record is opened when the request arrives, filled in as
//! the pipeline learns things (route, identity, upstream), and closed when the last
//! response byte has been handed to the connection — or the response is dropped
//! because the client went away — by the body wrapper [`Observed`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::pipeline::Shared;
use crate::access_log::{self, Entry, X_REQUEST_ID};
use crate::body::ProxyBody;
use crate::compiled::Compiled;
use crate::forwarded::ConnInfo;

/// Facts about one request, gathered while it is served.
pub struct Record {
    shared: Arc<Shared>,
    started: Instant,
    /// The request id sent upstream and back to the client.
    pub request_id: HeaderValue,
    /// Matched route: the configuration it belongs to and its index there.
    pub route: Option<(Arc<Compiled>, usize)>,
    /// `proxied`, `oauth2`, `upgraded`, or a refusal reason.
    pub outcome: &'static str,
    pub consumer: Option<String>,
    pub client_id: Option<String>,
    pub upstream: Option<Arc<str>>,
    /// Time from sending upstream to the response headers.
    pub upstream_time: Option<std::time::Duration>,
    /// Whether the query string may be logged (false for `/oauth2/*`).
    pub log_query: bool,
    /// The access log line being built, when this request is logged.
    entry: Option<Entry>,
}

impl Record {
    /// Open the record for `req` and give it its request id.
    pub fn start<B>(shared: &Arc<Shared>, conn: &ConnInfo, req: &mut Request<B>) -> Record {
        let request_id = access_log::set_request_id(req.headers_mut());
        let entry = shared.access_log.wants().then(|| Entry {
            ts_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            request_id: String::from_utf8_lossy(request_id.as_bytes()).into_owned(),
            peer: conn.peer.to_string(),
            method: req.method().to_string(),
            host: req
                .uri()
                .authority()
                .map(|a| a.to_string())
                .or_else(|| text(req.headers().get(HOST))),
            path: req.uri().path().to_owned(),
            query: req.uri().query().map(str::to_owned),
            protocol: match req.version() {
                Version::HTTP_2 => "HTTP/2",
                Version::HTTP_10 => "HTTP/1.0",
                _ => "HTTP/1.1",
            },
            user_agent: text(req.headers().get(USER_AGENT)),
            ..Entry::default()
        });
        Record {
            shared: shared.clone(),
            started: Instant::now(),
            request_id,
            route: None,
            outcome: "proxied",
            consumer: None,
            client_id: None,
            upstream: None,
            upstream_time: None,
            // Never the query of an OAuth2 endpoint (codes, secrets), on any route.
            log_query: !req.uri().path().contains("/oauth2/"),
            entry,
        }
    }

    /// Whether an access log line is being built (identity is only copied then).
    pub fn logging(&self) -> bool {
        self.entry.is_some()
    }

    /// The matched route's id (`""` when none matched) and metric handles.
    fn route(&self) -> (&str, Option<&crate::metrics::RouteHandles>) {
        match &self.route {
            Some((compiled, index)) => (
                compiled.snapshot.routes[*index].id.as_str(),
                compiled.route_metrics.get(*index),
            ),
            None => ("", None),
        }
    }

    /// Attach the record to the response: it is closed when the body is done.
    pub fn finish(self, mut resp: Response<ProxyBody>) -> Response<Observed> {
        resp.headers_mut()
            .insert(X_REQUEST_ID, self.request_id.clone());
        if let Some(elapsed) = self.upstream_time {
            let (route, handles) = self.route();
            self.shared
                .metrics
                .upstream_done(route, handles, elapsed.as_secs_f64());
        }
        let status = resp.status();
        resp.map(|inner| Observed {
            inner,
            sent: 0,
            open: Some((self, status)),
        })
    }

    fn close(mut self, status: StatusCode, sent: u64) {
        let elapsed = self.started.elapsed();
        let entry = self.entry.take();
        let (route, handles) = self.route();
        self.shared.metrics.request_done(
            route,
            handles,
            status_class(status),
            self.outcome,
            elapsed.as_secs_f64(),
        );
        let Some(mut entry) = entry else {
            return;
        };
        let route = route.to_owned();
        entry.query = match entry.query.take() {
            Some(q) if self.log_query => Some(access_log::redact_query(&q)),
            _ => None,
        };
        entry.status = status.as_u16();
        entry.route = (!route.is_empty()).then_some(route);
        entry.outcome = self.outcome;
        entry.consumer = self.consumer.take();
        entry.client_id = self.client_id.take();
        entry.upstream = self.upstream.take().map(|a| a.to_string());
        entry.bytes_sent = sent;
        entry.duration_ms = elapsed.as_secs_f64() * 1000.0;
        entry.upstream_ms = self.upstream_time.map(|d| d.as_secs_f64() * 1000.0);
        self.shared.access_log.write(&entry);
    }
}

fn text(value: Option<&HeaderValue>) -> Option<String> {
    value.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// A response body that counts the bytes sent and closes its [`Record`] at the end.
pub struct Observed {
    inner: ProxyBody,
    sent: u64,
    open: Option<(Record, StatusCode)>,
}

impl Observed {
    fn close(&mut self) {
        if let Some((record, status)) = self.open.take() {
            record.close(status, self.sent);
        }
    }
}

impl Body for Observed {
    type Data = Bytes;
    type Error = <ProxyBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.close();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.close(),
            Poll::Pending => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        self.close();
    }
}
