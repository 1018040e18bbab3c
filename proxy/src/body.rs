//! The one body type requests and responses travel with: either streamed straight
//! from the peer (never buffered) or a small body the proxy built itself.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::error::Rejection;
use crate::server::limits::{read_body, BodyError, BodyLimit};

/// A streamed peer body or a proxy-built one.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// A complete in-memory body.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Either::Right(Full::new(bytes.into()))
}

/// An empty body.
pub fn empty() -> ProxyBody {
    Either::Right(Full::new(Bytes::new()))
}

/// Read a whole body the proxy must inspect, refusing more than `limit.max_bytes`
/// bytes and bodies that trickle in slower than the limit's minimum rate.
pub async fn read_limited(
    headers: &HeaderMap,
    body: ProxyBody,
    limit: BodyLimit,
) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit.max_bytes as u64) {
        return Err(Rejection::BodyTooLarge);
    }
    read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge => Rejection::BodyTooLarge,
        BodyError::TooSlow => Rejection::BodyTimeout,
        BodyError::Broken => Rejection::BadRequest,
    })
}
