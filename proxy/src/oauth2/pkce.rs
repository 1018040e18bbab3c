//! PKCE (RFC 7636), S256 only, with Kong's `pkce` modes and messages.
//!
//! - At `/oauth2/authorize`: [`challenge`] validates `code_challenge` /
//!   `code_challenge_method` and decides whether one is required (strict: every
//!   client; lax: public clients; none: nobody).
//! - At `/oauth2/token`: [`verify`] checks the `code_verifier` against the challenge
//!   stored with the code, in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use super::error::{OAuthError, Result};
use super::params::Params;
use crate::config::{ClientType, PkceMode};

/// Longest challenge we store: an S256 challenge is 43 characters; allow padding
/// and some slack without letting a client park arbitrary data in the store.
const MAX_CHALLENGE_LEN: usize = 128;

/// Whether `mode` requires a challenge from a client of `client_type`.
pub fn required(mode: PkceMode, client_type: ClientType) -> bool {
    match mode {
        PkceMode::None => false,
        PkceMode::Lax => client_type == ClientType::Public,
        PkceMode::Strict => true,
    }
}

/// Canonical form of a challenge: base64url without padding. Kong accepts
/// challenges sent with `+`, `/` or `=`, so normalise instead of refusing.
fn normalise(challenge: &str) -> String {
    challenge
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

/// Validate the PKCE parameters of an authorization request and return the
/// challenge to store with the code.
pub fn challenge(
    params: &Params,
    mode: PkceMode,
    client_type: ClientType,
) -> Result<Option<String>> {
    let challenge = params.get("code_challenge")?;
    let method = params.get("code_challenge_method")?;
    let Some(challenge) = challenge else {
        if method.is_some() {
            return Err(OAuthError::invalid_request(
                "code_challenge is required when code_method is present",
            ));
        }
        if required(mode, client_type) {
            return Err(OAuthError::invalid_request(match mode {
                PkceMode::Strict => "code_challenge is required for all clients",
                _ => "code_challenge is required for public clients",
            }));
        }
        return Ok(None);
    };
    // RFC 7636 §4.3 defaults to `plain`; Kong (and we) only speak S256 and treat a
    // missing method as S256.
    if method.is_some_and(|m| m != "S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method is not supported, must be S256",
        ));
    }
    let ok_chars = challenge
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b));
    if challenge.len() > MAX_CHALLENGE_LEN || !ok_chars {
        return Err(OAuthError::invalid_request(
            "code_challenge must be a base64url-encoded SHA-256 digest",
        ));
    }
    Ok(Some(normalise(challenge)))
}

/// RFC 7636 §4.1: `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~".contains(&b)
}

/// Check the token request's `code_verifier` against the stored `challenge`.
///
/// Errors use Kong's messages: `invalid_request` for a missing or malformed
/// verifier, `invalid_grant` ("Invalid code") when it does not match.
pub fn verify(params: &Params, challenge: &str) -> Result<()> {
    if params.is_present("code_verifier") && params.raw("code_verifier").is_none() {
        return Err(OAuthError::invalid_request("code_verifier is not a string"));
    }
    let Some(verifier) = params.raw("code_verifier") else {
        return Err(OAuthError::invalid_request(
            "code_verifier is required for PKCE authorization requests",
        ));
    };
    if !(43..=128).contains(&verifier.len()) {
        return Err(OAuthError::invalid_request(
            "code_verifier must be between 43 and 128 characters",
        ));
    }
    if !verifier.bytes().all(unreserved) {
        return Err(OAuthError::invalid_request(
            "code_verifier contains characters outside [A-Za-z0-9-._~]",
        ));
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let expected = normalise(challenge);
    if computed.as_bytes().ct_eq(expected.as_bytes()).into() {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant("Invalid code"))
    }
}

/// The S256 challenge for `verifier` (used by tests and by clients we simulate).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::error::ErrorCode;

    fn q(s: &str) -> Params {
        Params::parse(Some(s), None, b"").unwrap()
    }

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7636 Appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc7636_example_verifies() {
        assert_eq!(s256(VERIFIER), CHALLENGE);
        verify(&q(&format!("code_verifier={VERIFIER}")), CHALLENGE).unwrap();
    }

    #[test]
    fn a_challenge_with_padding_or_standard_alphabet_is_accepted() {
        // Kong's own test vectors.
        let v = "abcdelfhigklmnopqrstuvwxyz0123456789abcdefg";
        verify(
            &q(&format!("code_verifier={v}")),
            "2aC4cMSkAsMRtZbhHhiZkDW3sddRf_iTRGil1r9gi8w=",
        )
        .unwrap();
        let v = "abcdelfhigklmnopqrstuvwxyz0123456789abcdefghijklmnop9";
        verify(
            &q(&format!("code_verifier={v}")),
            "0LoS6Gtrw16r07+ZXsCf8MeAi21QHmKc3LJdUCA5w/o=",
        )
        .unwrap();
    }

    #[test]
    fn a_wrong_verifier_is_an_invalid_grant() {
        let e = verify(
            &q("code_verifier=abcdelfhigklmnopqrstuvwxyz0123456789abcdefg"),
            CHALLENGE,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, &*e.description),
            (ErrorCode::InvalidGrant, "Invalid code")
        );
    }

    #[test]
    fn verifier_length_and_presence_are_checked() {
        let e = verify(&q(""), CHALLENGE).unwrap_err();
        assert_eq!(
            e.description,
            "code_verifier is required for PKCE authorization requests"
        );
        for bad in ["", "abc123", &"a".repeat(129)] {
            let e = verify(&q(&format!("code_verifier={bad}")), CHALLENGE).unwrap_err();
            assert_eq!(
                e.description,
                "code_verifier must be between 43 and 128 characters"
            );
        }
        let p = Params::parse(None, Some("application/json"), br#"{"code_verifier":12}"#).unwrap();
        assert_eq!(
            verify(&p, CHALLENGE).unwrap_err().description,
            "code_verifier is not a string"
        );
    }

    #[test]
    fn challenge_requirements_follow_the_mode() {
        use ClientType::*;
        use PkceMode::*;
        assert!(!required(None, Public));
        assert!(required(Lax, Public));
        assert!(!required(Lax, Confidential));
        assert!(required(Strict, Confidential));
        let e = challenge(&q(""), Lax, Public).unwrap_err();
        assert_eq!(
            e.description,
            "code_challenge is required for public clients"
        );
        let e = challenge(&q(""), Strict, Confidential).unwrap_err();
        assert_eq!(e.description, "code_challenge is required for all clients");
        assert_eq!(challenge(&q(""), Lax, Confidential).unwrap(), Option::None);
    }

    #[test]
    fn only_s256_is_supported_and_the_method_defaults_to_it() {
        let e = challenge(
            &q("code_challenge=abc&code_challenge_method=plain"),
            PkceMode::Lax,
            ClientType::Public,
        )
        .unwrap_err();
        assert_eq!(
            e.description,
            "code_challenge_method is not supported, must be S256"
        );
        let e = challenge(
            &q("code_challenge_method=S256"),
            PkceMode::Lax,
            ClientType::Public,
        )
        .unwrap_err();
        assert_eq!(
            e.description,
            "code_challenge is required when code_method is present"
        );
        let c = challenge(
            &q(&format!("code_challenge={CHALLENGE}")),
            PkceMode::Lax,
            ClientType::Public,
        )
        .unwrap();
        assert_eq!(c.as_deref(), Some(CHALLENGE));
    }
}
