//! `OAuth2Policy`: OAuth2 protection attached to routes described by other objects
//! (Gateway API policy attachment, GEP-713). It targets `HTTPRoute`, `Gateway` or
//! `Ingress` objects in its own namespace and carries exactly the `oauth2` block of a
//! ProtectedRoute (one Rust type, one schema).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::protectedroute::OAuth2Spec;

/// OAuth2 protection for the HTTPRoutes, Gateways or Ingresses it targets.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "OAuth2Policy",
    namespaced,
    doc = "OAuth2 protection attached to HTTPRoutes, Gateways or Ingresses (GEP-713 policy attachment).",
    status = "OAuth2PolicyStatus",
    shortname = "oauth2pol",
    category = "gatehouse",
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".spec.targetRefs[*].name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2PolicySpec {
    /// The objects this policy protects, in the policy's namespace. A policy on a route
    /// overrides one on its Gateway.
    #[schemars(length(min = 1, max = 16))]
    pub target_refs: Vec<PolicyTargetRef>,
    /// OAuth2 protection settings, exactly as `ProtectedRoute.spec.oauth2`.
    #[serde(default)]
    pub oauth2: OAuth2Spec,
}

/// A GEP-713 `LocalPolicyTargetReferenceWithSectionName`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, KubeSchema)]
#[x_kube(validation = Rule::new("(self.group == 'gateway.networking.k8s.io' && (self.kind == 'HTTPRoute' || self.kind == 'Gateway')) || (self.group == 'networking.k8s.io' && self.kind == 'Ingress')").message("targetRefs may name gateway.networking.k8s.io HTTPRoute or Gateway, or networking.k8s.io Ingress"))]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// API group of the target (`gateway.networking.k8s.io` or `networking.k8s.io`).
    #[schemars(length(max = 253))]
    pub group: String,
    /// Kind of the target: `HTTPRoute`, `Gateway` or `Ingress`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the target (same namespace as the policy).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// A listener (Gateway) or named rule (HTTPRoute); unset means the whole object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub section_name: Option<String>,
}

/// Status of an OAuth2Policy: GEP-713 `ancestors` plus the usual `Ready` condition.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2PolicyStatus {
    /// One entry per target: whether the policy is accepted there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestors: Vec<PolicyAncestorStatus>,
    /// Standard conditions; Gatehouse sets `Ready`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// GEP-713 `PolicyAncestorStatus`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The object the policy attaches to.
    pub ancestor_ref: AncestorRef,
    /// Always `gatehouse.dev/gateway-controller`.
    pub controller_name: String,
    /// `Accepted` (reasons `Accepted`, `TargetNotFound`, `Conflicted`, `Invalid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A Gateway API `ParentReference` as used in ancestor status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AncestorRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

impl OAuth2PolicyStatus {
    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        crate::conditions::is_ready(&self.conditions)
    }
}
