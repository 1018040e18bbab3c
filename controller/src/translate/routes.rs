//! ProtectedRoutes: spec checks, host+path conflicts (the older route wins), backend
//! endpoints, provision key digest and anonymous consumer.
//!
//! What happens to a route with a problem depends on the problem: an invalid spec or a
//! conflict keeps it out of the snapshot (the path is served by whatever else matches,
//! or 404); a missing backend keeps it in with no endpoints (503); a missing provision
//! key or anonymous consumer keeps it in with that feature off (fail closed).

use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::{
    BackendProtocol, OAuth2Spec, Pkce, ProtectedRoute, ProtectedRouteStatus, RouteTimeouts,
};
use sha2::{Digest as _, Sha256};

use super::backend_tls::AncestorKey;
use super::claims::{self, Claims, MatchKey, Owner};
use super::consumers::{Consumers, Lookup};
use super::object::{is_scope_token, object_ref, Context, Verdict};
use super::tls::Certificates;
use super::{backend, secrets, Kind, ObjectStatus, Status};

/// Result of translating routes.
pub struct Routes {
    pub routes: Vec<config::Route>,
    pub statuses: Vec<ObjectStatus>,
}

/// Claim the host+path pairs of every valid ProtectedRoute.
pub fn claim(ctx: &Context<'_>, claims: &mut Claims) {
    for r in ctx.oldest_first(&ctx.input.routes) {
        let mut v = Verdict::default();
        check_spec(r, &mut v);
        if v.is_ok() {
            claims.claim(
                &Owner::new(Kind::ProtectedRoute, &r.metadata),
                match_keys(r),
            );
        }
    }
}

pub fn translate(
    ctx: &Context<'_>,
    consumers: &Consumers,
    trusted: &[String],
    claims: &Claims,
    certs: &mut Certificates,
) -> Routes {
    let mut out = Routes {
        routes: Vec::new(),
        statuses: Vec::new(),
    };

    for r in ctx.oldest_first(&ctx.input.routes) {
        let object = object_ref(Kind::ProtectedRoute, &r.metadata);
        let id = format!("{}/{}", object.namespace, object.name);
        let mut v = Verdict::default();
        check_spec(r, &mut v);

        if v.is_ok() {
            let me = Owner::new(Kind::ProtectedRoute, &r.metadata);
            if let Some(owner) = claims.taken_by(&me, &match_keys(r)) {
                v.reject(
                    reason::ROUTE_CONFLICT,
                    format!("an older {owner} already serves one of these host and path pairs"),
                );
            }
        }

        // Invalid and conflicting routes stay out; everything below keeps the route
        // in the snapshot with the failing part switched off.
        let admitted = v.is_ok();
        let mut ok_message = "Route is in effect".to_owned();
        if admitted {
            let via = [AncestorKey {
                group: gatehouse_crds::GROUP.to_owned(),
                kind: Kind::ProtectedRoute.as_str().to_owned(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
            }];
            let resolved = match &r.spec.backend {
                Some(b) => backend::resolve(ctx, &object.namespace, b, &via, &mut v),
                None => Default::default(),
            };
            if r.spec.backend.is_none() {
                ok_message = "Auth-only route is in effect (external authorization and /oauth2/* endpoints; direct requests get 404)".to_owned();
            } else if v.is_ok() && resolved.endpoints.is_empty() {
                ok_message =
                    "Route is in effect; the backend has no ready endpoints yet (requests get 503)"
                        .to_owned();
            }
            let o = &r.spec.oauth2;
            let provision_key_sha256 = provision_key(ctx, &object.namespace, o, &mut v);
            let anonymous_consumer = anonymous(consumers, &object.namespace, o, &mut v);
            let login = o.login.as_ref().and_then(|l| {
                super::login::translate(ctx, &object.namespace, &id, l, trusted, &mut v)
            });
            if let Some(tls) = &r.spec.tls {
                certs.add(
                    ctx,
                    &object.namespace,
                    &tls.secret_name,
                    &r.spec.hosts,
                    &mut v,
                );
            }
            let mut oauth2 = oauth2_config(o, provision_key_sha256, anonymous_consumer);
            oauth2.login = login;
            out.routes.push(route(r, id, resolved, oauth2));
        }

        let previous = r.status.as_ref().map(|s| s.conditions.as_slice());
        out.statuses.push(v.into_status(
            &ok_message,
            object,
            previous,
            &ctx.options.now,
            |conditions, observed_generation| {
                Status::ProtectedRoute(ProtectedRouteStatus {
                    conditions,
                    observed_generation,
                })
            },
        ));
    }
    out.routes.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Everything the schema (or CEL) checks in a cluster, checked again because
/// standalone manifests never pass through an API server.
fn check_spec(r: &ProtectedRoute, v: &mut Verdict) {
    let s = &r.spec;
    if let Some(t) = &s.timeouts {
        for (field, value) in [
            ("request", &t.request),
            ("backendRequest", &t.backend_request),
            ("idle", &t.idle),
        ] {
            if let Some(Err(problem)) = value.as_deref().map(super::duration::parse_ms) {
                v.reject(reason::INVALID_SPEC, format!("timeouts.{field}: {problem}"));
            }
        }
    }
    for p in &s.paths {
        if !p.starts_with('/') {
            v.reject(
                reason::INVALID_SPEC,
                format!("path {p:?} must start with /"),
            );
        }
    }
    for h in &s.hosts {
        if !is_host_pattern(h) {
            v.reject(
                reason::INVALID_SPEC,
                format!("host {h:?} is not a host name or *.wildcard"),
            );
        }
    }
    if let Some(tls) = s.backend.as_ref().and_then(|b| b.tls.as_ref()) {
        // The CRD's CEL rule and pattern, for standalone manifests.
        if tls.ca_certificate_ref.is_none() && tls.hostname.is_none() {
            v.reject(
                reason::INVALID_SPEC,
                "backend.tls: set caCertificateRef, hostname or both",
            );
        }
        if let Some(h) = &tls.hostname {
            if h.starts_with('*') || !is_host_pattern(h) {
                v.reject(
                    reason::INVALID_SPEC,
                    format!("backend.tls.hostname {h:?} is not a host name"),
                );
            }
        }
    }
    check_oauth2(&s.oauth2, v);
}

/// Checks of an `oauth2` block (ProtectedRoute or OAuth2Policy).
pub fn check_oauth2(o: &OAuth2Spec, v: &mut Verdict) {
    for scope in &o.scopes {
        if !is_scope_token(scope) {
            v.reject(
                reason::INVALID_SPEC,
                format!("scope {scope:?} is not a valid scope token"),
            );
        }
    }
    if o.mandatory_scope && o.scopes.is_empty() {
        v.reject(
            reason::INVALID_SPEC,
            "mandatoryScope needs at least one scope in scopes",
        );
    }
    if o.token_expiration < 0 || o.refresh_token_ttl < 0 {
        v.reject(
            reason::INVALID_SPEC,
            "tokenExpiration and refreshTokenTtl must not be negative",
        );
    }
    if o.auth_header_name.is_empty()
        || !o
            .auth_header_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        v.reject(
            reason::INVALID_SPEC,
            format!(
                "authHeaderName {:?} is not a header name",
                o.auth_header_name
            ),
        );
    }
    for rule in &o.rules {
        if !rule.path.starts_with('/') {
            v.reject(
                reason::INVALID_SPEC,
                format!("rule path {:?} must start with /", rule.path),
            );
        }
        if rule.required_scopes.is_empty() {
            v.reject(
                reason::INVALID_SPEC,
                format!("rule {:?} names no requiredScopes", rule.path),
            );
        }
        for scope in &rule.required_scopes {
            if !o.scopes.contains(scope) {
                v.reject(
                    reason::INVALID_SPEC,
                    format!(
                        "rule {:?} requires scope {scope:?}, which is not listed in scopes",
                        rule.path
                    ),
                );
            }
        }
    }
}

/// `example.com` or `*.example.com`: DNS labels of letters, digits and inner hyphens.
fn is_host_pattern(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The (host, path) pairs a route serves.
fn match_keys(r: &ProtectedRoute) -> Vec<MatchKey> {
    claims::keys_of(
        &r.spec.hosts,
        &r.spec.paths,
        config::PathMatch::Prefix,
        &config::Conditions::default(),
    )
}

pub fn provision_key(
    ctx: &Context<'_>,
    namespace: &str,
    o: &OAuth2Spec,
    v: &mut Verdict,
) -> Option<String> {
    let reference = o.provision_key_secret_ref.as_ref()?;
    let Some(secret) = ctx.secret(namespace, &reference.name) else {
        v.reject(
            reason::PROVISION_KEY_SECRET_NOT_FOUND,
            format!(
                "provision key Secret {:?} not found in namespace {namespace:?}; authorize and password grants are refused",
                reference.name
            ),
        );
        return None;
    };
    match secrets::value(secret, &reference.key) {
        Some(raw) if !raw.is_empty() => Some(hex::encode(Sha256::digest(raw))),
        _ => {
            v.reject(
                reason::PROVISION_KEY_SECRET_INVALID,
                format!(
                    "Secret {:?} has no non-empty {:?} key",
                    reference.name, reference.key
                ),
            );
            None
        }
    }
}

pub fn anonymous(
    consumers: &Consumers,
    namespace: &str,
    o: &OAuth2Spec,
    v: &mut Verdict,
) -> Option<String> {
    let name = o.anonymous_consumer.as_deref()?;
    match consumers.lookup(namespace, name) {
        Lookup::Ready(id) => Some(id.to_owned()),
        Lookup::NotReady | Lookup::NotFound => {
            v.reject(
                reason::ANONYMOUS_CONSUMER_NOT_FOUND,
                format!("anonymous Consumer {name:?} is not a Ready Consumer in namespace {namespace:?}; requests without a token get 401"),
            );
            None
        }
    }
}

/// Route timeouts for the snapshot (already validated by `check_spec`).
fn timeouts(t: Option<&RouteTimeouts>) -> config::Timeouts {
    let ms = |v: &Option<String>| v.as_deref().and_then(|s| super::duration::parse_ms(s).ok());
    match t {
        None => config::Timeouts::default(),
        Some(t) => config::Timeouts {
            request_ms: ms(&t.request),
            backend_request_ms: ms(&t.backend_request),
            idle_ms: ms(&t.idle),
        },
    }
}

fn route(
    r: &ProtectedRoute,
    id: String,
    resolved: backend::Resolved,
    oauth2: config::RouteOAuth2,
) -> config::Route {
    let s = &r.spec;
    config::Route {
        id,
        hosts: s.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        paths: s.paths.clone(),
        strip_path: s.strip_path,
        preserve_host: s.preserve_host,
        allow_encoded_slashes: s.oauth2.allow_encoded_slashes,
        upstream: config::Upstream {
            endpoints: resolved.endpoints,
            tls: resolved.tls,
            connect_timeout_ms: 5_000,
            response_timeout_ms: 60_000,
            protocol: match s.backend.as_ref().and_then(|b| b.protocol) {
                None | Some(BackendProtocol::Http1) => config::UpstreamProtocol::Http1,
                Some(BackendProtocol::H2c) => config::UpstreamProtocol::H2c,
                Some(BackendProtocol::H2) => config::UpstreamProtocol::H2,
            },
            ..Default::default()
        },
        timeouts: timeouts(s.timeouts.as_ref()),
        oauth2: Some(oauth2),
        auth_only: s.backend.is_none(),
        ..Default::default()
    }
}

/// The snapshot form of an `oauth2` block.
pub fn oauth2_config(
    o: &OAuth2Spec,
    provision_key_sha256: Option<String>,
    anonymous_consumer: Option<String>,
) -> config::RouteOAuth2 {
    let defaults = config::RouteOAuth2::default();
    config::RouteOAuth2 {
        scopes: o.scopes.clone(),
        mandatory_scope: o.mandatory_scope,
        // check_spec rejected negative values.
        token_expiration: o.token_expiration.max(0) as u64,
        refresh_token_ttl: o.refresh_token_ttl.max(0) as u64,
        code_ttl: defaults.code_ttl,
        reuse_refresh_token: o.reuse_refresh_token,
        enable_authorization_code: o.authorization_code,
        enable_client_credentials: o.client_credentials,
        enable_password_grant: o.password,
        enable_implicit_grant: o.implicit,
        pkce: match o.pkce {
            Pkce::None => config::PkceMode::None,
            Pkce::Lax => config::PkceMode::Lax,
            Pkce::Strict => config::PkceMode::Strict,
        },
        provision_key_sha256,
        hide_credentials: o.hide_credentials,
        accept_http_if_already_terminated: o.accept_http_if_already_terminated,
        anonymous_consumer,
        global_credentials: o.global_credentials,
        case_insensitive_rules: o.case_insensitive_rules,
        issuer: o.issuer.clone(),
        optional_token_redirect_uri: o.optional_token_redirect_uri,
        rate_limits: o
            .rate_limits
            .as_ref()
            .map(|r| config::RateLimits {
                per_address: r.per_address.clone(),
                per_client: r.per_client.clone(),
            })
            .unwrap_or_default(),
        refresh_token_grace_seconds: o.refresh_token_grace_seconds,
        auth_header_name: o.auth_header_name.to_ascii_lowercase(),
        realm: defaults.realm,
        rules: o
            .rules
            .iter()
            .map(|rule| config::ScopeRule {
                path: rule.path.clone(),
                methods: rule.methods.iter().map(|m| m.as_str().to_owned()).collect(),
                required_scopes: rule.required_scopes.clone(),
            })
            .collect(),
        login: None,
        oauth21: o.oauth21,
        client_registration: o
            .client_registration
            .as_ref()
            .map(|r| config::ClientRegistration {
                metadata_documents: r.metadata_documents,
                metadata_hosts: r
                    .allowed_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                dynamic: r.dynamic,
                // The schema bounds it to at least 60.
                registered_client_ttl: r
                    .client_lifetime_seconds
                    .map(|s| s.max(60) as u64)
                    .unwrap_or(defaults.client_registration.registered_client_ttl),
                registration_rate: r
                    .registration_rate
                    .clone()
                    .unwrap_or(defaults.client_registration.registration_rate.clone()),
            })
            .unwrap_or_default(),
    }
}
