//! Wiring of `gatehouse controller`: start-up checks, watchers, the debounced
//! re-translation loop, leader election, admin listener, and graceful shutdown.
//!
//! One pass: read every cache → read unlabelled referenced Secrets → translate (on a
//! blocking thread; it is pure and can take a while for tens of thousands of objects)
//! → if leading: publish the snapshot when it changed, then write statuses, Secrets and
//! Events; if not: count the writes as dropped. Passes run after a change (debounced),
//! on every resync, on becoming leader, and to retry failures with backoff.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gatehouse_config::publish::{Publication, Publisher};
use gatehouse_crds::{Consumer, OAuth2Client, ProtectedRoute};
use gatehouse_proxy::cli::shutdown_signal;
use gatehouse_proxy::store::args::StoreArgs;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DynamicObject, ListParams};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use prometheus_client::registry::Registry;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::admin::{self, Health};
use super::args::ControllerArgs;
use super::lease::{default_identity, Elector, LeaseConfig};
use super::metrics::Metrics;
use super::referenced::{self, ReferencedSecrets};
use super::status::api_resource;
use super::watch::{self as watching, Cache, Lenient};
use super::writes::Writer;
use super::{api_code, Error, Result, CREDENTIALS_LABEL};
use crate::translate::{translate, Input, Kind, ObjectRef, Options, Status, INSTANCE_LABEL};

/// Which objects this controller looks at.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Instance name (label [`INSTANCE_LABEL`]); `None` handles unlabelled objects.
    pub instance: Option<String>,
}

impl Scope {
    /// Label selector for the three Gatehouse kinds.
    pub fn selector(&self) -> String {
        match &self.instance {
            Some(name) => format!("{INSTANCE_LABEL}={name}"),
            None => format!("!{INSTANCE_LABEL}"),
        }
    }

    pub(crate) fn api<K>(&self, client: &Client) -> Api<Lenient<K>>
    where
        K: Resource<Scope = NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
}

/// The caches of everything translate reads.
pub struct Caches {
    pub consumers: Arc<Cache<Consumer>>,
    pub clients: Arc<Cache<OAuth2Client>>,
    pub routes: Arc<Cache<ProtectedRoute>>,
    pub secrets: Arc<Cache<Secret>>,
    pub services: Arc<Cache<Service>>,
    pub endpoint_slices: Arc<Cache<EndpointSlice>>,
    /// Gateway API, Ingress, OAuth2Policy and TLS Secrets (issue 10).
    pub sources: super::sources::SourceCaches,
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            consumers: Arc::new(Cache::new("Consumer")),
            clients: Arc::new(Cache::new("OAuth2Client")),
            routes: Arc::new(Cache::new("ProtectedRoute")),
            secrets: Arc::new(Cache::new("Secret")),
            services: Arc::new(Cache::new("Service")),
            endpoint_slices: Arc::new(Cache::new("EndpointSlice")),
            sources: Default::default(),
        }
    }
}

impl Caches {
    /// Whether every watch has completed its initial list (before that, a snapshot
    /// would be missing objects and publishing it would cut traffic).
    pub fn synced(&self) -> bool {
        self.consumers.is_synced()
            && self.clients.is_synced()
            && self.routes.is_synced()
            && self.secrets.is_synced()
            && self.services.is_synced()
            && self.endpoint_slices.is_synced()
            && self.sources.synced()
    }

    /// The translate input: every cached object.
    pub fn input(&self) -> Input {
        let mut input = Input {
            consumers: self.consumers.list(),
            clients: self.clients.list(),
            routes: self.routes.list(),
            secrets: self.secrets.list(),
            services: self.services.list(),
            endpoint_slices: self.endpoint_slices.list(),
            ..Input::default()
        };
        self.sources.fill(&mut input);
        input
    }

    /// The status the cluster shows for `object` (same uid), if any.
    pub fn current_status(&self, object: &ObjectRef) -> Option<Status> {
        fn same_uid<K: Resource>(k: &K, o: &ObjectRef) -> bool {
            k.meta().uid == o.uid
        }
        let (ns, name) = (&object.namespace, &object.name);
        match object.kind {
            Kind::Consumer => self
                .consumers
                .get(ns, name)
                .filter(|k| same_uid(&**k, object))
                .and_then(|k| k.status.clone().map(Status::Consumer)),
            Kind::OAuth2Client => self
                .clients
                .get(ns, name)
                .filter(|k| same_uid(&**k, object))
                .and_then(|k| k.status.clone().map(Status::OAuth2Client)),
            Kind::ProtectedRoute => self
                .routes
                .get(ns, name)
                .filter(|k| same_uid(&**k, object))
                .and_then(|k| k.status.clone().map(Status::ProtectedRoute)),
            _ => self.sources.current_status(object),
        }
    }

    /// Start one watcher per kind. They run until aborted.
    pub fn spawn_watchers(
        &self,
        client: &Client,
        scope: &Scope,
        changes: watch::Sender<u64>,
        metrics: Arc<Metrics>,
    ) -> Vec<JoinHandle<()>> {
        let ours = watcher::Config::default()
            .labels(&scope.selector())
            .any_semantic();
        let credentials = watcher::Config::default()
            .labels(CREDENTIALS_LABEL)
            .any_semantic();
        let everything = watcher::Config::default().any_semantic();
        let mut tasks = self
            .sources
            .spawn_watchers(client, scope, &changes, &metrics);
        tasks.extend([
            spawn(
                scope.api(client),
                ours.clone(),
                &self.consumers,
                &changes,
                &metrics,
            ),
            spawn(
                scope.api(client),
                ours.clone(),
                &self.clients,
                &changes,
                &metrics,
            ),
            spawn(scope.api(client), ours, &self.routes, &changes, &metrics),
            spawn(
                scope.api(client),
                credentials,
                &self.secrets,
                &changes,
                &metrics,
            ),
            spawn(
                scope.api(client),
                everything.clone(),
                &self.services,
                &changes,
                &metrics,
            ),
            spawn(
                scope.api(client),
                everything,
                &self.endpoint_slices,
                &changes,
                &metrics,
            ),
        ]);
        tasks
    }
}

fn spawn<K>(
    api: Api<Lenient<K>>,
    config: watcher::Config,
    cache: &Arc<Cache<K>>,
    changes: &watch::Sender<u64>,
    metrics: &Arc<Metrics>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(watching::run(
        api,
        config,
        cache.clone(),
        changes.clone(),
        metrics.clone(),
    ))
}

/// Exit with an install hint when the CRDs are missing (instead of watching nothing
/// and retrying forever), and with an RBAC hint when they may not be read.
pub async fn check_crds(client: &Client, namespace: Option<&str>) -> Result<()> {
    let mut missing = Vec::new();
    for kind in [
        Kind::Consumer,
        Kind::OAuth2Client,
        Kind::ProtectedRoute,
        Kind::OAuth2Policy,
    ] {
        let ar = api_resource(kind);
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let resource = format!("{}.{}", ar.plural, ar.group);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(e) if api_code(&e) == Some(404) => missing.push(resource),
            Err(e) if api_code(&e) == Some(403) => {
                let message = match e {
                    kube::Error::Api(s) => s.message,
                    other => other.to_string(),
                };
                return Err(Error::Forbidden { resource, message });
            }
            Err(source) => {
                return Err(Error::Api {
                    action: "checking that the Gatehouse CRDs are installed".into(),
                    source,
                })
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::CrdsMissing {
            missing: missing.join(", "),
        })
    }
}

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
    client: Client,
    scope: Scope,
    timing: Timing,
    caches: Arc<Caches>,
    publisher: Publisher,
    writer: Writer,
    referenced: ReferencedSecrets,
    leader: watch::Receiver<bool>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    /// Revision of the last translated snapshot (to count dropped publishes).
    last_revision: Option<String>,
    /// Seals `oauth2.login` client secrets (see translate::Options).
    login_key: Option<gatehouse_config::seal::LoginKey>,
    /// `--ingress-class`.
    ingress_class: String,
    /// `--ingress-status-address`, as Ingress status entries.
    load_balancer: Vec<k8s_openapi::api::networking::v1::IngressLoadBalancerIngress>,
}

/// What a pass asks of the next one.
struct PassOutcome {
    failed: bool,
    missing_secrets: bool,
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

        let mut options = Options::cluster(Time(Timestamp::now()));
        options.instance = self.scope.instance.clone();
        options.login_key = self.login_key.clone();
        options.ingress_class = self.ingress_class.clone();
        options.load_balancer = self.load_balancer.clone();
        let started = std::time::Instant::now();
        let output =
            tokio::task::spawn_blocking(move || translate(&input, &options, &mut rand::rng()))
                .await
                .expect("translate is pure and does not panic");
        let not_ready = output.not_ready().count();
        self.metrics
            .translated(started.elapsed().as_secs_f64(), not_ready);
        let revision = output.snapshot.revision.clone();
        tracing::debug!(
            %revision,
            routes = output.snapshot.routes.len(),
            clients = output.snapshot.clients.len(),
            not_ready,
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

/// `gatehouse controller`: run until SIGTERM/SIGINT, then stop writing, release the
/// Lease and exit.
pub async fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let lease = LeaseConfig {
        name: args.lease_name(),
        namespace: args.lease_namespace.clone(),
        identity: args.lease_identity.clone().unwrap_or_else(default_identity),
        lease_duration: args.lease_duration,
        renew_deadline: args.lease_renew_deadline,
        retry_period: args.lease_retry_period,
    };
    lease
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid Lease timing: {e}"))?;
    let redis = StoreArgs {
        redis_username: args.redis_username.clone(),
        redis_password: args.redis_password.clone(),
        redis_ca_file: args.redis_ca_file.clone(),
        redis_timeout: args.redis_timeout,
        ..StoreArgs::default()
    }
    .target_for(&args.redis)
    .context("--redis")?;
    let publisher = Publisher::new(&redis, &args.redis_prefix).map_err(Error::Redis)?;

    let client = kube_client(&args).await?;
    check_crds(&client, args.namespace.as_deref()).await?;

    let mut registry = Registry::with_prefix("gatehouse_controller");
    let metrics = Arc::new(Metrics::register(&mut registry));
    let (leader_tx, leader_rx) = watch::channel(false);
    // Two stop signals: the loop (and admin) stop first, the elector after the loop
    // has finished its last writes, so no write can follow the Lease release.
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    let health = Arc::new(Health::new(leader_rx.clone()));

    let listener = tokio::net::TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener to {}", args.admin_listen))?;
    tracing::info!(addr = %listener.local_addr()?, "Admin listening");
    let admin = tokio::spawn(admin::serve(
        listener,
        health.clone(),
        Arc::new(registry),
        shutdown_rx.clone(),
    ));

    let scope = Scope {
        namespace: args.namespace.clone(),
        instance: args.instance.clone(),
    };
    tracing::info!(
        namespace = scope.namespace.as_deref().unwrap_or("<all>"),
        selector = %scope.selector(),
        redis = %redis.describe(),
        lease = %format!("{}/{}", lease.namespace, lease.name),
        identity = %lease.identity,
        "Starting controller"
    );
    let caches = Arc::new(Caches::default());
    let (changes_tx, changes_rx) = watch::channel(0u64);
    let watchers = caches.spawn_watchers(&client, &scope, changes_tx, metrics.clone());
    let identity = lease.identity.clone();
    let elector = tokio::spawn(Elector::new(client.clone(), lease).run(
        leader_tx,
        release_rx,
        metrics.clone(),
    ));
    let controller = Controller {
        writer: Writer::new(
            client.clone(),
            &identity,
            args.write_timeout,
            args.write_concurrency,
            metrics.clone(),
        ),
        referenced: ReferencedSecrets::new(args.missing_secret_retry, args.write_timeout),
        client,
        scope,
        login_key: args
            .login_key_file
            .as_deref()
            .map(gatehouse_config::seal::LoginKey::from_file)
            .transpose()
            .context("--login-key-file")?,
        ingress_class: args.ingress_class.clone(),
        load_balancer: args
            .ingress_status_address
            .iter()
            .map(|a| {
                let ip = a.parse::<std::net::IpAddr>().is_ok();
                k8s_openapi::api::networking::v1::IngressLoadBalancerIngress {
                    ip: ip.then(|| a.clone()),
                    hostname: (!ip).then(|| a.clone()),
                    ..Default::default()
                }
            })
            .collect(),
        timing: Timing {
            debounce: args.debounce,
            resync: args.resync,
            missing_secret_retry: args.missing_secret_retry,
        },
        caches,
        publisher,
        leader: leader_rx,
        health,
        metrics,
        last_revision: None,
    };
    let mut main = tokio::spawn(controller.run(changes_rx, shutdown_rx));

    // A loop that stops on its own is a bug: fail fast (after releasing the Lease).
    let crashed = tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            None
        }
        result = &mut main => Some(result),
    };
    tracing::info!("Shutting down");
    shutdown_tx.send_replace(true);
    if crashed.is_none() {
        let _ = main.await;
    }
    release_tx.send_replace(true);
    let _ = elector.await;
    for w in &watchers {
        w.abort();
    }
    let _ = admin.await;
    if let Some(result) = crashed {
        anyhow::bail!("the controller loop stopped unexpectedly: {result:?}");
    }
    tracing::info!("Stopped");
    Ok(())
}

/// A client from `--kubeconfig`, else the usual inference (in-cluster service account,
/// `$KUBECONFIG`, `~/.kube/config`).
async fn kube_client(args: &ControllerArgs) -> anyhow::Result<Client> {
    let Some(path) = &args.kubeconfig else {
        return Client::try_default().await.context(
            "connecting to the Kubernetes API (in-cluster service account or KUBECONFIG)",
        );
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading --kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .with_context(|| format!("loading --kubeconfig {}", path.display()))?;
    Client::try_from(config).context("building the Kubernetes client")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_selects_by_label_and_no_instance_selects_unlabelled() {
        let s = Scope {
            namespace: None,
            instance: Some("blue".into()),
        };
        assert_eq!(s.selector(), "gatehouse.dev/instance=blue");
        assert_eq!(Scope::default().selector(), "!gatehouse.dev/instance");
    }
}
