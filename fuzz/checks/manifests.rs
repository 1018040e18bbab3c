//! The manifests loader (standalone and render): any text gives objects, warnings
//! or errors naming the file, never a panic.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_controller::manifests::Manifests;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let m = Manifests::read_strs([("fuzz.yaml", text)]);
    for e in &m.errors {
        assert!(e.to_string().starts_with("fuzz.yaml"));
    }
}
