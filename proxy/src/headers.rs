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

/// Headers the proxy sets for the upstream besides the identity headers; a client's
/// `_` spelling of them is removed like an identity header's.
const FORWARDING_HEADERS: [&str; 4] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
];

/// Remove every identity header a client sent (all values of each), in every
/// spelling an upstream could read as one: CGI/WSGI servers (and nginx with
/// `underscores_in_headers`) map `X_Authenticated_Userid` and `X-Authenticated-Userid`
/// to the same variable, so `_` for `-` is removed too — for the proxy's forwarding
/// headers as well. Case needs no work: header names arrive lowercased.
///
/// One walk over the names present (a request carries a handful), comparing bytes;
/// a hashed removal only for a name that matched (normally none).
pub fn strip_identity(headers: &mut HeaderMap) {
    let mut spoofed: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        if is_client_sent_proxy_header(name.as_str()) {
            spoofed.push(name.clone());
        }
    }
    for name in spoofed {
        headers.remove(name);
    }
}

/// `name` (lowercase) is an identity header in any `-`/`_` spelling, or a forwarding
/// header with some `-` written as `_`.
fn is_client_sent_proxy_header(name: &str) -> bool {
    // Every proxy-set name starts with `x` and is 13 to 23 bytes long.
    if !(13..=23).contains(&name.len()) || !name.starts_with('x') {
        return false;
    }
    static IDENTITY: [HeaderName; 8] = IDENTITY_HEADERS;
    IDENTITY
        .iter()
        .any(|h| same_but_underscores(name, h.as_str()))
        || (name.contains('_')
            && FORWARDING_HEADERS
                .iter()
                .any(|h| same_but_underscores(name, h)))
}

/// `name` is `target` with any number of its `-` written as `_`.
fn same_but_underscores(name: &str, target: &str) -> bool {
    name.len() == target.len()
        && name
            .bytes()
            .zip(target.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// First step on a request, before the proxy adds a header of its own: remove every
/// header the client's `Connection` list names (never `Host`, which is end-to-end) and
/// leave `Connection` holding at most `upgrade`, so the later [`strip_hop_by_hop`]
/// cannot remove a header the proxy set (`Connection: X-Consumer-ID`).
pub fn drop_connection_listed(headers: &mut HeaderMap) {
    if !headers.contains_key(CONNECTION) {
        return;
    }
    let listed: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    headers.remove(CONNECTION);
    let mut upgrade = false;
    for name in listed {
        if name == "upgrade" {
            // The upgrade step needs `Upgrade` and this token (tunnel::requested).
            upgrade = true;
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            if name != http::header::HOST {
                headers.remove(name);
            }
        }
    }
    if upgrade {
        headers.insert(CONNECTION, http::HeaderValue::from_static("upgrade"));
    }
}

/// Hop-by-hop headers besides `Connection` (RFC 9110 §7.6.1, plus the obsolete
/// `Keep-Alive` and `Proxy-Connection`).
// A `static`, not a `const`: a `const` array is built and dropped at every use.
static HOP_BY_HOP: [HeaderName; 8] = [
    KEEP_ALIVE,
    PROXY_CONNECTION,
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Remove hop-by-hop headers, including every header named in `Connection`. On
/// requests [`drop_connection_listed`] ran first, so `Connection` names nothing the
/// proxy set; `Host` is end-to-end and never removed this way.
///
/// One walk over the names present finds which hop-by-hop headers are there (most
/// messages carry none but `Connection: keep-alive`); only those are removed.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Bit i: HOP_BY_HOP[i] is present.
    let mut present = 0u16;
    let mut connection = false;
    for name in headers.keys() {
        if *name == CONNECTION {
            connection = true;
        } else if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        }
    }
    if connection {
        let mut named: Vec<HeaderName> = Vec::new();
        for token in headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let token = token.trim();
            // `keep-alive` names a header of the standard list, removed below if present.
            if token.eq_ignore_ascii_case("keep-alive") {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                if name != http::header::HOST {
                    named.push(name);
                }
            }
        }
        for name in named {
            headers.remove(name);
        }
        headers.remove(CONNECTION);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
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

    #[test]
    fn underscore_spellings_of_proxy_headers_are_stripped_and_others_kept() {
        let mut h = HeaderMap::new();
        for name in [
            "x_authenticated_userid",
            "x-authenticated_userid",
            "x_consumer-id",
            "x_anonymous_consumer",
            "x_forwarded_for",
            "x_forwarded_host",
        ] {
            h.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                "spoofed".parse().unwrap(),
            );
        }
        h.insert("x_custom_thing", "kept".parse().unwrap());
        h.insert(
            "x-forwarded-for",
            "kept, from a trusted proxy".parse().unwrap(),
        );
        strip_identity(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["x_custom_thing"], "kept");
    }

    #[test]
    fn a_clients_connection_list_cannot_remove_headers_the_proxy_adds_later() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            "x-consumer-id, X-Forwarded-For, keep-alive, Upgrade, x-hop"
                .parse()
                .unwrap(),
        );
        h.insert("x-hop", "1".parse().unwrap());
        h.insert(UPGRADE, "websocket".parse().unwrap());
        drop_connection_listed(&mut h);
        assert!(!h.contains_key("x-hop"));
        assert_eq!(h[CONNECTION], "upgrade");
        assert_eq!(h[UPGRADE], "websocket");
        // The proxy's own headers, added afterwards, survive the hop-by-hop step.
        h.insert(X_CONSUMER_ID, "k".parse().unwrap());
        h.insert("x-forwarded-for", "127.0.0.1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h[X_CONSUMER_ID], "k");
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    }

    #[test]
    fn connection_cannot_remove_host() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, "host".parse().unwrap());
        h.insert(http::header::HOST, "api.example".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h[http::header::HOST], "api.example");
    }
}
