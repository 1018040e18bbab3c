//! Last good versions: a changed object whose new version is not `Ready` keeps its
//! previous, good version in force instead of dropping out of the snapshot (which
//! would let a broader route, or no protection at all, take its requests).
//!
//! What is kept is the *object* (the Kubernetes resource as it was when it last
//! translated `Ready`), not its translated piece: it is translated again on every
//! pass against the current world, so its endpoints, Secrets and certificates keep
//! following the cluster while its spec stays at the last good version.
//!
//! The rule, applied by [`super::translate`]:
//! - an object that translates `Ready` becomes (or stays) its own last good version;
//! - an object that does not, whose last good version is a *different* version
//!   (another `metadata.generation`; in standalone, where there is none, other
//!   content), is translated as that version instead, and reported with the status of
//!   the current one (`Ready=False`, its reason, `observedGeneration` of the bad
//!   generation) plus a note that the last good version is still served;
//! - an object that is gone (deleted, or no longer handled by this instance) is
//!   forgotten; a recreated object (new uid) starts with no memory.
//!
//! The memory is the caller's ([`super::Input::last_good`] in,
//! [`super::Output::last_good`] out): translate stays pure. The cluster controller
//! keeps it in memory on every replica (standbys translate too, so a failover keeps
//! it); a restarted controller starts empty.

use std::collections::BTreeMap;
use std::sync::Arc;

use gatehouse_crds::gateway_api::{Gateway, HttpRoute};
use gatehouse_crds::{Consumer, OAuth2Client, OAuth2Policy, ProtectedRoute};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::object::namespace;
use super::{Input, Kind, ObjectRef, ObjectStatus, Status};

/// The last good version of every object that has one.
#[derive(Clone, Debug, Default)]
pub struct LastGood {
    kept: BTreeMap<Key, Kept>,
}

/// Kind and identity (the uid; `namespace/name` when there is none, in standalone).
pub(super) type Key = (Kind, String);

#[derive(Clone, Debug)]
struct Kept {
    version: Version,
    object: Object,
}

/// Which version of an object this is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Version {
    Generation(i64),
    /// SHA-256 of the whole object (standalone manifests carry no generation).
    Content([u8; 32]),
}

/// An object of one of the kinds that have a last good version. GatewayClasses have
/// none: the only thing that can go wrong with one is that it is not ours.
#[derive(Clone, Debug)]
enum Object {
    Consumer(Arc<Consumer>),
    OAuth2Client(Arc<OAuth2Client>),
    ProtectedRoute(Arc<ProtectedRoute>),
    OAuth2Policy(Arc<OAuth2Policy>),
    Gateway(Arc<Gateway>),
    HttpRoute(Arc<HttpRoute>),
    Ingress(Arc<Ingress>),
}

/// A bad current version held back: its own status, and what is served instead.
#[derive(Clone, Debug)]
pub struct Held {
    /// The status of the current (bad) version.
    pub status: ObjectStatus,
    object: Object,
}

impl Object {
    /// The current object `o` names, from the input.
    fn find(input: &Input, o: &ObjectRef) -> Option<Object> {
        fn pick<T: Resource>(items: &[Arc<T>], o: &ObjectRef) -> Option<Arc<T>> {
            items
                .iter()
                .find(|i| {
                    namespace(i.meta()) == o.namespace
                        && i.meta().name.as_deref() == Some(o.name.as_str())
                })
                .cloned()
        }
        Some(match o.kind {
            Kind::Consumer => Object::Consumer(pick(&input.consumers, o)?),
            Kind::OAuth2Client => Object::OAuth2Client(pick(&input.clients, o)?),
            Kind::ProtectedRoute => Object::ProtectedRoute(pick(&input.routes, o)?),
            Kind::OAuth2Policy => Object::OAuth2Policy(pick(&input.policies, o)?),
            Kind::Gateway => Object::Gateway(pick(&input.gateways, o)?),
            Kind::HttpRoute => Object::HttpRoute(pick(&input.http_routes, o)?),
            Kind::Ingress => Object::Ingress(pick(&input.ingresses, o)?),
            Kind::GatewayClass | Kind::BackendTlsPolicy => return None,
        })
    }

    /// Put this version in place of the current one in `input`.
    fn substitute(&self, input: &mut Input) {
        fn put<T: Resource>(items: &mut [Arc<T>], kept: &Arc<T>) {
            let (ns, name) = (namespace(kept.meta()), kept.meta().name.as_deref());
            if let Some(slot) = items
                .iter_mut()
                .find(|i| namespace(i.meta()) == ns && i.meta().name.as_deref() == name)
            {
                *slot = kept.clone();
            }
        }
        match self {
            Object::Consumer(k) => put(&mut input.consumers, k),
            Object::OAuth2Client(k) => put(&mut input.clients, k),
            Object::ProtectedRoute(k) => put(&mut input.routes, k),
            Object::OAuth2Policy(k) => put(&mut input.policies, k),
            Object::Gateway(k) => put(&mut input.gateways, k),
            Object::HttpRoute(k) => put(&mut input.http_routes, k),
            Object::Ingress(k) => put(&mut input.ingresses, k),
        }
    }

    fn version(&self) -> Version {
        fn of<T: Resource + Serialize>(o: &T) -> Version {
            match o.meta().generation {
                Some(g) => Version::Generation(g),
                None => Version::Content(
                    Sha256::digest(serde_json::to_vec(o).expect("objects are JSON-representable"))
                        .into(),
                ),
            }
        }
        match self {
            Object::Consumer(o) => of(&**o),
            Object::OAuth2Client(o) => of(&**o),
            Object::ProtectedRoute(o) => of(&**o),
            Object::OAuth2Policy(o) => of(&**o),
            Object::Gateway(o) => of(&**o),
            Object::HttpRoute(o) => of(&**o),
            Object::Ingress(o) => of(&**o),
        }
    }

    fn generation(&self) -> Option<i64> {
        match self.version() {
            Version::Generation(g) => Some(g),
            Version::Content(_) => None,
        }
    }
}

pub(super) fn key(o: &ObjectRef) -> Key {
    let id = o
        .uid
        .clone()
        .unwrap_or_else(|| format!("{}/{}", o.namespace, o.name));
    (o.kind, id)
}

impl LastGood {
    /// Objects in `statuses` that are not `Ready`, have a last good version other
    /// than their current one, and are not held yet.
    pub fn to_hold(
        &self,
        input: &Input,
        statuses: &[ObjectStatus],
        held: &BTreeMap<Key, Held>,
    ) -> Vec<(Key, Held)> {
        let mut out = Vec::new();
        for s in statuses.iter().filter(|s| !s.is_ready()) {
            let k = key(&s.object);
            if held.contains_key(&k) {
                continue;
            }
            let (Some(kept), Some(current)) = (self.kept.get(&k), Object::find(input, &s.object))
            else {
                continue;
            };
            if kept.version != current.version() {
                out.push((
                    k,
                    Held {
                        status: s.clone(),
                        object: kept.object.clone(),
                    },
                ));
            }
        }
        out
    }

    /// `input` with every held object at its last good version.
    pub fn substituted(input: &Input, held: &BTreeMap<Key, Held>) -> Input {
        let mut out = input.clone();
        out.last_good = LastGood::default();
        for h in held.values() {
            h.object.substitute(&mut out);
        }
        out
    }

    /// The memory after a pass: `Ready` objects at their current version, held ones
    /// at their kept version, unchanged objects that are not `Ready` (their Secret or
    /// Service went away, say) at what they had; everything else forgotten.
    pub fn remember(
        &self,
        input: &Input,
        statuses: &[ObjectStatus],
        held: &BTreeMap<Key, Held>,
    ) -> LastGood {
        let mut kept = BTreeMap::new();
        for s in statuses {
            let k = key(&s.object);
            if let Some(h) = held.get(&k) {
                kept.insert(
                    k,
                    Kept {
                        version: h.object.version(),
                        object: h.object.clone(),
                    },
                );
            } else if s.is_ready() {
                if let Some(object) = Object::find(input, &s.object) {
                    let version = object.version();
                    kept.insert(k, Kept { version, object });
                }
            } else if let Some(previous) = self.kept.get(&k) {
                kept.insert(k, previous.clone());
            }
        }
        LastGood { kept }
    }

    /// How many objects have a last good version.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether no object has one.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

impl Held {
    /// The current version's status, each failing condition noting what is served.
    pub fn into_status(self) -> ObjectStatus {
        let note = match self.object.generation() {
            Some(g) => format!("the last good version (generation {g}) is still served"),
            None => "the last good version is still served".to_owned(),
        };
        let mut status = self.status;
        status.status.note_failures(&note);
        status
    }
}

impl Status {
    /// Append `note` to the message of every condition that is `False`.
    fn note_failures(&mut self, note: &str) {
        fn note_all(conditions: &mut [Condition], note: &str) {
            for c in conditions
                .iter_mut()
                .filter(|c| c.status == gatehouse_crds::conditions::FALSE)
            {
                c.message = if c.message.is_empty() {
                    note.to_owned()
                } else {
                    format!("{}; {note}", c.message)
                };
            }
        }
        match self {
            Status::Consumer(s) | Status::ProtectedRoute(s) => note_all(&mut s.conditions, note),
            Status::OAuth2Client(s) => note_all(&mut s.conditions, note),
            Status::OAuth2Policy(s) => {
                note_all(&mut s.conditions, note);
                for a in &mut s.ancestors {
                    note_all(&mut a.conditions, note);
                }
            }
            Status::GatewayClass(s, summary) => {
                note_all(&mut s.conditions, note);
                note_all(summary, note);
            }
            Status::Gateway(s, summary) => {
                note_all(&mut s.conditions, note);
                for l in &mut s.listeners {
                    note_all(&mut l.conditions, note);
                }
                note_all(summary, note);
            }
            Status::HttpRoute(s, summary) => {
                for p in &mut s.parents {
                    note_all(&mut p.conditions, note);
                }
                note_all(summary, note);
            }
            Status::Ingress(_, summary) => note_all(summary, note),
            Status::BackendTlsPolicy(s, summary) => {
                for a in &mut s.ancestors {
                    note_all(&mut a.conditions, note);
                }
                note_all(summary, note);
            }
        }
    }
}
