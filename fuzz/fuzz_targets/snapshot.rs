//! The snapshot decoder (file and Redis sources): any bytes give a snapshot or an
//! error; a decoded snapshot compiles into a router and re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/snapshot.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
