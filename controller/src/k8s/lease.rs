//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several controller
//! replicas only one writes (snapshot, statuses, Secrets, Events).
//!
//! The algorithm is client-go's `leaderelection` (what kube-controller-manager uses):
//! - every update is a `PUT` carrying the `resourceVersion` that was read, so of two
//!   replicas racing for the Lease exactly one wins (the other gets 409 Conflict);
//! - a Lease held by someone else counts as expired only after `leaseDurationSeconds`
//!   have passed *on our own monotonic clock* since we last saw its record change. We
//!   never compare another node's `renewTime` with our wall clock, so clock skew
//!   between nodes cannot create two leaders;
//! - the leader stops leading when it has not renewed for `renew_deadline` (shorter than
//!   the lease duration), i.e. before anyone else may take over;
//! - on shutdown the leader releases the Lease (clears the holder) so a standby takes
//!   over at once instead of waiting for expiry.
//!
//! The time-dependent step, [`Elector::try_acquire_or_renew`], takes the current time
//! as arguments, so tests drive it with any clock.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::{api_code, Error, Result, FIELD_MANAGER};

/// Lease timing and identity.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (`holderIdentity`), unique per process.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// The leader stops writing when it could not renew for this long.
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Check the timing makes sense (client-go's rules, plus whole seconds for the
    /// Lease field).
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.lease_duration < Duration::from_secs(1) {
            return Err("lease duration must be at least 1s".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err("renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("retry period must be positive and shorter than the renew deadline".into());
        }
        if self.identity.is_empty() {
            return Err("lease identity must not be empty".into());
        }
        Ok(())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// The parts of a Lease record whose change means "the holder is alive".
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Record {
        let spec = lease.spec.clone().unwrap_or_default();
        Record {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
        }
    }
}

/// One replica's view of the Lease.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The record last read and when (our clock) it was first seen.
    observed: Option<(Record, Instant)>,
    /// The Lease as last read or written by us (its resourceVersion guards updates).
    last: Option<Lease>,
}

impl Elector {
    /// An elector for `config` (not yet holding anything).
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            last: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One attempt to become or stay leader at local time `now` (wall time `wall` is
    /// what gets written into the Lease). `Ok(true)`: we hold the Lease now.
    pub async fn try_acquire_or_renew(&mut self, now: Instant, wall: Timestamp) -> Result<bool> {
        let action = || {
            format!(
                "leader election on Lease {}/{}",
                self.config.namespace, self.config.name
            )
        };
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return self.create(now, wall).await,
            Err(source) => {
                return Err(Error::Api {
                    action: action(),
                    source,
                })
            }
        };
        let record = Record::of(&current);
        if self.observed.as_ref().map(|(r, _)| r) != Some(&record) {
            self.observed = Some((record.clone(), now));
        }
        let me = self.config.identity.as_str();
        let held_by_other = record.holder.as_deref().is_some_and(|h| h != me);
        if held_by_other {
            let seen_at = self.observed.as_ref().map(|(_, at)| *at).unwrap_or(now);
            let duration = record
                .duration_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or(self.config.lease_duration);
            if now < seen_at + duration {
                self.last = Some(current);
                return Ok(false);
            }
        }

        let renewing = record.holder.as_deref() == Some(me);
        let spec = LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(self.config.duration_seconds()),
            acquire_time: if renewing {
                record.acquire_time.clone()
            } else {
                Some(MicroTime(wall))
            },
            renew_time: Some(MicroTime(wall)),
            // Counts changes of holder, as client-go does.
            lease_transitions: Some(record.transitions.unwrap_or(0) + if renewing { 0 } else { 1 }),
            ..current.spec.clone().unwrap_or_default()
        };
        let updated = Lease {
            metadata: current.metadata.clone(),
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.config.name, &post_params(), &updated)
            .await
        {
            Ok(lease) => {
                self.observed = Some((Record::of(&lease), now));
                self.last = Some(lease);
                Ok(true)
            }
            // Someone else wrote first; they won this round.
            Err(e) if api_code(&e) == Some(409) => Ok(false),
            Err(source) => Err(Error::Api {
                action: action(),
                source,
            }),
        }
    }

    async fn create(&mut self, now: Instant, wall: Timestamp) -> Result<bool> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.duration_seconds()),
                acquire_time: Some(MicroTime(wall)),
                renew_time: Some(MicroTime(wall)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&post_params(), &lease).await {
            Ok(lease) => {
                self.observed = Some((Record::of(&lease), now));
                self.last = Some(lease);
                Ok(true)
            }
            Err(e) if api_code(&e) == Some(409) => Ok(false),
            Err(source) => Err(Error::Api {
                action: format!(
                    "creating Lease {}/{}",
                    self.config.namespace, self.config.name
                ),
                source,
            }),
        }
    }

    /// Give the Lease up if we hold it: clear the holder and shorten the duration so a
    /// standby can take over immediately. A conflict means someone else holds it now,
    /// which is fine too.
    pub async fn release(&mut self, wall: Timestamp) -> Result<()> {
        let Some(last) = self.last.take() else {
            return Ok(());
        };
        let record = Record::of(&last);
        if record.holder.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        let released = Lease {
            metadata: last.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(MicroTime(wall)),
                renew_time: Some(MicroTime(wall)),
                lease_transitions: record.transitions,
                ..last.spec.clone().unwrap_or_default()
            }),
        };
        match self
            .api
            .replace(&self.config.name, &post_params(), &released)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(409) => Ok(()),
            Err(source) => Err(Error::Api {
                action: format!(
                    "releasing Lease {}/{}",
                    self.config.namespace, self.config.name
                ),
                source,
            }),
        }
    }

    /// Elect until `shutdown` turns true, publishing leadership on `leader`; then
    /// stop leading and release the Lease.
    pub async fn run(
        mut self,
        leader: watch::Sender<bool>,
        mut shutdown: watch::Receiver<bool>,
        metrics: std::sync::Arc<Metrics>,
    ) {
        let attempt_timeout = self.config.renew_deadline / 2;
        // When we last renewed successfully (start of that attempt).
        let mut renewed: Option<Instant> = None;
        let set = |leading: bool| {
            metrics.set_leader(leading);
            leader.send_if_modified(|l| std::mem::replace(l, leading) != leading);
        };
        loop {
            let now = Instant::now();
            let attempt = tokio::time::timeout(
                attempt_timeout,
                self.try_acquire_or_renew(now, Timestamp::now()),
            )
            .await;
            match attempt {
                Ok(Ok(true)) => {
                    if renewed.is_none() {
                        tracing::info!(
                            lease = %self.config.name,
                            identity = %self.config.identity,
                            "Became leader"
                        );
                    }
                    renewed = Some(now);
                    set(true);
                }
                Ok(Ok(false)) => {
                    if renewed.take().is_some() {
                        tracing::warn!(lease = %self.config.name, "Lost the Lease to another replica");
                    }
                    set(false);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Leader election attempt failed");
                    self.step_down_if_late(&mut renewed, now, &set);
                }
                Err(_) => {
                    tracing::warn!(timeout = ?attempt_timeout, "Leader election attempt timed out");
                    self.step_down_if_late(&mut renewed, now, &set);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        // Stop writing first, then let a standby take over at once.
        set(false);
        if renewed.is_some() {
            match tokio::time::timeout(attempt_timeout, self.release(Timestamp::now())).await {
                Ok(Ok(())) => tracing::info!(lease = %self.config.name, "Released the Lease"),
                Ok(Err(error)) => tracing::warn!(%error, "Releasing the Lease failed"),
                Err(_) => tracing::warn!("Releasing the Lease timed out"),
            }
        }
    }

    fn step_down_if_late(&self, renewed: &mut Option<Instant>, now: Instant, set: &impl Fn(bool)) {
        if let Some(at) = *renewed {
            if now.duration_since(at) >= self.config.renew_deadline {
                tracing::warn!(
                    lease = %self.config.name,
                    deadline = ?self.config.renew_deadline,
                    "Could not renew the Lease in time; stopping writes"
                );
                *renewed = None;
                set(false);
            }
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    }
}

/// A unique identity for this process: `<pod or host name>_<random>`, so a restarted
/// pod is a new holder and never mistakes a dead predecessor's Lease for its own.
pub fn default_identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "gatehouse".to_owned());
    let mut suffix = [0u8; 4];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut suffix);
    format!("{host}_{}", hex::encode(suffix))
}
