//! Reaching Redis: connection targets and commands ([`conn`]), reconnect pacing
//! ([`backoff`]) and the key prefix rule every Gatehouse key follows ([`prefix`]).
//! The proxy's token store and the snapshot's publish/follow both build on this.

pub mod backoff;
pub mod conn;
pub mod prefix;

pub use conn::{ConnectOptions, RedisConn, SubscriptionEvent, Target, TargetError};
