//! A snapshot compiled for serving: routing table, catalog, upstream sets and scope
//! rules, built once
//! per snapshot change and shared read-only by every worker. Swapping the whole
//! `Arc<Compiled>` at once is what keeps a request from ever seeing half a config.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::seal::LoginKey;
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::config::Route;
use crate::enforce::{compile_rules, Rule};
use crate::router::Router;
use crate::source::ConfigRx;
use crate::tls::sni::CertTable;
use crate::upstream::UpstreamSet;
use crate::Snapshot;

/// Everything a request needs, derived from one snapshot.
#[derive(Debug)]
pub struct Compiled {
    pub snapshot: Arc<Snapshot>,
    /// Shared with the previous config when no route's match fields changed.
    pub router: Arc<Router>,
    /// Shared with the previous config when the consumers and clients are unchanged.
    pub catalog: Arc<Catalog>,
    /// One per route, same index as `snapshot.routes`; a route whose upstream and
    /// timeouts are unchanged keeps the previous config's set (and so its endpoints'
    /// health and its round-robin cursor).
    pub upstreams: Vec<Arc<UpstreamSet>>,
    /// Unix time this configuration was compiled (config age in metrics).
    pub loaded_at: u64,
    /// Scope rules of each route (empty without OAuth2), same index as `snapshot.routes`.
    pub rules: Vec<Vec<Rule>>,
    /// Certificates by SNI.
    pub certs: CertTable,
    /// Per-route metric handles, same index as `snapshot.routes`.
    pub route_metrics: Vec<crate::metrics::RouteHandles>,
    /// How long compiling this snapshot took (the `gatehouse_proxy_config_compile_seconds`
    /// gauge; logged with each reload).
    pub compile_time: Duration,
    /// CPU time the compiling thread spent on it, where the OS tells
    /// (`/proc/thread-self/schedstat`): on a busy machine the wall clock above also
    /// counts the time the thread waited for a core.
    pub compile_cpu: Option<Duration>,
    /// What was taken over from the previous config instead of compiled again.
    pub reused: Reused,
}

/// What a compile took over from the previous config (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reused {
    /// The routing table (every route's match fields equal, in the same order).
    pub router: bool,
    /// The consumers and clients.
    pub catalog: bool,
    /// Upstream sets of routes whose upstream and timeouts are unchanged.
    pub upstreams: usize,
}

/// Receiving end of compiled configs (`None` until the first snapshot arrives).
pub type CompiledRx = watch::Receiver<Option<Arc<Compiled>>>;
/// Publishing end of compiled configs.
pub type CompiledTx = watch::Sender<Option<Arc<Compiled>>>;

impl Compiled {
    /// Compile a snapshot. Unusable parts (a malformed endpoint URL) are logged and
    /// left out; they never make the whole snapshot fail.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self::with_previous(snapshot, None, None)
    }

    /// Compile, reusing what `previous` compiled where every input to it is equal:
    /// certificates whose PEM is unchanged (and keeping its certificate for an id
    /// whose new PEM does not load), the routing table when no route's match fields
    /// changed, the catalog when consumers and clients are unchanged, and each route's
    /// upstream set when its upstream and timeouts are unchanged (see
    /// [`UpstreamSet::reusable`]). Reused parts are the ones a fresh compile would
    /// build, so the result routes and forwards exactly as a fresh compile would.
    /// `login_key` opens sealed TLS private keys.
    pub fn with_previous(
        snapshot: Arc<Snapshot>,
        previous: Option<&Compiled>,
        login_key: Option<&LoginKey>,
    ) -> Self {
        let started = Instant::now();
        let cpu_before = thread_cpu_time();
        let mut reused = Reused::default();
        let (certs, problems) = CertTable::new(
            &snapshot.certificates,
            previous.map(|p| &p.certs),
            login_key,
        );
        for problem in problems {
            tracing::warn!(%problem, "TLS certificate not loaded; keeping the previous one if any");
        }
        let certs_done = started.elapsed();
        // One pass over the previous and the new routes side by side finds both the
        // upstream sets to take over and whether the routing table can be: at 100,000
        // routes the comparisons cost mostly cache misses, so each route is read once.
        let (upstreams, same_matching) =
            compile_upstreams(&snapshot, previous, &mut reused.upstreams);
        let upstreams_done = started.elapsed();
        let router = match previous {
            Some(p) if same_matching => {
                reused.router = true;
                p.router.clone()
            }
            _ => Arc::new(Router::new(&snapshot.routes)),
        };
        let router_done = started.elapsed();
        let catalog = match previous {
            Some(p)
                if p.snapshot.clients == snapshot.clients
                    && p.snapshot.consumers == snapshot.consumers =>
            {
                reused.catalog = true;
                p.catalog.clone()
            }
            _ => Arc::new(Catalog::new(&snapshot)),
        };
        let catalog_done = started.elapsed();
        let rules = snapshot
            .routes
            .iter()
            .map(|route| {
                route.oauth2.as_ref().map_or_else(Vec::new, |o| {
                    compile_rules(&o.rules, o.case_insensitive_rules)
                })
            })
            .collect();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        tracing::debug!(
            routes = snapshot.routes.len(),
            certs_ms = ms(certs_done),
            upstreams_ms = ms(upstreams_done - certs_done),
            router_ms = ms(router_done - upstreams_done),
            catalog_ms = ms(catalog_done - router_done),
            rules_ms = ms(started.elapsed() - catalog_done),
            router_reused = reused.router,
            catalog_reused = reused.catalog,
            upstreams_reused = reused.upstreams,
            "Compile phases"
        );
        let route_metrics = snapshot.routes.iter().map(|_| Default::default()).collect();
        Compiled {
            snapshot,
            router,
            catalog,
            upstreams,
            loaded_at: crate::server::pipeline::unix_now(),
            rules,
            certs,
            route_metrics,
            compile_time: started.elapsed(),
            compile_cpu: thread_cpu_time()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before)),
            reused,
        }
    }

    /// Compile time in milliseconds, for log lines.
    pub fn compile_ms(&self) -> f64 {
        self.compile_time.as_secs_f64() * 1e3
    }

    /// CPU time of the compile in milliseconds (`-1` where unknown), for log lines.
    pub fn compile_cpu_ms(&self) -> f64 {
        self.compile_cpu.map_or(-1.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// CPU time of the calling thread so far (Linux: the first field of
/// `/proc/thread-self/schedstat`, nanoseconds on a CPU); `None` elsewhere.
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// One upstream set per route of `snapshot`: the previous config's set for a route
/// whose upstream and timeouts equal those of the route it had under the same id
/// (same position first, else looked up by id), a fresh one otherwise. A previous set
/// goes to one route at most, so no two routes ever share a set (as in a fresh
/// compile). `reused` counts the sets taken over. Also tells whether the previous
/// routing table serves the new routes ([`Router::same_inputs`]), found in the same
/// pass.
fn compile_upstreams(
    snapshot: &Snapshot,
    previous: Option<&Compiled>,
    reused: &mut usize,
) -> (Vec<Arc<UpstreamSet>>, bool) {
    let fresh = |route: &Route| {
        let (set, problems) = UpstreamSet::new(&route.upstream, &route.timeouts);
        for problem in problems {
            tracing::warn!(route.id = %route.id, %problem, "Upstream endpoint ignored");
        }
        Arc::new(set)
    };
    let Some(previous) = previous else {
        return (snapshot.routes.iter().map(fresh).collect(), false);
    };
    let old = &previous.snapshot.routes;
    let mut same_matching = old.len() == snapshot.routes.len();
    let mut taken = vec![false; old.len()];
    // Built on the first route that moved: id -> its index, when that id is unique.
    // Not at all when the ids did not survive (every route renamed): indexing 100,000
    // previous ids to find none of them cost more than the whole upstream phase.
    let mut by_id: Option<foldhash::HashMap<&str, Option<usize>>> = None;
    let mut ids_survive: Option<bool> = None;
    let mut out = Vec::with_capacity(snapshot.routes.len());
    for (i, route) in snapshot.routes.iter().enumerate() {
        if same_matching {
            same_matching = Router::same_route_inputs(&old[i], route);
        }
        let same_place = old.get(i).filter(|o| o.id == route.id).map(|_| i);
        let candidate = same_place.or_else(|| {
            if !*ids_survive.get_or_insert_with(|| ids_survived(old, &snapshot.routes)) {
                return None;
            }
            let ids = by_id.get_or_insert_with(|| {
                let mut ids =
                    foldhash::HashMap::with_capacity_and_hasher(old.len(), Default::default());
                for (j, o) in old.iter().enumerate() {
                    ids.entry(o.id.as_str())
                        .and_modify(|seen: &mut Option<usize>| *seen = None)
                        .or_insert(Some(j));
                }
                ids
            });
            ids.get(route.id.as_str()).copied().flatten()
        });
        let reuse = candidate.filter(|&j| {
            !taken[j]
                && old[j].upstream == route.upstream
                && old[j].timeouts == route.timeouts
                && UpstreamSet::reusable(&route.upstream)
                && previous.upstreams.len() == old.len()
        });
        match reuse {
            Some(j) => {
                taken[j] = true;
                *reused += 1;
                out.push(previous.upstreams[j].clone());
            }
            None => out.push(fresh(route)),
        }
    }
    (out, same_matching)
}

/// Whether a sample of 64 routes spread over `new` finds at least a quarter of their
/// ids among the previous routes at or near the same position (moved by up to 4):
/// if not, the change renamed (nearly) everything and looking ids up is wasted.
fn ids_survived(old: &[Route], new: &[Route]) -> bool {
    let samples = new.len().min(64);
    if samples == 0 {
        return false;
    }
    let step = new.len() / samples;
    let found = (0..samples)
        .map(|s| s * step)
        .filter(|&i| {
            let window = i.saturating_sub(4)..(i + 5).min(old.len());
            old.get(window)
                .is_some_and(|w| w.iter().any(|o| o.id == new[i].id))
        })
        .count();
    found * 4 >= samples
}

/// Compile what `config` holds now (so a snapshot loaded before the server started is
/// served from the first request).
pub fn compile_current(config: &ConfigRx, login_key: Option<&LoginKey>) -> Option<Arc<Compiled>> {
    let snapshot = config.borrow().clone()?;
    let compiled = Compiled::with_previous(snapshot, None, login_key);
    tracing::info!(
        revision = %compiled.snapshot.revision,
        routes = compiled.snapshot.routes.len(),
        compile_ms = compiled.compile_ms(),
        compile_cpu_ms = compiled.compile_cpu_ms(),
        "Configuration compiled"
    );
    Some(Arc::new(compiled))
}

/// Compile every snapshot published on `config` into `out` until the source goes away
/// (the last compiled config then stays in force).
///
/// This task runs on a serving worker, so compiling (hundreds of milliseconds for
/// 100,000 routes) and freeing the replaced config run on a thread of their own
/// ([`ConfigThread`]): the worker keeps answering requests with the old config until
/// the new one is swapped in.
pub async fn follow(
    mut config: ConfigRx,
    out: CompiledTx,
    reloads: prometheus_client::metrics::counter::Counter,
    login_key: Option<LoginKey>,
) {
    let mut thread = None;
    while config.changed().await.is_ok() {
        let Some(snapshot) = config.borrow_and_update().clone() else {
            continue;
        };
        let unchanged = out
            .borrow()
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.snapshot, &snapshot) || *c.snapshot == *snapshot);
        if unchanged {
            continue;
        }
        let revision = snapshot.revision.clone();
        let routes = snapshot.routes.len();
        let previous = out.borrow().clone();
        let key = login_key.clone();
        let thread = match &mut thread {
            Some(thread) => thread,
            None => match ConfigThread::spawn() {
                Ok(spawned) => thread.insert(spawned),
                Err(error) => {
                    tracing::error!(%revision, %error, "Cannot start the config thread; keeping the last configuration");
                    continue;
                }
            },
        };
        let compiled = thread
            .run(move || {
                Arc::new(Compiled::with_previous(
                    snapshot,
                    previous.as_deref(),
                    key.as_ref(),
                ))
            })
            .await;
        let Some(compiled) = compiled else {
            tracing::error!(%revision, "Compiling the configuration failed; keeping the last one");
            continue;
        };
        let compile_ms = compiled.compile_ms();
        let compile_cpu_ms = compiled.compile_cpu_ms();
        let reused = compiled.reused;
        let replaced = out.send_replace(Some(compiled));
        reloads.inc();
        tracing::info!(
            %revision,
            routes,
            compile_ms,
            compile_cpu_ms,
            router_reused = reused.router,
            upstreams_reused = reused.upstreams,
            "Configuration loaded"
        );
        // Requests still running hold their own reference; when none does, the whole
        // old config is freed here, off the worker, on the thread that built it.
        thread.free(replaced);
    }
    tracing::debug!("Configuration source closed; keeping the last configuration");
}

/// The one thread that compiles configs and frees replaced ones. One thread rather
/// than tokio's blocking pool, so every compile allocates from, and every replaced
/// config returns its memory to, the same allocator arena: with glibc, a compile on
/// whichever pool thread is free takes fresh memory from another arena while the
/// freed config stays resident in its own, and the RSS kept growing swap after swap.
/// (`malloc_trim` would need `unsafe`, which this crate forbids.)
struct ConfigThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl ConfigThread {
    fn spawn() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("gatehouse-config".into())
            .spawn(move || {
                for job in queue {
                    // A panicking compile fails that compile only (its result is never
                    // sent: the caller keeps the last config); the thread goes on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })?;
        Ok(ConfigThread { jobs })
    }

    /// Run `job` on the thread; `None` if it panicked.
    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(job());
            }))
            .ok()?;
        result.await.ok()
    }

    /// Drop `value` on the thread.
    fn free<T: Send + 'static>(&self, value: T) {
        // The thread only ends with this sender, so sending cannot fail while `self`
        // lives; if it did, the value is dropped here instead.
        let _ = self.jobs.send(Box::new(move || drop(value)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FORMAT_VERSION;

    fn mk_snapshot(revision: &str) -> Arc<Snapshot> {
        Arc::new(Snapshot {
            format: FORMAT_VERSION,
            revision: revision.into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn each_new_snapshot_is_compiled_once_and_equal_ones_are_skipped() {
        let (config_tx, config_rx) = crate::source::channel();
        let (out_tx, mut out_rx) = watch::channel(None);
        let reloads = prometheus_client::metrics::counter::Counter::<u64>::default();
        let task = tokio::spawn(follow(config_rx, out_tx, reloads.clone(), None));

        config_tx.send_replace(Some(mk_snapshot("one")));
        out_rx.changed().await.unwrap();
        assert_eq!(
            out_rx
                .borrow_and_update()
                .as_ref()
                .unwrap()
                .snapshot
                .revision,
            "one"
        );

        // An equal snapshot (new Arc, same content) is not recompiled; the next
        // different one is.
        config_tx.send_replace(Some(mk_snapshot("one")));
        config_tx.send_replace(Some(mk_snapshot("two")));
        out_rx.changed().await.unwrap();
        assert_eq!(
            out_rx
                .borrow_and_update()
                .as_ref()
                .unwrap()
                .snapshot
                .revision,
            "two"
        );

        drop(config_tx);
        task.await.unwrap();
        assert!(
            reloads.get() <= 2,
            "unchanged config must not count as a reload"
        );
        // The last compiled config stays in force after the source goes away.
        assert_eq!(out_rx.borrow().as_ref().unwrap().snapshot.revision, "two");
    }

    #[tokio::test]
    async fn a_large_snapshot_compiles_off_the_worker_and_still_routes_exactly() {
        use crate::config::{Route, Upstream};
        let routes = (0..10_000)
            .map(|i| Route {
                id: format!("r{i}"),
                paths: vec![format!("/svc-{i}")],
                upstream: Upstream {
                    endpoints: vec!["http://127.0.0.1:1".into()],
                    connect_timeout_ms: 1000,
                    response_timeout_ms: 1000,
                    ..Default::default()
                },
                ..Default::default()
            })
            .collect();
        let (config_tx, config_rx) = crate::source::channel();
        let (out_tx, mut out_rx) = watch::channel(None);
        let reloads = prometheus_client::metrics::counter::Counter::<u64>::default();
        let task = tokio::spawn(follow(config_rx, out_tx, reloads, None));
        config_tx.send_replace(Some(Arc::new(Snapshot {
            format: FORMAT_VERSION,
            revision: "big".into(),
            routes,
            ..Default::default()
        })));
        out_rx.changed().await.unwrap();
        let compiled = out_rx.borrow_and_update().clone().unwrap();
        assert!(compiled.compile_time > Duration::ZERO);
        assert_eq!(compiled.upstreams.len(), 10_000);
        let index = |path: &str| compiled.router.lookup(None, path).map(|m| m.index);
        // Prefixes match on whole segments only: `/svc-1` never answers `/svc-10…`.
        assert_eq!(index("/svc-1"), Some(1));
        assert_eq!(index("/svc-1/x"), Some(1));
        assert_eq!(index("/svc-10"), Some(10));
        assert_eq!(index("/svc-9999/a/b"), Some(9999));
        assert_eq!(index("/svc-10000"), None);
        assert_eq!(index("/svc-1x"), None);
        drop(config_tx);
        task.await.unwrap();
    }

    mod reuse {
        use super::*;
        use crate::config::{Route, Timeouts, Upstream, UpstreamTls};
        use crate::router::RequestFacts;

        fn mk_route(id: &str, hosts: &[&str], path: &str, endpoint: &str) -> Route {
            Route {
                id: id.into(),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                paths: vec![path.into()],
                upstream: Upstream {
                    endpoints: vec![endpoint.into()],
                    ..Default::default()
                },
                ..Default::default()
            }
        }

        /// Routes of every kind the router and the upstream sets distinguish, then
        /// 200 plain fillers.
        fn mk_routes() -> Vec<Route> {
            let mut routes = vec![
                mk_route("a", &[], "/a", "http://10.0.0.1:80"),
                mk_route("b", &["b.example.com"], "/b", "https://10.0.0.2"),
                mk_route("c", &["*.c.example.com"], "/c", "http://10.0.0.3/base"),
                mk_route("d", &[], "/d", "grpc://10.0.0.4:50051"),
                mk_route("e", &[], "/e", "http://10.0.0.5"),
                mk_route("f", &[], "/f", "https://10.0.0.6"),
                mk_route("g", &[], "/g", "http://10.0.0.7"),
                mk_route("dup", &[], "/dup1", "http://10.0.0.8"),
                // Same id, another upstream: a set never follows an id to a route
                // whose upstream differs.
                mk_route("dup", &[], "/dup2", "http://10.0.0.18"),
            ];
            routes[1].upstream.tls = Some(UpstreamTls {
                server_name: Some("b.internal".into()),
                ..Default::default()
            });
            routes[2].path_match = crate::config::PathMatch::Exact;
            routes[3].conditions.method = Some("POST".into());
            routes[4]
                .upstream
                .endpoints
                .push("http://10.0.0.55:8080".into());
            routes[4].upstream.weights = vec![1, 3];
            // A CA file: read at compile time, so never taken over.
            routes[5].upstream.tls = Some(UpstreamTls {
                ca_file: Some("/nonexistent/ca.pem".into()),
                ..Default::default()
            });
            routes[6].timeouts = Timeouts {
                request_ms: Some(5_000),
                ..Default::default()
            };
            for i in 0..200 {
                let host = format!("svc-{i}.example.com");
                let hosts: &[&str] = if i % 2 == 0 { &[host.as_str()] } else { &[] };
                routes.push(mk_route(
                    &format!("fill-{i}"),
                    hosts,
                    &format!("/svc-{i}"),
                    &format!("http://10.1.{}.{}:8080", i / 250, i % 250),
                ));
            }
            routes
        }

        fn mk(routes: Vec<Route>, revision: &str) -> Arc<Snapshot> {
            Arc::new(Snapshot {
                format: FORMAT_VERSION,
                revision: revision.into(),
                routes,
                ..Default::default()
            })
        }

        /// Requests that exercise every host class, exact paths and conditions.
        fn probes() -> Vec<(Option<String>, String, http::Method)> {
            let mut probes = Vec::new();
            for host in [
                None,
                Some("b.example.com"),
                Some("x.c.example.com"),
                Some("svc-4.example.com"),
                Some("other.example"),
            ] {
                for path in [
                    "/", "/a", "/a/x", "/b", "/b/y", "/c", "/c/z", "/d", "/d/1", "/e", "/f", "/g",
                    "/dup1", "/dup2", "/new", "/svc-4", "/svc-5/x", "/svc-199", "/svc-200",
                ] {
                    for method in [http::Method::GET, http::Method::POST] {
                        probes.push((host.map(str::to_owned), path.to_owned(), method));
                    }
                }
            }
            probes
        }

        /// Route ids and prefix lengths each probe gets, plus every route's upstream
        /// set as text: what a request sees of a compiled config.
        fn behaviour(c: &Compiled) -> (Vec<Option<(String, usize)>>, Vec<String>) {
            let headers = http::HeaderMap::new();
            let routed = probes()
                .iter()
                .map(|(host, path, method)| {
                    let facts = RequestFacts {
                        method,
                        headers: &headers,
                        query: None,
                    };
                    c.router
                        .lookup_request(host.as_deref(), path, &facts)
                        .map(|m| (c.snapshot.routes[m.index].id.clone(), m.prefix_len))
                })
                .collect();
            let sets = c.upstreams.iter().map(|u| u.fingerprint()).collect();
            (routed, sets)
        }

        fn index_of(c: &Compiled, path: &str) -> usize {
            c.snapshot
                .routes
                .iter()
                .position(|r| r.paths[0] == path)
                .unwrap()
        }

        #[test]
        fn an_upstream_only_change_keeps_the_router_and_every_other_set() {
            let old = Compiled::new(mk(mk_routes(), "1"));
            let mut routes = mk_routes();
            routes[0].upstream.endpoints = vec!["http://10.9.9.9:81".into()];
            let snapshot = mk(routes, "2");
            let reused = Compiled::with_previous(snapshot.clone(), Some(&old), None);
            let fresh = Compiled::new(snapshot);
            assert_eq!(behaviour(&reused), behaviour(&fresh));
            assert!(Arc::ptr_eq(&reused.router, &old.router));
            assert!(Arc::ptr_eq(&reused.catalog, &old.catalog));
            // Every set but the changed one, the CA-file one and the duplicate ids'.
            assert_eq!(reused.upstreams.len(), old.upstreams.len());
            for (i, set) in reused.upstreams.iter().enumerate() {
                let taken = Arc::ptr_eq(set, &old.upstreams[i]);
                let id = reused.snapshot.routes[i].id.as_str();
                assert_eq!(taken, !matches!(id, "a" | "f"), "route {id}");
            }
            assert_eq!(
                reused.reused,
                Reused {
                    router: true,
                    catalog: true,
                    upstreams: old.upstreams.len() - 2
                }
            );
            assert_ne!(
                fresh.upstreams[0].fingerprint(),
                old.upstreams[0].fingerprint()
            );
        }

        #[test]
        fn moved_and_changed_routes_compile_exactly_as_a_fresh_compile() {
            let old = Compiled::new(mk(mk_routes(), "1"));
            let mut routes = mk_routes();
            // One changed field per route; then a new route in front shifts them all.
            routes[0].upstream.endpoints[0] = "http://10.0.0.1:81".into();
            routes[1].upstream.tls.as_mut().unwrap().server_name = Some("other.internal".into());
            routes[4].upstream.weights = vec![3, 1];
            routes[6].timeouts.request_ms = Some(6_000);
            routes[9].upstream.connect_timeout_ms += 1;
            routes[10].upstream.protocol = crate::config::UpstreamProtocol::H2c;
            routes[11].upstream.outlier_detection.consecutive_failures += 1;
            routes[12].upstream.max_connections = 7;
            routes[13].timeouts.idle_ms = Some(1);
            routes[14].timeouts.backend_request_ms = Some(2);
            routes[15].upstream.response_timeout_ms += 1;
            routes.insert(0, mk_route("new", &[], "/new", "http://10.0.0.9"));
            let snapshot = mk(routes, "2");
            let reused = Compiled::with_previous(snapshot.clone(), Some(&old), None);
            let fresh = Compiled::new(snapshot);
            assert_eq!(behaviour(&reused), behaviour(&fresh));
            assert!(!reused.reused.router, "paths moved: the router is rebuilt");
            assert!(!Arc::ptr_eq(&reused.router, &old.router));
            let changed = [
                "/a", "/b", "/e", "/g", "/svc-0", "/svc-1", "/svc-2", "/svc-3", "/svc-4", "/svc-5",
                "/svc-6",
            ];
            let never = ["/new", "/f", "/dup1", "/dup2"];
            for (i, set) in reused.upstreams.iter().enumerate() {
                let path = reused.snapshot.routes[i].paths[0].as_str();
                let was = old.upstreams.iter().position(|o| Arc::ptr_eq(o, set));
                if changed.contains(&path) || never.contains(&path) {
                    assert_eq!(was, None, "{path} must be compiled afresh");
                } else {
                    assert_eq!(was, Some(index_of(&old, path)), "{path} keeps its own set");
                }
            }
            assert_eq!(
                reused.reused.upstreams,
                old.upstreams.len() - changed.len() - 3
            );
        }

        #[test]
        fn renaming_every_route_takes_over_nothing() {
            let old = Compiled::new(mk(mk_routes(), "1"));
            let mut routes = mk_routes();
            for route in &mut routes {
                route.id.push_str("-renamed");
            }
            let snapshot = mk(routes, "2");
            let reused = Compiled::with_previous(snapshot.clone(), Some(&old), None);
            assert_eq!(behaviour(&reused), behaviour(&Compiled::new(snapshot)));
            assert_eq!(reused.reused.upstreams, 0);
            // Same match fields: the routing table is still taken over.
            assert!(reused.reused.router);
        }

        #[test]
        fn a_changed_match_field_rebuilds_the_router() {
            let old = Compiled::new(mk(mk_routes(), "1"));
            let edits: Vec<fn(&mut Route)> = vec![
                |r| r.paths[0].push('x'),
                |r| r.hosts.push("h.example".into()),
                |r| r.path_match = crate::config::PathMatch::Exact,
                |r| r.allow_encoded_slashes = true,
                |r| r.conditions.method = Some("PUT".into()),
            ];
            for edit in edits {
                let mut routes = mk_routes();
                edit(&mut routes[20]);
                let snapshot = mk(routes, "2");
                let reused = Compiled::with_previous(snapshot.clone(), Some(&old), None);
                assert!(!reused.reused.router);
                assert!(!Arc::ptr_eq(&reused.router, &old.router));
                assert_eq!(behaviour(&reused), behaviour(&Compiled::new(snapshot)));
            }
            // A removed route too (same match fields otherwise).
            let mut routes = mk_routes();
            routes.pop();
            let reused = Compiled::with_previous(mk(routes, "3"), Some(&old), None);
            assert!(!reused.reused.router);
        }

        #[test]
        fn changed_clients_rebuild_the_catalog() {
            let old = Compiled::new(mk(mk_routes(), "1"));
            let mut snapshot = (*mk(mk_routes(), "2")).clone();
            snapshot.consumers.push(crate::config::Consumer {
                id: "c1".into(),
                username: None,
                custom_id: None,
            });
            let reused = Compiled::with_previous(Arc::new(snapshot), Some(&old), None);
            assert!(!reused.reused.catalog);
            assert!(reused.catalog.consumer("c1").is_some());
            assert!(old.catalog.consumer("c1").is_none());
        }
    }
}
