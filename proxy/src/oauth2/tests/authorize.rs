//! OAuth2 tests: `/oauth2/authorize`.

use super::*;

#[tokio::test]
async fn authorize_answers_a_code_inside_the_first_registered_redirect_uri() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts&state=xyz%20123"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let uri = r.s("redirect_uri");
    assert!(uri.starts_with(&format!("{SFS_CB}?code=")), "{uri}");
    assert!(uri.ends_with("&state=xyz%20123"), "{uri}");
    let p = r.redirect_params();
    assert!(p["code"].len() >= 43, "≥ 32 bytes of entropy, URL-safe");
    assert!(p["code"]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[tokio::test]
async fn authorize_uses_the_requested_redirect_uri_when_it_is_registered() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts&redirect_uri=https%3A%2F%2Fshoeflyshoe.example%2Fother"
        ))
        .await;
    assert!(r
        .s("redirect_uri")
        .starts_with("https://shoeflyshoe.example/other?code="));
}

#[tokio::test]
async fn authorize_refuses_a_wrong_or_missing_provision_key() {
    let h = Harness::new(|_| {});
    for pk in ["", "&provision_key=wrong", "&provision_key=provision1234"] {
        let r = h
            .authorize(&format!(
                "authenticated_userid=clark&client_id={SFS}&response_type=code{pk}&state=s"
            ))
            .await;
        r.assert_error(400, "invalid_provision_key", "Invalid provision_key");
        assert_eq!(r.json["state"], "s");
    }
    let no_key = Harness::new(|o| o.provision_key_sha256 = None);
    let r = no_key
        .authorize(&format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code"))
        .await;
    r.assert_error(400, "invalid_provision_key", "Invalid provision_key");
}

#[tokio::test]
async fn authorize_requires_an_authenticated_userid() {
    let h = Harness::new(|_| {});
    for user in ["", "&authenticated_userid=", "&authenticated_userid=%20%20"] {
        let r = h
            .authorize(&format!(
                "provision_key={PROVISION_KEY}&client_id={SFS}&response_type=code{user}"
            ))
            .await;
        r.assert_error(
            400,
            "invalid_authenticated_userid",
            "Missing authenticated_userid parameter",
        );
    }
}

#[tokio::test]
async fn authorize_with_an_unknown_client_is_a_plain_invalid_client() {
    let h = Harness::new(|_| {});
    for client in ["", "&client_id=", "&client_id=ghost"] {
        let r = h
            .authorize(&format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&response_type=code{client}"))
            .await;
        r.assert_error(400, "invalid_client", "Invalid client authentication");
        assert!(r.json.get("redirect_uri").is_none());
    }
}

#[tokio::test]
async fn an_unregistered_redirect_uri_is_reported_inside_the_first_registered_one() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts&redirect_uri=https%3A%2F%2Fevil.example%2F&state=s9"
        ))
        .await;
    r.assert_redirect_error(
        "invalid_request",
        "Invalid redirect_uri that does not match with any redirect_uri created with the application",
    );
    assert!(r.s("redirect_uri").starts_with(SFS_CB));
    assert_eq!(r.redirect_params()["state"], "s9");
}

#[tokio::test]
async fn authorize_errors_after_the_client_is_known_go_into_the_redirect_uri() {
    let h = Harness::new(|o| o.mandatory_scope = true);
    let base = format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}");
    let r = h.authorize(&format!("{base}&response_type=code")).await;
    r.assert_redirect_error("invalid_scope", "You must specify a scope");
    let r = h
        .authorize(&format!("{base}&response_type=code&scope=wot"))
        .await;
    r.assert_redirect_error("invalid_scope", "\"wot\" is an invalid scope");
    let r = h
        .authorize(&format!("{base}&scope=step_counts&state=somestate"))
        .await;
    r.assert_redirect_error("unsupported_response_type", "Invalid response_type");
    assert_eq!(r.redirect_params()["state"], "somestate");
    let r = h
        .authorize(&format!("{base}&scope=step_counts&response_type=token"))
        .await;
    r.assert_redirect_error("unsupported_response_type", "Invalid response_type");
}

#[tokio::test]
async fn authorize_limits_scopes_to_what_the_client_may_have() {
    let h = Harness::new(|_| {});
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id=narrow&response_type=code&scope=biometric"
        ))
        .await;
    r.assert_redirect_error(
        "invalid_scope",
        "\"biometric\" is not allowed for this client",
    );
}

#[tokio::test]
async fn a_client_without_the_code_grant_is_an_unauthorized_client() {
    let h = Harness::new(|_| {});
    let mut c = mk_client("implicit-only", Some("x"), &[SFS_CB]);
    c.grant_types = vec![GrantType::Implicit];
    let h = Harness {
        catalog: Catalog::new(&Snapshot {
            clients: vec![c],
            ..Snapshot::default()
        }),
        ..h
    };
    let r = h
        .authorize(&format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id=implicit-only&response_type=code"))
        .await;
    r.assert_redirect_error(
        "unauthorized_client",
        "The client is not allowed to use this response_type",
    );
}

#[tokio::test]
async fn the_implicit_grant_works_only_when_enabled_and_returns_a_fragment_without_refresh_token() {
    let h = Harness::new(|o| o.enable_implicit_grant = true);
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=token&scope=step_counts&state=wot"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let uri = r.s("redirect_uri");
    assert!(uri.starts_with(&format!("{SFS_CB}#access_token=")), "{uri}");
    assert!(
        uri.ends_with("&expires_in=7200&state=wot&token_type=bearer"),
        "{uri}"
    );
    let p = r.redirect_params();
    assert!(!p.contains_key("refresh_token"));
    let rec = h
        .store
        .access_token(Digest::of(p["access_token"].as_bytes()))
        .await
        .unwrap()
        .expect("implicit token is live");
    assert_eq!(rec.authenticated_userid.as_deref(), Some("clark"));
    assert_eq!(rec.refresh, None);
    assert_eq!(rec.expires_at, Some(T0 + 7200));
}
