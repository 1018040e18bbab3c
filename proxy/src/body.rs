//! The one body type requests and responses travel with: either streamed straight
//! from the peer (never buffered) or a small body the proxy built itself.

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

use crate::error::Rejection;

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

/// Read a whole body the proxy must inspect, refusing more than `limit` bytes.
pub async fn read_limited(
    headers: &HeaderMap,
    body: ProxyBody,
    limit: usize,
) -> Result<Bytes, Rejection> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Rejection::BodyTooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(Rejection::BodyTooLarge)
        }
        Err(_) => Err(Rejection::BadRequest),
    }
}
