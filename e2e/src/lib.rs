//! Test support for end-to-end tests: real processes and servers on loopback ports
//! chosen at run time, cleaned up on drop.

pub mod binary;
pub mod fake_apiserver;
pub mod idp;
pub mod redis_server;
pub mod upstream;
