//! The controller ↔ proxy contract, shared by both sides and by nothing else:
//!
//! - [`snapshot`]: the [`Snapshot`] document the controller produces and the proxy serves;
//! - [`channel`]: the in-process hand-off (a `watch` channel) and the one
//!   "publish if changed" rule every source uses;
//! - [`redis`]: reaching Redis (one server, Sentinel, Cluster), used by the proxy's token
//!   store too;
//! - [`publish`] and [`follow`]: the snapshot's trip through Redis, controller → proxies;
//! - [`path`]: path normalisation, so the router and translate agree on a path;
//! - [`loopback`]: which hosts count as this machine (where plain `http` is allowed).
//!
//! See `docs/architecture.md` for how a snapshot travels from a watch event to a request.
#![forbid(unsafe_code)]

pub mod channel;
pub mod follow;
pub mod loopback;
pub mod path;
pub mod publish;
pub mod redis;
pub mod seal;
pub mod snapshot;

pub use snapshot::Snapshot;
