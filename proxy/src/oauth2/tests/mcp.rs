//! What MCP clients rely on: resource indicators (RFC 8707), dynamic registration
//! (RFC 7591/7592), OAuth 2.1 rules and the metadata that announces them.

use super::*;

const RESOURCE: &str = "https://api.stepon.example/stepon";
const RESOURCE_Q: &str = "https%3A%2F%2Fapi.stepon.example%2Fstepon";
const LOOPBACK_CB: &str = "http://127.0.0.1/callback";

fn open(o: &mut RouteOAuth2) {
    o.client_registration.dynamic = true;
    o.client_registration.registration_rate = "3/h:3".into();
}

/// Register a client; its `client_id` and registration access token.
async fn register(h: &Harness, body: Value) -> Resp {
    let mut req = h.req(Endpoint::Register).json(body);
    req.inner.suffix = "/oauth2/register".into();
    req.send().await
}

async fn config_request(h: &Harness, method: Method, id: &str, token: Option<&str>) -> Resp {
    let mut req = h.req(Endpoint::Register).method(method);
    req.inner.suffix = format!("/oauth2/register/{id}");
    req.inner.authorization = token.map(|t| format!("Bearer {t}"));
    req.send().await
}

#[tokio::test]
async fn a_resource_binds_code_token_and_refresh_to_this_route() {
    let h = Harness::new(|_| {});
    let code = h.code(&format!("&resource={RESOURCE_Q}")).await;
    let r = h
        .token(&format!(
            "grant_type=authorization_code&code={code}&client_id={SFS}&client_secret={SFS_SECRET}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let access = r.s("access_token").to_owned();
    let refresh = r.s("refresh_token").to_owned();
    let record = h
        .store
        .access_token(Digest::of(access.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.audience, [RESOURCE]);
    // Introspection reports the audience.
    let i = h
        .req(Endpoint::Introspect)
        .form(&format!(
            "token={access}&client_id={SFS}&client_secret={SFS_SECRET}"
        ))
        .send()
        .await;
    assert_eq!(i.json["active"], true);
    assert_eq!(i.json["aud"], RESOURCE);
    // A refresh may not widen the audience to another resource.
    let r = h
        .token(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id={SFS}&client_secret={SFS_SECRET}&resource=https%3A%2F%2Fapi.stepon.example%2Fstepon%2Fsub"
        ))
        .await;
    r.assert_error(
        400,
        "invalid_target",
        "The resource https://api.stepon.example/stepon/sub was not part of the authorization grant",
    );
}

#[tokio::test]
async fn an_audience_bound_token_leaves_global_credential_sharing() {
    let h = Harness::new(|o| o.global_credentials = true);
    let other = h.sibling("default/other", |o| o.global_credentials = true);
    let token_for = |resource: bool| {
        let h = &h;
        async move {
            let extra = if resource {
                format!("&resource={RESOURCE_Q}")
            } else {
                String::new()
            };
            let r = h
                .token(&format!(
                    "grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}{extra}"
                ))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.json);
            h.store
                .access_token(Digest::of(r.s("access_token").as_bytes()))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let shared = token_for(false).await;
    let bound = token_for(true).await;
    let valid = |t: &crate::store::AccessToken, on: &Harness| {
        valid_on_route(
            &t.route_id,
            t.global,
            !t.audience.is_empty(),
            &on.route,
            &on.oauth,
        )
    };
    assert!(valid(&shared, &other), "Kong's sharing still holds");
    assert!(valid(&bound, &h));
    assert!(
        !valid(&bound, &other),
        "a token for a resource is for it alone"
    );
}

#[tokio::test]
async fn a_resource_of_another_origin_or_path_is_invalid_target() {
    let h = Harness::new(|_| {});
    for resource in [
        "https%3A%2F%2Fevil.example%2Fstepon",
        "https%3A%2F%2Fapi.stepon.example%2Fother",
        "urn%3Aexample%3Astepon",
        "https%3A%2F%2Fapi.stepon.example%2Fstepon%23frag",
    ] {
        let r = h
            .token(&format!(
                "grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}&resource={resource}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{resource}");
        assert_eq!(r.json["error"], "invalid_target", "{resource}");
    }
    // At the authorization endpoint the error goes back inside the redirect URI.
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts&resource=https%3A%2F%2Fevil.example%2F"
        ))
        .await;
    assert_eq!(r.redirect_params()["error"], "invalid_target");
}

#[tokio::test]
async fn registration_creates_a_public_client_readable_and_deletable_with_its_token() {
    let h = Harness::new(open);
    let r = register(
        &h,
        json!({
            "client_name": "Claude",
            "redirect_uris": [LOOPBACK_CB],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "step_counts",
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    assert_eq!(r.headers["cache-control"], "no-store");
    let id = r.s("client_id").to_owned();
    let token = r.s("registration_access_token").to_owned();
    assert!(id.starts_with(clients::REGISTERED_PREFIX));
    // The server decides: public, no secret, whatever was asked.
    assert_eq!(r.json["token_endpoint_auth_method"], "none");
    assert!(r.json.get("client_secret").is_none());
    assert_eq!(
        r.s("registration_client_uri"),
        format!("https://api.stepon.example/stepon/oauth2/register/{id}")
    );

    let read = config_request(&h, Method::GET, &id, Some(&token)).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.json);
    assert_eq!(read.json["client_name"], "Claude");
    assert!(read.json.get("registration_access_token").is_none());
    for wrong in [None, Some("nope")] {
        let r = config_request(&h, Method::GET, &id, wrong).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.headers["www-authenticate"].starts_with("Bearer"));
    }
    // The registered client can use the authorization code grant (PKCE required,
    // any loopback port), then is gone once deleted.
    let authorize = |extra: &'static str| {
        let h = &h;
        let id = id.clone();
        async move {
            h.authorize(&format!(
                "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={id}&response_type=code&redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback{extra}"
            ))
            .await
        }
    };
    let r = authorize("").await;
    r.assert_redirect_error(
        "invalid_request",
        "code_challenge is required for all clients",
    );
    let r = authorize(
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let code = r.redirect_params()["code"].clone();
    let t = h
        .token(&format!(
            "grant_type=authorization_code&code={code}&client_id={id}&code_verifier={VERIFIER}&redirect_uri=http%3A%2F%2F127.0.0.1%3A53682%2Fcallback"
        ))
        .await;
    assert_eq!(t.status, StatusCode::OK, "{}", t.json);
    let record = h
        .store
        .access_token(Digest::of(t.s("access_token").as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.consumer_id, "",
        "registered clients belong to no consumer"
    );
    let refresh = h
        .store
        .refresh_token(Digest::of(t.s("refresh_token").as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert!(
        refresh.expires_at.unwrap() <= T0 + crate::config::PUBLIC_REFRESH_TTL,
        "a public client's refresh token is short-lived"
    );

    let gone = config_request(&h, Method::DELETE, &id, Some(&token)).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let r = config_request(&h, Method::GET, &id, Some(&token)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        !clients::unvetted_client_alive(&*h.store, &h.route.id, &h.oauth, &id)
            .await
            .unwrap(),
        "its tokens die with it at enforcement"
    );
}

#[tokio::test]
async fn registration_refuses_bad_metadata_and_floods() {
    let h = Harness::new(open);
    for (body, error) in [
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": [LOOPBACK_CB], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [LOOPBACK_CB], "scope": "admin"}),
            "invalid_client_metadata",
        ),
        (json!(["not an object"]), "invalid_client_metadata"),
    ] {
        let r = register(&h, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.json);
        assert_eq!(r.json["error"], error, "{body}");
    }
    // Without a peer address nothing is counted; with one, the fourth registration
    // within the hour is refused.
    let h = Harness::new(open);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let mut req = h
            .req(Endpoint::Register)
            .json(json!({"redirect_uris": [LOOPBACK_CB]}));
        req.inner.suffix = "/oauth2/register".into();
        req.inner.peer = Some("192.0.2.7".parse().unwrap());
        let r = req.send().await;
        statuses.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [201, 201, 201, 429]);
}

#[tokio::test]
async fn registration_is_off_unless_the_route_turns_it_on() {
    let h = Harness::new(|_| {});
    assert!(!Endpoint::Register.served_by(&h.oauth));
    let meta = h.req(Endpoint::Metadata).method(Method::GET).send().await;
    assert!(meta.json.get("registration_endpoint").is_none());
    assert_eq!(meta.json["client_id_metadata_document_supported"], false);
    let h = Harness::new(|o| {
        open(o);
        o.client_registration.metadata_documents = true;
    });
    assert!(Endpoint::Register.served_by(&h.oauth));
    let meta = h.req(Endpoint::Metadata).method(Method::GET).send().await;
    assert_eq!(
        meta.json["registration_endpoint"],
        "https://api.stepon.example/stepon/oauth2/register"
    );
    assert_eq!(meta.json["client_id_metadata_document_supported"], true);
}

#[tokio::test]
async fn oauth21_routes_refuse_implicit_and_password_and_require_pkce_from_everyone() {
    let h = Harness::new(|o| {
        o.oauth21 = true;
        o.enable_implicit_grant = true;
    });
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=token&scope=step_counts"
        ))
        .await;
    r.assert_redirect_error("unsupported_response_type", "Invalid response_type");
    let r = h
        .token(&format!(
            "grant_type=password&provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&client_secret={SFS_SECRET}&scope=step_counts"
        ))
        .await;
    assert_eq!(r.json["error"], "unsupported_grant_type");
    // A confidential client too must send a PKCE challenge.
    let r = h
        .authorize(&format!(
            "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts"
        ))
        .await;
    r.assert_redirect_error(
        "invalid_request",
        "code_challenge is required for all clients",
    );
    let meta = h.req(Endpoint::Metadata).method(Method::GET).send().await;
    assert_eq!(
        meta.json["grant_types_supported"],
        json!(["authorization_code", "client_credentials", "refresh_token"])
    );
    assert_eq!(meta.json["response_types_supported"], json!(["code"]));
}

#[tokio::test]
async fn loopback_redirect_ports_are_free_only_under_oauth21() {
    let cb = "http%3A%2F%2F127.0.0.1%3A40000%2Fcb";
    for (oauth21, ok) in [(false, false), (true, true)] {
        let h = Harness::new(|o| o.oauth21 = oauth21);
        let catalog_snapshot = Snapshot {
            clients: vec![mk_client("native", None, &["http://127.0.0.1/cb"])],
            consumers: vec![Consumer {
                id: "default/native-owner".into(),
                username: None,
                custom_id: None,
            }],
            ..Snapshot::default()
        };
        let h = Harness {
            catalog: Catalog::new(&catalog_snapshot),
            ..h
        };
        let r = h
            .authorize(&format!(
                "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id=native&response_type=code&redirect_uri={cb}&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ))
            .await;
        assert_eq!(
            r.status == StatusCode::OK,
            ok,
            "oauth21={oauth21}: {}",
            r.json
        );
    }
}

#[tokio::test]
async fn public_clients_refresh_tokens_rotate_under_oauth21_even_with_reuse_on() {
    for (oauth21, rotates) in [(false, false), (true, true)] {
        let h = Harness::new(|o| {
            o.oauth21 = oauth21;
            o.reuse_refresh_token = true;
        });
        let r = h
            .authorize(&format!(
                "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={MOBILE}&response_type=code&scope=step_counts&code_challenge={CHALLENGE}&code_challenge_method=S256"
            ))
            .await;
        let code = r.redirect_params()["code"].clone();
        let t = h
            .token(&format!(
                "grant_type=authorization_code&code={code}&client_id={MOBILE}&code_verifier={VERIFIER}"
            ))
            .await;
        assert_eq!(t.status, StatusCode::OK, "{}", t.json);
        let first = t.s("refresh_token").to_owned();
        let r = h
            .token(&format!(
                "grant_type=refresh_token&refresh_token={first}&client_id={MOBILE}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.s("refresh_token") != first, rotates, "oauth21={oauth21}");
    }
}
