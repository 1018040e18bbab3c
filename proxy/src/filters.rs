//! Gateway API filters applied around the upstream call: redirects (answered before
//! OAuth2 so an HTTP→HTTPS redirect needs no token), request and response header
//! edits, and host/path rewrites. The path rewritten is the path routing checked.

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};

use crate::config::{HeaderEdits, PathRewrite, Redirect};
use crate::headers::IDENTITY_HEADERS;
use crate::respond::Reply;

/// The redirect response for a request to `scheme://host{path}?query`.
pub fn redirect(
    r: &Redirect,
    scheme: &str,
    host: &str,
    path: &str,
    prefix_len: usize,
    query: Option<&str>,
) -> Reply {
    let scheme = r.scheme.as_deref().unwrap_or(scheme);
    let (name, port) = split_host(host);
    let name = r.hostname.as_deref().unwrap_or(name);
    // Gateway API: a scheme change without an explicit port drops the port.
    let port = match (r.port, &r.scheme) {
        (Some(p), _) => Some(p.to_string()),
        (None, Some(_)) => None,
        (None, None) => port.map(str::to_owned),
    };
    let port = port.filter(|p| !matches!((scheme, p.as_str()), ("http", "80") | ("https", "443")));
    let path = match &r.path {
        Some(rw) => rewrite_path(rw, path, prefix_len),
        None => path.to_owned(),
    };
    let mut location = format!("{scheme}://{name}");
    if let Some(p) = port {
        location.push(':');
        location.push_str(&p);
    }
    location.push_str(&path);
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut reply = Reply::redirect(v);
            reply.status = StatusCode::from_u16(r.status)
                .ok()
                .filter(StatusCode::is_redirection)
                .unwrap_or(StatusCode::FOUND);
            reply
        }
        // The request's own host made the location unspeakable.
        Err(_) => Reply::message(StatusCode::BAD_REQUEST, "Bad request"),
    }
}

/// `host[:port]` → (host, port); IPv6 literals keep their brackets.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if let Some(end) = host.find(']') {
        let port = host[end + 1..].strip_prefix(':');
        return (&host[..=end], port);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (host, None),
    }
}

/// Apply a path rewrite to the routed `path`, whose first `prefix_len` bytes matched.
pub fn rewrite_path(rw: &PathRewrite, path: &str, prefix_len: usize) -> String {
    match rw {
        PathRewrite::Full(p) => p.clone(),
        PathRewrite::Prefix(p) => {
            let rest = &path[prefix_len.min(path.len())..];
            let base = p.trim_end_matches('/');
            match (base.is_empty(), rest.is_empty()) {
                (true, true) => "/".to_owned(),
                (true, false) => rest.to_owned(),
                (false, _) => format!("{base}{rest}"),
            }
        }
    }
}

/// Apply a route's edits to the request sent upstream. Identity headers are never
/// touched: only enforcement speaks for the caller, so a route's filter can neither
/// forge nor remove who the caller is.
pub fn edit_request_headers(headers: &mut HeaderMap, edits: &HeaderEdits) {
    edit(headers, edits, &|n| IDENTITY_HEADERS.contains(n));
}

/// Apply a route's edits to the response sent to the client.
pub fn edit_response_headers(headers: &mut HeaderMap, edits: &HeaderEdits) {
    edit(headers, edits, &|_| false);
}

/// `set` replaces, `add` appends, `remove` deletes. Names and values were checked by
/// the controller; anything unparsable (or `protected`) is skipped.
fn edit(headers: &mut HeaderMap, edits: &HeaderEdits, protected: &dyn Fn(&HeaderName) -> bool) {
    let parse = |name: &str| {
        HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|n| !protected(n))
    };
    for h in &edits.set {
        if let (Some(n), Ok(v)) = (parse(&h.name), HeaderValue::from_str(&h.value)) {
            headers.insert(n, v);
        }
    }
    for h in &edits.add {
        if let (Some(n), Ok(v)) = (parse(&h.name), HeaderValue::from_str(&h.value)) {
            headers.append(n, v);
        }
    }
    for name in &edits.remove {
        if let Some(n) = parse(name) {
            headers.remove(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NameValue;
    use http::header::LOCATION;

    fn location(reply: &Reply) -> &HeaderValue {
        &reply.headers.iter().find(|(n, _)| n == LOCATION).unwrap().1
    }

    #[test]
    fn prefix_rewrites_keep_the_rest_of_the_path() {
        let rw = PathRewrite::Prefix("/v2".into());
        assert_eq!(rewrite_path(&rw, "/api/x", 4), "/v2/x");
        assert_eq!(rewrite_path(&rw, "/api", 4), "/v2");
        let root = PathRewrite::Prefix("/".into());
        assert_eq!(rewrite_path(&root, "/api/x", 4), "/x");
        assert_eq!(rewrite_path(&root, "/api", 4), "/");
        assert_eq!(
            rewrite_path(&PathRewrite::Full("/f".into()), "/api/x", 4),
            "/f"
        );
    }

    #[test]
    fn redirects_change_scheme_and_drop_default_ports() {
        let r = Redirect {
            scheme: Some("https".into()),
            hostname: None,
            port: None,
            path: None,
            status: 301,
        };
        let resp = redirect(&r, "http", "example.com:8080", "/a", 0, Some("q=1"));
        assert_eq!(resp.status, 301);
        assert_eq!(location(&resp), "https://example.com/a?q=1");
        let r = Redirect {
            port: Some(8443),
            ..r
        };
        let resp = redirect(&r, "http", "[::1]:80", "/a", 0, None);
        assert_eq!(location(&resp), "https://[::1]:8443/a");
    }

    #[test]
    fn header_edits_set_add_and_remove_but_never_touch_identity() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.insert("x-gone", HeaderValue::from_static("1"));
        h.insert("x-consumer-id", HeaderValue::from_static("real"));
        edit_request_headers(
            &mut h,
            &HeaderEdits {
                set: vec![NameValue {
                    name: "x-a".into(),
                    value: "2".into(),
                }],
                add: vec![NameValue {
                    name: "x-b".into(),
                    value: "3".into(),
                }],
                remove: vec!["x-gone".into(), "x-consumer-id".into()],
            },
        );
        assert_eq!(h["x-a"], "2");
        assert_eq!(h["x-b"], "3");
        assert!(!h.contains_key("x-gone"));
        assert_eq!(
            h["x-consumer-id"], "real",
            "identity headers are not a filter's"
        );
    }
}
