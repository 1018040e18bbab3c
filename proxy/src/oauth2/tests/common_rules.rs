//! OAuth2 tests: rules every endpoint shares.

use super::*;

#[tokio::test]
async fn get_on_the_token_and_authorize_endpoints_is_405_invalid_method() {
    let h = Harness::new(|_| {});
    let r = h.req(Endpoint::Token).method(Method::GET).send().await;
    r.assert_error(
        405,
        "invalid_method",
        "The HTTP method GET is invalid for the token endpoint",
    );
    assert_eq!(r.headers["allow"], "POST");
    let r = h.req(Endpoint::Authorize).method(Method::PUT).send().await;
    r.assert_error(
        405,
        "invalid_method",
        "The HTTP method PUT is invalid for the authorize endpoint",
    );
}

#[tokio::test]
async fn plain_http_is_refused_with_you_must_use_https() {
    let h = Harness::new(|_| {});
    for ep in [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Introspect,
        Endpoint::Revoke,
    ] {
        let r = h
            .req(ep)
            .form(&format!("provision_key={PROVISION_KEY}&state=s1"))
            .plain_http(false)
            .send()
            .await;
        r.assert_error(400, "access_denied", "You must use HTTPS");
        assert_eq!(r.json["state"], "s1");
    }
}

#[tokio::test]
async fn forwarded_https_counts_only_when_the_route_accepts_terminated_tls() {
    // A client-credentials request over plain HTTP, with or without the trusted
    // `X-Forwarded-Proto: https`.
    async fn over_http(h: &Harness, forwarded_https: bool) -> Resp {
        h.req(Endpoint::Token)
            .form("grant_type=client_credentials")
            .basic(SFS, SFS_SECRET)
            .plain_http(forwarded_https)
            .send()
            .await
    }
    let strict = Harness::new(|_| {});
    over_http(&strict, true)
        .await
        .assert_error(400, "access_denied", "You must use HTTPS");

    let lenient = Harness::new(|o| o.accept_http_if_already_terminated = true);
    let r = over_http(&lenient, true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Without the trusted X-Forwarded-Proto, plain HTTP is still refused.
    over_http(&lenient, false)
        .await
        .assert_error(400, "access_denied", "You must use HTTPS");
}

#[tokio::test]
async fn every_oauth2_response_forbids_caching() {
    let h = Harness::new(|_| {});
    let ok = h
        .token("grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=sfs-secret")
        .await;
    let err = h.token("grant_type=client_credentials").await;
    let auth = h.authorize("").await;
    for r in [ok, err, auth] {
        assert_eq!(r.headers["cache-control"], "no-store", "{r:?}");
        assert_eq!(r.headers["pragma"], "no-cache", "{r:?}");
        assert!(r.headers["content-type"].starts_with("application/json"));
    }
}

#[tokio::test]
async fn parameters_are_read_from_query_form_and_json_alike() {
    let h = Harness::new(|_| {});
    let by_query = h
        .req(Endpoint::Token)
        .query("grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=sfs-secret")
        .send()
        .await;
    let by_form = h
        .token("grant_type=client_credentials&client_id=shoe-fly-shoe&client_secret=sfs-secret")
        .await;
    let by_json = h
        .req(Endpoint::Token)
        .json(json!({"grant_type": "client_credentials", "client_id": SFS, "client_secret": SFS_SECRET}))
        .send()
        .await;
    let mixed = h
        .req(Endpoint::Token)
        .query("grant_type=client_credentials")
        .json(json!({"client_id": SFS, "client_secret": SFS_SECRET}))
        .send()
        .await;
    // Secrets never from the query string (issue 17): it ends up in logs.
    assert_eq!(
        by_query.status,
        StatusCode::BAD_REQUEST,
        "{}",
        by_query.json
    );
    assert_eq!(by_query.json["error"], "invalid_request");
    for r in [by_form, by_json, mixed] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        assert_eq!(r.json["token_type"], "bearer");
    }
}

#[tokio::test]
async fn malformed_bodies_are_invalid_requests_not_panics() {
    let h = Harness::new(|_| {});
    let r = h
        .req(Endpoint::Token)
        .json(json!("just a string"))
        .send()
        .await;
    r.assert_error(
        400,
        "invalid_request",
        "The JSON request body must be an object",
    );
    let bodies: [&[u8]; 6] = [
        b"{\"grant_type\":",
        b"\xff\xfe\xfd",
        b"grant_type=%%%&&&==",
        b"[]",
        b"{\"client_id\":{\"nested\":[1,2]},\"grant_type\":7}",
        b"null",
    ];
    for ep in [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Introspect,
        Endpoint::Revoke,
    ] {
        for body in bodies {
            for ct in [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
            ] {
                let mut req = h.req(ep);
                req.inner.content_type = Some(ct.into());
                req.inner.body = Bytes::copy_from_slice(body);
                let r = req.send().await;
                assert!(r.status.is_client_error(), "{ep:?} {ct} {body:?}: {r:?}");
                assert!(r.json["error"].is_string(), "{r:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_failing_store_makes_endpoints_answer_503_temporarily_unavailable() {
    struct Down;
    #[async_trait::async_trait]
    impl crate::store::TokenStore for Down {
        async fn put_code(
            &self,
            _: Digest,
            _: crate::store::AuthorizationCode,
        ) -> crate::store::Result<()> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn take_code(&self, _: Digest) -> crate::store::Result<crate::store::CodeRedemption> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn issue(&self, _: crate::store::IssuedPair) -> crate::store::Result<()> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn access_token(
            &self,
            _: Digest,
        ) -> crate::store::Result<Option<crate::store::AccessToken>> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn refresh_token(
            &self,
            _: Digest,
        ) -> crate::store::Result<Option<crate::store::RefreshToken>> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn rotate(
            &self,
            _: Digest,
            _: crate::store::IssuedPair,
        ) -> crate::store::Result<crate::store::Rotation> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn revoke(&self, _: Digest) -> crate::store::Result<bool> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn revoke_family(&self, _: &str) -> crate::store::Result<()> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn ping(&self) -> crate::store::Result<()> {
            Err(StoreError::Unavailable("down".into()))
        }
    }
    let h = Harness::new(|_| {});
    let call = |ep: Endpoint, body: String| {
        let mut inner = h.req(ep).form(&body).inner;
        inner.authorization = None;
        async {
            let mut site = h.site(&Down);
            site.now = T0;
            let r = handle(inner, &site).await;
            (r.status, serde_json::from_slice::<Value>(&r.body).unwrap())
        }
    };
    let cases = [
        (Endpoint::Authorize, format!("provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts")),
        (Endpoint::Token, format!("grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}")),
        (Endpoint::Introspect, format!("token=x&client_id={SFS}&client_secret={SFS_SECRET}")),
        (Endpoint::Revoke, format!("token=x&client_id={SFS}&client_secret={SFS_SECRET}")),
    ];
    for (ep, body) in cases {
        let (status, json) = call(ep, body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ep:?} {json}");
        assert_eq!(json["error"], "temporarily_unavailable");
    }
}

#[test]
fn endpoints_are_recognised_with_or_without_a_trailing_slash() {
    assert_eq!(
        Endpoint::from_suffix("/oauth2/token"),
        Some(Endpoint::Token)
    );
    assert_eq!(
        Endpoint::from_suffix("/oauth2/authorize/"),
        Some(Endpoint::Authorize)
    );
    assert_eq!(
        Endpoint::from_suffix("/.well-known/oauth-authorization-server"),
        Some(Endpoint::Metadata)
    );
    assert_eq!(Endpoint::from_suffix("/oauth2/token//"), None);
    assert_eq!(Endpoint::from_suffix("/"), None);
    assert_eq!(Endpoint::from_suffix("/stepcounts"), None);
}

#[tokio::test]
async fn random_garbage_in_every_part_of_a_request_gets_a_json_answer_never_a_panic() {
    use rand::{Rng, SeedableRng};
    let h = Harness::new(|o| o.enable_implicit_grant = true);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6a7e);
    // Fragments of real requests, so the garbage reaches deep into each endpoint.
    let pieces = [
        "grant_type=",
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "password",
        "&code=",
        "&client_id=shoe-fly-shoe",
        "&client_secret=sfs-secret",
        "&scope=",
        "step_counts",
        "&state=",
        "&provision_key=provision123",
        "&authenticated_userid=",
        "&response_type=",
        "code",
        "token",
        "&redirect_uri=",
        "&code_challenge=",
        "&code_verifier=",
        "&token=",
        "&token_type_hint=",
        "%",
        "%zz",
        "&",
        "=",
        "+",
        "\u{0}",
        "{",
        "}",
        "\"",
        ":",
        ",",
        "[",
        "]",
        "null",
        "1e999",
        "\u{ff}",
        "#",
        "?",
    ];
    let endpoints = [
        Endpoint::Authorize,
        Endpoint::Token,
        Endpoint::Introspect,
        Endpoint::Revoke,
    ];
    let content_types = [
        None,
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("text/html"),
    ];
    for i in 0..400 {
        let mut text = String::new();
        for _ in 0..rng.random_range(0..12) {
            text.push_str(pieces[rng.random_range(0..pieces.len())]);
        }
        let mut body: Vec<u8> = text.clone().into_bytes();
        if i % 7 == 0 {
            body.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>()));
        }
        let mut req = h.req(endpoints[i % endpoints.len()]);
        req.inner.content_type = content_types[i % content_types.len()].map(str::to_owned);
        req.inner.body = Bytes::from(body);
        if i % 3 == 0 {
            req.inner.query = Some(text.chars().rev().collect());
        }
        if i % 5 == 0 {
            let raw: Vec<u8> = (0..rng.random_range(0..24))
                .map(|_| rng.random::<u8>())
                .collect();
            req.inner.authorization = Some(format!("Basic {}", STANDARD.encode(raw)));
        }
        let r = req.send().await;
        assert!(r.status.as_u16() < 500, "{r:?}");
        assert!(r.json.is_object(), "{r:?}");
    }
}
