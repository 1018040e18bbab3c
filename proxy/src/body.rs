//! The one body type requests and responses travel with: either streamed straight
//! from the peer (never buffered) or a small body the proxy built itself.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

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
