//! Path and host normalisation and route lookup: never a panic, and a matched
//! route's prefix always covers the normalised path it matched.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/path_router.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
