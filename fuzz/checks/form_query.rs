//! Query string + form/JSON body parsing of OAuth2 requests, and the form helpers
//! of token lookup: any bytes give a value or an error, never a panic.
//!
//! Shared by the cargo-fuzz target of the same name and by the corpus replay test
//! (`tests/fuzz_corpus.rs`), so the target always compiles with the product.
use gatehouse_proxy::enforce::{form_param, without_param};
use gatehouse_proxy::oauth2::params::Params;

pub fn check(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let query = std::str::from_utf8(head).ok();
    for content_type in ["application/x-www-form-urlencoded", "application/json"] {
        if let Ok(params) = Params::parse(query, Some(content_type), body) {
            let _ = params.get("client_id");
            let _ = params.raw("code_verifier");
        }
    }
    let _ = form_param(body, "access_token");
    if let Some(q) = query {
        let rest = without_param(q, "access_token");
        assert!(form_param(rest.as_bytes(), "access_token").is_none());
    }
}
