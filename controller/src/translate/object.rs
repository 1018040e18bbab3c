//! Shared plumbing for the per-kind translators: lookups by namespace/name, which
//! objects this instance handles, age ordering, and collecting an object's problems
//! into its `Ready` condition.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_crds::conditions;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};

use super::backend_tls::{AncestorKey, Settings, TlsPolicies, Uses};
use super::{Input, Kind, ObjectRef, ObjectStatus, Options, Status};

/// Namespace assumed for objects that name none (standalone manifests).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Indexed view of the input, shared by the translators.
pub struct Context<'a> {
    pub input: &'a Input,
    pub options: &'a Options,
    secrets: HashMap<(&'a str, &'a str), &'a Secret>,
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
    config_maps: HashMap<(&'a str, &'a str), &'a ConfigMap>,
    /// BackendTLSPolicies resolved (see [`Context::backend_tls`]).
    tls_policies: TlsPolicies<'a>,
    /// Which routes reach which Service ports, recorded while backends are resolved
    /// (for BackendTLSPolicy ancestors): the one piece of state translators share.
    uses: RefCell<Uses>,
}

impl<'a> Context<'a> {
    pub fn new(input: &'a Input, options: &'a Options) -> Self {
        fn index<T: kube::Resource>(items: &[Arc<T>]) -> HashMap<(&str, &str), &T> {
            items
                .iter()
                .filter_map(|o| Some(((namespace(o.meta()), name(o.meta())?), &**o)))
                .collect()
        }
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for s in &input.endpoint_slices {
            if let Some(svc) = s
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            {
                slices
                    .entry((namespace(&s.metadata), svc.as_str()))
                    .or_default()
                    .push(&**s);
            }
        }
        // Slice order must not leak into the output: sort by name.
        for list in slices.values_mut() {
            list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        let mut ctx = Context {
            input,
            options,
            secrets: index(&input.secrets),
            services: index(&input.services),
            slices,
            config_maps: index(&input.config_maps),
            tls_policies: TlsPolicies::default(),
            uses: RefCell::default(),
        };
        ctx.tls_policies = TlsPolicies::new(&ctx);
        ctx
    }

    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps.get(&(namespace, name)).copied()
    }

    /// The BackendTLSPolicy settings for a Service port, if a policy targets it.
    pub fn backend_tls(
        &self,
        namespace: &str,
        service: &str,
        port: Option<&str>,
    ) -> Option<&Settings> {
        self.tls_policies.get(namespace, service, port)
    }

    /// Record that `via` sends traffic to a Service port.
    pub fn used_by(&self, namespace: &str, service: &str, port: Option<&str>, via: &[AncestorKey]) {
        let mut uses = self.uses.borrow_mut();
        let entry = uses
            .entry((namespace.to_owned(), service.to_owned()))
            .or_default();
        for a in via {
            entry.insert((port.filter(|p| !p.is_empty()).map(str::to_owned), a.clone()));
        }
    }

    /// Statuses of every BackendTLSPolicy (after every route source has run).
    pub fn backend_tls_statuses(&self) -> Vec<ObjectStatus> {
        let uses = self.uses.borrow();
        self.tls_policies.statuses(self, &uses)
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(namespace, name)).copied()
    }

    pub fn endpoint_slices(&self, namespace: &str, service: &str) -> Vec<&'a EndpointSlice> {
        self.slices
            .get(&(namespace, service))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether this instance handles the object (instance label) and it is live.
    pub fn handles(&self, meta: &ObjectMeta) -> bool {
        if meta.deletion_timestamp.is_some() || meta.name.is_none() {
            return false;
        }
        let label = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(super::INSTANCE_LABEL));
        label.map(String::as_str) == self.options.instance.as_deref()
    }

    /// The objects of one kind this instance handles, oldest first (ties broken by
    /// namespace/name): the order in which conflicts are decided.
    pub fn oldest_first<T>(&self, items: &'a [Arc<T>]) -> Vec<&'a T>
    where
        T: kube::Resource,
    {
        let mut v: Vec<&T> = items
            .iter()
            .map(|o| &**o)
            .filter(|o| self.handles(o.meta()))
            .collect();
        v.sort_by(|a, b| age_key(a.meta()).cmp(&age_key(b.meta())));
        v
    }
}

/// Sort key: creation time (objects without one, as in standalone, sort as oldest),
/// then namespace and name.
fn age_key(meta: &ObjectMeta) -> (Option<&Time>, &str, &str) {
    (
        meta.creation_timestamp.as_ref(),
        namespace(meta),
        meta.name.as_deref().unwrap_or_default(),
    )
}

pub fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

fn name(meta: &ObjectMeta) -> Option<&str> {
    meta.name.as_deref()
}

pub fn object_ref(kind: Kind, meta: &ObjectMeta) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: namespace(meta).to_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
        generation: meta.generation,
    }
}

/// The problems found with one object; the first one names the reason.
#[derive(Default)]
pub struct Verdict {
    problems: Vec<(&'static str, String)>,
}

impl Verdict {
    pub fn reject(&mut self, reason: &'static str, message: impl Into<String>) {
        self.problems.push((reason, message.into()));
    }

    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The problems found so far (reason, message).
    pub fn problems(&self) -> impl Iterator<Item = (&'static str, &String)> {
        self.problems.iter().map(|(r, m)| (*r, m))
    }

    /// The `Ready` condition: `True` with `ok_message`, or `False` with the first
    /// problem's reason and every problem's message. The previous transition time is
    /// kept when the status did not flip.
    pub fn into_conditions(
        self,
        ok_message: &str,
        object: &ObjectRef,
        previous: &[Condition],
        now: &Time,
    ) -> Vec<Condition> {
        let condition = match self.problems.first() {
            None => conditions::ready(ok_message, object.generation, now),
            Some((reason, _)) => {
                let message = self
                    .problems
                    .iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                conditions::not_ready(reason, message, object.generation, now)
            }
        };
        let mut next = vec![condition];
        conditions::carry_transition_times(previous, &mut next);
        next
    }

    /// The object's status entry, the same for every kind: its `Ready` condition (see
    /// [`Verdict::into_conditions`]; `previous` are the conditions it has now) and its
    /// generation, wrapped by `status` into the kind's status.
    pub fn into_status(
        self,
        ok_message: &str,
        object: ObjectRef,
        previous: Option<&[Condition]>,
        now: &Time,
        status: impl FnOnce(Vec<Condition>, Option<i64>) -> Status,
    ) -> ObjectStatus {
        let conditions =
            self.into_conditions(ok_message, &object, previous.unwrap_or_default(), now);
        ObjectStatus {
            status: status(conditions, object.generation),
            object,
        }
    }
}

/// RFC 6749 §3.3 scope-token: one or more of %x21 / %x23-5B / %x5D-7E.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Whether a value can be sent as an HTTP header value (no control characters).
pub fn is_header_safe(s: &str) -> bool {
    s.chars().all(|c| !c.is_control())
}
