//! GatewayClasses whose `controllerName` is ours, and their Gateways: which listeners
//! are usable (HTTP or HTTPS with resolvable certificates) and which routes may attach.

use std::collections::HashMap;

use gatehouse_crds::conditions::{self, reason};
use gatehouse_crds::gateway_api::{
    self, reason as gw, GatewayClassStatus, GatewayStatus, GatewayStatusAddress, ListenerStatus,
    RouteGroupKind, CONTROLLER_NAME,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::object::{namespace, object_ref, Context, Verdict};
use super::policy::gateway_condition;
use super::tls::{Certificates, TlsProblem};
use super::{grants, Kind, ObjectStatus, Status};

/// A usable listener of one of our Gateways.
#[derive(Clone, Debug)]
pub struct ListenerInfo {
    pub gateway_ns: String,
    pub gateway: String,
    pub name: String,
    pub hostname: Option<String>,
    pub port: i32,
    /// `Same` (default), `All` or `Selector` (not supported: nothing attaches).
    pub from: String,
    /// Whether HTTPRoute is among the allowed kinds.
    pub allows_http_route: bool,
}

/// Listeners (attached route counts are filled in after routes are translated).
pub struct Gateways {
    pub listeners: Vec<ListenerInfo>,
    /// (index in input.gateways, per-listener (name, problem?)).
    gateways: Vec<(usize, Vec<ListenerOutcome>)>,
    classes: Vec<usize>,
}

/// (condition type, reason, message) of a listener that is not fully usable.
type ListenerProblem = (&'static str, &'static str, String);

/// A listener name and its problem, if any.
type ListenerOutcome = (String, Option<ListenerProblem>);

/// Count key: (gateway namespace, gateway name, listener name).
pub type Attached = HashMap<(String, String, String), i32>;

pub fn translate(ctx: &Context<'_>, certs: &mut Certificates) -> Gateways {
    let mut out = Gateways {
        listeners: Vec::new(),
        gateways: Vec::new(),
        classes: Vec::new(),
    };
    let mut ours: Vec<&str> = ctx
        .input
        .gateway_classes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.spec.controller_name == CONTROLLER_NAME)
        .filter_map(|(i, c)| {
            out.classes.push(i);
            c.metadata.name.as_deref()
        })
        .collect();
    // A class this installation may not read is taken on trust, by name; a class it
    // did read is never overridden (its controllerName decides).
    let assumed = ctx.options.assumed_gateway_class.as_deref().filter(|name| {
        !ctx.input
            .gateway_classes
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(*name))
    });
    ours.extend(assumed);
    for (gi, g) in ctx.input.gateways.iter().enumerate() {
        if !ours.contains(&g.spec.gateway_class_name.as_str()) || !ctx.handles(&g.metadata) {
            continue;
        }
        let ns = namespace(&g.metadata).to_owned();
        let name = g.metadata.name.clone().unwrap_or_default();
        let mut per_listener = Vec::new();
        for l in &g.spec.listeners {
            let mut problem = None;
            match l.protocol.as_str() {
                "HTTP" => {}
                "HTTPS" => {
                    let refs = l
                        .tls
                        .as_ref()
                        .map(|t| t.certificate_refs.as_slice())
                        .unwrap_or_default();
                    if refs.is_empty() {
                        problem = Some((
                            gw::RESOLVED_REFS,
                            gw::INVALID_CERTIFICATE_REF,
                            "HTTPS listener names no certificateRefs".to_owned(),
                        ));
                    }
                    let hosts: Vec<String> = l.hostname.iter().cloned().collect();
                    for r in refs {
                        let secret_ns = r.namespace.clone().unwrap_or_else(|| ns.clone());
                        let kind_ok = r.group.as_deref().unwrap_or("").is_empty()
                            && r.kind.as_deref().unwrap_or("Secret") == "Secret";
                        if !kind_ok {
                            problem = Some((
                                gw::RESOLVED_REFS,
                                gw::INVALID_CERTIFICATE_REF,
                                format!("certificateRef {} is not a core Secret", r.name),
                            ));
                            continue;
                        }
                        if secret_ns != ns
                            && !grants::permits(
                                ctx,
                                gateway_api::GROUP,
                                "Gateway",
                                &ns,
                                "",
                                "Secret",
                                &secret_ns,
                                &r.name,
                            )
                        {
                            problem = Some((gw::RESOLVED_REFS, gw::REF_NOT_PERMITTED, format!("no ReferenceGrant in {secret_ns:?} lets this Gateway use Secret {}", r.name)));
                            continue;
                        }
                        // A listener without hostname serves its certificate as a
                        // catch-all name.
                        let hosts = if hosts.is_empty() {
                            vec!["*".to_owned()]
                        } else {
                            hosts.clone()
                        };
                        match certs.try_add(ctx, &secret_ns, &r.name, &hosts) {
                            Ok(()) => {}
                            Err(TlsProblem::NotFound) => {
                                problem = Some((
                                    gw::RESOLVED_REFS,
                                    gw::INVALID_CERTIFICATE_REF,
                                    format!("Secret {secret_ns}/{} not found", r.name),
                                ))
                            }
                            Err(TlsProblem::Invalid(why)) => {
                                problem =
                                    Some((gw::RESOLVED_REFS, gw::INVALID_CERTIFICATE_REF, why))
                            }
                        }
                    }
                }
                other => {
                    problem = Some((
                        gw::ACCEPTED,
                        gw::UNSUPPORTED_PROTOCOL,
                        format!("protocol {other:?} is not supported (HTTP and HTTPS are)"),
                    ));
                }
            }
            if problem.as_ref().is_none_or(|(t, _, _)| *t != gw::ACCEPTED) {
                let allowed = l.allowed_routes.as_ref();
                let kinds = allowed.map(|a| a.kinds.as_slice()).unwrap_or_default();
                out.listeners.push(ListenerInfo {
                    gateway_ns: ns.clone(),
                    gateway: name.clone(),
                    name: l.name.clone(),
                    hostname: l.hostname.clone().map(|h| h.to_ascii_lowercase()),
                    port: l.port,
                    from: allowed
                        .and_then(|a| a.namespaces.as_ref())
                        .and_then(|n| n.from.clone())
                        .unwrap_or_else(|| "Same".to_owned()),
                    allows_http_route: kinds.is_empty()
                        || kinds.iter().any(|k| {
                            k.kind == "HTTPRoute"
                                && k.group.as_deref().unwrap_or(gateway_api::GROUP)
                                    == gateway_api::GROUP
                        }),
                });
            }
            per_listener.push((l.name.clone(), problem));
        }
        out.gateways.push((gi, per_listener));
    }
    out
}

impl Gateways {
    pub fn statuses(&self, ctx: &Context<'_>, attached: &Attached) -> Vec<ObjectStatus> {
        let mut out = Vec::new();
        for &ci in &self.classes {
            let c = &ctx.input.gateway_classes[ci];
            let object = object_ref(Kind::GatewayClass, &c.metadata);
            let accepted = gateway_condition(
                gw::ACCEPTED,
                true,
                gw::ACCEPTED,
                "Handled by Gatehouse",
                c.metadata.generation,
                ctx,
            );
            out.push(ObjectStatus {
                status: Status::GatewayClass(
                    GatewayClassStatus {
                        conditions: carried(
                            vec![accepted],
                            c.status.as_ref().map(|s| s.conditions.as_slice()),
                        ),
                    },
                    summary(ctx, &object, &Verdict::default()),
                ),
                object,
            });
        }
        for (gi, listeners) in &self.gateways {
            let g = &ctx.input.gateways[*gi];
            let object = object_ref(Kind::Gateway, &g.metadata);
            let gen = g.metadata.generation;
            let mut v = Verdict::default();
            let mut statuses = Vec::new();
            for (name, problem) in listeners {
                let count = attached
                    .get(&(object.namespace.clone(), object.name.clone(), name.clone()))
                    .copied()
                    .unwrap_or(0);
                let mut conds = vec![
                    gateway_condition(
                        gw::ACCEPTED,
                        true,
                        gw::ACCEPTED,
                        "Listener accepted",
                        gen,
                        ctx,
                    ),
                    gateway_condition(
                        gw::RESOLVED_REFS,
                        true,
                        gw::RESOLVED_REFS,
                        "References resolved",
                        gen,
                        ctx,
                    ),
                    gateway_condition(
                        gw::PROGRAMMED,
                        true,
                        gw::PROGRAMMED,
                        "Listener programmed",
                        gen,
                        ctx,
                    ),
                ];
                if let Some((type_, why, msg)) = problem {
                    v.reject(
                        reason::ROUTE_NOT_ACCEPTED,
                        format!("listener {name}: {msg}"),
                    );
                    for c in conds.iter_mut() {
                        if c.type_ == *type_ || c.type_ == gw::PROGRAMMED {
                            c.status = conditions::FALSE.to_owned();
                            c.reason = if c.type_ == *type_ {
                                why.to_string()
                            } else {
                                gw::INVALID.to_owned()
                            };
                            c.message = msg.clone();
                        }
                    }
                }
                statuses.push(ListenerStatus {
                    name: name.clone(),
                    supported_kinds: vec![RouteGroupKind {
                        group: Some(gateway_api::GROUP.to_owned()),
                        kind: "HTTPRoute".to_owned(),
                    }],
                    attached_routes: count,
                    conditions: conds,
                });
            }
            let any = listeners.iter().any(|(_, p)| p.is_none());
            let top = vec![
                gateway_condition(
                    gw::ACCEPTED,
                    true,
                    gw::ACCEPTED,
                    accepted_message(ctx, &g.spec.gateway_class_name),
                    gen,
                    ctx,
                ),
                gateway_condition(
                    gw::PROGRAMMED,
                    any,
                    if any { gw::PROGRAMMED } else { gw::INVALID },
                    if any {
                        "Served by the Gatehouse proxy"
                    } else {
                        "no listener is usable"
                    },
                    gen,
                    ctx,
                ),
            ];
            let previous = g.status.as_ref().map(|s| s.conditions.as_slice());
            out.push(ObjectStatus {
                status: Status::Gateway(
                    GatewayStatus {
                        addresses: addresses(ctx),
                        conditions: carried(top, previous),
                        listeners: statuses,
                    },
                    summary(ctx, &object, &v),
                ),
                object,
            });
        }
        out
    }
}

/// `status.addresses` of every Gateway: the proxy Service's (as Ingresses'
/// `status.loadBalancer`).
fn addresses(ctx: &Context<'_>) -> Vec<GatewayStatusAddress> {
    ctx.options
        .load_balancer
        .iter()
        .flat_map(|lb| {
            let ip = lb.ip.iter().map(|v| ("IPAddress", v));
            ip.chain(lb.hostname.iter().map(|v| ("Hostname", v)))
        })
        .map(|(type_, value)| GatewayStatusAddress {
            type_: Some(type_.to_owned()),
            value: value.clone(),
        })
        .collect()
}

/// The `Accepted` message of a Gateway: says so when its class was taken on trust.
fn accepted_message(ctx: &Context<'_>, class: &str) -> String {
    let read = ctx
        .input
        .gateway_classes
        .iter()
        .any(|c| c.metadata.name.as_deref() == Some(class));
    if read {
        "Gateway accepted".to_owned()
    } else {
        format!(
            "Gateway accepted; GatewayClass {class:?} cannot be read by this installation \
             (namespaced, or no RBAC on gatewayclasses) and is assumed to be Gatehouse's \
             (--gateway-class)"
        )
    }
}

/// The summary `Ready` condition of a Gateway API / Ingress object.
pub fn summary(ctx: &Context<'_>, object: &super::ObjectRef, v: &Verdict) -> Vec<Condition> {
    let mut copy = Verdict::default();
    for (r, m) in v.problems() {
        copy.reject(r, m.clone());
    }
    copy.into_conditions("In effect", object, &[], &ctx.options.now)
}

/// Keep transition times of conditions whose status did not change.
pub fn carried(mut next: Vec<Condition>, previous: Option<&[Condition]>) -> Vec<Condition> {
    conditions::carry_transition_times(previous.unwrap_or_default(), &mut next);
    next
}
