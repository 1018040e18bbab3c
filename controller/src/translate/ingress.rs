//! Ingresses of our class (`ingressClassName`, or the legacy
//! `kubernetes.io/ingress.class` annotation): rules with hosts (`*.` wildcards),
//! `Prefix` / `Exact` / `ImplementationSpecific` (= prefix) paths, `defaultBackend`,
//! Service ports by number or name, `spec.tls` certificates, and the OAuth2Policy that
//! targets the Ingress.

use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::ServiceBackend;
use k8s_openapi::api::networking::v1::{
    Ingress, IngressBackend, IngressLoadBalancerStatus, IngressStatus,
};

use super::backend;
use super::backend_tls::AncestorKey;
use super::claims::{self, Claims, Owner};
use super::gateway::summary;
use super::object::{namespace, object_ref, Context, Verdict};
use super::policy::{Attached as Policy, Policies};
use super::tls::Certificates;
use super::{Kind, ObjectStatus, Status};

const CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

struct Item<'a> {
    ingress: &'a Ingress,
    owner: Owner,
    verdict: Verdict,
    candidates: Vec<config::Route>,
}

/// Ingresses between translation and the conflict check.
pub struct Ingresses<'a> {
    items: Vec<Item<'a>>,
}

pub fn translate<'a>(
    ctx: &Context<'a>,
    policies: &Policies,
    certs: &mut Certificates,
) -> Ingresses<'a> {
    let mut items = Vec::new();
    for ing in ctx.oldest_first(&ctx.input.ingresses) {
        if !is_ours(ctx, ing) {
            continue;
        }
        let ns = namespace(&ing.metadata).to_owned();
        let name = ing.metadata.name.clone().unwrap_or_default();
        let mut v = Verdict::default();
        let mut candidates = Vec::new();
        let spec = ing.spec.clone().unwrap_or_default();
        let attached = policies.get("Ingress", &ns, &name, None).cloned();
        if let Some(Policy::Broken { policy }) = &attached {
            v.reject(
                reason::ROUTE_NOT_ACCEPTED,
                format!("{policy} is invalid; the Ingress is not served until it is fixed"),
            );
        } else {
            let mut push = |hosts: Vec<String>,
                            path: String,
                            exact: bool,
                            b: &IngressBackend,
                            v: &mut Verdict,
                            n: usize| {
                let via = [AncestorKey {
                    group: "networking.k8s.io".to_owned(),
                    kind: "Ingress".to_owned(),
                    namespace: ns.clone(),
                    name: name.clone(),
                }];
                let Some(resolved) = resolve(ctx, &ns, b, &via, v) else {
                    return;
                };
                let (id, oauth2, allow_encoded_slashes) = match &attached {
                    Some(Policy::Protect {
                        id,
                        oauth2,
                        allow_encoded_slashes,
                    }) => (id.clone(), Some((**oauth2).clone()), *allow_encoded_slashes),
                    _ => (format!("ingress/{ns}/{name}/{n}"), None, false),
                };
                candidates.push(config::Route {
                    id,
                    hosts,
                    paths: vec![path],
                    strip_path: false,
                    preserve_host: true,
                    upstream: config::Upstream {
                        endpoints: resolved.endpoints,
                        tls: resolved.tls,
                        ..Default::default()
                    },
                    oauth2,
                    allow_encoded_slashes,
                    path_match: if exact {
                        config::PathMatch::Exact
                    } else {
                        config::PathMatch::Prefix
                    },
                    ..Default::default()
                });
            };
            let mut n = 0;
            for rule in spec.rules.iter().flatten() {
                let hosts: Vec<String> = rule.host.iter().map(|h| h.to_ascii_lowercase()).collect();
                for p in rule.http.iter().flat_map(|h| &h.paths) {
                    let path = p.path.clone().unwrap_or_else(|| "/".to_owned());
                    if !path.starts_with('/') {
                        v.reject(
                            reason::INVALID_SPEC,
                            format!("path {path:?} must start with /"),
                        );
                        continue;
                    }
                    let exact = match p.path_type.as_str() {
                        "Exact" => true,
                        "Prefix" | "ImplementationSpecific" | "" => false,
                        other => {
                            v.reject(
                                reason::INVALID_SPEC,
                                format!("pathType {other:?} is not supported"),
                            );
                            continue;
                        }
                    };
                    push(hosts.clone(), path, exact, &p.backend, &mut v, n);
                    n += 1;
                }
            }
            if let Some(b) = &spec.default_backend {
                push(Vec::new(), "/".to_owned(), false, b, &mut v, n);
            }
        }
        for t in spec.tls.iter().flatten() {
            if let Some(secret) = &t.secret_name {
                certs.add(
                    ctx,
                    &ns,
                    secret,
                    t.hosts.as_deref().unwrap_or_default(),
                    &mut v,
                );
            }
        }
        items.push(Item {
            ingress: ing,
            owner: Owner::new(Kind::Ingress, &ing.metadata),
            verdict: v,
            candidates,
        });
    }
    Ingresses { items }
}

fn is_ours(ctx: &Context<'_>, ing: &Ingress) -> bool {
    let class = ing
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.as_deref())
        .or_else(|| {
            ing.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CLASS_ANNOTATION))
                .map(String::as_str)
        });
    class == Some(ctx.options.ingress_class.as_str())
}

/// A backend's endpoints; `None` when it names no Service (a `resource` backend).
fn resolve(
    ctx: &Context<'_>,
    ns: &str,
    b: &IngressBackend,
    via: &[AncestorKey],
    v: &mut Verdict,
) -> Option<backend::Resolved> {
    let Some(svc) = &b.service else {
        v.reject(
            reason::INVALID_BACKEND,
            "resource backends are not supported; use service",
        );
        return None;
    };
    let port = svc.port.as_ref();
    let number = match (
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.as_deref()),
    ) {
        (Some(n), _) => Some(n),
        (None, Some(port_name)) => ctx
            .service(ns, &svc.name)
            .and_then(|s| s.spec.as_ref())
            .and_then(|s| s.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(port_name)))
            .map(|p| p.port),
        (None, None) => None,
    };
    let Some(port) = number else {
        v.reject(
            reason::BACKEND_NOT_FOUND,
            format!("Service {:?} has no such port; requests get 503", svc.name),
        );
        return Some(Default::default());
    };
    Some(backend::service_endpoints(
        ctx,
        ns,
        &ServiceBackend {
            name: svc.name.clone(),
            port,
        },
        None,
        via,
        v,
    ))
}

impl<'a> Ingresses<'a> {
    pub fn claim(&self, claims: &mut Claims) {
        for item in &self.items {
            for c in &item.candidates {
                claims.claim(&item.owner, claims::keys(c));
            }
        }
    }

    pub fn finish(
        mut self,
        ctx: &Context<'_>,
        claims: &Claims,
    ) -> (Vec<config::Route>, Vec<ObjectStatus>) {
        let mut routes = Vec::new();
        let mut statuses = Vec::new();
        for item in &mut self.items {
            for c in std::mem::take(&mut item.candidates) {
                match claims.taken_by(&item.owner, &claims::keys(&c)) {
                    Some(older) => item.verdict.reject(
                        reason::ROUTE_CONFLICT,
                        format!(
                            "{} {:?}: the older {older} serves it",
                            c.hosts.join(","),
                            c.paths
                        ),
                    ),
                    None => routes.push(c),
                }
            }
            let object = object_ref(Kind::Ingress, &item.ingress.metadata);
            let status = IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(ctx.options.load_balancer.clone()).filter(|l| !l.is_empty()),
                }),
            };
            statuses.push(ObjectStatus {
                status: Status::Ingress(status, summary(ctx, &object, &item.verdict)),
                object,
            });
        }
        (routes, statuses)
    }
}
