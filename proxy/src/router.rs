//! Route matching: which route of the current snapshot answers a request.
//!
//! Hosts are indexed first (exact name, then `*.wildcard`, then routes without hosts),
//! then path prefixes in a hash table probed once per path segment, so a lookup costs a
//! handful of hash probes whatever the number of routes (10,000 routes are fine).
//!
//! Precedence, the same as Gateway API and Kong: the most specific host class that has
//! a matching path wins (exact host, then wildcard, then any host); within it an exact
//! path beats any prefix and the longest prefix wins; among routes for the same path,
//! a method condition, then more header conditions, then more query conditions win;
//! an exact tie goes to the route listed first. A route whose conditions do not hold
//! is skipped and the search goes on (shorter prefixes, less specific hosts).

use foldhash::HashMap;
use std::borrow::Cow;

use gatehouse_config::path::{normalize_path, normalize_prefix, NormalPath, PathError};
use http::header::HOST;
use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::config::{Conditions, PathMatch, Route};

/// A request matched to a route: the first step of the pipeline.
#[derive(Debug)]
pub struct Routed<'u> {
    /// Index of the route in the snapshot's `routes`.
    pub index: usize,
    /// The request path after the [path policy](gatehouse_config::path): routes and
    /// rules see its [`matched`](NormalPath::matched) form, the upstream gets its
    /// [`forward`](NormalPath::forward) form: what was checked is what is forwarded.
    pub path: NormalPath<'u>,
    /// Length of the matched prefix of the matched path (see [`RouteMatch::prefix_len`]).
    pub prefix_len: usize,
    /// The request's host (authority, else `Host`), as the client sent it.
    pub host: Option<HeaderValue>,
}

impl Routed<'_> {
    /// The matched path after the route prefix, always starting with `/`: what
    /// endpoints and scope rules are matched against.
    pub fn suffix(&self) -> &str {
        RouteMatch {
            index: self.index,
            prefix_len: self.prefix_len,
        }
        .suffix(self.path.matched())
    }

    /// The matched route prefix of the path (`""` for the root prefix).
    pub fn prefix(&self) -> &str {
        &self.path.matched()[..self.prefix_len]
    }

    /// The path sent upstream: the checked path, without the route prefix when the
    /// route strips it. The prefix is whole segments and `;` parameters make the
    /// forwarded spelling longer, so it is stripped by segments, not bytes.
    pub fn forward_path(&self, strip_prefix: bool) -> &str {
        if strip_prefix {
            self.path.forward_after(self.prefix().matches('/').count())
        } else {
            self.path.forward()
        }
    }

    /// The host as text, when it is text.
    pub fn host_str(&self) -> Option<&str> {
        self.host.as_ref().and_then(|h| h.to_str().ok())
    }
}

/// Why a request has no route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrouted {
    /// The path policy refuses the path (400).
    BadPath(PathError),
    /// No route matches (404).
    NoRoute,
}

/// Match a request (method, URI and headers) against `router`: apply the path policy
/// once, take the host from the authority or `Host`, find the route whose conditions
/// the request meets, and refuse an encoded slash unless that route lets them through.
/// The one matching function of the proxy: the request pipeline and the
/// external-authorization endpoints both call it.
pub fn route<'u>(
    router: &Router,
    method: &Method,
    uri: &'u Uri,
    headers: &HeaderMap,
) -> Result<Routed<'u>, Unrouted> {
    let host: Option<HeaderValue> = match uri.authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok(),
        None => headers.get(HOST).cloned(),
    };
    let path = normalize_path(uri.path()).map_err(Unrouted::BadPath)?;
    let facts = RequestFacts {
        method,
        headers,
        query: uri.query(),
    };
    let host_str = host.as_ref().and_then(|h| h.to_str().ok());
    let matched = router
        .lookup_request(host_str, path.matched(), &facts)
        .ok_or(Unrouted::NoRoute)?;
    if path.encoded_slash()
        && !router
            .encoded_slashes
            .get(matched.index)
            .copied()
            .unwrap_or(false)
    {
        return Err(Unrouted::BadPath(PathError::EncodedSlash));
    }
    Ok(Routed {
        index: matched.index,
        path,
        prefix_len: matched.prefix_len,
        host,
    })
}

/// A successful lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteMatch {
    /// Index of the route in the snapshot's `routes`.
    pub index: usize,
    /// Length in bytes of the matched prefix of the (normalized) path; the part after
    /// it is the route-relative suffix. `0` for the root prefix `/`.
    pub prefix_len: usize,
}

impl RouteMatch {
    /// The path after the matched prefix, always starting with `/`.
    pub fn suffix<'p>(&self, path: &'p str) -> &'p str {
        let rest = &path[self.prefix_len..];
        if rest.is_empty() {
            "/"
        } else {
            rest
        }
    }
}

/// What a route's conditions look at in a request.
#[derive(Clone, Copy)]
pub struct RequestFacts<'r> {
    pub method: &'r http::Method,
    pub headers: &'r http::HeaderMap,
    pub query: Option<&'r str>,
}

impl RequestFacts<'_> {
    fn satisfies(&self, c: &Conditions) -> bool {
        if let Some(m) = &c.method {
            if self.method.as_str() != m {
                return false;
            }
        }
        let headers_ok = c.headers.iter().all(|h| {
            self.headers
                .get_all(h.name.as_str())
                .iter()
                .any(|v| v.as_bytes() == h.value.as_bytes())
        });
        let query_ok = c.query.iter().all(|q| {
            self.query.is_some_and(|query| {
                form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == q.name && v == q.value)
            })
        });
        headers_ok && query_ok
    }
}

/// Routes of one host class: exact paths and path prefixes (normalized), each with
/// its candidates in precedence order.
#[derive(Debug, Default)]
struct PathTable {
    exact: HashMap<Box<str>, Vec<usize>>,
    prefixes: HashMap<Box<str>, Vec<usize>>,
}

impl PathTable {
    fn insert(&mut self, exact: bool, path: &str, index: usize) {
        let table = if exact {
            &mut self.exact
        } else {
            &mut self.prefixes
        };
        match table.get_mut(path) {
            Some(list) => {
                if !list.contains(&index) {
                    list.push(index);
                }
            }
            None => {
                table.insert(path.into(), vec![index]);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Exact path first, then the longest prefix of `path` (on a segment boundary);
    /// at each, the first candidate whose conditions hold.
    fn lookup(&self, path: &str, ok: &dyn Fn(usize) -> bool) -> Option<RouteMatch> {
        if self.is_empty() {
            return None;
        }
        if let Some(list) = self.exact.get(path) {
            if let Some(&index) = list.iter().find(|&&i| ok(i)) {
                return Some(RouteMatch {
                    index,
                    prefix_len: path.len(),
                });
            }
        }
        if self.prefixes.is_empty() {
            return None;
        }
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            let key = if candidate.is_empty() { "/" } else { candidate };
            if let Some(list) = self.prefixes.get(key) {
                if let Some(&index) = list.iter().find(|&&i| ok(i)) {
                    let prefix_len = if key == "/" { 0 } else { end };
                    return Some(RouteMatch { index, prefix_len });
                }
            }
            if end == 0 {
                return None;
            }
            // Next shorter candidate ends just before the previous '/'.
            end = candidate.rfind('/').unwrap_or(0);
        }
    }

    /// Order candidates as the Gateway API does for equal paths: a method match,
    /// then more header matches, then more query matches, then listing order.
    fn sort(&mut self, routes: &[Route]) {
        let rank = |i: &usize| {
            let c = &routes[*i].conditions;
            (
                std::cmp::Reverse(c.method.is_some()),
                std::cmp::Reverse(c.headers.len()),
                std::cmp::Reverse(c.query.len()),
                *i,
            )
        };
        for list in self.exact.values_mut().chain(self.prefixes.values_mut()) {
            list.sort_by_key(rank);
        }
    }
}

/// The compiled routing table of one snapshot.
#[derive(Debug, Default)]
pub struct Router {
    exact: HashMap<Box<str>, PathTable>,
    /// Keyed by the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<Box<str>, PathTable>,
    any_host: PathTable,
    /// Per route: its conditions, when it has any.
    conditions: Vec<Option<Conditions>>,
    /// Per route: whether it lets an encoded slash (`%2F`) through.
    encoded_slashes: Vec<bool>,
}

impl Router {
    /// Whether `Router::new(old)` and `Router::new(new)` build the same table: the
    /// same number of routes with, at each index, equal match fields (`hosts`,
    /// `paths`, `path_match`, `conditions`, `allow_encoded_slashes`), which are all
    /// that [`Router::new`] reads. Ids, upstreams, OAuth2 settings and filters play
    /// no part in routing. Keep this in step with `new`.
    pub fn same_inputs(old: &[Route], new: &[Route]) -> bool {
        old.len() == new.len()
            && old
                .iter()
                .zip(new)
                .all(|(a, b)| Router::same_route_inputs(a, b))
    }

    /// Whether two routes at the same index index the same way (see
    /// [`Router::same_inputs`]).
    pub fn same_route_inputs(a: &Route, b: &Route) -> bool {
        a.hosts == b.hosts
            && a.paths == b.paths
            && a.path_match == b.path_match
            && a.allow_encoded_slashes == b.allow_encoded_slashes
            && a.conditions == b.conditions
    }

    /// Index `routes` (their order is the tie-break order).
    ///
    /// Reads each route's `hosts`, `paths`, `path_match`, `conditions` and
    /// `allow_encoded_slashes` only ([`Router::same_inputs`] compares exactly these).
    /// Built in two passes so every map is allocated once at its final size: at
    /// 100,000 routes growing them rehashed every entry several times.
    pub fn new(routes: &[Route]) -> Self {
        // Pass 1: how many entries each map gets (an upper bound: duplicates merge).
        let mut any_host = (0, 0);
        let (mut exact_hosts, mut wildcard_hosts) = (0, 0);
        for route in routes {
            let paths = route.paths.len().max(1);
            if route.hosts.is_empty() {
                if route.path_match == PathMatch::Exact {
                    any_host.0 += paths;
                } else {
                    any_host.1 += paths;
                }
            }
            for host in &route.hosts {
                if host.trim().starts_with("*.") {
                    wildcard_hosts += 1;
                } else {
                    exact_hosts += 1;
                }
            }
        }
        fn map<V>(n: usize) -> HashMap<Box<str>, V> {
            HashMap::with_capacity_and_hasher(n, Default::default())
        }
        let mut router = Router {
            exact: map(exact_hosts),
            wildcard: map(wildcard_hosts),
            any_host: PathTable {
                exact: map(any_host.0),
                prefixes: map(any_host.1),
            },
            conditions: Vec::with_capacity(routes.len()),
            encoded_slashes: routes.iter().map(|r| r.allow_encoded_slashes).collect(),
        };
        // Pass 2: index every (host class, path) of every route.
        let root = ["/".to_owned()];
        for (index, route) in routes.iter().enumerate() {
            let exact_path = route.path_match == PathMatch::Exact;
            let configured = if route.paths.is_empty() {
                &root[..]
            } else {
                &route.paths[..]
            };
            for configured in configured {
                let path: Cow<'_, str> = if exact_path {
                    // A configured path the policy refuses is kept as written: it can
                    // never match a request (as `normalize_prefix` does for prefixes).
                    match normalize_path(configured) {
                        Ok(n) => Cow::Owned(n.matched().to_owned()),
                        Err(_) => Cow::Borrowed(configured.as_str()),
                    }
                } else {
                    Cow::Owned(normalize_prefix(configured))
                };
                if route.hosts.is_empty() {
                    router.any_host.insert(exact_path, &path, index);
                }
                for host in &route.hosts {
                    let host = host.trim().trim_end_matches('.');
                    let host: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                        Cow::Owned(host.to_ascii_lowercase())
                    } else {
                        Cow::Borrowed(host)
                    };
                    let (map, key) = match host.strip_prefix("*.") {
                        Some(suffix) => (&mut router.wildcard, suffix),
                        None => (&mut router.exact, host.as_ref()),
                    };
                    // Look up first: a host is often there already (several routes,
                    // several paths), and `entry` would allocate the key every time.
                    if let Some(table) = map.get_mut(key) {
                        table.insert(exact_path, &path, index);
                    } else {
                        let mut table = PathTable::default();
                        table.insert(exact_path, &path, index);
                        map.insert(key.into(), table);
                    }
                }
            }
            router
                .conditions
                .push(Some(route.conditions.clone()).filter(|c| !c.is_empty()));
        }
        for table in router
            .exact
            .values_mut()
            .chain(router.wildcard.values_mut())
            .chain(std::iter::once(&mut router.any_host))
        {
            table.sort(routes);
        }
        router
    }

    /// Find the route for `host` (raw `Host`/authority value, port allowed, any case)
    /// and an already [normalized](gatehouse_config::path::NormalPath::matched) `path`.
    /// Routes with conditions never match here; see [`Router::lookup_request`].
    pub fn lookup(&self, host: Option<&str>, path: &str) -> Option<RouteMatch> {
        self.find(host, path, &|i| self.conditions[i].is_none())
    }

    /// Like [`Router::lookup`], checking routes' method, header and query conditions
    /// against the request.
    pub fn lookup_request(
        &self,
        host: Option<&str>,
        path: &str,
        request: &RequestFacts<'_>,
    ) -> Option<RouteMatch> {
        self.find(host, path, &|i| {
            self.conditions[i]
                .as_ref()
                .is_none_or(|c| request.satisfies(c))
        })
    }

    fn find(
        &self,
        host: Option<&str>,
        path: &str,
        ok: &dyn Fn(usize) -> bool,
    ) -> Option<RouteMatch> {
        if let Some(host) = host.map(normalize_host) {
            if let Some(m) = self
                .exact
                .get(host.as_ref())
                .and_then(|t| t.lookup(path, ok))
            {
                return Some(m);
            }
            if let Some((_, parent)) = host.split_once('.') {
                if let Some(m) = self.wildcard.get(parent).and_then(|t| t.lookup(path, ok)) {
                    return Some(m);
                }
            }
        }
        self.any_host.lookup(path, ok)
    }
}

/// Host header value → lowercase name without port or trailing dot.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let name = if raw.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => raw,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;

    fn mk_route(id: &str, hosts: &[&str], paths: &[&str]) -> Route {
        Route {
            id: id.to_owned(),
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            strip_path: false,
            preserve_host: false,
            allow_encoded_slashes: false,
            upstream: Upstream {
                endpoints: vec![],
                connect_timeout_ms: 1000,
                response_timeout_ms: 1000,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn id<'a>(routes: &'a [Route], r: &Router, host: Option<&str>, path: &str) -> Option<&'a str> {
        r.lookup(host, path).map(|m| routes[m.index].id.as_str())
    }

    #[test]
    fn longest_prefix_wins_on_segment_boundaries() {
        let routes = vec![
            mk_route("root", &[], &["/"]),
            mk_route("api", &[], &["/api"]),
            mk_route("api-v2", &[], &["/api/v2/"]),
        ];
        let r = Router::new(&routes);
        assert_eq!(id(&routes, &r, None, "/api"), Some("api"));
        assert_eq!(id(&routes, &r, None, "/api/"), Some("api"));
        assert_eq!(id(&routes, &r, None, "/api/v1/x"), Some("api"));
        assert_eq!(id(&routes, &r, None, "/api/v2"), Some("api-v2"));
        assert_eq!(id(&routes, &r, None, "/api/v2/x/y"), Some("api-v2"));
        assert_eq!(id(&routes, &r, None, "/apix"), Some("root"));
        assert_eq!(id(&routes, &r, None, "/"), Some("root"));
    }

    #[test]
    fn no_match_without_a_root_route() {
        let routes = vec![mk_route("api", &[], &["/api"])];
        let r = Router::new(&routes);
        assert_eq!(r.lookup(None, "/apix"), None);
        assert_eq!(r.lookup(None, "/"), None);
    }

    #[test]
    fn suffix_is_the_path_after_the_prefix() {
        let routes = vec![mk_route("a", &[], &["/stepon"]), mk_route("r", &[], &["/"])];
        let r = Router::new(&routes);
        let m = r.lookup(None, "/stepon/oauth2/token").unwrap();
        assert_eq!(m.suffix("/stepon/oauth2/token"), "/oauth2/token");
        let m = r.lookup(None, "/stepon").unwrap();
        assert_eq!(m.suffix("/stepon"), "/");
        let m = r.lookup(None, "/oauth2/token").unwrap();
        assert_eq!(m.suffix("/oauth2/token"), "/oauth2/token");
    }

    #[test]
    fn exact_host_beats_wildcard_beats_any_host() {
        let routes = vec![
            mk_route("any", &[], &["/"]),
            mk_route("wild", &["*.example.com"], &["/"]),
            mk_route("exact", &["api.example.com"], &["/"]),
        ];
        let r = Router::new(&routes);
        assert_eq!(
            id(&routes, &r, Some("api.example.com"), "/x"),
            Some("exact")
        );
        assert_eq!(
            id(&routes, &r, Some("API.Example.com:8443"), "/x"),
            Some("exact")
        );
        assert_eq!(id(&routes, &r, Some("www.example.com"), "/x"), Some("wild"));
        // A wildcard covers exactly one extra label.
        assert_eq!(id(&routes, &r, Some("a.b.example.com"), "/x"), Some("any"));
        assert_eq!(id(&routes, &r, Some("example.com"), "/x"), Some("any"));
        assert_eq!(id(&routes, &r, None, "/x"), Some("any"));
    }

    #[test]
    fn a_host_class_without_a_matching_path_falls_through() {
        let routes = vec![
            mk_route("exact", &["api.example.com"], &["/only"]),
            mk_route("any", &[], &["/other"]),
        ];
        let r = Router::new(&routes);
        assert_eq!(
            id(&routes, &r, Some("api.example.com"), "/other/1"),
            Some("any")
        );
        assert_eq!(
            id(&routes, &r, Some("api.example.com"), "/only"),
            Some("exact")
        );
        assert_eq!(r.lookup(Some("api.example.com"), "/nothing"), None);
    }

    #[test]
    fn host_routes_do_not_answer_other_hosts() {
        let routes = vec![mk_route("exact", &["api.example.com"], &["/"])];
        let r = Router::new(&routes);
        assert_eq!(r.lookup(Some("evil.example.com"), "/"), None);
        assert_eq!(r.lookup(None, "/"), None);
    }

    #[test]
    fn first_route_wins_an_exact_tie() {
        let routes = vec![
            mk_route("first", &[], &["/a"]),
            mk_route("second", &[], &["/a/"]),
        ];
        let r = Router::new(&routes);
        assert_eq!(id(&routes, &r, None, "/a/b"), Some("first"));
    }

    #[test]
    fn ten_thousand_routes_are_indexed_not_scanned() {
        let routes: Vec<Route> = (0..10_000)
            .map(|i| {
                mk_route(
                    &format!("r{i}"),
                    &[&format!("h{}.example.com", i % 100)],
                    &[&format!("/svc{i}")],
                )
            })
            .collect();
        let r = Router::new(&routes);
        assert_eq!(
            id(&routes, &r, Some("h42.example.com"), "/svc9942/x"),
            Some("r9942")
        );
        assert_eq!(r.lookup(Some("h41.example.com"), "/svc9942/x"), None);
    }

    #[test]
    fn exact_paths_and_more_specific_conditions_win_as_in_gateway_api() {
        use crate::config::{Conditions, NameValue};
        let mut exact = mk_route("exact", &[], &["/a"]);
        exact.path_match = PathMatch::Exact;
        let mut header = mk_route("header", &[], &["/a"]);
        header.conditions = Conditions {
            headers: vec![NameValue {
                name: "x-v".into(),
                value: "2".into(),
            }],
            ..Conditions::default()
        };
        let mut method = mk_route("method", &[], &["/a"]);
        method.conditions.method = Some("POST".into());
        let routes = vec![mk_route("plain", &[], &["/a"]), header, method, exact];
        let r = Router::new(&routes);
        let mut headers = http::HeaderMap::new();
        let get = http::Method::GET;
        let post = http::Method::POST;
        let at = |m: &http::Method, h: &http::HeaderMap, path: &str| {
            let facts = RequestFacts {
                method: m,
                headers: h,
                query: None,
            };
            r.lookup_request(None, path, &facts)
                .map(|x| routes[x.index].id.as_str())
        };
        assert_eq!(at(&get, &headers, "/a"), Some("exact"));
        assert_eq!(at(&get, &headers, "/a/b"), Some("plain"));
        headers.insert("x-v", http::HeaderValue::from_static("2"));
        assert_eq!(at(&get, &headers, "/a/b"), Some("header"));
        // A method match outranks header matches.
        assert_eq!(at(&post, &headers, "/a/b"), Some("method"));
        // Plain lookup never picks a route with conditions.
        assert_eq!(id(&routes, &r, None, "/a/b"), Some("plain"));
    }

    #[test]
    fn same_inputs_looks_at_every_match_field_and_nothing_else() {
        let base = vec![
            mk_route("a", &["a.example"], &["/a"]),
            mk_route("b", &[], &["/b"]),
        ];
        let mut other = base.clone();
        other[0].id = "renamed".into();
        other[0].upstream.endpoints = vec!["http://10.0.0.1".into()];
        other[1].strip_path = true;
        other[1].preserve_host = true;
        assert!(Router::same_inputs(&base, &other));
        let edits: [fn(&mut Route); 5] = [
            |r| r.paths[0] = "/c".into(),
            |r| r.hosts.push("b.example".into()),
            |r| r.path_match = PathMatch::Exact,
            |r| r.allow_encoded_slashes = true,
            |r| r.conditions.method = Some("GET".into()),
        ];
        for edit in edits {
            let mut changed = base.clone();
            edit(&mut changed[1]);
            assert!(!Router::same_inputs(&base, &changed));
        }
        assert!(!Router::same_inputs(&base, &base[..1]));
        let swapped = vec![base[1].clone(), base[0].clone()];
        assert!(
            !Router::same_inputs(&base, &swapped),
            "order is the tie-break"
        );
    }

    #[test]
    fn ipv6_and_port_are_stripped_from_hosts() {
        assert_eq!(normalize_host("[::1]:8000"), "[::1]");
        assert_eq!(normalize_host("Example.COM."), "example.com");
        assert_eq!(normalize_host("example.com:80"), "example.com");
    }
}
