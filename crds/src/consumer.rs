//! `Consumer`: who owns client applications (a Kong consumer). Sent upstream as
//! `X-Consumer-ID` / `X-Consumer-Username` / `X-Consumer-Custom-ID`.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::ObjectStatus;

/// Status of a Consumer.
pub type ConsumerStatus = ObjectStatus;

/// A consumer of protected APIs: the owner of one or more OAuth2 clients, or the
/// identity anonymous requests pass as.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "Consumer",
    namespaced,
    doc = "A consumer of protected APIs (Kong consumer): owns OAuth2 clients or is the identity anonymous requests pass as.",
    status = "ConsumerStatus",
    shortname = "gconsumer",
    category = "gatehouse",
    printcolumn = r#"{"name":"Username","type":"string","jsonPath":".spec.username"}"#,
    printcolumn = r#"{"name":"Custom ID","type":"string","jsonPath":".spec.customId"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("has(self.username) || has(self.customId)").message("set username, customId or both"))]
#[serde(rename_all = "camelCase")]
pub struct ConsumerSpec {
    /// Sent upstream as `X-Consumer-Username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub username: Option<String>,
    /// Your own identifier for this consumer, sent upstream as `X-Consumer-Custom-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub custom_id: Option<String>,
}
