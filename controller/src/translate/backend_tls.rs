//! TLS towards backends: Gateway API `BackendTLSPolicy` attached to Services (or one
//! named Service port), a ProtectedRoute's own `backend.tls`, and the CA bundles both
//! read from ConfigMaps (key `ca.crt`) or Secrets.
//!
//! Fail closed: a Service port that a policy targets is only ever reached over TLS
//! verified the way the policy says. When the policy cannot be honoured (its CA
//! reference is missing or not PEM, it asks for something the proxy cannot verify),
//! the backend gets no endpoints (503) and the policy and routes say why; it is never
//! reached without verification.
//!
//! Status (GEP-713 `ancestors`): one entry per Gateway whose HTTPRoutes send traffic to
//! a targeted Service — or the Ingress / ProtectedRoute that does — recorded while the
//! route sources resolve their backends ([`Context::used_by`]); a target nothing routes
//! to is reported with the Service itself as ancestor, so problems stay visible.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use gatehouse_config::snapshot::UpstreamTls;
use gatehouse_crds::conditions::{self, reason};
use gatehouse_crds::gateway_api::{
    reason as gw, BackendTlsPolicy, BackendTlsPolicyStatus, LocalObjectReference, CONTROLLER_NAME,
};
use gatehouse_crds::{AncestorRef, CaCertificateRef, CaSourceKind, PolicyAncestorStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::object::{namespace, object_ref, Context, Verdict};
use super::policy::gateway_condition;
use super::{Kind, ObjectStatus, Status};

/// The key BackendTLSPolicy CA references are read from.
pub const CA_KEY: &str = "ca.crt";

/// GEP-713 caps `status.ancestors` at 16 entries.
const MAX_ANCESTORS: usize = 16;

/// (namespace, Service, port name or `None` for every port).
type TargetKey = (String, String, Option<String>);

/// What a policy in force makes of a backend: settings, or why it must not be used.
pub type Settings = Result<UpstreamTls, String>;

/// One policy and what was decided about it.
struct Entry<'a> {
    policy: &'a BackendTlsPolicy,
    settings: Settings,
    /// `ResolvedRefs`: (ok, reason, message).
    resolved: (bool, &'static str, String),
    /// `Accepted` before conflicts: (ok, reason, message).
    accepted: (bool, &'static str, String),
    /// Per targetRef: `None` in force, or (reason, message) why not.
    targets: Vec<(TargetKey, Option<(&'static str, String)>)>,
}

/// Every BackendTLSPolicy, resolved; which one is in force for each target.
#[derive(Default)]
pub struct TlsPolicies<'a> {
    entries: Vec<Entry<'a>>,
    in_force: HashMap<TargetKey, usize>,
}

impl<'a> TlsPolicies<'a> {
    /// Resolve every policy, oldest first: the older of two policies on the same
    /// Service (and port) wins, the newer is `Conflicted` there (GEP-713).
    pub fn new(ctx: &Context<'a>) -> Self {
        let mut out = TlsPolicies::default();
        for p in ctx.oldest_first(&ctx.input.backend_tls_policies) {
            let ns = namespace(&p.metadata).to_owned();
            let (settings, resolved, accepted) = settings(ctx, &ns, p);
            let index = out.entries.len();
            let mut targets = Vec::new();
            for t in &p.spec.target_refs {
                let key = (ns.clone(), t.name.clone(), t.section_name.clone());
                let problem = if !t.group.is_empty() || t.kind != "Service" {
                    Some((
                        gw::INVALID,
                        format!(
                            "targetRef {} {}: only core Services are supported",
                            t.kind, t.name
                        ),
                    ))
                } else if ctx.service(&ns, &t.name).is_none() {
                    Some((
                        gw::TARGET_NOT_FOUND,
                        format!("Service {ns}/{} not found", t.name),
                    ))
                } else if let Some(older) = out.in_force.get(&key) {
                    let older = &out.entries[*older].policy.metadata;
                    Some((
                        gw::CONFLICTED,
                        format!(
                            "the older BackendTLSPolicy {}/{} already targets Service {}{}",
                            namespace(older),
                            older.name.as_deref().unwrap_or_default(),
                            t.name,
                            t.section_name
                                .as_deref()
                                .map(|s| format!(" port {s}"))
                                .unwrap_or_default()
                        ),
                    ))
                } else {
                    out.in_force.insert(key.clone(), index);
                    None
                };
                targets.push((key, problem));
            }
            out.entries.push(Entry {
                policy: p,
                settings,
                resolved,
                accepted,
                targets,
            });
        }
        out
    }

    /// The settings for a Service port (a policy on the port beats one on the
    /// whole Service), or `None` when no policy targets it.
    pub fn get(&self, ns: &str, service: &str, port_name: Option<&str>) -> Option<&Settings> {
        let port = port_name.filter(|n| !n.is_empty()).and_then(|n| {
            self.in_force
                .get(&(ns.to_owned(), service.to_owned(), Some(n.to_owned())))
        });
        let index = port.or_else(|| {
            self.in_force
                .get(&(ns.to_owned(), service.to_owned(), None))
        })?;
        Some(&self.entries[*index].settings)
    }

    /// Statuses of every policy. `uses` maps (namespace, Service) to the port names
    /// routed to and the ancestors whose routes do it.
    pub fn statuses(&self, ctx: &Context<'_>, uses: &Uses) -> Vec<ObjectStatus> {
        let mut out = Vec::new();
        for e in &self.entries {
            let p = e.policy;
            let object = object_ref(Kind::BackendTlsPolicy, &p.metadata);
            let gen = p.metadata.generation;
            let mut v = Verdict::default();
            if !e.accepted.0 || !e.resolved.0 {
                let msg = if e.accepted.0 {
                    &e.resolved.2
                } else {
                    &e.accepted.2
                };
                v.reject(reason::BACKEND_TLS_INVALID, msg.clone());
            }
            let mut ancestors: BTreeMap<AncestorKey, Vec<Condition>> = BTreeMap::new();
            for ((ns, svc, section), problem) in &e.targets {
                let (ok, why, msg) = match problem {
                    Some((why, msg)) => {
                        v.reject(reason::POLICY_NOT_ACCEPTED, msg.clone());
                        (false, *why, msg.clone())
                    }
                    None => e.accepted.clone(),
                };
                let accepted = gateway_condition(gw::ACCEPTED, ok, why, msg, gen, ctx);
                let resolved = gateway_condition(
                    gw::RESOLVED_REFS,
                    e.resolved.0,
                    e.resolved.1,
                    e.resolved.2.clone(),
                    gen,
                    ctx,
                );
                let mut via: BTreeSet<AncestorKey> = uses
                    .get(&(ns.clone(), svc.clone()))
                    .into_iter()
                    .flatten()
                    .filter(|(port, _)| section.is_none() || section.as_deref() == port.as_deref())
                    .map(|(_, a)| a.clone())
                    .collect();
                if via.is_empty() {
                    via.insert(AncestorKey {
                        group: String::new(),
                        kind: "Service".to_owned(),
                        namespace: ns.clone(),
                        name: svc.clone(),
                    });
                }
                for a in via {
                    ancestors
                        .entry(a)
                        .or_insert_with(|| vec![accepted.clone(), resolved.clone()]);
                }
            }
            let previous = p.status.as_ref();
            // `ancestors` is an atomic list written whole: keep other implementations'
            // entries (a Service can be reached through several controllers'
            // Gateways), ours first within the cap of 16.
            let others: Vec<PolicyAncestorStatus> = previous
                .map(|s| {
                    s.ancestors
                        .iter()
                        .filter(|a| a.controller_name != CONTROLLER_NAME)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let mut ancestors: Vec<PolicyAncestorStatus> = ancestors
                .into_iter()
                .take(MAX_ANCESTORS)
                .map(|(a, conditions)| {
                    let ancestor_ref = a.to_ref();
                    let before = previous.and_then(|s| {
                        s.ancestors.iter().find(|x| {
                            x.ancestor_ref == ancestor_ref && x.controller_name == CONTROLLER_NAME
                        })
                    });
                    let mut conditions = conditions;
                    conditions::carry_transition_times(
                        before.map(|b| b.conditions.as_slice()).unwrap_or_default(),
                        &mut conditions,
                    );
                    PolicyAncestorStatus {
                        ancestor_ref,
                        controller_name: CONTROLLER_NAME.to_owned(),
                        conditions,
                    }
                })
                .collect();
            let room = MAX_ANCESTORS.saturating_sub(ancestors.len());
            ancestors.extend(others.into_iter().take(room));
            let summary = v.into_conditions("Policy is in effect", &object, &[], &ctx.options.now);
            out.push(ObjectStatus {
                status: Status::BackendTlsPolicy(BackendTlsPolicyStatus { ancestors }, summary),
                object,
            });
        }
        out
    }
}

/// An ancestor as recorded by the route sources (sorted for deterministic status).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AncestorKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl AncestorKey {
    fn to_ref(&self) -> AncestorRef {
        AncestorRef {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: Some(self.namespace.clone()),
            section_name: None,
        }
    }
}

/// (namespace, Service) → (port name, ancestor) pairs that route to it.
pub type Uses = HashMap<(String, String), BTreeSet<(Option<String>, AncestorKey)>>;

/// A policy's settings, `ResolvedRefs` and `Accepted` (before conflicts).
#[allow(clippy::type_complexity)]
fn settings(
    ctx: &Context<'_>,
    ns: &str,
    p: &BackendTlsPolicy,
) -> (
    Settings,
    (bool, &'static str, String),
    (bool, &'static str, String),
) {
    let val = &p.spec.validation;
    let accepted_ok = (true, gw::ACCEPTED, "Policy accepted".to_owned());
    let resolved_ok = (true, gw::RESOLVED_REFS, "References resolved".to_owned());
    let invalid = |msg: String| {
        (
            Err(msg.clone()),
            resolved_ok.clone(),
            (false, gw::INVALID, msg),
        )
    };
    if !val.subject_alt_names.is_empty() {
        // The proxy verifies the name it sends as SNI; it cannot verify other names
        // instead, so honouring the policy is impossible: refuse it, fail closed.
        return invalid(
            "validation.subjectAltNames is not supported; backends of this policy get 503"
                .to_owned(),
        );
    }
    if val.hostname.is_empty() {
        return invalid("validation.hostname is required".to_owned());
    }
    match val
        .well_known_ca_certificates
        .as_deref()
        .filter(|w| !w.is_empty())
    {
        Some("System") if val.ca_certificate_refs.is_empty() => {
            return (
                Ok(UpstreamTls {
                    server_name: Some(val.hostname.clone()),
                    ..Default::default()
                }),
                resolved_ok,
                accepted_ok,
            );
        }
        Some("System") => {
            return invalid(
                "validation may not set both caCertificateRefs and wellKnownCACertificates"
                    .to_owned(),
            )
        }
        Some(other) => {
            return invalid(format!(
                "wellKnownCACertificates {other:?} is not supported (System is)"
            ))
        }
        None if val.ca_certificate_refs.is_empty() => {
            return invalid(
                "validation needs caCertificateRefs or wellKnownCACertificates".to_owned(),
            )
        }
        None => {}
    }
    let mut bundle = String::new();
    let mut problems: Vec<(&'static str, String)> = Vec::new();
    for r in &val.ca_certificate_refs {
        match policy_ca(ctx, ns, r) {
            Ok(pem) => {
                bundle.push_str(pem.trim_end());
                bundle.push('\n');
            }
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        return (
            Ok(UpstreamTls {
                ca_pem: Some(bundle),
                server_name: Some(val.hostname.clone()),
                ..Default::default()
            }),
            resolved_ok,
            accepted_ok,
        );
    }
    let message = problems
        .iter()
        .map(|(_, m)| m.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let resolved = (false, problems[0].0, message.clone());
    // Even one bad reference fails the connections (the policy names a CA that is
    // not there); Accepted turns False only when none is usable (v1 API docs).
    let accepted = if problems.len() == val.ca_certificate_refs.len() {
        (false, gw::NO_VALID_CA_CERTIFICATE, message.clone())
    } else {
        accepted_ok
    };
    (
        Err(format!("{message}; backends of this policy get 503")),
        resolved,
        accepted,
    )
}

/// The PEM bundle a BackendTLSPolicy CA reference names.
fn policy_ca(
    ctx: &Context<'_>,
    ns: &str,
    r: &LocalObjectReference,
) -> Result<String, (&'static str, String)> {
    let kind = match (r.group.as_str(), r.kind.as_str()) {
        ("", "ConfigMap") => CaSourceKind::ConfigMap,
        ("", "Secret") => CaSourceKind::Secret,
        (group, kind) => {
            return Err((
                gw::INVALID_KIND,
                format!(
                    "caCertificateRef {kind} {}{}: only core ConfigMaps and Secrets are supported",
                    if group.is_empty() { "" } else { group },
                    r.name
                ),
            ))
        }
    };
    ca_bundle(
        ctx,
        ns,
        &CaCertificateRef {
            kind,
            name: r.name.clone(),
            key: CA_KEY.to_owned(),
        },
    )
    .map_err(|m| (gw::INVALID_CA_CERTIFICATE_REF, m))
}

/// The PEM CA bundle under `r.key` of a ConfigMap or Secret in `ns`: present, and at
/// least one PEM certificate.
pub fn ca_bundle(ctx: &Context<'_>, ns: &str, r: &CaCertificateRef) -> Result<String, String> {
    let (what, value) = match r.kind {
        CaSourceKind::ConfigMap => (
            "ConfigMap",
            ctx.config_map(ns, &r.name)
                .map(|c| config_map_value(c, &r.key)),
        ),
        CaSourceKind::Secret => (
            "Secret",
            ctx.secret(ns, &r.name).map(|s| secret_value(s, &r.key)),
        ),
    };
    let Some(value) = value else {
        return Err(format!("{what} {ns}/{} not found", r.name));
    };
    let Some(pem) = value else {
        return Err(format!("{what} {ns}/{} has no key {:?}", r.name, r.key));
    };
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {ns}/{} key {:?} is not PEM ({e})", r.name, r.key))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {ns}/{} key {:?} holds no PEM certificate",
            r.name, r.key
        ));
    }
    Ok(pem)
}

fn config_map_value(c: &ConfigMap, key: &str) -> Option<String> {
    c.data
        .as_ref()
        .and_then(|d| d.get(key))
        .cloned()
        .or_else(|| {
            c.binary_data
                .as_ref()
                .and_then(|d| d.get(key))
                .and_then(|b| String::from_utf8(b.0.clone()).ok())
        })
}

fn secret_value(s: &Secret, key: &str) -> Option<String> {
    super::secrets::value(s, key).and_then(|b| String::from_utf8(b.to_vec()).ok())
}

/// A ProtectedRoute's `backend.tls` as snapshot settings; a problem fails the backend
/// closed (503) under [`reason::BACKEND_TLS_INVALID`].
pub fn route_settings(
    ctx: &Context<'_>,
    ns: &str,
    tls: &gatehouse_crds::BackendTls,
    v: &mut Verdict,
) -> Option<UpstreamTls> {
    let ca_pem = match &tls.ca_certificate_ref {
        None => None,
        Some(r) => match ca_bundle(ctx, ns, r) {
            Ok(pem) => Some(pem),
            Err(msg) => {
                v.reject(
                    reason::BACKEND_TLS_INVALID,
                    format!("backend.tls: {msg}; requests get 503"),
                );
                return None;
            }
        },
    };
    Some(UpstreamTls {
        ca_pem,
        server_name: tls.hostname.clone(),
        ..Default::default()
    })
}
