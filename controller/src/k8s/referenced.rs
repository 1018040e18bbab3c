//! Referenced Secrets that carry no [`CREDENTIALS_LABEL`](super::CREDENTIALS_LABEL)
//! (credentials, provision keys, login client secrets, CA bundles of backends).
//!
//! The Secret watcher only sees labelled Secrets (watching every Secret of a cluster
//! would hold Helm release blobs and service-account tokens in memory). A Secret that
//! an OAuth2Client or ProtectedRoute names but that is not labelled is read by name
//! instead: when it is first referenced, then again on every resync; one that does not
//! exist (yet) is looked for again every `retry_missing`. Labelling a Secret makes its
//! changes visible at once; the README says so.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::time::Instant;

use super::watch::{Cache, Key};
use crate::translate::{generated_secret_name, Input};

/// How many Secrets are read concurrently.
const CONCURRENCY: usize = 8;

/// Every Secret the input refers to: credentials (named, or the generated name of a
/// client without one), provision keys, login client secrets and backend CA bundles
/// (`backend.tls.caCertificateRef`, BackendTLSPolicy `caCertificateRefs` of kind
/// Secret).
pub fn referenced(input: &Input) -> BTreeSet<Key> {
    let ns = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.namespace.clone().unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for c in &input.clients {
        let name = match &c.spec.credentials_secret_ref {
            Some(r) => r.name.clone(),
            None => generated_secret_name(c.metadata.name.as_deref().unwrap_or_default()),
        };
        out.insert((ns(&c.metadata), name));
    }
    for r in &input.routes {
        if let Some(k) = &r.spec.oauth2.provision_key_secret_ref {
            out.insert((ns(&r.metadata), k.name.clone()));
        }
        if let Some(login) = &r.spec.oauth2.login {
            out.insert((ns(&r.metadata), login.oidc.client_secret_ref.name.clone()));
        }
    }
    out.extend(super::configmaps::ca_bundles(
        input,
        gatehouse_crds::CaSourceKind::Secret,
    ));
    out
}

struct Fetched {
    secret: Option<Arc<Secret>>,
    at: Instant,
}

/// Unlabelled referenced Secrets, read by name and kept until no longer referenced.
pub struct ReferencedSecrets {
    retry_missing: Duration,
    fetched: HashMap<Key, Fetched>,
    timeout: Duration,
}

impl ReferencedSecrets {
    /// `retry_missing`: how often a referenced Secret that does not exist is looked
    /// for again; `timeout`: bound on each read.
    pub fn new(retry_missing: Duration, timeout: Duration) -> Self {
        ReferencedSecrets {
            retry_missing,
            fetched: HashMap::new(),
            timeout,
        }
    }

    /// Read everything again on the next [`resolve`](Self::resolve) (resync).
    pub fn forget(&mut self) {
        self.fetched.clear();
    }

    /// Whether some referenced Secret was missing at the last resolve (the caller
    /// schedules a pass after `retry_missing` to look again).
    pub fn any_missing(&self) -> bool {
        self.fetched.values().any(|f| f.secret.is_none())
    }

    /// The Secrets in `wanted` that the `labelled` cache does not have, read from the
    /// API (or remembered). Read failures are logged and count as missing.
    pub async fn resolve(
        &mut self,
        client: &Client,
        wanted: &BTreeSet<Key>,
        labelled: &Cache<Secret>,
        now: Instant,
    ) -> Vec<Arc<Secret>> {
        let unlabelled: Vec<&Key> = wanted
            .iter()
            .filter(|(ns, name)| labelled.get(ns, name).is_none())
            .collect();
        self.fetched
            .retain(|k, _| wanted.contains(k) && labelled.get(&k.0, &k.1).is_none());

        let stale: Vec<Key> = unlabelled
            .iter()
            .filter(|k| match self.fetched.get(**k) {
                None => true,
                Some(f) => f.secret.is_none() && now.duration_since(f.at) >= self.retry_missing,
            })
            .map(|k| (*k).clone())
            .collect();
        let timeout = self.timeout;
        let reads = futures::stream::iter(stale)
            .map(|key| {
                let api: Api<Secret> = Api::namespaced(client.clone(), &key.0);
                async move {
                    let result = tokio::time::timeout(timeout, api.get_opt(&key.1)).await;
                    (key, result)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for ((ns, name), result) in reads {
            let secret = match result {
                Ok(Ok(Some(secret))) => {
                    tracing::info!(
                        namespace = %ns,
                        secret = %name,
                        "Referenced Secret has no gatehouse.dev/credentials label; \
                         its changes are picked up on resync only"
                    );
                    Some(Arc::new(secret))
                }
                Ok(Ok(None)) => None,
                Ok(Err(error)) => {
                    tracing::warn!(namespace = %ns, secret = %name, %error, "Reading a referenced Secret failed");
                    None
                }
                Err(_) => {
                    tracing::warn!(namespace = %ns, secret = %name, "Reading a referenced Secret timed out");
                    None
                }
            };
            self.fetched.insert((ns, name), Fetched { secret, at: now });
        }
        self.fetched
            .values()
            .filter_map(|f| f.secret.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_crds::{LocalRef, OAuth2Client, OAuth2ClientSpec, ProtectedRoute, SecretKeyRef};

    #[test]
    fn credentials_provision_keys_and_generated_names_are_referenced() {
        let mut named = OAuth2Client::new(
            "a",
            OAuth2ClientSpec {
                credentials_secret_ref: Some(LocalRef {
                    name: "a-creds".into(),
                }),
                ..OAuth2ClientSpec::default()
            },
        );
        named.metadata.namespace = Some("ns".into());
        let mut generated = OAuth2Client::new("b", OAuth2ClientSpec::default());
        generated.metadata.namespace = Some("ns".into());
        let mut route = ProtectedRoute::new("r", Default::default());
        route.metadata.namespace = Some("other".into());
        route.spec.oauth2.provision_key_secret_ref = Some(SecretKeyRef {
            name: "pk".into(),
            key: "provision_key".into(),
        });
        let input = Input {
            clients: vec![Arc::new(named), Arc::new(generated)],
            routes: vec![Arc::new(route)],
            ..Input::default()
        };
        let want: Vec<(&str, &str)> = vec![
            ("ns", "a-creds"),
            ("ns", "b-oauth2-credentials"),
            ("other", "pk"),
        ];
        let got = referenced(&input);
        let got: Vec<(&str, &str)> = got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(got, want);
    }
}
