//! OAuth2 tests: revocation (RFC 7009).

use super::*;

async fn revoke(h: &Harness, form: &str) -> Resp {
    h.req(Endpoint::Revoke).form(form).send().await
}

#[tokio::test]
async fn revoking_a_token_kills_it_and_its_partner() {
    let h = Harness::new(|_| {});
    let (access, refresh) = h.tokens().await;
    let r = revoke(&h, &format!("token={refresh}&token_type_hint=refresh_token&client_id={SFS}&client_secret={SFS_SECRET}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!h.live(&access).await);
    let (access, refresh) = h.tokens().await;
    let r = revoke(
        &h,
        &format!("token={access}&client_id={SFS}&client_secret={SFS_SECRET}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    h.refresh(&refresh, "")
        .await
        .assert_error(400, "invalid_grant", "Invalid refresh_token");
}

#[tokio::test]
async fn revoking_an_unknown_token_still_answers_200() {
    let h = Harness::new(|_| {});
    let r = revoke(
        &h,
        &format!("token=never-issued&client_id={SFS}&client_secret={SFS_SECRET}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({}));
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let h = Harness::new(|_| {});
    let (access, _) = h.tokens().await;
    let r = revoke(
        &h,
        &format!("token={access}&client_id=other-client&client_secret=other-secret"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "no oracle for other clients' tokens"
    );
    assert!(h.live(&access).await);
    revoke(
        &h,
        &format!("token={access}&client_id={SFS}&client_secret=bad"),
    )
    .await
    .assert_error(400, "invalid_client", "Invalid client authentication");
    assert!(h.live(&access).await);
}
