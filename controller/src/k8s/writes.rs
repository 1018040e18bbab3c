//! The write phase of a pass: from translate's output and what the cluster shows,
//! decide which statuses, Secrets and Events to write ([`Writer::plan`]), then write
//! them if this replica leads ([`Writer::apply`]) or count them as dropped.
//!
//! Writes run with bounded concurrency and a timeout each, and every single write
//! checks leadership first, so a replica that just lost the Lease stops promptly.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use gatehouse_crds::conditions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::events::{self, Events, Notice};
use super::metrics::Metrics;
use super::secrets::{self, Created, Pending};
use super::status::{self, Written};
use crate::translate::{GeneratedSecret, ObjectRef, ObjectStatus, Output, Status};

/// Writes one pass wants to make.
#[derive(Debug, Default)]
pub struct Plan {
    /// Statuses to write, each with the Event its transition deserves.
    pub statuses: Vec<(ObjectStatus, Option<Notice>)>,
    /// Credentials Secrets to create.
    pub secrets: Vec<GeneratedSecret>,
}

impl Plan {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty() && self.secrets.is_empty()
    }

    fn events(&self) -> usize {
        self.statuses.iter().filter(|(_, n)| n.is_some()).count()
    }
}

/// What [`Writer::apply`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub statuses: usize,
    pub secrets: usize,
    pub events: usize,
    pub failures: usize,
}

/// The leader's hands: status, Secret and Event writes, with memory of what was sent.
pub struct Writer {
    client: Client,
    events: Events,
    written: Written,
    pending: Pending,
    timeout: Duration,
    concurrency: usize,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// `identity` is reported as the Events' `reportingInstance`.
    pub fn new(
        client: Client,
        identity: &str,
        timeout: Duration,
        concurrency: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Writer {
            events: Events::new(client.clone(), identity),
            client,
            written: Written::default(),
            pending: Pending::default(),
            timeout,
            concurrency: concurrency.max(1),
            metrics,
        }
    }

    /// Forget what was sent (resync, leadership change): the next plan compares
    /// with the cluster only.
    pub fn forget(&mut self) {
        self.written.forget();
        self.pending.forget();
    }

    /// Decide the writes for `output`, given `current`: the status the cluster shows
    /// for an object (`None` when it has none, or the object is gone).
    pub fn plan(
        &mut self,
        output: &Output,
        current: impl Fn(&ObjectRef) -> Option<Status>,
        now: Instant,
    ) -> Plan {
        let mut plan = Plan::default();
        for desired in &output.statuses {
            let object = &desired.object;
            let shown = current(object);
            if shown
                .as_ref()
                .is_some_and(|s| status::same(s, &desired.status))
            {
                self.written.settle(object);
                continue;
            }
            if self.written.already_sent(object, &desired.status) {
                continue;
            }
            // The last thing we said about it, else what the cluster shows.
            let previous = self.written.last(object).cloned().or(shown);
            let notice = events::transition(
                previous.as_ref().and_then(|s| ready(s.conditions())),
                desired.ready(),
            );
            plan.statuses.push((desired.clone(), notice));
        }
        self.pending.expire(now);
        plan.secrets = output
            .secrets_to_create
            .iter()
            .filter(|g| !self.pending.contains(g, now))
            .cloned()
            .collect();
        plan
    }

    /// Count `plan` as dropped (this replica does not lead).
    pub fn drop_plan(&self, plan: &Plan) {
        self.metrics.dropped("status", plan.statuses.len());
        self.metrics.dropped("secret", plan.secrets.len());
        self.metrics.dropped("event", plan.events());
    }

    /// Make the writes of `plan` while `leader` says so; writes skipped because
    /// leadership was lost midway are counted as dropped.
    pub async fn apply(
        &mut self,
        plan: Plan,
        leader: &watch::Receiver<bool>,
        now: Instant,
    ) -> Summary {
        let mut summary = Summary::default();
        let client = &self.client;
        let events = &self.events;
        let timeout = self.timeout;
        let metrics = &self.metrics;

        let status_results = futures::stream::iter(plan.statuses)
            .map(|(desired, notice)| async move {
                if !*leader.borrow() {
                    metrics.dropped("status", 1);
                    metrics.dropped("event", usize::from(notice.is_some()));
                    return (desired, None);
                }
                let result = status::apply(client, &desired, timeout).await;
                metrics.write("status", result.is_ok());
                let mut event_ok = None;
                match &result {
                    Ok(()) => {
                        if let Some(notice) = &notice {
                            let r = events.publish(&desired.object, notice, timeout).await;
                            metrics.write("event", r.is_ok());
                            if let Err(error) = &r {
                                tracing::warn!(%error, "Recording an Event failed");
                            }
                            event_ok = Some(r.is_ok());
                        }
                    }
                    Err(error) => tracing::warn!(%error, "Writing a status failed"),
                }
                (desired, Some((result.is_ok(), event_ok)))
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        for (desired, outcome) in status_results {
            match outcome {
                None => {}
                Some((true, event_ok)) => {
                    tracing::debug!(object = %desired.object, reason = %desired.ready().reason, "Status written");
                    summary.statuses += 1;
                    match event_ok {
                        Some(true) => summary.events += 1,
                        Some(false) => summary.failures += 1,
                        None => {}
                    }
                    self.written.record(&desired.object, desired.status);
                }
                Some((false, _)) => summary.failures += 1,
            }
        }

        let secret_results = futures::stream::iter(plan.secrets)
            .map(|generated| async move {
                if !*leader.borrow() {
                    metrics.dropped("secret", 1);
                    return (generated, None);
                }
                let secret = match secrets::to_secret(&generated) {
                    Ok(s) => s,
                    Err(reason) => {
                        tracing::warn!(object = %generated.owner, %reason, "Not generating credentials yet");
                        return (generated, None);
                    }
                };
                let result = secrets::create(client, &secret, timeout).await;
                metrics.write("secret", result.is_ok());
                let mut event_ok = None;
                match &result {
                    Ok(Created::Created) => {
                        tracing::info!(object = %generated.owner, secret = %generated.name, "Generated credentials Secret");
                        let notice = events::credentials_generated(&generated.name);
                        let r = events.publish(&generated.owner, &notice, timeout).await;
                        metrics.write("event", r.is_ok());
                        event_ok = Some(r.is_ok());
                    }
                    Ok(Created::AlreadyExists) => {
                        tracing::debug!(secret = %generated.name, "Credentials Secret exists already");
                    }
                    Err(error) => tracing::warn!(%error, "Creating a credentials Secret failed"),
                }
                (generated, Some((result.ok(), event_ok)))
            })
            .buffer_unordered(self.concurrency)
            .collect::<Vec<_>>()
            .await;
        for (generated, outcome) in secret_results {
            match outcome {
                None => {}
                Some((Some(created), event_ok)) => {
                    self.pending.record(&generated, now);
                    if created == Created::Created {
                        summary.secrets += 1;
                    }
                    match event_ok {
                        Some(true) => summary.events += 1,
                        Some(false) => summary.failures += 1,
                        None => {}
                    }
                }
                Some((None, _)) => summary.failures += 1,
            }
        }
        summary
    }
}

fn ready(conditions_: &[Condition]) -> Option<&Condition> {
    conditions::find(conditions_, conditions::READY)
}
