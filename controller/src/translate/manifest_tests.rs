//! What the manifest-driven translate tests share: one fixed clock and one way to
//! translate manifest files as `standalone` or `render` would read them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use rand::SeedableRng;

use crate::manifests::Manifests;
use crate::translate::{translate, LastGood, Options, Output};

/// The instant every translate test runs at.
pub fn now() -> Time {
    Time(Timestamp::from_second(1_700_000_000).unwrap())
}

/// Read `files` (name, text), failing the test on any manifest error, and translate
/// them with `options` and the last good versions in `memory`.
pub fn translate_files<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
    options: &Options,
    memory: &LastGood,
) -> Output {
    let m = Manifests::read_strs(files);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let mut input = m.input;
    input.last_good = memory.clone();
    translate(&input, options, &mut rand::rngs::StdRng::seed_from_u64(1))
}
