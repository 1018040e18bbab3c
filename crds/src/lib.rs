//! Gatehouse custom resources (`gatehouse.dev/v1alpha1`): [`Consumer`],
//! [`OAuth2Client`], [`ProtectedRoute`] and [`OAuth2Policy`], their shared status shape and conditions,
//! and the generated CustomResourceDefinitions.
//!
//! These types depend on kube and k8s-openapi but on nothing else of ours: the
//! controller translates them into the proxy's snapshot.
#![forbid(unsafe_code)]

pub mod conditions;
pub mod consumer;
pub mod gateway_api;
pub mod login;
pub mod oauth2client;
pub mod oauth2policy;
pub mod protectedroute;
pub mod refs;
pub mod status;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use consumer::{Consumer, ConsumerSpec, ConsumerStatus};
pub use login::{ClientSecretRef, ConsentMode, LoginSpec, OidcSpec, RequiredClaim};
pub use oauth2client::{ClientType, GrantType, OAuth2Client, OAuth2ClientSpec, OAuth2ClientStatus};
pub use oauth2policy::{
    AncestorRef, OAuth2Policy, OAuth2PolicySpec, OAuth2PolicyStatus, PolicyAncestorStatus,
    PolicyTargetRef,
};
pub use protectedroute::{
    Backend, BackendProtocol, BackendTls, CaCertificateRef, CaSourceKind, Method, OAuth2Spec, Pkce,
    ProtectedRoute, ProtectedRouteSpec, ProtectedRouteStatus, RouteTimeouts, RouteTls, ScopeRule,
    ServiceBackend,
};
pub use refs::{LocalRef, SecretKeyRef};
pub use status::ObjectStatus;

/// API group of every Gatehouse resource.
pub const GROUP: &str = "gatehouse.dev";
/// API version of every Gatehouse resource.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "gatehouse.dev/v1alpha1";

/// Every CRD, with the file name it is checked in under in `crds/yaml/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("consumer.yaml", Consumer::crd()),
        ("oauth2client.yaml", OAuth2Client::crd()),
        ("oauth2policy.yaml", OAuth2Policy::crd()),
        ("protectedroute.yaml", ProtectedRoute::crd()),
    ]
}

/// One CRD as YAML, exactly as checked in.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> String {
    serde_yaml::to_string(crd).expect("a CRD is representable as YAML")
}

/// Every CRD as one multi-document YAML stream (what `gatehouse crds` prints).
pub fn all_crds_yaml() -> String {
    crds()
        .iter()
        .map(|(_, crd)| format!("---\n{}", crd_yaml(crd)))
        .collect()
}
