//! Building the redirect back to a client: the registered URI is kept byte for
//! byte (exact redirect URIs), whatever the parameters appended to it.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::oauth2::authorize::with_params;

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let uri = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let state = parts.next().unwrap_or("");
    for in_fragment in [false, true] {
        let out = with_params(uri, &[("code", code), ("state", state)], in_fragment);
        // Registered URIs never carry a fragment (refused when a client is
        // configured, registered or fetched); for the rest, the part before it is kept.
        let base = uri.split_once('#').map_or(uri, |(base, _)| base);
        assert!(out.starts_with(base), "{uri:?} became {out:?}");
    }
}
