//! The subset of Gateway API v1 (standard channel) that Gatehouse serves, as our own
//! serde types: `GatewayClass`, `Gateway`, `HTTPRoute`, `ReferenceGrant` and
//! `BackendTLSPolicy`.
//!
//! Why our own: the `gateway-api` crate is built against other kube / k8s-openapi
//! versions than ours. These types carry only the fields Gatehouse acts on; in a cluster
//! unknown fields are ignored (the API server validated the object against the real
//! CRD). The CRDs themselves come from `sigs.k8s.io/gateway-api`, never from here
//! (`schema = "disabled"`).

pub mod backendtlspolicy;
pub mod gateway;
pub mod gatewayclass;
pub mod httproute;
pub mod referencegrant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde::{Deserialize, Serialize};

pub use backendtlspolicy::{
    BackendTlsPolicy, BackendTlsPolicySpec, BackendTlsPolicyStatus, BackendTlsTargetRef,
    BackendTlsValidation, LocalObjectReference, SubjectAltName,
};
pub use gateway::{
    AllowedRoutes, Gateway, GatewaySpec, GatewayStatus, GatewayStatusAddress, GatewayTls, Listener,
    ListenerStatus, RouteGroupKind, RouteNamespaces, SecretObjectReference,
};
pub use gatewayclass::{GatewayClass, GatewayClassSpec, GatewayClassStatus};
pub use httproute::{
    BackendRef, HeaderMatch, HeaderModifier, HttpHeader, HttpRoute, HttpRouteFilter,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, HttpRouteStatus, HttpRouteTimeouts,
    ParentReference, PathMatch, PathModifier, QueryParamMatch, RequestRedirect, RouteParentStatus,
    UrlRewrite,
};
pub use referencegrant::{
    ReferenceGrant, ReferenceGrantFrom, ReferenceGrantSpec, ReferenceGrantTo,
};

/// API group of Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The `controllerName` Gatehouse answers for.
pub const CONTROLLER_NAME: &str = "gatehouse.dev/gateway-controller";

/// Conditions as Gateway API statuses carry them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conditions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Gateway API condition types and reasons used by Gatehouse (the standard ones).
pub mod reason {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const INVALID: &str = "Invalid";
    pub const PENDING: &str = "Pending";
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    pub const CONFLICTED: &str = "Conflicted";
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    /// BackendTLSPolicy `Accepted=False`: every `caCertificateRefs` entry is invalid.
    pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";
    /// BackendTLSPolicy `ResolvedRefs=False`: a CA reference names a missing object,
    /// one without `ca.crt`, or one that is not PEM.
    pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
}
