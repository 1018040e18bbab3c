//! Watches for the route sources beyond Gatehouse's own kinds (issue 10):
//! `OAuth2Policy` (with the other Gatehouse kinds' instance selector), `Ingress`
//! (always), `kubernetes.io/tls` Secrets (those routes name), and the Gateway API kinds
//! (`GatewayClass`, `Gateway`, `HTTPRoute`, `ReferenceGrant`) only when their CRDs are
//! installed — otherwise logged once and served as empty, and checked for again
//! periodically so that CRDs installed later are picked up without a restart.
//!
//! Kept apart from `run.rs` so the wiring there is four calls: spawn, synced, fill the
//! translate input, current status.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_crds::gateway_api::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use gatehouse_crds::OAuth2Policy;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::caches::Scope;
use super::metrics::Metrics;
use super::watch::{self as watching, Cache, Lenient};
use crate::translate::{Input, Kind, ObjectRef, Status};

/// Caches of the Gateway API, Ingress and OAuth2Policy sources.
pub struct SourceCaches {
    pub policies: Arc<Cache<OAuth2Policy>>,
    pub gateway_classes: Arc<Cache<GatewayClass>>,
    pub gateways: Arc<Cache<Gateway>>,
    pub http_routes: Arc<Cache<HttpRoute>>,
    pub reference_grants: Arc<Cache<ReferenceGrant>>,
    pub ingresses: Arc<Cache<Ingress>>,
    /// `kubernetes.io/tls` Secrets (the credentials watch sees only labelled ones).
    pub tls_secrets: Arc<Cache<Secret>>,
}

impl Default for SourceCaches {
    fn default() -> Self {
        SourceCaches {
            policies: Arc::new(Cache::new("OAuth2Policy")),
            gateway_classes: Arc::new(Cache::new("GatewayClass")),
            gateways: Arc::new(Cache::new("Gateway")),
            http_routes: Arc::new(Cache::new("HTTPRoute")),
            reference_grants: Arc::new(Cache::new("ReferenceGrant")),
            ingresses: Arc::new(Cache::new("Ingress")),
            tls_secrets: Arc::new(Cache::new("Secret (kubernetes.io/tls)")),
        }
    }
}

impl SourceCaches {
    pub fn synced(&self) -> bool {
        self.policies.is_synced()
            && self.gateway_classes.is_synced()
            && self.gateways.is_synced()
            && self.http_routes.is_synced()
            && self.reference_grants.is_synced()
            && self.ingresses.is_synced()
            && self.tls_secrets.is_synced()
    }

    /// Add these sources to the translate input.
    pub fn fill(&self, input: &mut Input) {
        input.policies = self.policies.list();
        input.gateway_classes = self.gateway_classes.list();
        input.gateways = self.gateways.list();
        input.http_routes = self.http_routes.list();
        input.reference_grants = self.reference_grants.list();
        input.ingresses = self.ingresses.list();
        // A labelled TLS Secret is in both watches: keep one copy.
        for s in self.tls_secrets.list() {
            let dup = input
                .secrets
                .iter()
                .any(|o| o.metadata.uid == s.metadata.uid);
            if !dup {
                input.secrets.push(s);
            }
        }
    }

    /// The status the cluster shows for `object`, where it can be compared.
    pub fn current_status(&self, object: &ObjectRef) -> Option<Status> {
        match object.kind {
            Kind::OAuth2Policy => self
                .policies
                .get(&object.namespace, &object.name)
                .filter(|p| p.metadata.uid == object.uid)
                .and_then(|p| p.status.clone().map(Status::OAuth2Policy)),
            // Gateway API and Ingress statuses are compared by their written form;
            // without a cached copy they are (re)written, which SSA makes idempotent.
            _ => None,
        }
    }

    /// Start the watchers. Gateway API kinds are watched only if their CRDs exist.
    pub fn spawn_watchers(
        &self,
        client: &Client,
        scope: &Scope,
        changes: &watch::Sender<u64>,
        metrics: &Arc<Metrics>,
        recheck: Duration,
    ) -> Vec<JoinHandle<()>> {
        let everything = watcher::Config::default().any_semantic();
        let ours = everything.clone().labels(&scope.selector());
        let tls = everything.clone().fields("type=kubernetes.io/tls");
        let mut tasks = vec![
            start(
                scope.api(client),
                ours,
                &self.policies,
                changes,
                metrics,
                None,
            ),
            start(
                scope.api(client),
                everything.clone(),
                &self.ingresses,
                changes,
                metrics,
                None,
            ),
            start(
                scope.api(client),
                tls,
                &self.tls_secrets,
                changes,
                metrics,
                None,
            ),
        ];
        // The Gateway API CRDs are the cluster's, not ours: watch them only if present.
        let probe = Probe {
            api: match &scope.namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            },
            recheck,
        };
        if scope.namespace.is_some() {
            // GatewayClass is cluster-scoped and a namespaced install has only a Role:
            // Gateways there cannot be accepted (their status says why).
            tracing::info!("Watching one namespace: GatewayClass is not watched");
            self.gateway_classes.mark_synced_empty();
        } else {
            tasks.push(start(
                Api::all(client.clone()),
                everything.clone(),
                &self.gateway_classes,
                changes,
                metrics,
                Some(probe.clone()),
            ));
        }
        tasks.push(start(
            scope.api(client),
            everything.clone(),
            &self.gateways,
            changes,
            metrics,
            Some(probe.clone()),
        ));
        tasks.push(start(
            scope.api(client),
            everything.clone(),
            &self.http_routes,
            changes,
            metrics,
            Some(probe.clone()),
        ));
        tasks.push(start(
            scope.api(client),
            everything,
            &self.reference_grants,
            changes,
            metrics,
            Some(probe),
        ));
        tasks
    }
}

/// Watch `cache`'s kind; with `probe`, first check that the Gateway API CRDs are
/// installed and, if not, serve the kind as empty (logged once, by the Gateway probe).
fn start<K>(
    api: Api<Lenient<K>>,
    config: watcher::Config,
    cache: &Arc<Cache<K>>,
    changes: &watch::Sender<u64>,
    metrics: &Arc<Metrics>,
    probe: Option<Probe>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let (cache, changes, metrics) = (cache.clone(), changes.clone(), metrics.clone());
    tokio::spawn(async move {
        if let Some(probe) = probe {
            if !gateway_api_installed(&probe.api).await {
                // Logged by the Gateway watcher only: once, not once per kind.
                let logs = cache.kind() == "Gateway";
                if logs {
                    tracing::info!(
                        recheck = ?probe.recheck,
                        "Gateway API CRDs are not installed; not watching GatewayClass, \
                         Gateway, HTTPRoute, ReferenceGrant until they are"
                    );
                }
                // Served as empty meanwhile, so the other kinds are not held up.
                cache.mark_synced_empty();
                changes.send_modify(|n| *n += 1);
                loop {
                    tokio::time::sleep(probe.recheck).await;
                    if gateway_api_installed(&probe.api).await {
                        break;
                    }
                }
                if logs {
                    tracing::info!("Gateway API CRDs are installed; watching their kinds");
                }
            }
        }
        watching::run(api, config, cache, changes, metrics).await;
    })
}

/// How to tell whether the Gateway API CRDs are installed, and how often to ask again
/// while they are not.
#[derive(Clone)]
struct Probe {
    api: Api<Gateway>,
    recheck: Duration,
}

async fn gateway_api_installed(probe: &Api<Gateway>) -> bool {
    loop {
        match probe.list(&ListParams::default().limit(1)).await {
            Ok(_) => return true,
            Err(kube::Error::Api(e)) if e.code == 404 => return false,
            Err(e) => {
                // Anything else (API server away, RBAC): try again rather than
                // decide the CRDs are absent.
                tracing::warn!(error = %e, "Cannot tell whether the Gateway API CRDs are installed");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            }
        }
    }
}
