//! Watches for the route sources beyond Gatehouse's own kinds (issue 10):
//! `OAuth2Policy` (with the other Gatehouse kinds' instance selector), `Ingress`
//! (always), `kubernetes.io/tls` Secrets (those routes name), and the Gateway API kinds
//! (`GatewayClass`, `Gateway`, `HTTPRoute`, `ReferenceGrant`, `BackendTLSPolicy`) only
//! when their CRDs are
//! installed — otherwise logged once and served as empty, and checked for again
//! periodically so that CRDs installed later are picked up without a restart.
//!
//! Kept apart from `run.rs` so the wiring there is four calls: spawn, synced, fill the
//! translate input, current status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_crds::gateway_api::{
    BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant,
};
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
    pub backend_tls_policies: Arc<Cache<BackendTlsPolicy>>,
    pub ingresses: Arc<Cache<Ingress>>,
    /// `kubernetes.io/tls` Secrets (the credentials watch sees only labelled ones).
    pub tls_secrets: Arc<Cache<Secret>>,
    /// GatewayClasses cannot be read (namespaced install, no RBAC, no CRD): Gateways
    /// of `--gateway-class` are then served on trust.
    classes_unreadable: Arc<AtomicBool>,
}

impl Default for SourceCaches {
    fn default() -> Self {
        SourceCaches {
            policies: Arc::new(Cache::new("OAuth2Policy")),
            gateway_classes: Arc::new(Cache::new("GatewayClass")),
            gateways: Arc::new(Cache::new("Gateway")),
            http_routes: Arc::new(Cache::new("HTTPRoute")),
            reference_grants: Arc::new(Cache::new("ReferenceGrant")),
            backend_tls_policies: Arc::new(Cache::new("BackendTLSPolicy")),
            ingresses: Arc::new(Cache::new("Ingress")),
            tls_secrets: Arc::new(Cache::new("Secret (kubernetes.io/tls)")),
            classes_unreadable: Arc::new(AtomicBool::new(false)),
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
            && self.backend_tls_policies.is_synced()
            && self.ingresses.is_synced()
            && self.tls_secrets.is_synced()
    }

    /// Whether GatewayClasses cannot be read (see `Options::assumed_gateway_class`).
    pub fn classes_unreadable(&self) -> bool {
        self.classes_unreadable.load(Ordering::Relaxed)
    }

    /// Add these sources to the translate input.
    pub fn fill(&self, input: &mut Input) {
        input.policies = self.policies.list();
        input.gateway_classes = self.gateway_classes.list();
        input.gateways = self.gateways.list();
        input.http_routes = self.http_routes.list();
        input.reference_grants = self.reference_grants.list();
        input.backend_tls_policies = self.backend_tls_policies.list();
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
                None,
            ),
            start(
                scope.api(client),
                everything.clone(),
                &self.ingresses,
                changes,
                metrics,
                None,
                None,
            ),
            start(
                scope.api(client),
                tls,
                &self.tls_secrets,
                changes,
                metrics,
                None,
                None,
            ),
        ];
        // The Gateway API CRDs are the cluster's, not ours: watch them only if present
        // (and readable), checking again every `recheck` until they are.
        let probe = Some(recheck);
        if scope.namespace.is_some() {
            // GatewayClass is cluster-scoped and a namespaced install has only a Role.
            tracing::info!(
                "Watching one namespace: GatewayClass (cluster-scoped) is not read; \
                 Gateways of the --gateway-class class are served as Gatehouse's"
            );
            self.classes_unreadable.store(true, Ordering::Relaxed);
            self.gateway_classes.mark_synced_empty();
        } else {
            tasks.push(start(
                Api::all(client.clone()),
                everything.clone(),
                &self.gateway_classes,
                changes,
                metrics,
                probe,
                Some(self.classes_unreadable.clone()),
            ));
        }
        tasks.push(start(
            scope.api(client),
            everything.clone(),
            &self.gateways,
            changes,
            metrics,
            probe,
            None,
        ));
        tasks.push(start(
            scope.api(client),
            everything.clone(),
            &self.http_routes,
            changes,
            metrics,
            probe,
            None,
        ));
        tasks.push(start(
            scope.api(client),
            everything.clone(),
            &self.reference_grants,
            changes,
            metrics,
            probe,
            None,
        ));
        // Standard channel since Gateway API v1.4; an older install lacks its CRD
        // (404): served as empty, checked again like the others.
        tasks.push(start(
            scope.api(client),
            everything,
            &self.backend_tls_policies,
            changes,
            metrics,
            probe,
            None,
        ));
        tasks
    }
}

/// Watch `cache`'s kind. With `recheck` (the Gateway API kinds), first make sure the
/// kind can be listed: while its CRD is missing (404) or RBAC refuses it (403), serve
/// it as empty (so the other kinds are not held up), say so once, set `unreadable`,
/// and ask again every `recheck`.
fn start<K>(
    api: Api<Lenient<K>>,
    config: watcher::Config,
    cache: &Arc<Cache<K>>,
    changes: &watch::Sender<u64>,
    metrics: &Arc<Metrics>,
    recheck: Option<Duration>,
    unreadable: Option<Arc<AtomicBool>>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let (cache, changes, metrics) = (cache.clone(), changes.clone(), metrics.clone());
    tokio::spawn(async move {
        if let Some(recheck) = recheck {
            let kind = cache.kind();
            let mut said: Option<Access> = None;
            loop {
                let access = access(&api, kind).await;
                if access == Access::Readable {
                    break;
                }
                if said.is_none() {
                    cache.mark_synced_empty();
                    changes.send_modify(|n| *n += 1);
                }
                if let Some(flag) = &unreadable {
                    flag.store(true, Ordering::Relaxed);
                }
                if said != Some(access) {
                    match access {
                        // Logged by the Gateway watcher only: once, not once per kind.
                        Access::Missing if kind == "Gateway" => tracing::info!(
                            ?recheck,
                            "Gateway API CRDs are not installed; not watching GatewayClass, \
                             Gateway, HTTPRoute, ReferenceGrant, BackendTLSPolicy until they are"
                        ),
                        // Its own line: it can be missing where the others are not
                        // (Gateway API releases before v1.4).
                        Access::Missing if kind == "BackendTLSPolicy" => tracing::info!(
                            ?recheck,
                            "The BackendTLSPolicy CRD is not installed; not watching it until it is"
                        ),
                        Access::Forbidden => tracing::warn!(
                            kind,
                            ?recheck,
                            "Not allowed to list this Gateway API kind; serving it as empty \
                             until the controller's RBAC allows get/list/watch"
                        ),
                        _ => {}
                    }
                }
                said = Some(access);
                tokio::time::sleep(recheck).await;
            }
            if let Some(flag) = &unreadable {
                flag.store(false, Ordering::Relaxed);
            }
            match said {
                Some(Access::Missing) if kind == "Gateway" => {
                    tracing::info!("Gateway API CRDs are installed; watching their kinds")
                }
                Some(Access::Missing) if kind == "BackendTLSPolicy" => {
                    tracing::info!("The BackendTLSPolicy CRD is installed; watching it")
                }
                Some(Access::Forbidden) => tracing::info!(kind, "Allowed to list now; watching"),
                _ => {}
            }
        }
        watching::run(api, config, cache, changes, metrics).await;
    })
}

/// Whether a Gateway API kind can be listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Readable,
    /// 404: its CRD is not installed.
    Missing,
    /// 403: RBAC does not allow it.
    Forbidden,
}

async fn access<K>(api: &Api<Lenient<K>>, kind: &str) -> Access
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return Access::Readable,
            Err(kube::Error::Api(e)) if e.code == 404 => return Access::Missing,
            Err(kube::Error::Api(e)) if e.code == 403 => return Access::Forbidden,
            Err(e) => {
                // Anything else (API server away): try again rather than decide.
                tracing::warn!(kind, error = %e, "Cannot tell whether this Gateway API kind can be listed");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}
