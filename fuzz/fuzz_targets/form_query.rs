//! Query string + form/JSON body parsing of OAuth2 requests, and the form helpers
//! of token lookup: any bytes give a value or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/form_query.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
