//! OAuth2Policies: which HTTPRoute, Gateway or Ingress each one protects (GEP-713
//! policy attachment), and their `ancestors` status.
//!
//! Fail closed: a policy whose `oauth2` block is invalid still claims its targets, and
//! routes it targets are left out of the snapshot until it is fixed, so a typo never
//! leaves an API open.

use std::collections::HashMap;

use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::{self, reason};
use gatehouse_crds::gateway_api::{self, CONTROLLER_NAME};
use gatehouse_crds::{AncestorRef, OAuth2PolicyStatus, PolicyAncestorStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::consumers::Consumers;
use super::object::{namespace, object_ref, Context, Verdict};
use super::routes::{anonymous, check_oauth2, oauth2_config, provision_key};
use super::{Kind, ObjectStatus, Status};

/// What a target gets from the policy attached to it.
#[derive(Clone, Debug)]
pub enum Attached {
    /// Protect with this config; tokens are bound to `id` (the policy).
    Protect {
        id: String,
        /// Boxed: far larger than the other variant.
        oauth2: Box<config::RouteOAuth2>,
        /// `oauth2.allowEncodedSlashes`: a route-level setting in the snapshot, so it
        /// is applied to every route the policy protects, as on a ProtectedRoute.
        allow_encoded_slashes: bool,
    },
    /// The policy is invalid: do not serve the target at all.
    Broken { policy: String },
}

/// (kind, namespace, name, section) of a target.
pub type TargetKey = (&'static str, String, String, Option<String>);

/// Policies resolved to their targets.
pub struct Policies {
    attached: HashMap<TargetKey, Attached>,
    pending: Vec<(usize, Vec<PolicyAncestorStatus>, Verdict)>,
}

impl Policies {
    /// The policy on exactly this target (with this section, or the whole object).
    pub fn get(
        &self,
        kind: &'static str,
        ns: &str,
        name: &str,
        section: Option<&str>,
    ) -> Option<&Attached> {
        let key = (
            kind,
            ns.to_owned(),
            name.to_owned(),
            section.map(str::to_owned),
        );
        self.attached.get(&key)
    }

    /// Statuses of every policy (computed in [`resolve`]).
    pub fn statuses(&self, ctx: &Context<'_>) -> Vec<ObjectStatus> {
        let policies = ctx.oldest_first(&ctx.input.policies);
        let mut out = Vec::new();
        for (i, ancestors, verdict) in &self.pending {
            let p = policies[*i];
            let object = object_ref(Kind::OAuth2Policy, &p.metadata);
            let previous = p
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let mut v = Verdict::default();
            for (r, m) in verdict.problems() {
                v.reject(r, m.clone());
            }
            let conditions =
                v.into_conditions("Policy is in effect", &object, &previous, &ctx.options.now);
            out.push(ObjectStatus {
                status: Status::OAuth2Policy(OAuth2PolicyStatus {
                    ancestors: ancestors.clone(),
                    conditions,
                    observed_generation: object.generation,
                }),
                object,
            });
        }
        out
    }
}

/// Resolve every policy, oldest first: the older of two policies on the same target
/// wins, the newer is `Conflicted` there.
pub fn resolve(ctx: &Context<'_>, consumers: &Consumers, trusted: &[String]) -> Policies {
    let mut out = Policies {
        attached: HashMap::new(),
        pending: Vec::new(),
    };
    let mut owners: HashMap<TargetKey, String> = HashMap::new();
    for (i, p) in ctx
        .oldest_first(&ctx.input.policies)
        .into_iter()
        .enumerate()
    {
        let ns = namespace(&p.metadata).to_owned();
        let id = format!(
            "oauth2policy/{ns}/{}",
            p.metadata.name.as_deref().unwrap_or_default()
        );
        let mut v = Verdict::default();
        let o = &p.spec.oauth2;
        check_oauth2(o, &mut v);
        let spec_ok = v.is_ok();
        let attached = if spec_ok {
            let pk = provision_key(ctx, &ns, o, &mut v);
            let anon = anonymous(consumers, &ns, o, &mut v);
            let mut oauth2 = oauth2_config(o, pk, anon);
            oauth2.login = o
                .login
                .as_ref()
                .and_then(|l| super::login::translate(ctx, &ns, &id, l, trusted, &mut v));
            Attached::Protect {
                id: id.clone(),
                oauth2: Box::new(oauth2),
                allow_encoded_slashes: o.allow_encoded_slashes,
            }
        } else {
            Attached::Broken { policy: id.clone() }
        };
        let mut ancestors = Vec::new();
        for t in &p.spec.target_refs {
            let (accepted, why, msg) = match target_kind(ctx, &ns, &t.group, &t.kind, &t.name) {
                None => (
                    false,
                    gateway_api::reason::TARGET_NOT_FOUND,
                    format!("{} {ns}/{} not found", t.kind, t.name),
                ),
                Some(kind) => {
                    let key: TargetKey = (kind, ns.clone(), t.name.clone(), t.section_name.clone());
                    match owners.get(&key) {
                        Some(older) => (
                            false,
                            gateway_api::reason::CONFLICTED,
                            format!("the older {older} already targets {} {}", t.kind, t.name),
                        ),
                        None => {
                            owners.insert(key.clone(), id.clone());
                            out.attached.insert(key, attached.clone());
                            if spec_ok {
                                (
                                    true,
                                    gateway_api::reason::ACCEPTED,
                                    "Policy accepted".to_owned(),
                                )
                            } else {
                                (false, gateway_api::reason::INVALID, "the oauth2 block is invalid; the target is not served until it is fixed".to_owned())
                            }
                        }
                    }
                }
            };
            if !accepted && why != gateway_api::reason::INVALID {
                v.reject(reason::POLICY_NOT_ACCEPTED, msg.clone());
            }
            ancestors.push(PolicyAncestorStatus {
                ancestor_ref: AncestorRef {
                    group: t.group.clone(),
                    kind: t.kind.clone(),
                    name: t.name.clone(),
                    namespace: Some(ns.clone()),
                    section_name: t.section_name.clone(),
                },
                controller_name: CONTROLLER_NAME.to_owned(),
                conditions: vec![gateway_condition(
                    gateway_api::reason::ACCEPTED,
                    accepted,
                    why,
                    msg,
                    p.metadata.generation,
                    ctx,
                )],
            });
        }
        out.pending.push((i, ancestors, v));
    }
    out
}

/// The kind constant of an existing target, or `None`.
fn target_kind(
    ctx: &Context<'_>,
    ns: &str,
    group: &str,
    kind: &str,
    name: &str,
) -> Option<&'static str> {
    let exists = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        namespace(meta) == ns && meta.name.as_deref() == Some(name)
    };
    match (group, kind) {
        (gateway_api::GROUP, "HTTPRoute") => ctx
            .input
            .http_routes
            .iter()
            .any(|r| exists(&r.metadata))
            .then_some("HTTPRoute"),
        (gateway_api::GROUP, "Gateway") => ctx
            .input
            .gateways
            .iter()
            .any(|g| exists(&g.metadata))
            .then_some("Gateway"),
        ("networking.k8s.io", "Ingress") => ctx
            .input
            .ingresses
            .iter()
            .any(|i| exists(&i.metadata))
            .then_some("Ingress"),
        _ => None,
    }
}

/// A Gateway API style condition (`type` other than `Ready`).
pub fn gateway_condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    ctx: &Context<'_>,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok {
            conditions::TRUE
        } else {
            conditions::FALSE
        }
        .to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: ctx.options.now.clone(),
    }
}
