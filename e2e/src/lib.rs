//! Test support for end-to-end tests: real processes and servers on loopback ports
//! chosen at run time, cleaned up on drop.

pub mod binary;
pub mod fake_apiserver;
pub mod grpc;
pub mod idp;
pub mod kube_apiserver;
pub mod manifests;
pub mod netns;
pub mod nginx;
pub mod pki;
pub mod raw_http;
pub mod real_upstreams;
pub mod redis_server;
pub mod snapshots;
pub mod upstream;
pub mod websocket;
