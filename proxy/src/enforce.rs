//! Token enforcement on proxied requests of an OAuth2-protected route: find the token,
//! check it against the store and the route, apply gateway scope rules, and tell the
//! upstream who is calling (Kong `oauth2` plugin contract, plus scope `rules`).
//!
//! The pure decisions ([`find_token`], [`check_token`], [`required_scopes`], ...) are
//! separate from the async glue ([`check`]) so each can be tested alone. Scope rules
//! arrive already compiled ([`compile_rules`], once per snapshot).

use std::borrow::Cow;

use bytes::Bytes;
use gatehouse_config::path::{normalize_prefix, prefix_covers, slashes_decoded};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Uri};

use crate::binding::valid_on_route;
use crate::body::{full, read_limited, ProxyBody};
use crate::catalog::{Catalog, ClientEntry, ConsumerEntry};
use crate::config::{Route, RouteOAuth2, ScopeRule};
use crate::error::Rejection;
use crate::headers::*;
use crate::methods::{effective_methods, rule_applies};
use crate::oauth2::clients::unvetted_client_alive;
use crate::server::limits::BodyLimit;
use crate::store::{AccessToken, Digest, TokenStore, UnixTime};

/// Everything enforcement needs about the matched route and the world.
pub struct Context<'a> {
    pub route: &'a Route,
    pub oauth: &'a RouteOAuth2,
    /// The route's scope rules, compiled with the snapshot.
    pub rules: &'a [Rule],
    pub catalog: &'a Catalog,
    pub store: &'a dyn TokenStore,
    /// Matched request path after the route prefix (`;` parameters removed: see
    /// [`gatehouse_config::path`]).
    pub suffix: &'a str,
    /// The path holds an encoded slash the route lets through: rules are checked with
    /// `%2F` read as data and as a separator, and the stricter reading wins.
    pub slashes_are_separators_too: bool,
    pub now: UnixTime,
    /// Bound on the form body read to look for `access_token`.
    pub body_limit: BodyLimit,
}

/// Where the presented token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Body,
}

/// Check the request and, when it may pass, set the identity headers (and hide the
/// credentials if the route asks). Returns the body to send upstream: the original
/// stream, or the re-built form body when it had to be read.
pub async fn check(
    ctx: &Context<'_>,
    parts: &mut Parts,
    body: ProxyBody,
) -> Result<ProxyBody, Rejection> {
    let header_name = ctx.oauth.auth_header_name.as_str();
    // OAuth 2.1 (§5.2): bearer tokens in the header only, never in a URL or a form.
    let header_only = ctx.oauth.oauth21;
    let query = if header_only { None } else { parts.uri.query() };
    let mut found = find_token(&parts.headers, header_name, query);
    let mut form: Option<Bytes> = None;
    let mut body = body;
    if found.is_none() && !header_only && is_form(&parts.headers) {
        // Boxed: rare, and inline it would size every request's future.
        let bytes = Box::pin(read_limited(&parts.headers, body, ctx.body_limit)).await?;
        found = form_param(&bytes, "access_token").map(|t| (t, TokenSource::Body));
        // The stream is consumed: the upstream gets the bytes we read.
        body = full(bytes.clone());
        form = Some(bytes);
    }

    if ctx.oauth.hide_credentials {
        hide_credentials(parts, header_name, form.as_ref(), &mut body);
    }

    let required = rule_scopes(ctx, parts);
    let realm = ctx.oauth.realm.as_str();
    let Some((token, _source)) = found else {
        let anonymous = ctx.oauth.anonymous_consumer.as_deref();
        return match anonymous {
            // Anonymous callers have no scopes: a rule-protected path still needs a token.
            Some(consumer_id) if required.is_empty() => {
                set_anonymous_headers(
                    &mut parts.headers,
                    consumer_id,
                    ctx.catalog.consumer_entry(consumer_id),
                );
                Ok(body)
            }
            _ => Err(Rejection::token_missing(realm)),
        };
    };

    let store_failed = |error: crate::store::StoreError| {
        tracing::warn!(route.id = %ctx.route.id, %error, "Token store lookup failed");
        Rejection::StoreUnavailable
    };
    let record = ctx
        .store
        .access_token(Digest::of(token.as_bytes()))
        .await
        .map_err(store_failed)?;
    let record = check_token(record, ctx.route, ctx.oauth, ctx.now)
        .ok_or_else(|| Rejection::token_invalid(realm))?;
    // A token whose client or consumer was deleted from the configuration is dead;
    // so is one of a client nobody registered once the route stops accepting it or
    // its registration ends.
    let client = ctx.catalog.client(&record.client_id);
    let consumer = match client {
        Some(_) => Some(
            ctx.catalog
                .consumer_entry(&record.consumer_id)
                .ok_or_else(|| Rejection::token_invalid(realm))?,
        ),
        None if record.consumer_id.is_empty()
            && Box::pin(unvetted_client_alive(
                ctx.store,
                &record.route_id,
                ctx.oauth,
                &record.client_id,
            ))
            .await
            .map_err(store_failed)? =>
        {
            None
        }
        None => return Err(Rejection::token_invalid(realm)),
    };
    if !required.iter().all(|s| record.scopes.contains(s)) {
        return Err(Rejection::insufficient_scope(realm, required.join(" ")));
    }
    set_identity_headers(&mut parts.headers, consumer, client, &record);
    Ok(body)
}

/// Token from `<header>: Bearer <t>`, else `access_token` in the query.
pub fn find_token(
    headers: &HeaderMap,
    header_name: &str,
    query: Option<&str>,
) -> Option<(String, TokenSource)> {
    if let Some(token) = headers
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
    {
        return Some((token.to_owned(), TokenSource::Header));
    }
    query
        .and_then(|q| form_param(q.as_bytes(), "access_token"))
        .map(|t| (t, TokenSource::Query))
}

/// The token of a `Bearer` credential (scheme case-insensitive), if non-empty.
pub fn bearer(value: &str) -> Option<&str> {
    let value = value.trim_start();
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with([' ', '\t']) {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// First non-empty value of `name` in an `application/x-www-form-urlencoded` string.
pub fn form_param(raw: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(raw)
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// `raw` without any `name=...` pair; other pairs keep their exact encoding.
pub fn without_param<'a>(raw: &'a str, name: &str) -> Cow<'a, str> {
    let is_named = |pair: &str| {
        let key = pair.split('=').next().unwrap_or("");
        form_urlencoded::parse(key.as_bytes())
            .next()
            .map(|(k, _)| k == name)
            .unwrap_or(false)
    };
    if !raw.split('&').any(is_named) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(
        raw.split('&')
            .filter(|p| !p.is_empty() && !is_named(p))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// The record if it may be used on this route now.
pub fn check_token(
    record: Option<AccessToken>,
    route: &Route,
    oauth: &RouteOAuth2,
    now: UnixTime,
) -> Option<AccessToken> {
    let record = record?;
    // Expiry is the store's job; checking again costs nothing and covers clock skew
    // between a store and this replica.
    if record.expires_at.is_some_and(|exp| exp <= now) {
        return None;
    }
    valid_on_route(
        &record.route_id,
        record.global,
        !record.audience.is_empty(),
        route,
        oauth,
    )
    .then_some(record)
}

/// A scope rule with its path prefix normalized once, when the snapshot is compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Lower-cased when `ignore_case`.
    prefix: String,
    ignore_case: bool,
    methods: Vec<String>,
    required_scopes: Vec<String>,
}

/// Compile a route's scope rules (order kept: the first-listed rule wins a tie);
/// with `ignore_case` (`oauth2.caseInsensitiveRules`) their paths match in any ASCII
/// case.
pub fn compile_rules(rules: &[ScopeRule], ignore_case: bool) -> Vec<Rule> {
    rules
        .iter()
        .map(|r| {
            let mut prefix = normalize_prefix(&r.path);
            if ignore_case {
                prefix.make_ascii_lowercase();
            }
            Rule {
                prefix,
                ignore_case,
                methods: r.methods.clone(),
                required_scopes: r.required_scopes.clone(),
            }
        })
        .collect()
}

/// Every scope the rules require of this request: the union, over each method the
/// request may act as ([`effective_methods`]: `HEAD` as `GET`, method overrides) and
/// each reading of its path, of what [`required_scopes`] says. Empty when no rule
/// covers the request.
fn rule_scopes(ctx: &Context<'_>, parts: &Parts) -> Vec<String> {
    if ctx.rules.is_empty() {
        return Vec::new();
    }
    let methods = effective_methods(&parts.method, &parts.headers, parts.uri.query());
    let decoded = slashes_decoded(ctx.suffix);
    let mut paths = vec![ctx.suffix];
    if ctx.slashes_are_separators_too && decoded != ctx.suffix {
        paths.push(&decoded);
    }
    let mut out: Vec<String> = Vec::new();
    for method in &methods {
        for path in &paths {
            for scope in required_scopes(ctx.rules, path, method)
                .into_iter()
                .flatten()
            {
                if !out.contains(scope) {
                    out.push(scope.clone());
                }
            }
        }
    }
    out
}

/// Scopes the longest rule covering `suffix` for `method` (upper-case) requires, if
/// any rule does.
pub fn required_scopes<'r>(rules: &'r [Rule], suffix: &str, method: &str) -> Option<&'r [String]> {
    let lowered: Cow<str> = if rules.first().is_some_and(|r| r.ignore_case) {
        Cow::Owned(suffix.to_ascii_lowercase())
    } else {
        Cow::Borrowed(suffix)
    };
    rules
        .iter()
        .filter(|r| rule_applies(&r.methods, method))
        .filter_map(|r| prefix_covers(&r.prefix, &lowered).then_some((r.prefix.len(), r)))
        // Longest rule wins; `max_by_key` keeps the last of equals, so reverse first to
        // let the first-listed rule win a tie.
        .rev()
        .max_by_key(|(len, _)| *len)
        .map(|(_, r)| r.required_scopes.as_slice())
        .filter(|scopes| !scopes.is_empty())
}

/// Identity headers for a request carrying a valid token (`client`: the token's
/// client in the configuration, whose header value is rendered already).
pub fn set_identity_headers(
    headers: &mut HeaderMap,
    consumer: Option<&ConsumerEntry>,
    client: Option<&ClientEntry>,
    token: &AccessToken,
) {
    // Clients nobody registered by hand belong to no consumer.
    if let Some(consumer) = consumer {
        set_consumer_headers(headers, consumer);
    }
    match client {
        Some(c) if c.client.client_id == token.client_id => {
            if let Some(v) = &c.id_value {
                headers.insert(X_CREDENTIAL_IDENTIFIER, v.clone());
            }
        }
        _ => insert_text(headers, X_CREDENTIAL_IDENTIFIER, &token.client_id),
    }
    if !token.scopes.is_empty() {
        insert_text(headers, X_AUTHENTICATED_SCOPE, &token.scopes.join(" "));
    }
    if let Some(user) = &token.authenticated_userid {
        insert_text(headers, X_AUTHENTICATED_USERID, user);
    }
}

/// Identity headers for a request passing as the route's anonymous consumer.
pub fn set_anonymous_headers(
    headers: &mut HeaderMap,
    consumer_id: &str,
    consumer: Option<&ConsumerEntry>,
) {
    match consumer {
        Some(c) => set_consumer_headers(headers, c),
        None => insert_text(headers, X_CONSUMER_ID, consumer_id),
    }
    headers.insert(X_ANONYMOUS_CONSUMER, HeaderValue::from_static("true"));
}

fn set_consumer_headers(headers: &mut HeaderMap, consumer: &ConsumerEntry) {
    // Rendered with the snapshot: a clone here is a reference count.
    let values = [
        (X_CONSUMER_ID, &consumer.id_value),
        (X_CONSUMER_CUSTOM_ID, &consumer.custom_id_value),
        (X_CONSUMER_USERNAME, &consumer.username_value),
    ];
    for (name, value) in values {
        if let Some(v) = value {
            headers.insert(name, v.clone());
        }
    }
}

fn insert_text(headers: &mut HeaderMap, name: http::HeaderName, value: &str) {
    // Values come from configuration and the token store; one that cannot be a header
    // value (a control character) is left out rather than failing the request.
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// `hide_credentials`: remove the token header, `access_token` from the query, and
/// from the form body when the body was read.
fn hide_credentials(
    parts: &mut Parts,
    header_name: &str,
    form: Option<&Bytes>,
    body: &mut ProxyBody,
) {
    parts.headers.remove(header_name);
    if let Some(query) = parts.uri.query() {
        if let Cow::Owned(q) = without_param(query, "access_token") {
            parts.uri = with_query(&parts.uri, &q);
        }
    }
    if let Some(bytes) = form {
        let text = String::from_utf8_lossy(bytes);
        if let Cow::Owned(rest) = without_param(&text, "access_token") {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(rest.len()));
            *body = full(rest);
        }
    }
}

/// `uri` with its query replaced (removed when empty).
fn with_query(uri: &Uri, query: &str) -> Uri {
    let pq = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut builder = Uri::builder().path_and_query(pq);
    if let Some(s) = uri.scheme() {
        builder = builder.scheme(s.clone());
    }
    if let Some(a) = uri.authority() {
        builder = builder.authority(a.clone());
    }
    builder.build().unwrap_or_else(|_| uri.clone())
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Consumer, Upstream};
    use crate::store::Grant;

    fn mk_route(id: &str, global: bool) -> (Route, RouteOAuth2) {
        let oauth = RouteOAuth2 {
            global_credentials: global,
            ..Default::default()
        };
        let route = Route {
            id: id.into(),
            hosts: vec![],
            paths: vec!["/api".into()],
            strip_path: false,
            preserve_host: false,
            allow_encoded_slashes: false,
            upstream: Upstream {
                endpoints: vec![],
                connect_timeout_ms: 1,
                response_timeout_ms: 1,
                ..Default::default()
            },
            timeouts: Default::default(),
            oauth2: Some(oauth.clone()),
            ..Default::default()
        };
        (route, oauth)
    }

    fn mk_token(route: &str, global: bool, expires_at: Option<u64>) -> AccessToken {
        AccessToken {
            grant: Grant {
                route_id: route.into(),
                global,
                client_id: "c".into(),
                consumer_id: "k".into(),
                authenticated_userid: Some("clark".into()),
                scopes: vec!["a".into(), "b".into()],
                issued_at: 0,
                expires_at,
                family: "f".into(),
                audience: Vec::new(),
            },
            refresh: None,
        }
    }

    fn mk_rule(path: &str, methods: &[&str], scopes: &[&str]) -> ScopeRule {
        ScopeRule {
            path: path.into(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            required_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn header_token_wins_over_query_token() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer fromheader".parse().unwrap());
        assert_eq!(
            find_token(&h, "authorization", Some("access_token=fromquery")),
            Some(("fromheader".into(), TokenSource::Header))
        );
        assert_eq!(
            find_token(
                &HeaderMap::new(),
                "authorization",
                Some("x=1&access_token=q%2Bt")
            ),
            Some(("q+t".into(), TokenSource::Query))
        );
        assert_eq!(
            find_token(&HeaderMap::new(), "authorization", Some("access_token=")),
            None
        );
    }

    #[test]
    fn custom_auth_header_names_are_honoured() {
        let mut h = HeaderMap::new();
        h.insert("x-api-token", "Bearer t".parse().unwrap());
        assert_eq!(
            find_token(&h, "x-api-token", None),
            Some(("t".into(), TokenSource::Header))
        );
        assert_eq!(find_token(&h, "authorization", None), None);
    }

    #[test]
    fn removing_a_param_keeps_the_others_verbatim() {
        assert_eq!(
            without_param("a=1%20&access_token=x&b=%2F", "access_token"),
            "a=1%20&b=%2F"
        );
        assert_eq!(without_param("access_token=x", "access_token"), "");
        assert!(matches!(
            without_param("a=1", "access_token"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn tokens_are_bound_to_their_route_unless_both_are_global() {
        let (route, oauth) = mk_route("ns/a", false);
        assert!(check_token(Some(mk_token("ns/a", false, None)), &route, &oauth, 10).is_some());
        assert!(check_token(Some(mk_token("ns/b", false, None)), &route, &oauth, 10).is_none());
        // A global token on a non-global route is refused, as Kong does.
        assert!(check_token(Some(mk_token("ns/b", true, None)), &route, &oauth, 10).is_none());
        let (groute, goauth) = mk_route("ns/g", true);
        assert!(check_token(Some(mk_token("ns/b", true, None)), &groute, &goauth, 10).is_some());
        assert!(check_token(Some(mk_token("ns/b", false, None)), &groute, &goauth, 10).is_none());
        assert!(check_token(None, &route, &oauth, 10).is_none());
    }

    #[test]
    fn expired_records_are_refused_even_if_the_store_returns_them() {
        let (route, oauth) = mk_route("ns/a", false);
        assert!(check_token(Some(mk_token("ns/a", false, Some(10))), &route, &oauth, 10).is_none());
        assert!(check_token(Some(mk_token("ns/a", false, Some(11))), &route, &oauth, 10).is_some());
    }

    #[test]
    fn longest_rule_for_the_method_decides_the_required_scopes() {
        let spec = [
            mk_rule("/stepcounts", &[], &["read"]),
            mk_rule("/stepcounts/admin", &["POST"], &["admin"]),
            mk_rule("/open", &[], &[]),
        ];
        let rules = compile_rules(&spec, false);
        let (get, post) = ("GET", "POST");
        assert_eq!(
            required_scopes(&rules, "/stepcounts/1", get),
            Some(&["read".to_string()][..])
        );
        assert_eq!(
            required_scopes(&rules, "/stepcounts/admin/x", post),
            Some(&["admin".to_string()][..])
        );
        assert_eq!(
            required_scopes(&rules, "/stepcounts/admin/x", get),
            Some(&["read".to_string()][..])
        );
        assert_eq!(required_scopes(&rules, "/stepcountsx", get), None);
        assert_eq!(required_scopes(&rules, "/open/x", get), None);
        assert_eq!(required_scopes(&rules, "/", get), None);
        assert_eq!(required_scopes(&rules, "/STEPCOUNTS/1", get), None);
        let folded = compile_rules(&spec, true);
        assert_eq!(
            required_scopes(&folded, "/StepCounts/1", get),
            Some(&["read".to_string()][..])
        );
    }

    #[test]
    fn identity_headers_describe_consumer_client_user_and_scope() {
        let consumer = Consumer {
            id: "k".into(),
            username: Some("shoeflyshoe".into()),
            custom_id: Some("sfs".into()),
        };
        let mut h = HeaderMap::new();
        let consumer = ConsumerEntry::new(consumer);
        set_identity_headers(&mut h, Some(&consumer), None, &mk_token("r", false, None));
        assert_eq!(h[X_CONSUMER_ID], "k");
        assert_eq!(h[X_CONSUMER_USERNAME], "shoeflyshoe");
        assert_eq!(h[X_CONSUMER_CUSTOM_ID], "sfs");
        assert_eq!(h[X_CREDENTIAL_IDENTIFIER], "c");
        assert_eq!(h[X_AUTHENTICATED_SCOPE], "a b");
        assert_eq!(h[X_AUTHENTICATED_USERID], "clark");
        assert!(!h.contains_key(X_ANONYMOUS_CONSUMER));
    }
}
