//! OAuth2 tests: the token endpoint, refresh_token grant.

use super::*;

#[tokio::test]
async fn refreshing_rotates_the_pair_and_the_old_one_dies() {
    let h = Harness::new(|_| {});
    let (access, refresh) = h.tokens().await;
    h.clock.advance(100);
    let r = h.refresh(&refresh, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let (new_access, new_refresh) = (r.s("access_token"), r.s("refresh_token"));
    assert_ne!(new_access, access);
    assert_ne!(new_refresh, refresh);
    assert_eq!(r.json["scope"], "step_counts");
    assert!(!h.live(&access).await);
    assert!(h.live(new_access).await);
    let a = h.stored_access(new_access).await;
    assert_eq!(a.authenticated_userid.as_deref(), Some("clark"));
    assert_eq!(a.expires_at, Some(T0 + 100 + 7200));
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let h = Harness::new(|_| {});
    let (_, refresh) = h.tokens().await;
    let r = h.refresh(&refresh, "").await;
    let (a2, r2) = (
        r.s("access_token").to_owned(),
        r.s("refresh_token").to_owned(),
    );
    let replay = h.refresh(&refresh, "").await;
    replay.assert_error(400, "invalid_grant", "Invalid refresh_token");
    assert!(
        !h.live(&a2).await,
        "the thief's or the victim's current token dies"
    );
    h.refresh(&r2, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid refresh_token");
}

#[tokio::test]
async fn a_retried_rotation_within_the_grace_window_gets_the_same_pair_sealed_at_rest() {
    let h = Harness::new(|o| o.refresh_token_grace_seconds = 30);
    let (_, refresh) = h.tokens().await;
    let r = h.refresh(&refresh, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let (a2, r2) = (
        r.s("access_token").to_owned(),
        r.s("refresh_token").to_owned(),
    );
    // The stored answer holds neither new token in the clear.
    use crate::store::{LoginKind, TokenStore};
    let sealed = h
        .store
        .get_login(LoginKind::RefreshGrace, Digest::of(refresh.as_bytes()))
        .await
        .unwrap()
        .expect("the answer is kept for the window");
    assert!(!sealed.contains(&a2) && !sealed.contains(&r2));

    h.clock.advance(10);
    let retry = h.refresh(&refresh, "").await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.json);
    assert_eq!(
        (retry.s("access_token"), retry.s("refresh_token")),
        (&*a2, &*r2)
    );
    assert!(h.live(&a2).await, "the family was not revoked");

    // After the window, the old token is a reused one again: the family dies.
    h.clock.advance(30);
    h.refresh(&refresh, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid refresh_token");
    assert!(!h.live(&a2).await);
}

#[tokio::test]
async fn with_reuse_refresh_token_the_refresh_token_survives_refreshing() {
    let h = Harness::new(|o| o.reuse_refresh_token = true);
    let (a1, refresh) = h.tokens().await;
    let r = h.refresh(&refresh, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.s("refresh_token"), refresh);
    assert!(!h.live(&a1).await);
    let a2 = r.s("access_token").to_owned();
    let r = h.refresh(&refresh, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(!h.live(&a2).await);
    assert!(h.live(r.s("access_token")).await);
}

#[tokio::test]
async fn a_refresh_token_works_only_for_its_own_client() {
    let h = Harness::new(|_| {});
    let (access, refresh) = h.tokens().await;
    let r = h
        .token(&format!("grant_type=refresh_token&refresh_token={refresh}&client_id=other-client&client_secret=other-secret"))
        .await;
    r.assert_error(400, "invalid_grant", "Invalid refresh_token");
    assert!(
        h.live(&access).await,
        "a foreign client cannot burn the pair"
    );
    let r = h
        .token(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id={SFS}"
        ))
        .await;
    r.assert_error(400, "invalid_client", "Invalid client authentication");
}

#[tokio::test]
async fn refreshing_can_narrow_the_scope_but_never_grow_it() {
    let h = Harness::new(|_| {});
    let code = h.code("%20biometric").await;
    let r = h.redeem(&code, "").await;
    assert_eq!(r.json["scope"], "step_counts biometric");
    let refresh = r.s("refresh_token").to_owned();
    let r = h.refresh(&refresh, "&scope=user_profile").await;
    r.assert_error(
        400,
        "invalid_scope",
        "\"user_profile\" was not granted to this refresh token",
    );
    let r = h.refresh(&refresh, "&scope=biometric").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["scope"], "biometric");
    // The refresh token keeps the original grant (RFC 6749 §6).
    let r = h.refresh(r.s("refresh_token"), "").await;
    assert_eq!(r.json["scope"], "step_counts biometric");
}

#[tokio::test]
async fn a_refresh_token_expires_after_refresh_token_ttl() {
    let h = Harness::new(|o| o.refresh_token_ttl = 300);
    let (_, refresh) = h.tokens().await;
    h.clock.advance(300);
    h.refresh(&refresh, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid refresh_token");
}

#[tokio::test]
async fn a_missing_or_unknown_refresh_token_is_refused() {
    let h = Harness::new(|_| {});
    h.token(&format!(
        "grant_type=refresh_token&client_id={SFS}&client_secret={SFS_SECRET}"
    ))
    .await
    .assert_error(400, "invalid_request", "Invalid refresh_token");
    h.refresh("hello", "")
        .await
        .assert_error(400, "invalid_grant", "Invalid refresh_token");
}

#[tokio::test]
async fn token_expiration_zero_means_no_expiry_and_no_refresh_token() {
    let h = Harness::new(|o| o.token_expiration = 0);
    let code = h.code("").await;
    let r = h.redeem(&code, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json.get("expires_in").is_none(), "{}", r.json);
    assert!(r.json.get("refresh_token").is_none(), "{}", r.json);
    let access = r.s("access_token").to_owned();
    h.clock.advance(10 * 365 * 24 * 3600);
    assert!(h.live(&access).await);
}
