//! Gatehouse data plane: a reverse proxy that is also an OAuth2 authorization server.
//!
//! Dependencies point one way: [`config`] (the snapshot contract, `gatehouse-config`)
//! ← [`catalog`] and [`router`] (compiled lookups) ← [`oauth2`] / [`enforce`]
//! (decisions) ← [`upstream`] ← [`server`] (listeners, the request pipeline). The
//! request path is `server::pipeline`; `docs/architecture.md` draws it. The proxy never
//! talks to Kubernetes.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod audit;
pub mod authz;
pub mod binding;
pub mod body;
pub mod catalog;
pub mod cli;
pub mod compiled;
pub mod enforce;
pub mod error;
pub mod filters;
pub mod forwarded;
pub mod grpc;
pub mod headers;
pub mod http1;
pub mod login;
pub mod methods;
pub mod metrics;
pub mod oauth2;
pub mod ratelimit;
pub mod respond;
pub mod router;
pub mod secret;
pub mod server;
pub mod signal;
pub mod source;
pub mod store;
pub mod tls;
pub mod upstream;

/// The login key (sealed snapshot secrets, session cookies), shared with the controller.
pub use gatehouse_config::path;
pub use gatehouse_config::seal;
/// The snapshot contract, as the proxy's modules name it (`crate::config::Route`).
pub use gatehouse_config::snapshot as config;
pub use gatehouse_config::Snapshot;
