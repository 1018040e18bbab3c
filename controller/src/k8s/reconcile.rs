//! The re-translation loop ([`Controller`]). One pass: read every cache → read
//! unlabelled referenced Secrets → translate (on a blocking thread; it is pure and can
//! take a while for tens of thousands of objects) → if leading: publish the snapshot
//! when it changed, then write statuses, Secrets and Events; if not: count the writes as
//! dropped. Passes run after a change (debounced), on every resync, on becoming leader,
//! and to retry failures with backoff.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_config::publish::{Publication, Publisher};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::admin::Health;
use super::caches::{Caches, Scope};
use super::metrics::Metrics;
use super::referenced::{self, ReferencedSecrets};
use super::writes::Writer;
use crate::translate::{translate, Options};

/// Loop timing.
#[derive(Clone, Debug)]
pub struct Timing {
    pub debounce: Duration,
    pub resync: Duration,
    pub missing_secret_retry: Duration,
}

/// Retry delays after a failed publish or write: 1 s doubling up to 30 s.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The re-translation loop and its state.
pub struct Controller {
    pub(super) client: Client,
    pub(super) scope: Scope,
    pub(super) timing: Timing,
    pub(super) caches: Arc<Caches>,
    pub(super) publisher: Publisher,
    pub(super) writer: Writer,
    pub(super) referenced: ReferencedSecrets,
    /// Watches of the ConfigMaps named as CA bundles.
    pub(super) config_maps: super::configmaps::ReferencedConfigMaps,
    /// Bound on waiting for a newly watched ConfigMap's first list.
    pub(super) config_map_wait: Duration,
    pub(super) leader: watch::Receiver<bool>,
    pub(super) health: Arc<Health>,
    pub(super) metrics: Arc<Metrics>,
    /// Revision of the last translated snapshot (to count dropped publishes).
    pub(super) last_revision: Option<String>,
    /// Seals `oauth2.login` client secrets (see translate::Options).
    pub(super) login_key: Option<gatehouse_config::seal::LoginKey>,
    /// Whether the `oauth2.login` providers answer (`IssuerUnreachable`).
    pub(super) issuers: crate::issuers::IssuerProbe,
    /// `--ingress-class`.
    pub(super) ingress_class: String,
    /// `--ingress-status-address`, as Ingress status entries.
    pub(super) load_balancer: Vec<k8s_openapi::api::networking::v1::IngressLoadBalancerIngress>,
    /// `--publish-service`: the proxy Service whose addresses go into Ingress and
    /// Gateway status (instead of `load_balancer`).
    pub(super) publish_service: Option<(String, String)>,
    /// `--gateway-class`: served on trust while GatewayClasses cannot be read.
    pub(super) gateway_class: String,
    /// Last good version of each object (see `translate::LastGood`); empty at start.
    pub(super) last_good: crate::translate::LastGood,
}

/// What a pass asks of the next one.
struct PassOutcome {
    failed: bool,
    missing_secrets: bool,
    /// Some identity provider did not answer: check again after this long.
    issuer_retry: Option<Duration>,
}

impl Controller {
    /// Run passes until `shutdown` turns true.
    pub async fn run(
        mut self,
        mut changes: watch::Receiver<u64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut next_resync = Instant::now() + self.timing.resync;
        let mut force = true;
        let mut due = true;
        let mut retry_delay = RETRY_MIN;
        let mut retry_at: Option<Instant> = None;
        loop {
            if !due {
                let retry = async {
                    match retry_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    _ = tokio::time::sleep_until(next_resync) => force = true,
                    became = leader_changed(&mut self.leader) => {
                        if !became {
                            continue;
                        }
                        force = true;
                    }
                    _ = retry => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
            // Let a burst of changes settle into one pass.
            tokio::select! {
                _ = tokio::time::sleep(self.timing.debounce) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            changes.borrow_and_update();
            due = false;
            if !self.caches.synced() {
                // The watcher that completes its list bumps `changes`.
                continue;
            }
            if force {
                self.writer.forget();
                self.publisher.forget();
                self.referenced.forget();
                next_resync = Instant::now() + self.timing.resync;
                force = false;
            }
            let outcome = self.pass().await;
            retry_at = None;
            if outcome.failed {
                retry_at = Some(Instant::now() + retry_delay);
                retry_delay = (retry_delay * 2).min(RETRY_MAX);
            } else {
                retry_delay = RETRY_MIN;
            }
            if outcome.missing_secrets {
                let at = Instant::now() + self.timing.missing_secret_retry;
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
            }
            if let Some(after) = outcome.issuer_retry {
                let at = Instant::now() + after;
                retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
            }
        }
    }

    async fn pass(&mut self) -> PassOutcome {
        let now = Instant::now();
        let mut input = self.caches.input();
        let wanted = referenced::referenced(&input);
        let unlabelled = self
            .referenced
            .resolve(&self.client, &wanted, &self.caches.secrets, now)
            .await;
        input.secrets.extend(unlabelled);
        let ca_maps = super::configmaps::referenced(&input);
        self.config_maps
            .update(&self.client, &ca_maps, self.config_map_wait)
            .await;
        input.config_maps = self.config_maps.list();
        input.last_good = std::mem::take(&mut self.last_good);

        let mut options = Options::cluster(Time(Timestamp::now()));
        options.instance = self.scope.instance.clone();
        options.login_key = self.login_key.clone();
        options.ingress_class = self.ingress_class.clone();
        options.load_balancer = match &self.publish_service {
            Some((ns, name)) => self
                .caches
                .services
                .get(ns, name)
                .map(|s| super::publish_service::addresses(&s))
                .unwrap_or_default(),
            None => self.load_balancer.clone(),
        };
        options.assumed_gateway_class = Some(self.gateway_class.clone())
            .filter(|c| !c.is_empty() && self.caches.sources.classes_unreadable());
        options.unreachable_issuers = self
            .issuers
            .unreachable(&crate::issuers::issuers_of(&input))
            .await;
        let started = std::time::Instant::now();
        let mut output =
            tokio::task::spawn_blocking(move || translate(&input, &options, &mut rand::rng()))
                .await
                .expect("translate is pure and does not panic");
        self.last_good = std::mem::take(&mut output.last_good);
        let not_ready = output.not_ready().count();
        self.metrics.translated(
            started.elapsed().as_secs_f64(),
            not_ready,
            output.held.len(),
        );
        let revision = output.snapshot.revision.clone();
        tracing::debug!(
            %revision,
            routes = output.snapshot.routes.len(),
            clients = output.snapshot.clients.len(),
            not_ready,
            held = output.held.len(),
            "Translated"
        );

        let leading = *self.leader.borrow();
        let mut failed = false;
        if leading {
            match self.publisher.publish(&output.snapshot).await {
                Ok(Publication::Published { version }) => {
                    self.metrics.published("updated");
                    tracing::info!(
                        %revision,
                        version,
                        routes = output.snapshot.routes.len(),
                        clients = output.snapshot.clients.len(),
                        "Published snapshot"
                    );
                }
                Ok(Publication::Unchanged { .. }) => self.metrics.published("unchanged"),
                Err(error) => {
                    self.metrics.published("error");
                    tracing::warn!(%error, "Publishing the snapshot failed; will retry");
                    failed = true;
                }
            }
        } else if self.last_revision.as_deref() != Some(revision.as_str()) {
            self.metrics.dropped("snapshot", 1);
        }
        self.last_revision = Some(revision.clone());

        let caches = self.caches.clone();
        let plan = self.writer.plan(&output, |o| caches.current_status(o), now);
        if leading {
            if !plan.is_empty() {
                let summary = self.writer.apply(plan, &self.leader, now).await;
                tracing::debug!(?summary, "Wrote");
                failed |= summary.failures > 0;
            }
        } else {
            self.writer.drop_plan(&plan);
        }
        self.health.passed(&revision);
        PassOutcome {
            failed,
            missing_secrets: self.referenced.any_missing(),
            issuer_retry: self.issuers.retry_after(),
        }
    }
}

/// Resolves when leadership changes, with the new value; never when the elector is
/// gone (shutdown is handled separately).
async fn leader_changed(leader: &mut watch::Receiver<bool>) -> bool {
    match leader.changed().await {
        Ok(()) => *leader.borrow_and_update(),
        Err(_) => std::future::pending().await,
    }
}
