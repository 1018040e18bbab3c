//! Reading values out of Secrets (`stringData` or base64 `data`), and the credentials
//! Secrets translate asks the caller to create for OAuth2Clients that have none.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rand::RngCore;

use super::ObjectRef;

/// Key of the client id in a credentials Secret.
pub const CLIENT_ID_KEY: &str = "client_id";
/// Key of the client secret in a credentials Secret.
pub const CLIENT_SECRET_KEY: &str = "client_secret";

/// Label on generated credentials Secrets naming the OAuth2Client they belong to.
pub const CREDENTIALS_FOR_LABEL: &str = "gatehouse.dev/credentials-for";

/// The value of `key`, preferring `stringData` (as the API server does on write, and
/// as plain YAML files in standalone mode are usually written).
pub fn value<'s>(secret: &'s Secret, key: &str) -> Option<&'s [u8]> {
    if let Some(v) = secret.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.as_bytes());
    }
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.as_slice())
}

/// Name of the Secret generated for an OAuth2Client without `credentialsSecretRef`.
pub fn generated_secret_name(client_name: &str) -> String {
    format!("{client_name}-oauth2-credentials")
}

/// A credentials Secret to create for an OAuth2Client. `Debug` does not print the
/// secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedSecret {
    pub namespace: String,
    pub name: String,
    /// The OAuth2Client it belongs to (its uid, when known, becomes the owner
    /// reference so deleting the client deletes the Secret).
    pub owner: ObjectRef,
    pub client_id: String,
    /// `None` for public clients.
    pub client_secret: Option<String>,
}

impl std::fmt::Debug for GeneratedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl GeneratedSecret {
    /// Fresh strong credentials: a 128-bit client id and a 256-bit secret.
    pub(super) fn generate(
        owner: ObjectRef,
        public: bool,
        rng: &mut dyn RngCore,
    ) -> GeneratedSecret {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let client_secret = (!public).then(|| {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        });
        GeneratedSecret {
            namespace: owner.namespace.clone(),
            name: generated_secret_name(&owner.name),
            owner,
            client_id: hex::encode(id),
            client_secret,
        }
    }

    /// The Kubernetes Secret to create (values in `stringData`).
    pub fn to_secret(&self) -> Secret {
        let mut data = BTreeMap::new();
        data.insert(CLIENT_ID_KEY.to_owned(), self.client_id.clone());
        if let Some(s) = &self.client_secret {
            data.insert(CLIENT_SECRET_KEY.to_owned(), s.clone());
        }
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "gatehouse".to_owned(),
            ),
            (CREDENTIALS_FOR_LABEL.to_owned(), self.owner.name.clone()),
        ]);
        let owner_references = self.owner.uid.as_ref().map(|uid| {
            vec![OwnerReference {
                api_version: gatehouse_crds::API_VERSION.to_owned(),
                kind: self.owner.kind.as_str().to_owned(),
                name: self.owner.name.clone(),
                uid: uid.clone(),
                controller: Some(true),
                block_owner_deletion: None,
            }]
        });
        Secret {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels),
                owner_references,
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            string_data: Some(data),
            ..Secret::default()
        }
    }
}
