//! Creating the credentials Secret of an OAuth2Client that has none.
//!
//! translate generates the values and names the Secret; here it is created, owned by
//! the client through an ownerReference (deleting the client deletes its Secret) and
//! labelled [`CREDENTIALS_LABEL`] so the Secret watcher sees it. The client's
//! `status.clientId` is recorded by the next pass, which reads the new Secret.
//!
//! The controller only ever *creates* such a Secret: if one with that name exists
//! already (another replica, a user), it is left alone and read like any other.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use super::{api_code, Error, Result, CREDENTIALS_LABEL, FIELD_MANAGER};
use crate::translate::GeneratedSecret;

/// Value of [`CREDENTIALS_LABEL`] on Secrets the controller generated.
pub const GENERATED: &str = "generated";

/// What happened to a create request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Created {
    Created,
    /// A Secret of that name exists already; it was not touched.
    AlreadyExists,
}

/// Why a Secret was not created.
#[derive(Debug, thiserror::Error)]
pub enum SkipReason {
    /// Without the owner's uid there can be no ownerReference, and a Secret nobody
    /// owns would outlive its client.
    #[error("the OAuth2Client has no uid yet")]
    NoOwnerUid,
}

/// The Secret object to create for `generated`.
pub fn to_secret(generated: &GeneratedSecret) -> std::result::Result<Secret, SkipReason> {
    if generated.owner.uid.is_none() {
        return Err(SkipReason::NoOwnerUid);
    }
    let mut secret = generated.to_secret();
    secret
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(CREDENTIALS_LABEL.to_owned(), GENERATED.to_owned());
    Ok(secret)
}

/// Create `secret` (built by [`to_secret`]).
pub async fn create(client: &Client, secret: &Secret, timeout: Duration) -> Result<Created> {
    let namespace = secret.metadata.namespace.as_deref().unwrap_or_default();
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    let action = format!("creating credentials Secret {namespace}/{name}");
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match tokio::time::timeout(timeout, api.create(&params, secret)).await {
        Ok(Ok(_)) => Ok(Created::Created),
        Ok(Err(e)) if api_code(&e) == Some(409) => Ok(Created::AlreadyExists),
        Ok(Err(source)) => Err(Error::Api { action, source }),
        Err(_) => Err(Error::Timeout { action, timeout }),
    }
}

/// Secrets created but maybe not yet seen through the watch, so a pass in between does
/// not try again (each pass would generate new values). Entries expire so a Secret
/// deleted right after creation is re-created eventually.
#[derive(Default)]
pub struct Pending {
    created: HashMap<(String, String), Instant>,
}

impl Pending {
    /// How long a created Secret is assumed to be on its way through the watch.
    pub const TTL: Duration = Duration::from_secs(60);

    /// Whether `generated` was created recently.
    pub fn contains(&self, generated: &GeneratedSecret, now: Instant) -> bool {
        self.created
            .get(&(generated.namespace.clone(), generated.name.clone()))
            .is_some_and(|at| now.duration_since(*at) < Self::TTL)
    }

    /// Remember a creation.
    pub fn record(&mut self, generated: &GeneratedSecret, now: Instant) {
        self.created
            .insert((generated.namespace.clone(), generated.name.clone()), now);
    }

    /// Drop expired entries.
    pub fn expire(&mut self, now: Instant) {
        self.created
            .retain(|_, at| now.duration_since(*at) < Self::TTL);
    }

    /// Forget everything (leadership change).
    pub fn forget(&mut self) {
        self.created.clear();
    }
}
