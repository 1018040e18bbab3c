//! Reaching Redis: the connection flags every command shares ([`args`]), connection
//! targets and commands ([`conn`]), reconnect pacing ([`backoff`]) and the key prefix
//! rule every Gatehouse key follows ([`prefix`]). The proxy's token store, the proxy's
//! config source and the controller's publisher all build on this.

pub mod args;
pub mod backoff;
pub mod conn;
pub mod prefix;

pub use conn::{ConnectOptions, RedisConn, SubscriptionEvent, Target, TargetError};
