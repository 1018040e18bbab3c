//! OAuth2 tests: PKCE (RFC 7636).

use super::*;

#[tokio::test]
async fn lax_pkce_requires_a_challenge_from_public_clients_only() {
    let h = Harness::new(|_| {});
    let public = format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={MOBILE}&response_type=code&scope=step_counts&state=hello");
    let r = h.authorize(&public).await;
    r.assert_redirect_error(
        "invalid_request",
        "code_challenge is required for public clients",
    );
    assert!(r.s("redirect_uri").starts_with(MOBILE_CB));
    let r = h
        .authorize(&format!(
            "{public}&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Confidential clients need none in lax mode.
    h.code("").await;
}

#[tokio::test]
async fn strict_pkce_requires_a_challenge_from_every_client() {
    let h = Harness::new(|o| o.pkce = PkceMode::Strict);
    let r = h
        .authorize(&format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts"))
        .await;
    r.assert_redirect_error(
        "invalid_request",
        "code_challenge is required for all clients",
    );
    let code = h.code(&format!("&code_challenge={CHALLENGE}")).await;
    let r = h.redeem(&code, &format!("&code_verifier={VERIFIER}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn pkce_none_lets_public_clients_through_without_a_challenge() {
    let h = Harness::new(|o| o.pkce = PkceMode::None);
    let r = h
        .authorize(&format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={MOBILE}&response_type=code&scope=step_counts"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let code = r.redirect_params()["code"].clone();
    let r = h
        .token(&format!(
            "grant_type=authorization_code&code={code}&client_id={MOBILE}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn only_the_s256_challenge_method_is_supported() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={MOBILE}&response_type=code&scope=step_counts&code_challenge={VERIFIER}&code_challenge_method=plain&state=hello"
        ))
        .await;
    r.assert_redirect_error(
        "invalid_request",
        "code_challenge_method is not supported, must be S256",
    );
}

#[tokio::test]
async fn a_code_issued_with_a_challenge_needs_its_verifier() {
    let h = Harness::new(|_| {});
    let cases = [
        (
            "",
            400,
            "invalid_request",
            "code_verifier is required for PKCE authorization requests",
        ),
        (
            "&code_verifier=abc123",
            400,
            "invalid_request",
            "code_verifier must be between 43 and 128 characters",
        ),
        (
            "&code_verifier=abcdelfhigklmnopqrstuvwxyz0123456789abcdefg",
            400,
            "invalid_grant",
            "Invalid code",
        ),
    ];
    for (verifier, status, error, description) in cases {
        let code = h
            .code(&format!(
                "&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ))
            .await;
        let r = h.redeem(&code, verifier).await;
        r.assert_error(status, error, description);
    }
    let code = h.code(&format!("&code_challenge={CHALLENGE}")).await;
    let r = h.redeem(&code, &format!("&code_verifier={VERIFIER}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn a_public_client_completes_the_code_flow_with_pkce_and_no_secret() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={MOBILE}&response_type=code&scope=step_counts&code_challenge={CHALLENGE}&code_challenge_method=S256"
        ))
        .await;
    let code = r.redirect_params()["code"].clone();
    let r = h
        .req(Endpoint::Token)
        .form(&format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}"
        ))
        .basic(MOBILE, "")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // A public client presenting a secret is refused (Kong).
    let r = h
        .token(&format!(
            "grant_type=refresh_token&refresh_token={}&client_id={MOBILE}&client_secret=x",
            r.s("refresh_token")
        ))
        .await;
    r.assert_error(
        400,
        "invalid_request",
        "client_secret is disallowed for public clients",
    );
}

#[tokio::test]
async fn a_verifier_for_a_code_issued_without_challenge_is_refused() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let r = h.redeem(&code, &format!("&code_verifier={VERIFIER}")).await;
    r.assert_error(
        400,
        "invalid_grant",
        "code_verifier sent for a code issued without code_challenge",
    );
}
