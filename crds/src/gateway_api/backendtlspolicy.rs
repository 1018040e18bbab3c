//! `BackendTLSPolicy`: how the proxy verifies the TLS of a Service it sends traffic to
//! (a CA bundle from a ConfigMap, or the system roots, and the name to verify and send
//! as SNI). A direct policy attachment (GEP-713) to Services.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::oauth2policy::PolicyAncestorStatus;

/// `gateway.networking.k8s.io/v1` BackendTLSPolicy (fields Gatehouse reads).
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "BackendTLSPolicy",
    root = "BackendTlsPolicy",
    plural = "backendtlspolicies",
    namespaced,
    status = "BackendTlsPolicyStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// The Services (optionally one named port: `sectionName`) in the policy's namespace.
    #[serde(default)]
    pub target_refs: Vec<BackendTlsTargetRef>,
    pub validation: BackendTlsValidation,
    /// Implementation-specific options; Gatehouse defines none and ignores them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A `LocalPolicyTargetReferenceWithSectionName`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsTargetRef {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
    /// A Service port name; unset: every port of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// How the backend's certificate is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsValidation {
    /// ConfigMaps (key `ca.crt`) in the policy's namespace holding PEM CA bundles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System`: the proxy's system trust roots.
    #[serde(
        default,
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<String>,
    /// Sent as SNI and verified in the certificate (unless `subjectAltNames` is set).
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// A `LocalObjectReference` (group, kind, name in the same namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    #[serde(default)]
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// A Subject Alternative Name the backend's certificate must carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAltName {
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// GEP-713 `PolicyStatus`: one entry per ancestor (the Gateway, or the Ingress or
/// ProtectedRoute, whose traffic reaches the Service).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTlsPolicyStatus {
    #[serde(default)]
    pub ancestors: Vec<PolicyAncestorStatus>,
}
