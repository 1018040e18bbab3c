//! The in-memory caches of everything translate reads (one watcher per kind, filtered
//! by [`Scope`]), and what the loop asks of them: are they synced, the translate
//! input, the status the cluster shows for an object.

use std::sync::Arc;

use gatehouse_crds::{Consumer, OAuth2Client, ProtectedRoute};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::watch::{self as watching, Cache, Lenient};
use super::CREDENTIALS_LABEL;
use crate::translate::{Input, Kind, ObjectRef, Status, INSTANCE_LABEL};

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
    /// Gateway API, Ingress, OAuth2Policy and TLS Secrets.
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

    /// Start one watcher per kind. They run until aborted. Gateway API kinds whose
    /// CRDs are missing are checked for again every `gateway_api_recheck`.
    pub fn spawn_watchers(
        &self,
        client: &Client,
        scope: &Scope,
        changes: watch::Sender<u64>,
        metrics: Arc<Metrics>,
        gateway_api_recheck: std::time::Duration,
    ) -> Vec<JoinHandle<()>> {
        let ours = watcher::Config::default()
            .labels(&scope.selector())
            .any_semantic();
        let credentials = watcher::Config::default()
            .labels(CREDENTIALS_LABEL)
            .any_semantic();
        let everything = watcher::Config::default().any_semantic();
        let mut tasks =
            self.sources
                .spawn_watchers(client, scope, &changes, &metrics, gateway_api_recheck);
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
