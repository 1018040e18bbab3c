//! ConfigMaps holding CA bundles, watched one by one: only those a BackendTLSPolicy
//! (`validation.caCertificateRefs`) or a ProtectedRoute (`backend.tls.caCertificateRef`)
//! names. Watching every ConfigMap of a cluster would hold dashboards and scripts in
//! memory for a handful of certificates; one watch per referenced name (a
//! `metadata.name` field selector in its namespace) still sees each change at once,
//! so a rotated CA re-translates without waiting for a resync.
//!
//! The set is brought up to date at the start of every pass ([`ReferencedConfigMaps::update`]);
//! a pass waits (bounded) for the first list of watches it just started, so a newly
//! referenced ConfigMap is not reported missing for one pass.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_crds::CaSourceKind;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::metrics::Metrics;
use super::watch::{self as watching, Cache, Key};
use crate::translate::Input;

/// Every ConfigMap the input names as a CA bundle.
pub fn referenced(input: &Input) -> BTreeSet<Key> {
    ca_bundles(input, CaSourceKind::ConfigMap).collect()
}

/// The CA bundles of `kind` the input names: BackendTLSPolicy `caCertificateRefs`
/// (core group) and ProtectedRoute `backend.tls.caCertificateRef`. The Secret side
/// ([`super::referenced`]) and the ConfigMap side share it.
pub fn ca_bundles(input: &Input, kind: CaSourceKind) -> impl Iterator<Item = Key> + '_ {
    let kind_name = match kind {
        CaSourceKind::ConfigMap => "ConfigMap",
        CaSourceKind::Secret => "Secret",
    };
    let ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.clone().unwrap_or_default()
    };
    let policies = input.backend_tls_policies.iter().flat_map(move |p| {
        p.spec
            .validation
            .ca_certificate_refs
            .iter()
            .filter(move |r| r.group.is_empty() && r.kind == kind_name)
            .map(move |r| (ns(&p.metadata), r.name.clone()))
    });
    let routes = input.routes.iter().filter_map(move |r| {
        let ca = r
            .spec
            .backend
            .as_ref()
            .and_then(|b| b.tls.as_ref())
            .and_then(|t| t.ca_certificate_ref.as_ref())
            .filter(|c| c.kind == kind)?;
        Some((ns(&r.metadata), ca.name.clone()))
    });
    policies.chain(routes)
}

struct Watched {
    cache: Arc<Cache<ConfigMap>>,
    task: JoinHandle<()>,
}

/// One watch per referenced ConfigMap.
pub struct ReferencedConfigMaps {
    watched: HashMap<Key, Watched>,
    changes: watch::Sender<u64>,
    metrics: Arc<Metrics>,
}

impl ReferencedConfigMaps {
    /// Watches bump `changes` when their ConfigMap changes.
    pub fn new(changes: watch::Sender<u64>, metrics: Arc<Metrics>) -> Self {
        ReferencedConfigMaps {
            watched: HashMap::new(),
            changes,
            metrics,
        }
    }

    /// Start watching newly referenced ConfigMaps and stop watching unreferenced ones;
    /// then wait up to `timeout` for the new watches' first list.
    pub async fn update(&mut self, client: &Client, wanted: &BTreeSet<Key>, timeout: Duration) {
        self.watched.retain(|k, w| {
            let keep = wanted.contains(k);
            if !keep {
                w.task.abort();
            }
            keep
        });
        let mut started = Vec::new();
        for key in wanted {
            if self.watched.contains_key(key) {
                continue;
            }
            let cache = Arc::new(Cache::new("ConfigMap"));
            let config = watcher::Config::default()
                .fields(&format!("metadata.name={}", key.1))
                .any_semantic();
            let task = tokio::spawn(watching::run(
                Api::namespaced(client.clone(), &key.0),
                config,
                cache.clone(),
                self.changes.clone(),
                self.metrics.clone(),
            ));
            started.push(cache.clone());
            self.watched.insert(key.clone(), Watched { cache, task });
        }
        if started.is_empty() {
            return;
        }
        let all_listed = async {
            while !started.iter().all(|c| c.is_synced()) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(timeout, all_listed).await.is_err() {
            tracing::warn!(
                ?timeout,
                "A referenced ConfigMap could not be listed in time; \
                 its backends fail closed until it can"
            );
        }
    }

    /// Every watched ConfigMap that exists.
    pub fn list(&self) -> Vec<Arc<ConfigMap>> {
        self.watched.values().flat_map(|w| w.cache.list()).collect()
    }
}

impl Drop for ReferencedConfigMaps {
    fn drop(&mut self) {
        for w in self.watched.values() {
            w.task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_crds::gateway_api::BackendTlsPolicy;
    use gatehouse_crds::ProtectedRoute;

    #[test]
    fn only_config_maps_named_as_ca_bundles_are_referenced() {
        let policy: BackendTlsPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "BackendTLSPolicy",
            "metadata": {"name": "p", "namespace": "a"},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "s"}],
                "validation": {
                    "caCertificateRefs": [
                        {"group": "", "kind": "ConfigMap", "name": "ca"},
                        {"group": "", "kind": "Secret", "name": "not-a-config-map"}
                    ],
                    "hostname": "s.internal"
                }
            }
        }))
        .unwrap();
        let route: ProtectedRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "ProtectedRoute",
            "metadata": {"name": "r", "namespace": "b"},
            "spec": {
                "paths": ["/"],
                "backend": {
                    "service": {"name": "s", "port": 443},
                    "tls": {"caCertificateRef": {"kind": "ConfigMap", "name": "route-ca"}}
                }
            }
        }))
        .unwrap();
        let input = Input {
            backend_tls_policies: vec![Arc::new(policy)],
            routes: vec![Arc::new(route)],
            ..Input::default()
        };
        let got: Vec<(String, String)> = referenced(&input).into_iter().collect();
        assert_eq!(
            got,
            [
                ("a".to_owned(), "ca".to_owned()),
                ("b".to_owned(), "route-ca".to_owned())
            ]
        );
    }
}
