//! Gatehouse control plane: turns `Consumer`, `OAuth2Client` and `ProtectedRoute`
//! resources into the proxy's [`gatehouse_proxy::Snapshot`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod echo;
pub mod issuers;
pub mod k8s;
pub mod manifests;
pub mod render;
pub mod standalone;
pub mod translate;
