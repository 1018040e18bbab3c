//! Client authentication from an `Authorization` header (Basic) and body fields:
//! arbitrary input is refused cleanly, and nothing authenticates against an
//! empty catalog.
#![no_main]
use gatehouse_proxy::catalog::Catalog;
use gatehouse_proxy::oauth2::client_auth::authenticate;
use gatehouse_proxy::oauth2::params::Params;
use gatehouse_proxy::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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
    assert!(authenticate(&params, Some(header), &catalog).is_err());
});
