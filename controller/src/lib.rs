//! Gatehouse control plane: turns `Consumer`, `OAuth2Client` and `ProtectedRoute`
//! resources into the proxy's [`gatehouse_proxy::Snapshot`].
#![forbid(unsafe_code)]

pub mod cli;
pub mod translate;
