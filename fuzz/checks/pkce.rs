//! PKCE: any verifier/challenge pair is accepted or refused without a panic, and a
//! valid verifier always matches its own S256 challenge.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::oauth2::params::Params;
use gatehouse_proxy::oauth2::pkce::{s256, verify};

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (verifier, challenge) = text.split_once('\n').unwrap_or((text, ""));
    let body = format!("code_verifier={verifier}");
    let Ok(params) = Params::parse(
        None,
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    ) else {
        return;
    };
    let _ = verify(&params, challenge);
    if let Some(v) = params.raw("code_verifier") {
        let valid = (43..=128).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if valid {
            assert!(verify(&params, &s256(v)).is_ok());
        }
    }
}
