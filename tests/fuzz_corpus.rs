//! The fuzz corpora replayed through the fuzz targets' checks on every test run: the
//! bounded smoke run of the fuzzers (`scripts/fuzz` runs libFuzzer itself). Sharing
//! the checks with `fuzz/` also keeps every target compiling with today's code.

use std::path::Path;

#[path = "../fuzz/checks/basic_header.rs"]
mod basic_header;
#[path = "../fuzz/checks/form_query.rs"]
mod form_query;
#[path = "../fuzz/checks/manifests.rs"]
mod manifests;
#[path = "../fuzz/checks/path_router.rs"]
mod path_router;
#[path = "../fuzz/checks/pkce.rs"]
mod pkce;
#[path = "../fuzz/checks/redirect_uri.rs"]
mod redirect_uri;
#[path = "../fuzz/checks/snapshot.rs"]
mod snapshot;

/// A fuzz target's property: panics when the input breaks it.
type Check = fn(&[u8]);

/// Runs `check` over every input kept for `target` (seeds, and inputs a fuzzing run
/// found new coverage with) and returns how many there were.
fn replay(target: &str, check: Check) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        // A panic names the input, so it can be replayed with `cargo fuzz run`.
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        inputs += 1;
    }
    assert!(inputs > 0, "{target}: empty corpus at {}", dir.display());
    inputs
}

#[test]
fn every_corpus_input_passes_its_check() {
    let targets: [(&str, Check); 7] = [
        ("basic_header", basic_header::check),
        ("form_query", form_query::check),
        ("manifests", manifests::check),
        ("path_router", path_router::check),
        ("pkce", pkce::check),
        ("redirect_uri", redirect_uri::check),
        ("snapshot", snapshot::check),
    ];
    for (target, check) in targets {
        replay(target, check);
    }
}

#[test]
fn every_fuzz_target_has_a_check_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().replace(".rs", ""))
            .collect();
        v.sort();
        v
    };
    let targets = names("fuzz_targets");
    assert_eq!(targets, names("checks"));
    assert_eq!(targets, names("corpus"));
    assert_eq!(targets.len(), 7, "add the new target to the replay above");
}
