//! Writing `status` with true server-side apply (`Patch::Apply` +
//! `PatchParams::apply("gatehouse").force()`), and deciding when *not* to.
//!
//! A status is written only when it differs from what the cluster has, comparing
//! conditions while ignoring `lastTransitionTime` (translate already carries the old
//! time over when a condition did not flip). Between a write and the watch event that
//! reflects it, [`Written`] remembers what was sent so the next pass does not send it
//! again; a resync forgets, which repairs any drift.

use std::collections::HashMap;
use std::time::Duration;

use gatehouse_crds::gateway_api::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute};
use gatehouse_crds::{conditions, Consumer, OAuth2Client, OAuth2Policy, ProtectedRoute};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};

use super::{bounded, Result, FIELD_MANAGER};
use crate::translate::{Kind, ObjectRef, ObjectStatus, Status};

/// The API resource of a Gatehouse kind.
pub fn api_resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::Consumer => ApiResource::erase::<Consumer>(&()),
        Kind::OAuth2Client => ApiResource::erase::<OAuth2Client>(&()),
        Kind::ProtectedRoute => ApiResource::erase::<ProtectedRoute>(&()),
        Kind::OAuth2Policy => ApiResource::erase::<OAuth2Policy>(&()),
        Kind::GatewayClass => ApiResource::erase::<GatewayClass>(&()),
        Kind::Gateway => ApiResource::erase::<Gateway>(&()),
        Kind::HttpRoute => ApiResource::erase::<HttpRoute>(&()),
        Kind::Ingress => ApiResource::erase::<Ingress>(&()),
        Kind::BackendTlsPolicy => ApiResource::erase::<BackendTlsPolicy>(&()),
    }
}

/// Whether two statuses say the same thing, ignoring condition timestamps.
pub fn same(a: &Status, b: &Status) -> bool {
    match (a, b) {
        (Status::Consumer(x), Status::Consumer(y))
        | (Status::ProtectedRoute(x), Status::ProtectedRoute(y)) => {
            x.observed_generation == y.observed_generation
                && conditions::same_ignoring_time(&x.conditions, &y.conditions)
        }
        (Status::OAuth2Client(x), Status::OAuth2Client(y)) => {
            x.client_id == y.client_id
                && x.observed_generation == y.observed_generation
                && conditions::same_ignoring_time(&x.conditions, &y.conditions)
        }
        // The other kinds (Gateway API, Ingress, OAuth2Policy) nest conditions deeper
        // (per parent, listener, ancestor): compare the written form without times.
        (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => {
            without_times(a.to_json()) == without_times(b.to_json())
        }
        _ => false,
    }
}

/// `status` JSON with every `lastTransitionTime` removed.
fn without_times(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("lastTransitionTime");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// The server-side apply body for one object's status: only the fields Gatehouse owns.
pub fn apply_body(status: &ObjectStatus) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": api_resource(status.object.kind).api_version,
        "kind": status.object.kind.as_str(),
        "status": status.status.to_json(),
    })
}

/// Write one status with server-side apply, forcing ownership of the status fields
/// (Gatehouse is their only rightful writer).
pub async fn apply(client: &Client, status: &ObjectStatus, timeout: Duration) -> Result<()> {
    let o = &status.object;
    let ar = api_resource(o.kind);
    // GatewayClass is the one cluster-scoped kind translate reports on.
    let api: Api<DynamicObject> = if o.kind == Kind::GatewayClass {
        Api::all_with(client.clone(), &ar)
    } else {
        Api::namespaced_with(client.clone(), &o.namespace, &ar)
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let body = apply_body(status);
    bounded(
        timeout,
        format!("writing the status of {o}"),
        api.patch_status(&o.name, &params, &Patch::Apply(&body)),
    )
    .await
    .map(|_| ())
}

/// Statuses sent but possibly not yet seen back through the watch.
#[derive(Default)]
pub struct Written {
    sent: HashMap<(Kind, String, String), (Option<String>, Status)>,
}

impl Written {
    /// Whether exactly this status was already sent to this object (same uid).
    pub fn already_sent(&self, object: &ObjectRef, status: &Status) -> bool {
        self.sent
            .get(&Self::key(object))
            .is_some_and(|(uid, s)| *uid == object.uid && same(s, status))
    }

    /// The status last sent to this object (same uid), if not yet settled.
    pub fn last(&self, object: &ObjectRef) -> Option<&Status> {
        self.sent
            .get(&Self::key(object))
            .filter(|(uid, _)| *uid == object.uid)
            .map(|(_, s)| s)
    }

    /// Remember a successful write.
    pub fn record(&mut self, object: &ObjectRef, status: Status) {
        self.sent
            .insert(Self::key(object), (object.uid.clone(), status));
    }

    /// The cluster shows this status now: nothing to remember.
    pub fn settle(&mut self, object: &ObjectRef) {
        self.sent.remove(&Self::key(object));
    }

    /// Forget everything (resync, leadership change).
    pub fn forget(&mut self) {
        self.sent.clear();
    }

    fn key(o: &ObjectRef) -> (Kind, String, String) {
        (o.kind, o.namespace.clone(), o.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_crds::conditions::reason;
    use gatehouse_crds::{OAuth2ClientStatus, ProtectedRouteStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn route_status(reason_: &str, generation: i64, t: i64) -> Status {
        let c = if reason_ == reason::READY {
            conditions::ready("ok", Some(generation), &at(t))
        } else {
            conditions::not_ready(reason_, "bad", Some(generation), &at(t))
        };
        Status::ProtectedRoute(ProtectedRouteStatus {
            conditions: vec![c],
            observed_generation: Some(generation),
        })
    }

    #[test]
    fn statuses_differing_only_in_transition_time_are_the_same() {
        assert!(same(
            &route_status(reason::READY, 1, 10),
            &route_status(reason::READY, 1, 99)
        ));
        assert!(!same(
            &route_status(reason::READY, 1, 10),
            &route_status(reason::READY, 2, 10)
        ));
        assert!(!same(
            &route_status(reason::READY, 1, 10),
            &route_status(reason::ROUTE_CONFLICT, 1, 10)
        ));
    }

    #[test]
    fn nested_gateway_api_conditions_are_compared_without_their_times() {
        use gatehouse_crds::gateway_api::BackendTlsPolicyStatus;
        use gatehouse_crds::{AncestorRef, PolicyAncestorStatus};
        let policy = |accepted: &str, t: i64| {
            let mut c = conditions::ready("ok", Some(1), &at(t));
            c.type_ = "Accepted".into();
            c.status = accepted.into();
            Status::BackendTlsPolicy(
                BackendTlsPolicyStatus {
                    ancestors: vec![PolicyAncestorStatus {
                        ancestor_ref: AncestorRef {
                            name: "gw".into(),
                            ..Default::default()
                        },
                        controller_name: "gatehouse.dev/gateway-controller".into(),
                        conditions: vec![c],
                    }],
                },
                Vec::new(),
            )
        };
        assert!(same(&policy("True", 1), &policy("True", 50)));
        assert!(!same(&policy("True", 1), &policy("False", 1)));
    }

    #[test]
    fn client_id_is_part_of_the_comparison() {
        let c = |id: Option<&str>| {
            Status::OAuth2Client(OAuth2ClientStatus {
                client_id: id.map(str::to_owned),
                conditions: vec![conditions::ready("ok", Some(1), &at(1))],
                observed_generation: Some(1),
            })
        };
        assert!(same(&c(Some("a")), &c(Some("a"))));
        assert!(!same(&c(None), &c(Some("a"))));
    }

    #[test]
    fn written_status_is_remembered_per_uid() {
        let object = ObjectRef {
            kind: Kind::ProtectedRoute,
            namespace: "ns".into(),
            name: "r".into(),
            uid: Some("u1".into()),
            generation: Some(1),
        };
        let mut w = Written::default();
        let s = route_status(reason::READY, 1, 1);
        w.record(&object, s.clone());
        assert!(w.already_sent(&object, &s));
        let recreated = ObjectRef {
            uid: Some("u2".into()),
            ..object.clone()
        };
        assert!(!w.already_sent(&recreated, &s));
        w.forget();
        assert!(!w.already_sent(&object, &s));
    }
}
