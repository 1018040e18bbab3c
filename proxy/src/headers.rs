//! Header hygiene shared by both directions: hop-by-hop headers (RFC 9110 §7.6.1) and
//! the identity headers only the proxy may set.

use http::header::{
    CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName};

pub const X_CONSUMER_ID: HeaderName = HeaderName::from_static("x-consumer-id");
pub const X_CONSUMER_CUSTOM_ID: HeaderName = HeaderName::from_static("x-consumer-custom-id");
pub const X_CONSUMER_USERNAME: HeaderName = HeaderName::from_static("x-consumer-username");
pub const X_CREDENTIAL_IDENTIFIER: HeaderName = HeaderName::from_static("x-credential-identifier");
pub const X_AUTHENTICATED_SCOPE: HeaderName = HeaderName::from_static("x-authenticated-scope");
pub const X_AUTHENTICATED_USERID: HeaderName = HeaderName::from_static("x-authenticated-userid");
pub const X_ANONYMOUS_CONSUMER: HeaderName = HeaderName::from_static("x-anonymous-consumer");
/// Set for browser sessions (`oauth2.login`) when the provider gave a verified email.
pub const X_AUTHENTICATED_EMAIL: HeaderName = HeaderName::from_static("x-authenticated-email");

/// Headers that tell the upstream who the caller is. Only the proxy sets them.
pub const IDENTITY_HEADERS: [HeaderName; 8] = [
    X_CONSUMER_ID,
    X_CONSUMER_CUSTOM_ID,
    X_CONSUMER_USERNAME,
    X_CREDENTIAL_IDENTIFIER,
    X_AUTHENTICATED_SCOPE,
    X_AUTHENTICATED_USERID,
    X_ANONYMOUS_CONSUMER,
    X_AUTHENTICATED_EMAIL,
];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Remove every identity header a client sent (all values of each).
pub fn strip_identity(headers: &mut HeaderMap) {
    for name in &IDENTITY_HEADERS {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}

/// Remove hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    for name in [
        KEEP_ALIVE,
        PROXY_CONNECTION,
        PROXY_AUTHENTICATE,
        PROXY_AUTHORIZATION,
        TE,
        TRAILER,
        TRANSFER_ENCODING,
        UPGRADE,
    ] {
        if headers.contains_key(&name) {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_named_headers_are_removed_with_the_standard_ones() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "keep-alive, X-Secret-Hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(TE, "trailers".parse().unwrap());
        h.insert(UPGRADE, "websocket".parse().unwrap());
        h.insert(PROXY_AUTHORIZATION, "Basic x".parse().unwrap());
        h.insert("x-end-to-end", "kept".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-end-to-end"], "kept");
    }

    #[test]
    fn every_identity_header_is_stripped_including_repeats() {
        let mut h = HeaderMap::new();
        for name in &IDENTITY_HEADERS {
            h.append(name, "spoofed".parse().unwrap());
            h.append(name, "again".parse().unwrap());
        }
        h.insert("x-other", "kept".parse().unwrap());
        strip_identity(&mut h);
        assert_eq!(h.len(), 1);
    }
}
