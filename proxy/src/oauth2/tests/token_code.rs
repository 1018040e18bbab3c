//! OAuth2 tests: the token endpoint, authorization_code grant.

use super::*;

#[tokio::test]
async fn the_code_grant_issues_a_pair_bound_to_user_scope_client_and_route() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let r = h.redeem(&code, "&state=wot").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["token_type"], "bearer");
    assert_eq!(r.json["expires_in"], 7200);
    assert_eq!(r.json["scope"], "step_counts");
    assert_eq!(r.json["state"], "wot");
    let access = r.s("access_token");
    let refresh = r.s("refresh_token");
    assert_ne!(access, refresh);
    let a = h.stored_access(access).await;
    assert_eq!(a.client_id, SFS);
    assert_eq!(a.consumer_id, "default/shoe-fly-shoe-owner");
    assert_eq!(a.authenticated_userid.as_deref(), Some("clark"));
    assert_eq!(a.scopes, vec!["step_counts"]);
    assert_eq!(a.route_id, "default/stepon");
    assert!(!a.global);
    assert_eq!(a.expires_at, Some(T0 + 7200));
    assert_eq!(a.refresh, Some(Digest::of(refresh.as_bytes())));
    let rt = h.stored_refresh(refresh).await;
    assert_eq!(rt.expires_at, Some(T0 + 1_209_600));
}

#[tokio::test]
async fn the_code_grant_accepts_http_basic_client_credentials() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let r = h
        .req(Endpoint::Token)
        .form(&format!("grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fshoeflyshoe.example%2Fcallback"))
        .basic(SFS, SFS_SECRET)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
}

#[tokio::test]
async fn a_missing_unknown_or_expired_code_is_refused() {
    let h = Harness::new(|_| {});
    let r = h
        .token(&format!(
            "grant_type=authorization_code&client_id={SFS}&client_secret={SFS_SECRET}"
        ))
        .await;
    r.assert_error(400, "invalid_request", "Invalid code");
    let code = h.code("").await;
    let r = h.redeem(&format!("{code}hello"), "").await;
    r.assert_error(400, "invalid_grant", "Invalid code");
    h.clock.advance(60);
    let r = h.redeem(&code, "").await;
    r.assert_error(400, "invalid_grant", "Invalid code");
}

#[tokio::test]
async fn a_code_redeemed_by_another_client_is_refused_with_state() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let r = h
        .token(&format!("grant_type=authorization_code&code={code}&client_id=other-client&client_secret=other-secret&state=wot"))
        .await;
    r.assert_error(400, "invalid_grant", "Invalid code");
    assert_eq!(r.json["state"], "wot");
}

#[tokio::test]
async fn a_code_is_bound_to_its_route_unless_credentials_are_global() {
    let h = Harness::new(|_| {});
    let other = h.sibling("default/other", |_| {});
    let code = h.code("").await;
    other
        .redeem(&code, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid code");

    let g1 = Harness::with_route("default/g1", |o| o.global_credentials = true);
    let g2 = g1.sibling("default/g2", |o| o.global_credentials = true);
    let code = g1.code("").await;
    let r = g2.redeem(&code, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let a = g1.stored_access(r.s("access_token")).await;
    assert!(a.global);
    // A global code is not accepted on a route that does not share credentials.
    let code = g1.code("").await;
    g1.sibling("default/plain", |_| {})
        .redeem(&code, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid code");
}

#[tokio::test]
async fn the_redirect_uri_at_the_token_endpoint_must_match_the_authorization_request() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let r = h
        .redeem(&code, "&redirect_uri=https%3A%2F%2Fevil.example%2F")
        .await;
    r.assert_error(
        400,
        "invalid_request",
        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
    );
    let code = h.code("").await;
    let r = h
        .redeem(
            &code,
            "&redirect_uri=https%3A%2F%2Fshoeflyshoe.example%2Fother",
        )
        .await;
    r.assert_error(
        400,
        "invalid_grant",
        "redirect_uri does not match the authorization request",
    );
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_issued_from_it() {
    let h = Harness::new(|_| {});
    let code = h.code("").await;
    let first = h.redeem(&code, "").await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.s("access_token").to_owned();
    let refresh = first.s("refresh_token").to_owned();
    assert!(h.live(&access).await);
    let again = h.redeem(&code, "").await;
    again.assert_error(400, "invalid_grant", "Invalid code");
    assert!(!h.live(&access).await);
    let r = h.refresh(&refresh, "").await;
    r.assert_error(400, "invalid_grant", "Invalid refresh_token");
}
