//! The `status` shape shared by Gatehouse resources: standard conditions plus the
//! generation they describe.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Status of a Consumer or ProtectedRoute.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStatus {
    /// Standard conditions; Gatehouse sets `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl ObjectStatus {
    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        crate::conditions::is_ready(&self.conditions)
    }
}
