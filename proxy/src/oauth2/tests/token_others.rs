//! OAuth2 tests: the token endpoint, the other grants.

use super::*;

#[tokio::test]
async fn client_credentials_issue_an_access_token_without_refresh_token() {
    let h = Harness::new(|_| {});
    let r = h
        .token(&format!("grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}&scope=step_counts"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json.get("refresh_token").is_none());
    assert_eq!(r.json["scope"], "step_counts");
    let a = h.stored_access(r.s("access_token")).await;
    assert_eq!(a.authenticated_userid, None);
    assert_eq!(a.client_id, SFS);
}

#[tokio::test]
async fn client_credentials_with_a_user_need_the_provision_key() {
    let h = Harness::new(|_| {});
    let base = format!("grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}&authenticated_userid=clark");
    h.token(&base)
        .await
        .assert_error(400, "invalid_provision_key", "Invalid provision_key");
    let r = h
        .token(&format!("{base}&provision_key={PROVISION_KEY}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let a = h.stored_access(r.s("access_token")).await;
    assert_eq!(a.authenticated_userid.as_deref(), Some("clark"));
}

#[tokio::test]
async fn public_clients_cannot_use_client_credentials() {
    let h = Harness::new(|_| {});
    h.token(&format!("grant_type=client_credentials&client_id={MOBILE}"))
        .await
        .assert_error(
            400,
            "unauthorized_client",
            "Public clients cannot use the client_credentials grant",
        );
}

#[tokio::test]
async fn a_grant_must_be_enabled_on_the_route_and_allowed_for_the_client() {
    let off = Harness::new(|o| {
        o.enable_client_credentials = false;
        o.enable_password_grant = false;
        o.enable_authorization_code = false;
    });
    for grant in [
        "client_credentials",
        "password",
        "authorization_code",
        "implicit",
        "",
        "magic",
    ] {
        off.token(&format!(
            "grant_type={grant}&client_id={SFS}&client_secret={SFS_SECRET}"
        ))
        .await
        .assert_error(400, "unsupported_grant_type", "Invalid grant_type");
    }
    let h = Harness::new(|_| {});
    h.token(&format!("grant_type=password&client_id=cc-only&client_secret=cc-secret&provision_key={PROVISION_KEY}&authenticated_userid=clark"))
        .await
        .assert_error(400, "unauthorized_client", "The client is not allowed to use this grant_type");
    let r = h
        .token("grant_type=client_credentials&client_id=cc-only&client_secret=cc-secret")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn the_password_grant_needs_the_provision_key_and_a_user() {
    let h = Harness::new(|_| {});
    let base =
        format!("grant_type=password&client_id={SFS}&client_secret={SFS_SECRET}&scope=step_counts");
    h.token(&format!("{base}&authenticated_userid=clark"))
        .await
        .assert_error(400, "invalid_provision_key", "Invalid provision_key");
    h.token(&format!("{base}&provision_key={PROVISION_KEY}"))
        .await
        .assert_error(
            400,
            "invalid_authenticated_userid",
            "Missing authenticated_userid parameter",
        );
    let r = h
        .token(&format!(
            "{base}&provision_key={PROVISION_KEY}&authenticated_userid=clark"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json["refresh_token"].is_string());
    h.token(&format!(
        "grant_type=password&client_id={SFS}&client_secret={SFS_SECRET}&provision_key={PROVISION_KEY}&authenticated_userid=clark&scope=wot"
    ))
    .await
    .assert_error(400, "invalid_scope", "\"wot\" is an invalid scope");
}

#[tokio::test]
async fn bad_client_credentials_are_invalid_client_and_401_after_basic() {
    let h = Harness::new(|_| {});
    let r = h
        .req(Endpoint::Token)
        .form("grant_type=client_credentials")
        .basic(SFS, "wrong")
        .send()
        .await;
    r.assert_error(401, "invalid_client", "Invalid client authentication");
    assert_eq!(r.headers["www-authenticate"], "Basic realm=\"OAuth2.0\"");
    let r = h
        .token(&format!(
            "grant_type=client_credentials&client_id={SFS}&client_secret=wrong"
        ))
        .await;
    r.assert_error(400, "invalid_client", "Invalid client authentication");
    assert!(!r.headers.contains_key("www-authenticate"));
    h.token("grant_type=client_credentials&client_id=ghost&client_secret=x")
        .await
        .assert_error(400, "invalid_client", "Invalid client authentication");
}
