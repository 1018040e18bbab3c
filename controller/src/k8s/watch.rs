//! Defensive watchers: one kube-runtime watcher per kind, each feeding an in-memory
//! [`Cache`] that the re-translation loop reads.
//!
//! A typed watcher fails a whole list when one object does not deserialize, and then
//! retries that list forever: one bad object would stall every object of its kind. So
//! objects are decoded as [`Lenient`]: a malformed one becomes a warning (and a metric)
//! and is left out, like Linkerd's policy controller does; the others keep flowing.
//!
//! Caches strip `managedFields` and the `last-applied-configuration` annotation, which
//! translate never reads and which dominate the size of small objects.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;

use super::metrics::Metrics;

/// Annotation `kubectl apply` (client-side) stores the whole object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// An object as the API server sent it: either a valid `K`, or a malformed one of which
/// only the metadata (and the reason) is kept.
#[derive(Clone, Debug)]
pub enum Lenient<K> {
    Valid(K),
    /// Boxed: malformed objects are rare, valid ones are what the memory is for.
    Malformed {
        meta: Box<ObjectMeta>,
        error: String,
    },
}

impl<'de, K: DeserializeOwned> Deserialize<'de> for Lenient<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only a document that is not JSON at all fails here; anything else is kept.
        let value = serde_json::Value::deserialize(d)?;
        match K::deserialize(&value) {
            Ok(k) => Ok(Lenient::Valid(k)),
            Err(e) => {
                let meta = value
                    .get("metadata")
                    .and_then(|m| ObjectMeta::deserialize(m).ok())
                    .unwrap_or_default();
                Ok(Lenient::Malformed {
                    meta: Box::new(meta),
                    error: e.to_string(),
                })
            }
        }
    }
}

impl<K: Resource> Resource for Lenient<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        match self {
            Lenient::Valid(k) => k.meta(),
            Lenient::Malformed { meta, .. } => meta,
        }
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Lenient::Valid(k) => k.meta_mut(),
            Lenient::Malformed { meta, .. } => meta,
        }
    }
}

/// `(namespace, name)`.
pub type Key = (String, String);

/// Valid objects and malformed ones (with their resourceVersion) of one (re)list.
type Listing<K> = (HashMap<Key, Arc<K>>, HashMap<Key, Option<String>>);

fn key(meta: &ObjectMeta) -> Key {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The objects of one kind as last seen by its watcher.
///
/// The lock is a std `RwLock` held only for map operations, never across an `.await`.
pub struct Cache<K> {
    kind: &'static str,
    objects: RwLock<HashMap<Key, Arc<K>>>,
    /// Malformed objects currently left out, with their resourceVersion (so each
    /// version is reported once).
    malformed: RwLock<HashMap<Key, Option<String>>>,
    synced: AtomicBool,
}

impl<K: Resource> Cache<K> {
    /// An empty, not yet synced cache for `kind` (used in logs and metrics).
    pub fn new(kind: &'static str) -> Self {
        Cache {
            kind,
            objects: RwLock::default(),
            malformed: RwLock::default(),
            synced: AtomicBool::new(false),
        }
    }

    /// A cache already holding `objects`, marked synced (for tests and callers that
    /// list by themselves).
    pub fn with(kind: &'static str, objects: impl IntoIterator<Item = K>) -> Self {
        let cache = Cache::new(kind);
        {
            let mut map = cache.objects.write().expect("cache lock is never poisoned");
            for o in objects {
                map.insert(key(o.meta()), Arc::new(o));
            }
        }
        cache.synced.store(true, Ordering::Release);
        cache
    }

    /// Mark an empty cache synced: the kind does not exist in this cluster.
    pub fn mark_synced_empty(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// The kind this cache holds.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Every valid object, in no particular order.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects
            .read()
            .expect("cache lock is never poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// One object by namespace and name.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.objects
            .read()
            .expect("cache lock is never poisoned")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Whether the initial list has completed (the cache is a full view).
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Number of malformed objects currently left out.
    pub fn malformed(&self) -> usize {
        self.malformed
            .read()
            .expect("cache lock is never poisoned")
            .len()
    }

    fn is_known_malformed(&self, k: &Key, resource_version: &Option<String>) -> bool {
        self.malformed
            .read()
            .expect("cache lock is never poisoned")
            .get(k)
            == Some(resource_version)
    }

    /// Replace everything (end of a (re)list) and mark the cache synced.
    fn replace(&self, objects: HashMap<Key, Arc<K>>, malformed: HashMap<Key, Option<String>>) {
        *self.objects.write().expect("cache lock is never poisoned") = objects;
        *self
            .malformed
            .write()
            .expect("cache lock is never poisoned") = malformed;
        self.synced.store(true, Ordering::Release);
    }

    /// Insert or replace one object. Returns whether the cache changed.
    fn upsert(&self, k: Key, obj: K) -> bool {
        self.malformed
            .write()
            .expect("cache lock is never poisoned")
            .remove(&k);
        let mut map = self.objects.write().expect("cache lock is never poisoned");
        let same = map.get(&k).is_some_and(|old| {
            old.meta().resource_version.is_some()
                && old.meta().resource_version == obj.meta().resource_version
        });
        if !same {
            map.insert(k, Arc::new(obj));
        }
        !same
    }

    /// Remove one object. Returns whether it was there.
    fn remove(&self, k: &Key) -> bool {
        let was_malformed = self
            .malformed
            .write()
            .expect("cache lock is never poisoned")
            .remove(k)
            .is_some();
        let was_valid = self
            .objects
            .write()
            .expect("cache lock is never poisoned")
            .remove(k)
            .is_some();
        was_valid || was_malformed
    }

    /// Record a malformed object (and drop a previous valid version of it). Returns
    /// whether this version is new (so the caller warns once per version).
    fn mark_malformed(&self, k: Key, resource_version: Option<String>) -> bool {
        self.objects
            .write()
            .expect("cache lock is never poisoned")
            .remove(&k);
        let mut bad = self
            .malformed
            .write()
            .expect("cache lock is never poisoned");
        let new = bad.get(&k) != Some(&resource_version);
        bad.insert(k, resource_version);
        new
    }
}

/// Drop what translate never reads, to keep the caches small.
fn slim(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

/// Run a watcher for `K` until the task is aborted, keeping `cache` up to date and
/// bumping `changes` whenever the cache changed.
///
/// Errors (API unreachable, RBAC, expired resourceVersion) are logged and retried
/// with kube-runtime's default backoff; a relist replaces the cache atomically.
pub async fn run<K>(
    api: Api<Lenient<K>>,
    config: watcher::Config,
    cache: Arc<Cache<K>>,
    changes: watch::Sender<u64>,
    metrics: Arc<Metrics>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let kind = cache.kind();
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    // Objects of a (re)list in progress; swapped in at `InitDone`.
    let mut buffer: Option<Listing<K>> = None;
    while let Some(item) = stream.next().await {
        let event = match item {
            Ok(event) => event,
            // The API server forgot our resourceVersion: routine, the watcher relists.
            Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                tracing::debug!(kind, "Watch expired, relisting");
                continue;
            }
            Err(error) => {
                metrics.watch_error(kind);
                tracing::warn!(kind, %error, "Watch failed, retrying");
                continue;
            }
        };
        let changed = match event {
            Event::Init => {
                buffer = Some(Default::default());
                false
            }
            Event::InitApply(obj) => {
                let (objects, malformed) = buffer.get_or_insert_with(Default::default);
                match obj {
                    Lenient::Valid(mut o) => {
                        slim(o.meta_mut());
                        objects.insert(key(o.meta()), Arc::new(o));
                    }
                    Lenient::Malformed { meta, error } => {
                        // A relist sees the same bad object again: report new versions only.
                        if !cache.is_known_malformed(&key(&meta), &meta.resource_version) {
                            warn_malformed(kind, &meta, &error);
                        }
                        malformed.insert(key(&meta), meta.resource_version.clone());
                    }
                }
                false
            }
            Event::InitDone => {
                let (objects, malformed) = buffer.take().unwrap_or_default();
                tracing::debug!(kind, objects = objects.len(), "Listed");
                cache.replace(objects, malformed);
                true
            }
            Event::Apply(Lenient::Valid(mut o)) => {
                slim(o.meta_mut());
                cache.upsert(key(o.meta()), o)
            }
            Event::Apply(Lenient::Malformed { meta, error }) => {
                if cache.mark_malformed(key(&meta), meta.resource_version.clone()) {
                    warn_malformed(kind, &meta, &error);
                }
                true
            }
            Event::Delete(obj) => cache.remove(&key(obj.meta())),
        };
        metrics.set_malformed(kind, cache.malformed());
        if changed {
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

fn warn_malformed(kind: &str, meta: &ObjectMeta, error: &str) {
    tracing::warn!(
        kind,
        namespace = meta.namespace.as_deref().unwrap_or_default(),
        name = meta.name.as_deref().unwrap_or_default(),
        %error,
        "Ignoring malformed object"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_crds::ProtectedRoute;
    use serde_json::json;

    #[test]
    fn malformed_object_keeps_its_identity_and_the_reason() {
        let bad = json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "ProtectedRoute",
            "metadata": {"name": "r", "namespace": "ns", "resourceVersion": "7"},
            "spec": {"paths": 42, "backend": {}}
        });
        let obj: Lenient<ProtectedRoute> = serde_json::from_value(bad).unwrap();
        match obj {
            Lenient::Malformed { meta, error } => {
                assert_eq!(meta.name.as_deref(), Some("r"));
                assert_eq!(meta.resource_version.as_deref(), Some("7"));
                assert!(error.contains("invalid type"), "{error}");
            }
            Lenient::Valid(_) => panic!("a number is not a list of paths"),
        }
    }

    #[test]
    fn one_malformed_item_does_not_fail_the_list() {
        let list = json!({
            "apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "9"},
            "items": [
                {"metadata": {"name": "good", "namespace": "ns"},
                 "spec": {"backend": {"service": {"name": "s", "port": 80}}}},
                {"metadata": {"name": "bad", "namespace": "ns"}, "spec": "nope"}
            ]
        });
        let list: kube::core::ObjectList<Lenient<ProtectedRoute>> =
            serde_json::from_value(list).unwrap();
        let valid: Vec<_> = list
            .items
            .iter()
            .filter(|o| matches!(o, Lenient::Valid(_)))
            .map(|o| o.meta().name.clone().unwrap())
            .collect();
        assert_eq!(valid, ["good"]);
    }

    #[test]
    fn cache_ignores_a_replay_of_the_same_resource_version() {
        let cache = Cache::<k8s_openapi::api::core::v1::Service>::new("Service");
        let mut svc = k8s_openapi::api::core::v1::Service::default();
        svc.metadata.name = Some("s".into());
        svc.metadata.namespace = Some("ns".into());
        svc.metadata.resource_version = Some("1".into());
        assert!(cache.upsert(key(&svc.metadata), svc.clone()));
        assert!(!cache.upsert(key(&svc.metadata), svc.clone()));
        svc.metadata.resource_version = Some("2".into());
        assert!(cache.upsert(key(&svc.metadata), svc.clone()));
        assert!(cache.remove(&key(&svc.metadata)));
        assert!(cache.list().is_empty());
    }

    #[test]
    fn a_valid_object_turning_malformed_leaves_the_cache() {
        let cache = Cache::<k8s_openapi::api::core::v1::Service>::new("Service");
        let mut svc = k8s_openapi::api::core::v1::Service::default();
        svc.metadata.name = Some("s".into());
        svc.metadata.namespace = Some("ns".into());
        cache.upsert(key(&svc.metadata), svc.clone());
        assert!(cache.mark_malformed(key(&svc.metadata), Some("2".into())));
        assert!(!cache.mark_malformed(key(&svc.metadata), Some("2".into())));
        assert!(cache.get("ns", "s").is_none());
        assert_eq!(cache.malformed(), 1);
    }
}
