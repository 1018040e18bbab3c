//! Building the redirect back to a client: the registered URI is kept byte for
//! byte (exact redirect URIs), whatever the parameters appended to it.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/redirect_uri.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
