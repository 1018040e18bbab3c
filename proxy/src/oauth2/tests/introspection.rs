//! OAuth2 tests: introspection (RFC 7662).

use super::*;

async fn introspect(h: &Harness, form: &str) -> Resp {
    h.req(Endpoint::Introspect).form(form).send().await
}

#[tokio::test]
async fn introspecting_a_live_token_reports_its_claims() {
    let h = Harness::new(|_| {});
    let (access, refresh) = h.tokens().await;
    let r = introspect(
        &h,
        &format!("token={access}&client_id={SFS}&client_secret={SFS_SECRET}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!({
            "active": true, "scope": "step_counts", "client_id": SFS, "username": "clark",
            "sub": "clark", "token_type": "bearer", "exp": T0 + 7200, "iat": T0
        })
    );
    let r = introspect(
        &h,
        &format!("token={refresh}&token_type_hint=refresh_token&client_id={SFS}&client_secret={SFS_SECRET}"),
    )
    .await;
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["exp"], T0 + 1_209_600);
}

#[tokio::test]
async fn introspecting_an_unknown_expired_or_revoked_token_says_only_inactive() {
    let h = Harness::new(|_| {});
    let (access, refresh) = h.tokens().await;
    let auth = format!("client_id={SFS}&client_secret={SFS_SECRET}");
    assert_eq!(
        introspect(&h, &format!("token=nope&{auth}")).await.json,
        json!({"active": false})
    );
    h.store
        .revoke(Digest::of(refresh.as_bytes()))
        .await
        .unwrap();
    assert_eq!(
        introspect(&h, &format!("token={access}&{auth}")).await.json,
        json!({"active": false})
    );
    let (access, _) = h.tokens().await;
    h.clock.advance(7200);
    assert_eq!(
        introspect(&h, &format!("token={access}&{auth}")).await.json,
        json!({"active": false})
    );
}

#[tokio::test]
async fn introspection_needs_client_authentication_and_a_token() {
    let h = Harness::new(|_| {});
    let (access, _) = h.tokens().await;
    introspect(&h, &format!("token={access}"))
        .await
        .assert_error(400, "invalid_client", "Invalid client authentication");
    introspect(&h, &format!("client_id={SFS}&client_secret={SFS_SECRET}"))
        .await
        .assert_error(400, "invalid_request", "Missing token parameter");
}

#[tokio::test]
async fn only_resource_servers_introspect_tokens_of_other_clients() {
    let h = Harness::new(|_| {});
    let (access, _) = h.tokens().await;
    let r = introspect(&h, &format!("token={access}&client_id={MOBILE}")).await;
    assert_eq!(r.json, json!({"active": false}));
    let r = introspect(
        &h,
        &format!("token={access}&client_id=other-client&client_secret=other-secret"),
    )
    .await;
    assert_eq!(
        r.json,
        json!({"active": false}),
        "a client application reads only its own tokens"
    );
    let r = introspect(
        &h,
        &format!("token={access}&client_id=resource-server&client_secret=rs-secret"),
    )
    .await;
    assert_eq!(r.json["active"], true, "a resource server reads any");
}

#[tokio::test]
async fn a_token_from_another_route_is_inactive_here() {
    let h = Harness::new(|_| {});
    let (access, _) = h.tokens().await;
    let other = h.sibling("default/other", |_| {});
    let r = introspect(
        &other,
        &format!("token={access}&client_id={SFS}&client_secret={SFS_SECRET}"),
    )
    .await;
    assert_eq!(r.json, json!({"active": false}));
}
