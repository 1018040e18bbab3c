//! Client authentication from an `Authorization` header (Basic) and body fields:
//! arbitrary input is refused cleanly, and nothing authenticates against an
//! empty catalog.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::catalog::Catalog;
use gatehouse_proxy::oauth2::client_auth::authenticate_configured;
use gatehouse_proxy::oauth2::params::Params;
use gatehouse_proxy::Snapshot;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (header, body) = text.split_once('\n').unwrap_or((text, ""));
    let snapshot = Snapshot::from_json(br#"{"format":1,"revision":"f","routes":[]}"#)
        .expect("literal snapshot");
    let catalog = Catalog::new(&snapshot);
    let params = Params::parse(
        None,
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
    .unwrap_or_default();
    assert!(authenticate_configured(&params, Some(header), &catalog).is_err());
}
