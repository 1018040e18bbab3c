//! OAuth2 tests: authorization server metadata (RFC 8414).

use super::*;

#[tokio::test]
async fn metadata_without_a_trustworthy_issuer_is_not_published() {
    let h = Harness::new(|_| {});
    let mut req = h.req(Endpoint::Metadata).method(Method::GET);
    req.inner.issuer = None;
    let r = req.send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json["error"], "not_found");
}

#[tokio::test]
async fn metadata_describes_what_the_route_enables() {
    let h = Harness::new(|o| o.enable_password_grant = false);
    let r = h
        .req(Endpoint::Metadata)
        .method(Method::GET)
        .plain_http(false)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let iss = "https://api.stepon.example/stepon";
    assert_eq!(r.json["issuer"], iss);
    assert_eq!(r.json["token_endpoint"], format!("{iss}/oauth2/token"));
    assert_eq!(
        r.json["authorization_endpoint"],
        format!("{iss}/oauth2/authorize")
    );
    assert_eq!(
        r.json["introspection_endpoint"],
        format!("{iss}/oauth2/introspect")
    );
    assert_eq!(
        r.json["revocation_endpoint"],
        format!("{iss}/oauth2/revoke")
    );
    assert_eq!(r.json["response_types_supported"], json!(["code"]));
    assert_eq!(
        r.json["grant_types_supported"],
        json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(r.json["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        r.json["scopes_supported"],
        json!(["user_profile", "biometric", "step_counts"])
    );
    let r = h.req(Endpoint::Metadata).send().await;
    r.assert_error(
        405,
        "invalid_method",
        "The HTTP method POST is invalid for the metadata endpoint",
    );
}
