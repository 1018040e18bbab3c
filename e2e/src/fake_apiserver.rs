//! A loopback HTTP stand-in for the Kubernetes API, serving just what
//! `gatehouse controller` uses. Kept beside the real API server (`kube_apiserver`) for
//! faults and observations a real one does not give on demand: forgotten watch history
//! (`410 Gone`), watches cut every few seconds, objects that fail the CRD schema,
//! missing CRDs, and a record of every request. It serves:
//!
//! - list (with `limit`/`continue` paging) and watch (newline-delimited events from a
//!   `resourceVersion`, label selectors, `BOOKMARK`s, `timeoutSeconds`, and `410 Gone`
//!   for a compacted resourceVersion) of the Gatehouse kinds, Secrets, Services and
//!   EndpointSlices;
//! - get, create (`POST`), replace (`PUT`, with resourceVersion preconditions),
//!   patch (server-side apply, JSON merge and strategic merge — treated as merge) and
//!   delete, including the `status` subresource;
//! - Lease get/create/update/patch and Event create/patch, which are plain objects here;
//! - `404` for the `gatehouse.dev` group while the CRDs are "not installed".
//!
//! The API server's own behaviour that the controller relies on is imitated: objects
//! get `uid`, `creationTimestamp`, `resourceVersion` and `generation` (bumped on spec
//! changes only), Secret `stringData` is folded into base64 `data`, a status write
//! never changes the spec and a spec write never changes the status, and deleting an
//! object deletes the objects whose ownerReferences name it (garbage collection).
//!
//! The test side drives it with [`FakeApiServer::apply`] / [`FakeApiServer::delete`]
//! (like `kubectl apply` / `kubectl delete`) and reads it back with `get`, `list`,
//! `requests`. [`FakeApiServer::kubeconfig`] points a client at it (plain HTTP on
//! 127.0.0.1).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// One API resource the fake serves.
#[derive(Debug, PartialEq, Eq)]
struct Res {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    /// Has a `status` subresource (spec and status are written separately).
    status_subresource: bool,
}

impl Res {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn is_crd(&self) -> bool {
        self.group == GATEHOUSE_GROUP
    }
}

const GATEHOUSE_GROUP: &str = "gatehouse.dev";

const RESOURCES: &[Res] = &[
    Res {
        group: GATEHOUSE_GROUP,
        version: "v1alpha1",
        plural: "consumers",
        kind: "Consumer",
        status_subresource: true,
    },
    Res {
        group: GATEHOUSE_GROUP,
        version: "v1alpha1",
        plural: "oauth2clients",
        kind: "OAuth2Client",
        status_subresource: true,
    },
    Res {
        group: GATEHOUSE_GROUP,
        version: "v1alpha1",
        plural: "protectedroutes",
        kind: "ProtectedRoute",
        status_subresource: true,
    },
    Res {
        group: GATEHOUSE_GROUP,
        version: "v1alpha1",
        plural: "oauth2policies",
        kind: "OAuth2Policy",
        status_subresource: true,
    },
    Res {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        status_subresource: true,
    },
    Res {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        status_subresource: false,
    },
    Res {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        status_subresource: false,
    },
    Res {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        kind: "EndpointSlice",
        status_subresource: false,
    },
    Res {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        status_subresource: false,
    },
    Res {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        status_subresource: false,
    },
    Res {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        status_subresource: false,
    },
];

fn res_index(group: &str, version: &str, plural: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.group == group && r.version == version && r.plural == plural)
}

fn res_of_kind(api_version: &str, kind: &str) -> Option<usize> {
    RESOURCES
        .iter()
        .position(|r| r.kind == kind && r.api_version() == api_version)
}

/// `(namespace, name)`.
type Key = (String, String);

/// One committed change, kept for watches.
struct Change {
    rv: u64,
    res: usize,
    old: Option<Value>,
    new: Option<Value>,
}

/// A request the fake received (for assertions on what the controller sent).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
}

impl RecordedRequest {
    /// The value of a query parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == key).then(|| percent_decode(v))
        })
    }
}

struct State {
    rv: u64,
    uid_seq: u64,
    objects: HashMap<usize, BTreeMap<Key, Value>>,
    log: Vec<Change>,
    /// Watches from a resourceVersion older than this get `410 Gone`.
    compacted_below: u64,
    /// Bumped by each compaction: watches open across one end with `410 Gone` too (as
    /// a real server's watch cache does when it drops history), so a bookmark sent
    /// after the compaction cannot let a client resume without relisting.
    compactions: u64,
    crds_installed: bool,
    /// Upper bound on one watch request's duration (the client then re-watches from
    /// its last resourceVersion), to exercise resumption.
    watch_cap: Option<Duration>,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped after every commit; watch streams and test waits wake on it.
    tick: watch::Sender<u64>,
}

/// An API failure, rendered as a Kubernetes `Status`.
struct Failure {
    code: u16,
    reason: &'static str,
    message: String,
}

impl Failure {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            reason,
            message: message.into(),
        }
    }
    fn not_found(what: impl std::fmt::Display) -> Self {
        Failure::new(404, "NotFound", format!("{what} not found"))
    }
    fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "code": self.code
        })
    }
}

impl State {
    fn objects(&mut self, res: usize) -> &mut BTreeMap<Key, Value> {
        self.objects.entry(res).or_default()
    }

    /// Store (or remove, with `None`) one object, assigning the next resourceVersion.
    fn commit(&mut self, res: usize, key: Key, new: Option<Value>) -> Option<Value> {
        self.rv += 1;
        let rv = self.rv;
        let new = new.map(|mut v| {
            v["metadata"]["resourceVersion"] = json!(rv.to_string());
            v
        });
        let old = match &new {
            Some(v) => self.objects(res).insert(key, v.clone()),
            None => self.objects(res).remove(&key),
        };
        self.log.push(Change {
            rv,
            res,
            old,
            new: new.clone(),
        });
        new
    }

    fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_seq)
    }

    /// Create `obj` (a full object with metadata) as the API server would.
    fn create(&mut self, res: usize, ns: &str, mut obj: Value) -> Result<Value, Failure> {
        let r = &RESOURCES[res];
        if !obj.is_object() {
            return Err(Failure::new(400, "BadRequest", "body is not an object"));
        }
        obj["apiVersion"] = json!(r.api_version());
        obj["kind"] = json!(r.kind);
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let name = match obj["metadata"]["name"].as_str() {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match obj["metadata"]["generateName"].as_str() {
                Some(prefix) => format!("{prefix}{:05x}", self.uid_seq + 1),
                None => return Err(Failure::new(422, "Invalid", "metadata.name is required")),
            },
        };
        let key = (ns.to_owned(), name.clone());
        if self.objects(res).contains_key(&key) {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", r.plural),
            ));
        }
        let uid = self.next_uid();
        let meta = obj["metadata"].as_object_mut().expect("checked above");
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(ns));
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        meta.remove("resourceVersion");
        if r.status_subresource {
            // Status is written through the subresource only.
            obj.as_object_mut().expect("object").remove("status");
        }
        if r.kind == "Secret" {
            fold_string_data(&mut obj);
        }
        Ok(self.commit(res, key, Some(obj)).expect("stored"))
    }

    /// Replace the object at `key` with `next` (spec or status side), keeping the
    /// server-owned metadata; bumps `generation` when the spec changed.
    fn update(
        &mut self,
        res: usize,
        key: &Key,
        mut next: Value,
        subresource: Option<&str>,
        precondition_rv: Option<String>,
    ) -> Result<Value, Failure> {
        let r = &RESOURCES[res];
        let Some(current) = self.objects(res).get(key).cloned() else {
            return Err(Failure::not_found(format!("{} \"{}\"", r.plural, key.1)));
        };
        if let Some(rv) = precondition_rv {
            if current["metadata"]["resourceVersion"].as_str() != Some(rv.as_str()) {
                return Err(Failure::new(
                    409,
                    "Conflict",
                    format!(
                        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                        r.plural, key.1
                    ),
                ));
            }
        }
        if r.status_subresource {
            match subresource {
                Some("status") => {
                    // Only the status changes.
                    let status = next.get("status").cloned();
                    next = current.clone();
                    match status {
                        Some(s) => next["status"] = s,
                        None => {
                            next.as_object_mut().expect("object").remove("status");
                        }
                    }
                }
                _ => match current.get("status") {
                    Some(s) => next["status"] = s.clone(),
                    None => {
                        next.as_object_mut().expect("object").remove("status");
                    }
                },
            }
        }
        next["apiVersion"] = json!(r.api_version());
        next["kind"] = json!(r.kind);
        if !next["metadata"].is_object() {
            next["metadata"] = json!({});
        }
        for field in ["name", "namespace", "uid", "creationTimestamp"] {
            next["metadata"][field] = current["metadata"][field].clone();
        }
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        let spec_changed = strip_meta_status(&current) != strip_meta_status(&next);
        next["metadata"]["generation"] = json!(generation + i64::from(spec_changed));
        if r.kind == "Secret" {
            fold_string_data(&mut next);
        }
        Ok(self.commit(res, key.clone(), Some(next)).expect("stored"))
    }

    /// Delete `key` and, like the garbage collector, everything it owns.
    fn delete(&mut self, res: usize, key: &Key) -> Option<Value> {
        let current = self.objects(res).get(key).cloned()?;
        self.commit(res, key.clone(), None);
        if let Some(uid) = current["metadata"]["uid"].as_str() {
            let owned: Vec<(usize, Key)> = self
                .objects
                .iter()
                .flat_map(|(r, objs)| {
                    objs.iter()
                        .filter(|(_, o)| owned_by(o, uid))
                        .map(|(k, _)| (*r, k.clone()))
                })
                .collect();
            for (r, k) in owned {
                self.delete(r, &k);
            }
        }
        Some(current)
    }
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

fn strip_meta_status(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

/// The API server stores `stringData` as base64 `data`.
fn fold_string_data(secret: &mut Value) {
    let Some(obj) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = obj.remove("stringData") else {
        return;
    };
    let data = obj
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        data[k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("just made an object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// A parsed label selector: every requirement must hold.
#[derive(Clone, Debug, Default)]
struct Selector(Vec<Requirement>);

#[derive(Clone, Debug)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
}

impl Selector {
    fn parse(s: &str) -> Selector {
        let reqs = s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                if let Some((k, v)) = p.split_once("!=") {
                    Requirement::NotEquals(k.trim().into(), v.trim().into())
                } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                    Requirement::Equals(k.trim().into(), v.trim().into())
                } else if let Some(k) = p.strip_prefix('!') {
                    Requirement::NotExists(k.trim().into())
                } else {
                    Requirement::Exists(p.into())
                }
            })
            .collect();
        Selector(reqs)
    }

    fn matches(&self, obj: &Value) -> bool {
        let labels = &obj["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
        })
    }
}

/// Which objects a list or watch covers.
#[derive(Clone)]
struct Filter {
    res: usize,
    namespace: Option<String>,
    labels: Selector,
    name: Option<String>,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        self.namespace
            .as_deref()
            .is_none_or(|ns| meta["namespace"] == ns)
            && self.name.as_deref().is_none_or(|n| meta["name"] == n)
            && self.labels.matches(obj)
    }
}

type Body = BoxBody<Bytes, Infallible>;

/// The fake API server. Stops serving when dropped.
pub struct FakeApiServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl FakeApiServer {
    /// Start on a free loopback port, with the CRDs "installed". Must be called
    /// within a Tokio runtime.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                rv: 100,
                uid_seq: 0,
                objects: HashMap::new(),
                log: Vec::new(),
                compacted_below: 0,
                compactions: 0,
                crds_installed: true,
                watch_cap: None,
                requests: Vec::new(),
            }),
            tick: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
                 users:\n- name: fake\n  user:\n    token: fake-token\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
                 current-context: fake\n"
            ),
        )?;
        Ok(FakeApiServer {
            addr,
            shared,
            accept,
            _dir: dir,
            kubeconfig,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file pointing at this server (set `KUBECONFIG` to it).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("fake API state lock")
    }

    fn notify(&self) {
        self.shared.tick.send_modify(|t| *t += 1);
    }

    /// Create or update an object, like `kubectl apply`: the status of an existing
    /// object is kept and its generation bumped when the spec changed. Returns the
    /// stored object.
    pub fn apply(&self, obj: Value) -> Value {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
        let res = res_of_kind(&api_version, &kind)
            .unwrap_or_else(|| panic!("the fake API does not serve {api_version} {kind}"));
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = obj["metadata"]["name"]
            .as_str()
            .expect("apply needs metadata.name")
            .to_owned();
        let stored = {
            let mut st = self.state();
            let key = (ns.clone(), name);
            let result = if st.objects(res).contains_key(&key) {
                st.update(res, &key, obj, None, None)
            } else {
                st.create(res, &ns, obj)
            };
            result.unwrap_or_else(|f| panic!("apply failed: {}", f.message))
        };
        self.notify();
        stored
    }

    /// Delete an object (and what it owns). Returns whether it existed.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let res = self.res_by_kind(kind);
        let existed = self
            .state()
            .delete(res, &(namespace.to_owned(), name.to_owned()))
            .is_some();
        self.notify();
        existed
    }

    /// One object.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let res = self.res_by_kind(kind);
        self.state()
            .objects(res)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every object of a kind (`Event` lists both `events.k8s.io` and core Events).
    pub fn list(&self, kind: &str) -> Vec<Value> {
        let mut st = self.state();
        (0..RESOURCES.len())
            .filter(|i| RESOURCES[*i].kind == kind)
            .flat_map(|i| st.objects(i).values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Make the Gatehouse group answer (or stop answering) like installed CRDs.
    pub fn set_crds_installed(&self, installed: bool) {
        self.state().crds_installed = installed;
    }

    /// End every watch request after at most `cap` (clients re-watch from their last
    /// resourceVersion), to exercise resumption.
    pub fn set_watch_cap(&self, cap: Duration) {
        self.state().watch_cap = Some(cap);
        self.notify();
    }

    /// Forget the change history: a watch resuming from any resourceVersion seen so
    /// far gets `410 Gone` and must list again.
    pub fn compact(&self) {
        let mut st = self.state();
        st.compacted_below = st.rv + 1;
        st.compactions += 1;
        st.log.clear();
        drop(st);
        self.shared.tick.send_modify(|t| *t += 1);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// Wait until `check` returns `Some`, re-checking after every change (and at least
    /// every 100 ms, for conditions outside this server). Panics with `what` after
    /// `timeout`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&FakeApiServer) -> Option<T>,
    ) -> T {
        let mut tick = self.shared.tick.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tick.borrow_and_update();
            if let Some(v) = check(self) {
                return v;
            }
            tokio::select! {
                _ = tick.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}"),
            }
        }
    }

    fn res_by_kind(&self, kind: &str) -> usize {
        RESOURCES
            .iter()
            .position(|r| r.kind == kind)
            .unwrap_or_else(|| panic!("the fake API does not serve kind {kind}"))
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.accept.abort();
        // Wake watch streams so they notice the server is gone.
        self.shared.tick.send_modify(|t| *t = u64::MAX);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .expect("valid response")
}

fn failure(f: Failure) -> Response<Body> {
    json_response(f.code, &f.status())
}

/// A parsed request path.
struct Target {
    res: usize,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match *segs.first()? {
        "api" => ("", *segs.get(1)?, &segs[2..]),
        "apis" => (*segs.get(1)?, *segs.get(2)?, segs.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Target {
        res: res_index(group, version, plural)?,
        namespace,
        name: name.map(str::to_owned),
        subresource: sub.map(str::to_owned),
    })
}

fn query_map(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return failure(Failure::new(400, "BadRequest", "unreadable body")),
    };
    let body: Value = if bytes.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return failure(Failure::new(400, "BadRequest", format!("body: {e}"))),
        }
    };
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    {
        let mut st = shared.state.lock().expect("fake API state lock");
        st.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: body.clone(),
        });
    }
    let Some(target) = parse_path(&path) else {
        return failure(Failure::not_found(format!(
            "the server could not find the requested resource ({path})"
        )));
    };
    let q = query_map(&query);
    let res = &RESOURCES[target.res];
    let crds_installed = shared
        .state
        .lock()
        .expect("fake API state lock")
        .crds_installed;
    if res.is_crd() && !crds_installed {
        return failure(Failure::not_found(
            "the server could not find the requested resource",
        ));
    }

    let result = match (&parts.method, &target.name) {
        (&Method::GET, None)
            if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            return watch(shared, &target, &q);
        }
        (&Method::GET, None) => list(&shared, &target, &q),
        (&Method::GET, Some(name)) => {
            let mut st = shared.state.lock().expect("fake API state lock");
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            st.objects(target.res)
                .get(&key)
                .cloned()
                .map(|v| (200, v))
                .ok_or_else(|| Failure::not_found(format!("{} \"{name}\"", res.plural)))
        }
        (&Method::POST, None) => {
            let ns = target.namespace.clone().unwrap_or_default();
            let r = shared
                .state
                .lock()
                .expect("fake API state lock")
                .create(target.res, &ns, body);
            r.map(|v| (201, v))
        }
        (&Method::PUT, Some(name)) => {
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            let rv = body["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_owned);
            shared
                .state
                .lock()
                .expect("fake API state lock")
                .update(target.res, &key, body, target.subresource.as_deref(), rv)
                .map(|v| (200, v))
        }
        (&Method::PATCH, Some(name)) => {
            patch(&shared, &target, name, content_type.as_deref(), body)
        }
        (&Method::DELETE, Some(name)) => {
            let key = (target.namespace.clone().unwrap_or_default(), name.clone());
            shared
                .state
                .lock()
                .expect("fake API state lock")
                .delete(target.res, &key)
                .map(|v| (200, v))
                .ok_or_else(|| Failure::not_found(format!("{} \"{name}\"", res.plural)))
        }
        _ => Err(Failure::new(
            405,
            "MethodNotAllowed",
            format!("{} {path}", parts.method),
        )),
    };
    match result {
        Ok((code, v)) => {
            if parts.method != Method::GET {
                shared.tick.send_modify(|t| *t += 1);
            }
            json_response(code, &v)
        }
        Err(f) => failure(f),
    }
}

fn filter_of(target: &Target, q: &HashMap<String, String>) -> Filter {
    let name = q.get("fieldSelector").and_then(|f| {
        f.split(',')
            .find_map(|p| p.strip_prefix("metadata.name=").map(str::to_owned))
    });
    Filter {
        res: target.res,
        namespace: target.namespace.clone(),
        labels: Selector::parse(q.get("labelSelector").map(String::as_str).unwrap_or("")),
        name,
    }
}

fn list(
    shared: &Shared,
    target: &Target,
    q: &HashMap<String, String>,
) -> Result<(u16, Value), Failure> {
    let filter = filter_of(target, q);
    let mut st = shared.state.lock().expect("fake API state lock");
    let rv = st.rv;
    let items: Vec<Value> = st
        .objects(target.res)
        .values()
        .filter(|o| filter.matches(o))
        .cloned()
        .collect();
    let offset: usize = q.get("continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if offset.saturating_add(limit) < items.len() {
        metadata["continue"] = json!((offset + limit).to_string());
    }
    let r = &RESOURCES[target.res];
    Ok((
        200,
        json!({
            "apiVersion": r.api_version(),
            "kind": format!("{}List", r.kind),
            "metadata": metadata,
            "items": page,
        }),
    ))
}

fn patch(
    shared: &Shared,
    target: &Target,
    name: &str,
    content_type: Option<&str>,
    body: Value,
) -> Result<(u16, Value), Failure> {
    let key = (
        target.namespace.clone().unwrap_or_default(),
        name.to_owned(),
    );
    let sub = target.subresource.as_deref();
    let mut st = shared.state.lock().expect("fake API state lock");
    let current = st.objects(target.res).get(&key).cloned();
    let ct = content_type.unwrap_or_default();
    let apply = ct.starts_with("application/apply-patch");
    let merge_like = ct.starts_with("application/merge-patch+json")
        || ct.starts_with("application/strategic-merge-patch+json");
    if !apply && !merge_like {
        return Err(Failure::new(
            415,
            "UnsupportedMediaType",
            format!("patch type {ct:?}"),
        ));
    }
    let Some(current) = current else {
        if apply && sub.is_none() {
            let ns = key.0.clone();
            let mut obj = body;
            obj["metadata"]["name"] = json!(name);
            return st.create(target.res, &ns, obj).map(|v| (201, v));
        }
        return Err(Failure::not_found(format!(
            "{} \"{name}\"",
            RESOURCES[target.res].plural
        )));
    };
    let mut next = current.clone();
    if apply && sub == Some("status") {
        // One manager owns the status fields (the controller, with force): the
        // applied status is the status.
        match body.get("status") {
            Some(s) => next["status"] = s.clone(),
            None => {
                next.as_object_mut().expect("object").remove("status");
            }
        }
    } else {
        let mut patch_body = body;
        if let Some(o) = patch_body.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        merge(&mut next, &patch_body);
    }
    st.update(target.res, &key, next, sub, None)
        .map(|v| (200, v))
}

fn watch(shared: Arc<Shared>, target: &Target, q: &HashMap<String, String>) -> Response<Body> {
    let filter = filter_of(target, q);
    let since: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").map(String::as_str) == Some("true");
    let requested = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map(Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (cap, gone, start, epoch) = {
        let st = shared.state.lock().expect("fake API state lock");
        let start = if since == 0 { st.rv } else { since };
        (
            st.watch_cap,
            since != 0 && since < st.compacted_below,
            start,
            st.compactions,
        )
    };
    let limit = match (requested, cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let kind = RESOURCES[target.res].kind;
    let api_version = RESOURCES[target.res].api_version();
    tokio::spawn(async move {
        let expired = |rv: u64| {
            let status =
                Failure::new(410, "Expired", format!("too old resource version: {rv}")).status();
            line(&json!({"type": "ERROR", "object": status}))
        };
        if gone {
            let _ = tx.send(expired(since)).await;
            return;
        }
        let mut tick = shared.tick.subscribe();
        let deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let mut cursor = start;
        loop {
            tick.borrow_and_update();
            let current = {
                let st = shared.state.lock().expect("fake API state lock");
                let fresh = st.compactions == epoch;
                // The log is in resourceVersion order: start after the cursor.
                let from = st.log.partition_point(|c| c.rv <= cursor);
                let events: Vec<Value> = st.log[from..]
                    .iter()
                    .filter(|c| c.res == filter.res)
                    .filter_map(|c| event_for(c, &filter))
                    .collect();
                fresh.then_some((events, st.rv))
            };
            let Some((events, now_rv)) = current else {
                let _ = tx.send(expired(cursor)).await;
                return;
            };
            let sent = !events.is_empty();
            for e in events {
                if tx.send(line(&e)).await.is_err() {
                    return;
                }
            }
            if !sent && bookmarks && now_rv > cursor {
                let bookmark = json!({
                    "type": "BOOKMARK",
                    "object": {"apiVersion": api_version, "kind": kind,
                               "metadata": {"resourceVersion": now_rv.to_string()}}
                });
                if tx.send(line(&bookmark)).await.is_err() {
                    return;
                }
            }
            cursor = now_rv;
            let ended = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = tick.changed() => {
                    if changed.is_err() || *tick.borrow() == u64::MAX {
                        return;
                    }
                }
                _ = ended => return,
                _ = tx.closed() => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("valid response")
}

/// The watch event a change is, as seen through `filter` (label changes can make an
/// object enter or leave the selection).
fn event_for(c: &Change, filter: &Filter) -> Option<Value> {
    let was = c.old.as_ref().is_some_and(|o| filter.matches(o));
    let is = c.new.as_ref().is_some_and(|n| filter.matches(n));
    let (kind, obj) = match (was, is) {
        (false, true) => ("ADDED", c.new.as_ref()),
        (true, true) => ("MODIFIED", c.new.as_ref()),
        (true, false) => ("DELETED", c.new.as_ref().or(c.old.as_ref())),
        (false, false) => return None,
    };
    let mut obj = obj?.clone();
    obj["metadata"]["resourceVersion"] = json!(c.rv.to_string());
    Some(json!({"type": kind, "object": obj}))
}

fn line(v: &Value) -> Bytes {
    let mut s = v.to_string();
    s.push('\n');
    Bytes::from(s)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for now (UTC).
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_namespaced_and_cluster_wide_requests_parse() {
        let t = parse_path("/apis/gatehouse.dev/v1alpha1/namespaces/ns/protectedroutes/r/status")
            .unwrap();
        assert_eq!(RESOURCES[t.res].kind, "ProtectedRoute");
        assert_eq!(t.namespace.as_deref(), Some("ns"));
        assert_eq!(t.name.as_deref(), Some("r"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_path("/api/v1/secrets").unwrap();
        assert_eq!(RESOURCES[t.res].kind, "Secret");
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(parse_path("/apis/unknown.io/v1/things").is_none());
    }

    #[test]
    fn selectors_support_existence_and_equality() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}});
        assert!(Selector::parse("a").matches(&obj));
        assert!(!Selector::parse("!a").matches(&obj));
        assert!(Selector::parse("!b,a=1").matches(&obj));
        assert!(!Selector::parse("a!=1").matches(&obj));
        assert!(Selector::parse("").matches(&obj));
    }

    #[test]
    fn merge_patch_removes_nulls_and_merges_objects() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge(&mut t, &json!({"a": {"b": null, "e": 4}, "d": [1]}));
        assert_eq!(t, json!({"a": {"c": 2, "e": 4}, "d": [1]}));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20);
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T');
    }

    #[test]
    fn percent_decoding_handles_selectors() {
        assert_eq!(
            percent_decode("%21gatehouse.dev%2Finstance"),
            "!gatehouse.dev/instance"
        );
        assert_eq!(percent_decode("a%3Db"), "a=b");
    }
}
