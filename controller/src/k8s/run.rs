//! Wiring of `gatehouse controller`: start-up checks, the Kubernetes client, the
//! watchers ([`super::caches`]), leader election, the admin listener, the
//! re-translation loop ([`super::reconcile`]) and graceful shutdown.

use std::sync::Arc;

use anyhow::Context as _;
use gatehouse_config::publish::Publisher;
use gatehouse_proxy::signal::shutdown_signal;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::admin::{self, Health};
use super::args::ControllerArgs;
use super::caches::{Caches, Scope};
use super::lease::{default_identity, Elector, LeaseConfig};
use super::metrics::Metrics;
use super::reconcile::{Controller, Timing};
use super::referenced::ReferencedSecrets;
use super::status::api_resource;
use super::writes::Writer;
use super::{api_code, Error, Result};
use crate::translate::Kind;

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
    let redis = args.redis_conn.target_for(&args.redis).context("--redis")?;
    let publisher = Publisher::new(&redis, &args.redis_conn.redis_prefix).map_err(Error::Redis)?;

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
    let config_maps =
        super::configmaps::ReferencedConfigMaps::new(changes_tx.clone(), metrics.clone());
    let watchers = caches.spawn_watchers(
        &client,
        &scope,
        changes_tx,
        metrics.clone(),
        args.gateway_api_recheck,
    );
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
        config_maps,
        config_map_wait: args.write_timeout,
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
        issuers: Default::default(),
        last_good: Default::default(),
        gateway_class: args.gateway_class.clone(),
        publish_service: args.publish_service.clone(),
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
