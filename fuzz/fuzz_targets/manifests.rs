//! The manifests loader (standalone and render): any text gives objects, warnings
//! or errors naming the file, never a panic.
#![no_main]
use gatehouse_controller::manifests::Manifests;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = Manifests::read_strs([("fuzz.yaml", text)]);
    for e in &m.errors {
        assert!(e.to_string().starts_with("fuzz.yaml"));
    }
});
