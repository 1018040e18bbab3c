//! The manifests loader (standalone and render): any text gives objects, warnings
//! or errors naming the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks/manifests.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
