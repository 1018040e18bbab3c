//! PKCE: any verifier/challenge pair is accepted or refused without a panic, and a
//! valid verifier always matches its own S256 challenge.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/pkce.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
