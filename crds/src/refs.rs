//! References from one Gatehouse resource to another object in the same namespace.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to an object by name, in the namespace of the referring resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalRef {
    /// Name of the referenced object (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret in the same namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_provision_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The Secret key a provision key is read from unless another is named.
pub const PROVISION_KEY: &str = "provision_key";

fn default_provision_key() -> String {
    PROVISION_KEY.to_owned()
}
