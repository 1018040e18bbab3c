//! Building the redirect back to a client: the registered URI is kept byte for
//! byte (exact redirect URIs), whatever the parameters appended to it.
#![no_main]
use gatehouse_proxy::oauth2::authorize::with_params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\n');
    let uri = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let state = parts.next().unwrap_or("");
    for in_fragment in [false, true] {
        let out = with_params(uri, &[("code", code), ("state", state)], in_fragment);
        assert!(out.starts_with(uri), "{uri:?} became {out:?}");
    }
});
