//! Kubernetes Events, only on transitions: an object that becomes rejected (or is
//! rejected for a new reason) gets one `Warning`; one that recovers gets one `Normal`
//! `Ready`. Re-translating an unchanged object emits nothing.
//!
//! Events are published through kube-runtime's [`Recorder`] (`events.k8s.io/v1`),
//! which also folds repeats into a series.

use std::time::Duration;

use gatehouse_crds::conditions::{self, reason};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;

use super::{bounded, Result};
use crate::translate::ObjectRef;

/// `reportingController` of our Events.
pub const REPORTING_CONTROLLER: &str = "gatehouse.dev/controller";
/// `action` of Events about translation results.
pub const ACTION_VALIDATE: &str = "Validate";
/// `action` of the Event announcing a generated credentials Secret.
pub const ACTION_GENERATE: &str = "GenerateCredentials";
/// `reason` of the Event announcing a generated credentials Secret.
pub const REASON_CREDENTIALS_GENERATED: &str = "CredentialsGenerated";

/// An Event to publish about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
    pub action: &'static str,
}

/// The Event (if any) for a `Ready` condition going from `previous` to `next`.
pub fn transition(previous: Option<&Condition>, next: &Condition) -> Option<Notice> {
    let was = previous.map(|c| (c.status.as_str(), c.reason.as_str()));
    if next.status == conditions::TRUE {
        // Recovery is news; being Ready from the start is not.
        return match was {
            Some((status, _)) if status != conditions::TRUE => Some(Notice {
                warning: false,
                reason: reason::READY.to_owned(),
                note: next.message.clone(),
                action: ACTION_VALIDATE,
            }),
            _ => None,
        };
    }
    // Waiting for generated credentials is announced when the Secret is created.
    if next.reason == reason::CREDENTIALS_PENDING {
        return None;
    }
    if was == Some((next.status.as_str(), next.reason.as_str())) {
        return None;
    }
    Some(Notice {
        warning: true,
        reason: next.reason.clone(),
        note: next.message.clone(),
        action: ACTION_VALIDATE,
    })
}

/// The Event for a credentials Secret the controller generated.
pub fn credentials_generated(secret_name: &str) -> Notice {
    Notice {
        warning: false,
        reason: REASON_CREDENTIALS_GENERATED.to_owned(),
        note: format!("generated client_id and client_secret into Secret {secret_name:?}"),
        action: ACTION_GENERATE,
    }
}

/// The `regarding` reference of an Event about `object`.
pub fn object_reference(object: &ObjectRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(gatehouse_crds::API_VERSION.to_owned()),
        kind: Some(object.kind.as_str().to_owned()),
        name: Some(object.name.clone()),
        namespace: Some(object.namespace.clone()),
        uid: object.uid.clone(),
        ..ObjectReference::default()
    }
}

/// Publishes [`Notice`]s as Kubernetes Events.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// `instance` is this replica's identity (`reportingInstance`).
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_owned(),
            instance: Some(instance.to_owned()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publish one Event about `object`.
    pub async fn publish(
        &self,
        object: &ObjectRef,
        notice: &Notice,
        timeout: Duration,
    ) -> Result<()> {
        let event = Event {
            type_: if notice.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: notice.reason.clone(),
            note: Some(truncate(&notice.note, 1024)),
            action: notice.action.to_owned(),
            secondary: None,
        };
        bounded(
            timeout,
            format!("recording an Event on {object}"),
            self.recorder.publish(&event, &object_reference(object)),
        )
        .await
    }
}

/// The API server rejects Event notes over 1 kB; cut on a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap())
    }
    fn ok() -> Condition {
        conditions::ready("ok", Some(1), &now())
    }
    fn bad(r: &str) -> Condition {
        conditions::not_ready(r, "why", Some(1), &now())
    }

    #[test]
    fn a_new_rejection_is_a_warning() {
        let n = transition(None, &bad(reason::ROUTE_CONFLICT)).unwrap();
        assert!(n.warning);
        assert_eq!(n.reason, reason::ROUTE_CONFLICT);
        assert_eq!(n.note, "why");
        let n = transition(Some(&ok()), &bad(reason::BACKEND_NOT_FOUND)).unwrap();
        assert_eq!(n.reason, reason::BACKEND_NOT_FOUND);
    }

    #[test]
    fn the_same_rejection_again_is_not_news() {
        let r = bad(reason::ROUTE_CONFLICT);
        assert_eq!(transition(Some(&r), &r), None);
    }

    #[test]
    fn a_different_rejection_is_news() {
        let n = transition(
            Some(&bad(reason::ROUTE_CONFLICT)),
            &bad(reason::BACKEND_NOT_FOUND),
        );
        assert_eq!(n.unwrap().reason, reason::BACKEND_NOT_FOUND);
    }

    #[test]
    fn recovery_is_a_normal_event_but_being_ready_from_the_start_is_not() {
        let n = transition(Some(&bad(reason::ROUTE_CONFLICT)), &ok()).unwrap();
        assert!(!n.warning);
        assert_eq!(n.reason, reason::READY);
        assert_eq!(transition(None, &ok()), None);
        assert_eq!(transition(Some(&ok()), &ok()), None);
    }

    #[test]
    fn pending_credentials_are_not_a_warning() {
        assert_eq!(transition(None, &bad(reason::CREDENTIALS_PENDING)), None);
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let s = "é".repeat(600);
        let t = truncate(&s, 1024);
        assert!(t.len() <= 1024);
        assert!(t.ends_with("..."));
    }
}
