//! `GatewayClass` (cluster-scoped): which controller implements Gateways of a class.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::Conditions;

/// Status of a GatewayClass: conditions only.
pub type GatewayClassStatus = Conditions;

/// `gateway.networking.k8s.io/v1` GatewayClass (fields Gatehouse reads).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "GatewayClass",
    plural = "gatewayclasses",
    status = "GatewayClassStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// `gatehouse.dev/gateway-controller` for classes Gatehouse implements.
    pub controller_name: String,
}
