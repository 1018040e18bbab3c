//! The in-cluster controller (`gatehouse controller`): everything that talks to the
//! Kubernetes API. [`crate::translate`] decides; this module observes and applies.
//!
//! - [`watch`]: defensive watchers feeding in-memory caches (a malformed object is a
//!   warning, never a stalled watch);
//! - [`referenced`]: referenced Secrets that carry no label, fetched by name;
//! - [`caches`]: what translate reads, one watcher per kind;
//! - [`reconcile`]: the debounced re-translation loop and resync;
//! - [`run`]: the wiring: start-up checks, leader election, admin, shutdown;
//! - the snapshot writer to Redis is [`gatehouse_config::publish`] (publish only when
//!   changed);
//! - [`lease`]: leader election on a `coordination.k8s.io` Lease; only the leader writes;
//! - [`status`], [`secrets`], [`events`]: the writes (status with server-side apply,
//!   generated credentials Secrets, Events on transitions);
//! - [`admin`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`;
//! - [`publish_service`]: the proxy Service's addresses for Ingress/Gateway status;
//! - [`args`]: the `gatehouse controller` flags.

pub mod admin;
pub mod args;
pub mod caches;
#[cfg(test)]
mod chart_metrics_tests;
pub mod configmaps;
pub mod events;
pub mod lease;
pub mod metrics;
pub mod publish_service;
pub mod reconcile;
pub mod referenced;
pub mod run;
pub mod secrets;
pub mod sources;
pub mod status;
pub mod watch;
pub mod writes;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
mod fixtures;

/// Field manager of every write (server-side apply owner, `managedFields` entry).
pub const FIELD_MANAGER: &str = "gatehouse";

/// Label that makes a Secret visible to the controller's Secret watcher (any value).
/// Generated credentials Secrets carry it; label your own credentials and provision-key
/// Secrets with it so changes (rotation) are picked up at once. Referenced Secrets
/// without it are read by name instead (see [`referenced`]).
pub const CREDENTIALS_LABEL: &str = "gatehouse.dev/credentials";

/// Errors of the Kubernetes side of the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action}: {source}")]
    Api {
        action: String,
        #[source]
        source: kube::Error,
    },
    /// A Kubernetes API call did not answer in time.
    #[error("{action}: no answer within {timeout:?}")]
    Timeout {
        action: String,
        timeout: std::time::Duration,
    },
    /// The CustomResourceDefinitions are not installed.
    #[error(
        "the Gatehouse CRDs are not installed (no {missing} in the cluster); install them \
         with `gatehouse crds | kubectl apply --server-side -f -` (or the Helm chart) \
         and start the controller again"
    )]
    CrdsMissing { missing: String },
    /// The controller may not read its resources.
    #[error(
        "not allowed to list {resource}: {message}; grant the controller's ServiceAccount \
         get/list/watch on it (the Helm chart's RBAC does)"
    )]
    Forbidden { resource: String, message: String },
    /// Publishing the snapshot to Redis failed (or the Redis target is unusable).
    #[error("publishing the snapshot to Redis: {0}")]
    Redis(#[source] gatehouse_config::publish::ConfigError),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Run `fut` with a time bound, mapping both failure kinds to [`Error`].
pub(crate) async fn bounded<T>(
    timeout: std::time::Duration,
    action: impl Into<String>,
    fut: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T> {
    let action = action.into();
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(Error::Api { action, source }),
        Err(_) => Err(Error::Timeout { action, timeout }),
    }
}

/// The HTTP status code of a Kubernetes API error response, if it was one.
pub(crate) fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}
