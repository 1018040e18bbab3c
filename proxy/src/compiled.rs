//! A snapshot compiled for serving: routing table, catalog, upstream sets and scope
//! rules, built once
//! per snapshot change and shared read-only by every worker. Swapping the whole
//! `Arc<Compiled>` at once is what keeps a request from ever seeing half a config.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_config::seal::LoginKey;
use tokio::sync::watch;

use crate::catalog::Catalog;
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
    pub router: Router,
    pub catalog: Catalog,
    /// One per route, same index as `snapshot.routes`.
    pub upstreams: Vec<UpstreamSet>,
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

    /// Compile, reusing the certificates `previous` compiled where their PEM is
    /// unchanged, and keeping its certificate for an id whose new PEM does not load.
    /// `login_key` opens sealed TLS private keys.
    pub fn with_previous(
        snapshot: Arc<Snapshot>,
        previous: Option<&Compiled>,
        login_key: Option<&LoginKey>,
    ) -> Self {
        let started = Instant::now();
        let (certs, problems) = CertTable::new(
            &snapshot.certificates,
            previous.map(|p| &p.certs),
            login_key,
        );
        for problem in problems {
            tracing::warn!(%problem, "TLS certificate not loaded; keeping the previous one if any");
        }
        let certs_done = started.elapsed();
        let router = Router::new(&snapshot.routes);
        let router_done = started.elapsed();
        let catalog = Catalog::new(&snapshot);
        let catalog_done = started.elapsed();
        let upstreams = snapshot
            .routes
            .iter()
            .map(|route| {
                let (set, problems) = UpstreamSet::new(&route.upstream, &route.timeouts);
                for problem in problems {
                    tracing::warn!(route.id = %route.id, %problem, "Upstream endpoint ignored");
                }
                set
            })
            .collect();
        let upstreams_done = started.elapsed();
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
            router_ms = ms(router_done - certs_done),
            catalog_ms = ms(catalog_done - router_done),
            upstreams_ms = ms(upstreams_done - catalog_done),
            rules_ms = ms(started.elapsed() - upstreams_done),
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
        }
    }

    /// Compile time in milliseconds, for log lines.
    pub fn compile_ms(&self) -> f64 {
        self.compile_time.as_secs_f64() * 1e3
    }
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
        "Configuration compiled"
    );
    Some(Arc::new(compiled))
}

/// Compile every snapshot published on `config` into `out` until the source goes away
/// (the last compiled config then stays in force).
///
/// This task runs on a serving worker, so compiling (hundreds of milliseconds for
/// 100,000 routes) and freeing the replaced config run on tokio's blocking pool: the
/// worker keeps answering requests with the old config until the new one is swapped in.
pub async fn follow(
    mut config: ConfigRx,
    out: CompiledTx,
    reloads: prometheus_client::metrics::counter::Counter,
    login_key: Option<LoginKey>,
) {
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
        let compiled = tokio::task::spawn_blocking(move || {
            Arc::new(Compiled::with_previous(
                snapshot,
                previous.as_deref(),
                key.as_ref(),
            ))
        })
        .await;
        let compiled = match compiled {
            Ok(compiled) => compiled,
            Err(error) => {
                tracing::error!(%revision, %error, "Compiling the configuration failed; keeping the last one");
                continue;
            }
        };
        let compile_ms = compiled.compile_ms();
        let replaced = out.send_replace(Some(compiled));
        reloads.inc();
        tracing::info!(%revision, routes, compile_ms, "Configuration loaded");
        // Requests still running hold their own reference; when none does, the whole
        // old config is freed here, off the worker.
        tokio::task::spawn_blocking(move || drop(replaced));
    }
    tracing::debug!("Configuration source closed; keeping the last configuration");
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
}
