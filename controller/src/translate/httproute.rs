//! HTTPRoutes attached to our Gateways: parentRefs and listener hostnames, matches,
//! filters, weighted Service backends (cross-namespace only through a ReferenceGrant),
//! the OAuth2Policy that applies, and `status.parents` with the standard reasons.
//!
//! Each (rule, match) becomes one snapshot route; the proxy's router orders them as the
//! Gateway API spec does (exact path, longest prefix, method, header count, query
//! count, then age).

use std::collections::{BTreeSet, HashMap};

use gatehouse_config::snapshot::{self as config, NameValue};
use gatehouse_crds::conditions::reason;
use gatehouse_crds::gateway_api::{
    self, reason as gw, HeaderModifier, HttpRoute, HttpRouteFilter, HttpRouteRule, HttpRouteStatus,
    HttpRouteTimeouts, ParentReference, PathModifier, RouteParentStatus, CONTROLLER_NAME,
};
use gatehouse_crds::ServiceBackend;
use gatehouse_proxy::headers::IDENTITY_HEADERS;

use super::backend;
use super::backend_tls::AncestorKey;
use super::claims::{self, Claims, Owner};
use super::gateway::{carried, summary, Attached, Gateways, ListenerInfo};
use super::grants;
use super::object::{namespace, object_ref, Context, Verdict};
use super::policy::{gateway_condition, Attached as Policy, Policies};
use super::{Kind, ObjectStatus, Status};

/// One accepted or refused parentRef.
struct Parent {
    parent_ref: ParentReference,
    accepted: Result<(), (&'static str, String)>,
}

struct Item<'a> {
    route: &'a HttpRoute,
    owner: Owner,
    parents: Vec<Parent>,
    listeners: Vec<(String, String, String)>,
    resolved: Result<(), (&'static str, String)>,
    candidates: Vec<config::Route>,
    invalid: Option<String>,
    conflicts: Vec<String>,
}

/// HTTPRoutes between translation and the conflict check.
pub struct HttpRoutes<'a> {
    items: Vec<Item<'a>>,
}

pub fn translate<'a>(
    ctx: &Context<'a>,
    gateways: &Gateways,
    policies: &Policies,
) -> HttpRoutes<'a> {
    let mut items = Vec::new();
    for r in ctx.oldest_first(&ctx.input.http_routes) {
        let ns = namespace(&r.metadata).to_owned();
        let name = r.metadata.name.clone().unwrap_or_default();
        let mut item = Item {
            route: r,
            owner: Owner::new(Kind::HttpRoute, &r.metadata),
            parents: Vec::new(),
            listeners: Vec::new(),
            resolved: Ok(()),
            candidates: Vec::new(),
            invalid: None,
            conflicts: Vec::new(),
        };
        // Effective hosts over every accepted listener; `None` = any host.
        let mut hosts: Option<BTreeSet<String>> = Some(BTreeSet::new());
        let mut gateway_policies: Vec<(String, String, String)> = Vec::new();
        for pr in &r.spec.parent_refs {
            if pr.group.as_deref().unwrap_or(gateway_api::GROUP) != gateway_api::GROUP
                || pr.kind.as_deref().unwrap_or("Gateway") != "Gateway"
            {
                continue;
            }
            let gw_ns = pr.namespace.clone().unwrap_or_else(|| ns.clone());
            let of_gateway: Vec<&ListenerInfo> = gateways
                .listeners
                .iter()
                .filter(|l| l.gateway_ns == gw_ns && l.gateway == pr.name)
                .collect();
            if of_gateway.is_empty() {
                continue; // not one of our Gateways: another controller reports
            }
            let matching: Vec<&ListenerInfo> = of_gateway
                .into_iter()
                .filter(|l| pr.section_name.as_deref().is_none_or(|s| s == l.name))
                .filter(|l| pr.port.is_none_or(|p| p == l.port))
                .collect();
            let accepted = if matching.is_empty() {
                Err((
                    gw::NO_MATCHING_PARENT,
                    "no listener matches sectionName/port".to_owned(),
                ))
            } else {
                let allowed: Vec<&ListenerInfo> = matching
                    .into_iter()
                    .filter(|l| l.allows_http_route)
                    .filter(|l| match l.from.as_str() {
                        "All" => true,
                        "Same" => l.gateway_ns == ns,
                        _ => false,
                    })
                    .collect();
                if allowed.is_empty() {
                    Err((
                        gw::NOT_ALLOWED_BY_LISTENERS,
                        "the listeners' allowedRoutes do not admit this route".to_owned(),
                    ))
                } else {
                    let mut any = false;
                    for l in allowed {
                        if let Some(h) = intersect(&r.spec.hostnames, l.hostname.as_deref()) {
                            any = true;
                            item.listeners.push((
                                l.gateway_ns.clone(),
                                l.gateway.clone(),
                                l.name.clone(),
                            ));
                            gateway_policies.push((
                                l.gateway_ns.clone(),
                                l.gateway.clone(),
                                l.name.clone(),
                            ));
                            match (h, &mut hosts) {
                                (None, _) => hosts = None,
                                (Some(list), Some(set)) => set.extend(list),
                                (Some(_), None) => {}
                            }
                        }
                    }
                    if any {
                        Ok(())
                    } else {
                        Err((
                            gw::NO_MATCHING_LISTENER_HOSTNAME,
                            "no hostname of this route matches a listener hostname".to_owned(),
                        ))
                    }
                }
            };
            item.parents.push(Parent {
                parent_ref: pr.clone(),
                accepted,
            });
        }
        if item.listeners.is_empty() {
            items.push(item);
            continue;
        }
        let hosts: Vec<String> = hosts.map(|s| s.into_iter().collect()).unwrap_or_default();
        // The Gateways this route is attached to: BackendTLSPolicy ancestors.
        let via: Vec<AncestorKey> = item
            .listeners
            .iter()
            .map(|(gw_ns, gw_name, _)| AncestorKey {
                group: gateway_api::GROUP.to_owned(),
                kind: "Gateway".to_owned(),
                namespace: gw_ns.clone(),
                name: gw_name.clone(),
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for (ri, rule) in r.spec.rules.iter().enumerate() {
            let attached = route_policy(policies, &ns, &name, rule, &gateway_policies);
            if let Some(Policy::Broken { policy }) = &attached {
                item.invalid = Some(format!(
                    "{policy} is invalid; the route is not served until it is fixed"
                ));
                break;
            }
            let filters = match filters(&rule.filters) {
                Ok(f) => f,
                Err(why) => {
                    item.invalid = Some(format!("rule {ri}: {why}"));
                    break;
                }
            };
            let (endpoints, weights, upstream_tls) =
                backends(ctx, &ns, rule, &via, &mut item.resolved);
            let timeouts = match rule.timeouts.as_ref().map(route_timeouts) {
                None => config::Timeouts::default(),
                Some(Ok(t)) => t,
                Some(Err(why)) => {
                    item.invalid = Some(format!("rule {ri}: timeouts: {why}"));
                    break;
                }
            };
            let default_match = [Default::default()];
            let matches = if rule.matches.is_empty() {
                &default_match[..]
            } else {
                &rule.matches[..]
            };
            for (mi, m) in matches.iter().enumerate() {
                let (path_match, path) = match m.path.as_ref() {
                    None => (config::PathMatch::Prefix, "/".to_owned()),
                    Some(p) => {
                        let value = p.value.clone().unwrap_or_else(|| "/".to_owned());
                        let kind = match p.type_.as_deref().unwrap_or("PathPrefix") {
                            "PathPrefix" => config::PathMatch::Prefix,
                            "Exact" => config::PathMatch::Exact,
                            other => {
                                item.invalid = Some(format!(
                                    "rule {ri}: path match type {other:?} is not supported"
                                ));
                                break;
                            }
                        };
                        if !value.starts_with('/') {
                            item.invalid =
                                Some(format!("rule {ri}: path {value:?} must start with /"));
                            break;
                        }
                        (kind, value)
                    }
                };
                let conditions = match conditions(m) {
                    Ok(c) => c,
                    Err(why) => {
                        item.invalid = Some(format!("rule {ri}: {why}"));
                        break;
                    }
                };
                let (id, oauth2, allow_encoded_slashes) = match &attached {
                    Some(Policy::Protect {
                        id,
                        oauth2,
                        allow_encoded_slashes,
                    }) => (id.clone(), Some((**oauth2).clone()), *allow_encoded_slashes),
                    _ => (format!("httproute/{ns}/{name}/{ri}/{mi}"), None, false),
                };
                let rewrite_host = filters.rewrite.as_ref().and_then(|r| r.hostname.clone());
                item.candidates.push(config::Route {
                    id,
                    hosts: hosts.clone(),
                    paths: vec![path],
                    strip_path: false,
                    // Gateway API forwards the client's Host unless a filter rewrites it.
                    preserve_host: rewrite_host.is_none(),
                    upstream: config::Upstream {
                        endpoints: endpoints.clone(),
                        weights: weights.clone(),
                        tls: upstream_tls.clone(),
                        ..Default::default()
                    },
                    timeouts,
                    oauth2,
                    path_match,
                    conditions,
                    filters: filters.clone(),
                    auth_only: false,
                    allow_encoded_slashes,
                });
            }
            if item.invalid.is_some() {
                break;
            }
        }
        if item.invalid.is_some() {
            item.candidates.clear();
        }
        items.push(item);
    }
    HttpRoutes { items }
}

impl<'a> HttpRoutes<'a> {
    pub fn claim(&self, claims: &mut Claims) {
        for item in &self.items {
            for c in &item.candidates {
                claims.claim(&item.owner, claims::keys(c));
            }
        }
    }

    /// Drop what an older object owns; statuses; attached-route counts per listener.
    pub fn finish(
        mut self,
        ctx: &Context<'_>,
        claims: &Claims,
    ) -> (Vec<config::Route>, Vec<ObjectStatus>, Attached) {
        let mut routes = Vec::new();
        let mut statuses = Vec::new();
        let mut attached: Attached = HashMap::new();
        for item in &mut self.items {
            let candidates = std::mem::take(&mut item.candidates);
            for c in candidates {
                match claims.taken_by(&item.owner, &claims::keys(&c)) {
                    Some(older) => item.conflicts.push(format!(
                        "{} {:?}: the older {older} serves it",
                        c.hosts.join(","),
                        c.paths
                    )),
                    None => routes.push(c),
                }
            }
            for l in &item.listeners {
                *attached.entry(l.clone()).or_default() += 1;
            }
            statuses.push(status(ctx, item));
        }
        (routes, statuses, attached)
    }
}

fn status(ctx: &Context<'_>, item: &Item<'_>) -> ObjectStatus {
    let r = item.route;
    let object = object_ref(Kind::HttpRoute, &r.metadata);
    let gen = r.metadata.generation;
    let mut v = Verdict::default();
    let mut parents = Vec::new();
    for p in &item.parents {
        let (ok, why, msg) = match (&p.accepted, &item.invalid) {
            (Err((why, msg)), _) => (false, *why, msg.clone()),
            (Ok(()), Some(msg)) => (false, gw::UNSUPPORTED_VALUE, msg.clone()),
            (Ok(()), None) => (true, gw::ACCEPTED, "Route accepted".to_owned()),
        };
        if !ok {
            v.reject(reason::ROUTE_NOT_ACCEPTED, msg.clone());
        }
        let mut conditions = vec![gateway_condition(gw::ACCEPTED, ok, why, msg, gen, ctx)];
        let (rok, rwhy, rmsg) = match &item.resolved {
            Ok(()) => (true, gw::RESOLVED_REFS, "References resolved".to_owned()),
            Err((why, msg)) => (false, *why, msg.clone()),
        };
        if !rok {
            let summary = if rwhy == reason::BACKEND_TLS_INVALID {
                reason::BACKEND_TLS_INVALID
            } else {
                reason::BACKEND_NOT_FOUND
            };
            v.reject(summary, rmsg.clone());
        }
        conditions.push(gateway_condition(
            gw::RESOLVED_REFS,
            rok,
            rwhy,
            rmsg,
            gen,
            ctx,
        ));
        if !item.conflicts.is_empty() {
            let msg = format!(
                "matches served by an older object: {}",
                item.conflicts.join("; ")
            );
            v.reject(reason::ROUTE_CONFLICT, msg.clone());
            conditions.push(gateway_condition(
                CONFLICTED,
                true,
                reason::ROUTE_CONFLICT,
                msg,
                gen,
                ctx,
            ));
        }
        let previous = r.status.as_ref().and_then(|s| {
            s.parents
                .iter()
                .find(|x| x.parent_ref == p.parent_ref && x.controller_name == CONTROLLER_NAME)
        });
        parents.push(RouteParentStatus {
            parent_ref: p.parent_ref.clone(),
            controller_name: CONTROLLER_NAME.to_owned(),
            conditions: carried(conditions, previous.map(|x| x.conditions.as_slice())),
        });
    }
    // `parents` is an atomic list written whole: keep the entries other
    // implementations wrote for their own Gateways (a route may attach to several
    // controllers' Gateways), after ours and within the API's cap of 32.
    let room = MAX_PARENTS.saturating_sub(parents.len());
    parents.extend(
        r.status
            .iter()
            .flat_map(|s| &s.parents)
            .filter(|x| x.controller_name != CONTROLLER_NAME)
            .take(room)
            .cloned(),
    );
    ObjectStatus {
        status: Status::HttpRoute(HttpRouteStatus { parents }, summary(ctx, &object, &v)),
        object,
    }
}

/// Gateway API caps `status.parents` at 32 entries.
const MAX_PARENTS: usize = 32;

/// Implementation-specific condition: some matches lost to an older object.
pub const CONFLICTED: &str = "gatehouse.dev/Conflicted";

/// Route policy (rule section, then whole route) beats a Gateway policy (listener
/// section, then whole Gateway).
fn route_policy(
    policies: &Policies,
    ns: &str,
    name: &str,
    rule: &HttpRouteRule,
    listeners: &[(String, String, String)],
) -> Option<Policy> {
    if let Some(p) = rule
        .name
        .as_deref()
        .and_then(|s| policies.get("HTTPRoute", ns, name, Some(s)))
        .or_else(|| policies.get("HTTPRoute", ns, name, None))
    {
        return Some(p.clone());
    }
    listeners.iter().find_map(|(gns, g, l)| {
        policies
            .get("Gateway", gns, g, Some(l))
            .or_else(|| policies.get("Gateway", gns, g, None))
            .cloned()
    })
}

/// Route hostnames ∩ listener hostname: `None` = any host, `Some(empty)` = no overlap
/// is reported by returning `None` from the outer option.
fn intersect(route: &[String], listener: Option<&str>) -> Option<Option<Vec<String>>> {
    let route: Vec<String> = route.iter().map(|h| h.to_ascii_lowercase()).collect();
    match listener {
        None if route.is_empty() => Some(None),
        None => Some(Some(route)),
        Some(l) if route.is_empty() => Some(Some(vec![l.to_owned()])),
        Some(l) => {
            let out: Vec<String> = route
                .iter()
                .filter_map(|h| {
                    if h == l || covers(l, h) {
                        Some(h.clone())
                    } else if covers(h, l) {
                        Some(l.to_owned())
                    } else {
                        None
                    }
                })
                .collect();
            (!out.is_empty()).then_some(Some(out))
        }
    }
}

/// Whether wildcard `pattern` (`*.example.com`) covers `name` (Gateway API: one or
/// more labels in place of `*`).
fn covers(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            name.len() > suffix.len() && name.ends_with(suffix) && !name.starts_with('*')
        }
        None => false,
    }
}

fn conditions(
    m: &gatehouse_crds::gateway_api::HttpRouteMatch,
) -> Result<config::Conditions, String> {
    let mut c = config::Conditions::default();
    if let Some(method) = &m.method {
        if !matches!(
            method.as_str(),
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE" | "PATCH"
        ) {
            return Err(format!("method {method:?} is not supported"));
        }
        c.method = Some(method.clone());
    }
    for h in &m.headers {
        if h.type_.as_deref().unwrap_or("Exact") != "Exact" {
            return Err(format!("header match type {:?} is not supported", h.type_));
        }
        if http::HeaderName::from_bytes(h.name.as_bytes()).is_err() {
            return Err(format!("{:?} is not a header name", h.name));
        }
        c.headers.push(NameValue {
            name: h.name.to_ascii_lowercase(),
            value: h.value.clone(),
        });
    }
    for q in &m.query_params {
        if q.type_.as_deref().unwrap_or("Exact") != "Exact" {
            return Err(format!("query match type {:?} is not supported", q.type_));
        }
        c.query.push(NameValue {
            name: q.name.clone(),
            value: q.value.clone(),
        });
    }
    Ok(c)
}

fn filters(list: &[HttpRouteFilter]) -> Result<config::Filters, String> {
    let mut out = config::Filters::default();
    for f in list {
        match f.type_.as_str() {
            "RequestHeaderModifier" => {
                out.request_headers = edits(f.request_header_modifier.as_ref())?
            }
            "ResponseHeaderModifier" => {
                out.response_headers = edits(f.response_header_modifier.as_ref())?
            }
            "RequestRedirect" => {
                let r = f
                    .request_redirect
                    .as_ref()
                    .ok_or("RequestRedirect filter without requestRedirect")?;
                let status = r.status_code.unwrap_or(302);
                if status != 301 && status != 302 {
                    return Err(format!(
                        "redirect statusCode {status} is not supported (301, 302)"
                    ));
                }
                if let Some(s) = &r.scheme {
                    if s != "http" && s != "https" {
                        return Err(format!("redirect scheme {s:?} is not supported"));
                    }
                }
                out.redirect = Some(config::Redirect {
                    scheme: r.scheme.clone(),
                    hostname: r.hostname.clone(),
                    port: r.port.and_then(|p| u16::try_from(p).ok()),
                    path: r.path.as_ref().map(path_rewrite).transpose()?,
                    status: status as u16,
                });
            }
            "URLRewrite" => {
                let r = f
                    .url_rewrite
                    .as_ref()
                    .ok_or("URLRewrite filter without urlRewrite")?;
                out.rewrite = Some(config::Rewrite {
                    hostname: r.hostname.clone(),
                    path: r.path.as_ref().map(path_rewrite).transpose()?,
                });
            }
            other => return Err(format!("filter {other:?} is not supported")),
        }
    }
    Ok(out)
}

fn path_rewrite(p: &PathModifier) -> Result<config::PathRewrite, String> {
    match (
        p.type_.as_str(),
        &p.replace_full_path,
        &p.replace_prefix_match,
    ) {
        ("ReplaceFullPath", Some(v), _) if v.starts_with('/') => {
            Ok(config::PathRewrite::Full(v.clone()))
        }
        ("ReplacePrefixMatch", _, Some(v)) if v.starts_with('/') => {
            Ok(config::PathRewrite::Prefix(v.clone()))
        }
        _ => Err(format!(
            "path modifier {:?} is incomplete or not absolute",
            p.type_
        )),
    }
}

fn edits(m: Option<&HeaderModifier>) -> Result<config::HeaderEdits, String> {
    let Some(m) = m else {
        return Err("header modifier filter without its settings".to_owned());
    };
    let check = |name: &str| -> Result<String, String> {
        let lower = name.to_ascii_lowercase();
        let parsed = http::HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        if IDENTITY_HEADERS.contains(&parsed) || parsed == http::header::HOST {
            return Err(format!(
                "header {name:?} is set by Gatehouse and cannot be modified"
            ));
        }
        Ok(lower)
    };
    let pairs =
        |list: &[gatehouse_crds::gateway_api::HttpHeader]| -> Result<Vec<NameValue>, String> {
            list.iter()
                .map(|h| {
                    if h.value.chars().any(|c| c.is_control()) {
                        return Err(format!("header {:?} value has control characters", h.name));
                    }
                    Ok(NameValue {
                        name: check(&h.name)?,
                        value: h.value.clone(),
                    })
                })
                .collect()
        };
    Ok(config::HeaderEdits {
        set: pairs(&m.set)?,
        add: pairs(&m.add)?,
        remove: m
            .remove
            .iter()
            .map(|n| check(n))
            .collect::<Result<_, _>>()?,
    })
}

/// Endpoints of every backendRef with per-endpoint weights that give each backend its
/// share whatever its number of endpoints, and the TLS settings of those reached over
/// TLS (one set per rule: the snapshot's upstream has one).
fn backends(
    ctx: &Context<'_>,
    ns: &str,
    rule: &HttpRouteRule,
    via: &[AncestorKey],
    resolved: &mut Result<(), (&'static str, String)>,
) -> (Vec<String>, Vec<u32>, Option<config::UpstreamTls>) {
    let mut groups: Vec<(Vec<String>, u32)> = Vec::new();
    let mut upstream_tls: Option<config::UpstreamTls> = None;
    for b in &rule.backend_refs {
        let fail = |resolved: &mut Result<(), (&'static str, String)>, why, msg: String| {
            if resolved.is_ok() {
                *resolved = Err((why, msg));
            }
        };
        if !b.group.as_deref().unwrap_or("").is_empty()
            || b.kind.as_deref().unwrap_or("Service") != "Service"
        {
            fail(
                resolved,
                gw::INVALID_KIND,
                format!("backendRef {} is not a core Service", b.name),
            );
            continue;
        }
        let to_ns = b.namespace.clone().unwrap_or_else(|| ns.to_owned());
        if to_ns != ns
            && !grants::permits(
                ctx,
                gateway_api::GROUP,
                "HTTPRoute",
                ns,
                "",
                "Service",
                &to_ns,
                &b.name,
            )
        {
            fail(
                resolved,
                gw::REF_NOT_PERMITTED,
                format!(
                    "no ReferenceGrant in {to_ns:?} lets this route use Service {}",
                    b.name
                ),
            );
            continue;
        }
        let Some(port) = b.port else {
            fail(
                resolved,
                gw::UNSUPPORTED_VALUE,
                format!("backendRef {} has no port", b.name),
            );
            continue;
        };
        let weight = b.weight.unwrap_or(1).max(0) as u32;
        let mut v = Verdict::default();
        let backend::Resolved {
            endpoints: eps,
            tls,
        } = backend::service_endpoints(
            ctx,
            &to_ns,
            &ServiceBackend {
                name: b.name.clone(),
                port,
            },
            None,
            via,
            &mut v,
        );
        if let Some((why, msg)) = v.problems().next() {
            let why = if why == reason::BACKEND_TLS_INVALID {
                // No standard reason: the API says only that the backendRef is invalid
                // when a BackendTLSPolicy's requirement cannot be met.
                reason::BACKEND_TLS_INVALID
            } else {
                gw::BACKEND_NOT_FOUND
            };
            fail(resolved, why, msg.clone());
        }
        if let Some(tls) = tls {
            match &upstream_tls {
                Some(first) if *first != tls => {
                    // One TLS configuration per upstream: never verify one backend
                    // with another's CA or name. Leave this one out.
                    fail(
                        resolved,
                        gw::UNSUPPORTED_VALUE,
                        format!(
                            "backendRef {} needs other TLS settings than an earlier backendRef of the same rule; Gatehouse supports one per rule, so it gets no traffic",
                            b.name
                        ),
                    );
                    continue;
                }
                Some(_) => {}
                None => upstream_tls = Some(tls),
            }
        }
        if weight > 0 && !eps.is_empty() {
            groups.push((eps, weight));
        }
    }
    // Each endpoint gets weight × L / n, with L the lcm of the endpoint counts.
    let lcm = groups
        .iter()
        .fold(1u64, |acc, (eps, _)| lcm(acc, eps.len() as u64))
        .min(1 << 16);
    let mut endpoints = Vec::new();
    let mut weights = Vec::new();
    for (eps, weight) in &groups {
        let each =
            (u64::from(*weight) * lcm / eps.len() as u64).clamp(1, u64::from(u32::MAX)) as u32;
        for e in eps {
            endpoints.push(e.clone());
            weights.push(each);
        }
    }
    if groups.len() <= 1 {
        weights.clear(); // one backend: plain round robin
    }
    (endpoints, weights, upstream_tls)
}

fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    a / gcd(a, b) * b
}

/// Gateway API `timeouts`: `request` bounds the whole exchange, `backendRequest` one
/// attempt; `0s` means no timeout (GEP-1742).
fn route_timeouts(t: &HttpRouteTimeouts) -> Result<config::Timeouts, String> {
    let ms = |v: &Option<String>| -> Result<Option<u64>, String> {
        match v.as_deref() {
            None => Ok(None),
            Some(s) => super::duration::parse_ms(s).map(|ms| Some(ms).filter(|&ms| ms > 0)),
        }
    };
    Ok(config::Timeouts {
        request_ms: ms(&t.request)?,
        backend_request_ms: ms(&t.backend_request)?,
        idle_ms: None,
    })
}
