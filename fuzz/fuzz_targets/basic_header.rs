//! Client authentication from an `Authorization` header (Basic) and body fields:
//! arbitrary input is refused cleanly, and nothing authenticates against an
//! empty catalog.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/basic_header.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
