//! Every OAuth2 decision, exercised through [`handle`] with the in-memory store and
//! an explicit clock (no sleeps, no network).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::config::{ClientType, Consumer, OAuth2Client, PkceMode, Snapshot, Upstream};
use crate::store::memory::{Clock, MemoryStore};
use crate::store::StoreError;

const T0: UnixTime = 1_700_000_000;
const PROVISION_KEY: &str = "provision123";
const SFS: &str = "shoe-fly-shoe";
const SFS_SECRET: &str = "sfs-secret";
const SFS_CB: &str = "https://shoeflyshoe.example/callback";
const MOBILE: &str = "mobile-app";
const MOBILE_CB: &str = "com.example.app:/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn mk_oauth() -> RouteOAuth2 {
    RouteOAuth2 {
        scopes: vec![
            "user_profile".into(),
            "biometric".into(),
            "step_counts".into(),
        ],
        provision_key_sha256: Some(Digest::of(PROVISION_KEY.as_bytes()).to_hex()),
        enable_client_credentials: true,
        enable_password_grant: true,
        ..RouteOAuth2::default()
    }
}

fn mk_route(id: &str, oauth: &RouteOAuth2) -> Route {
    Route {
        id: id.into(),
        hosts: vec![],
        paths: vec!["/stepon".into()],
        strip_path: true,
        preserve_host: false,
        allow_encoded_slashes: false,
        upstream: Upstream {
            endpoints: vec![],
            connect_timeout_ms: 1000,
            response_timeout_ms: 1000,
            ..Default::default()
        },
        timeouts: Default::default(),
        oauth2: Some(oauth.clone()),
    }
}

fn mk_client(id: &str, secret: Option<&str>, redirects: &[&str]) -> OAuth2Client {
    OAuth2Client {
        client_id: id.into(),
        secret_sha256: secret.map(|s| Digest::of(s.as_bytes()).to_hex()),
        name: id.into(),
        consumer_id: format!("default/{id}-owner"),
        client_type: if secret.is_some() {
            ClientType::Confidential
        } else {
            ClientType::Public
        },
        redirect_uris: redirects.iter().map(|s| s.to_string()).collect(),
        grant_types: vec![],
        scopes: None,
        resource_server: false,
    }
}

fn mk_catalog() -> Catalog {
    let mut cc_only = mk_client("cc-only", Some("cc-secret"), &[]);
    cc_only.grant_types = vec![GrantType::ClientCredentials];
    let mut narrow = mk_client("narrow", Some("narrow-secret"), &[SFS_CB]);
    narrow.scopes = Some(vec!["step_counts".into()]);
    Catalog::new(&Snapshot {
        consumers: vec![Consumer {
            id: "default/shoe-fly-shoe-owner".into(),
            username: Some("shoeflyshoe".into()),
            custom_id: None,
        }],
        clients: vec![
            mk_client(
                SFS,
                Some(SFS_SECRET),
                &[SFS_CB, "https://shoeflyshoe.example/other"],
            ),
            mk_client(
                "other-client",
                Some("other-secret"),
                &["https://other.example/cb"],
            ),
            mk_client(MOBILE, None, &[MOBILE_CB]),
            OAuth2Client {
                resource_server: true,
                ..mk_client("resource-server", Some("rs-secret"), &[])
            },
            cc_only,
            narrow,
        ],
        ..Snapshot::default()
    })
}

/// One route, one catalog, one store, one clock.
struct Harness {
    route: Route,
    oauth: RouteOAuth2,
    catalog: Catalog,
    store: std::sync::Arc<MemoryStore>,
    clock: Clock,
}

/// A response, decoded.
#[derive(Debug)]
struct Resp {
    status: StatusCode,
    headers: HashMap<String, String>,
    json: Value,
}

impl Resp {
    fn s(&self, field: &str) -> &str {
        self.json[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field} in {}", self.json))
    }

    /// The query (or fragment) parameters of the returned `redirect_uri`.
    fn redirect_params(&self) -> HashMap<String, String> {
        let uri = self.s("redirect_uri");
        let part = uri
            .split_once('#')
            .map(|(_, f)| f.to_owned())
            .or_else(|| uri.split_once('?').map(|(_, q)| q.to_owned()))
            .unwrap_or_default();
        form_urlencoded::parse(part.as_bytes())
            .into_owned()
            .collect()
    }

    fn assert_error(&self, status: u16, error: &str, description: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.json);
        assert_eq!(self.json["error"], error, "{}", self.json);
        assert_eq!(self.json["error_description"], description, "{}", self.json);
    }

    fn assert_redirect_error(&self, error: &str, description: &str) {
        assert_eq!(self.status, StatusCode::BAD_REQUEST, "{}", self.json);
        let p = self.redirect_params();
        assert_eq!(
            p.get("error").map(String::as_str),
            Some(error),
            "{}",
            self.json
        );
        assert_eq!(
            p.get("error_description").map(String::as_str),
            Some(description),
            "{}",
            self.json
        );
    }
}

/// A request under construction.
struct Req<'h> {
    h: &'h Harness,
    inner: OAuthRequest,
}

impl Req<'_> {
    fn form(mut self, body: &str) -> Self {
        self.inner.content_type = Some("application/x-www-form-urlencoded".into());
        self.inner.body = Bytes::from(body.to_owned());
        self
    }

    fn json(mut self, body: Value) -> Self {
        self.inner.content_type = Some("application/json".into());
        self.inner.body = Bytes::from(body.to_string());
        self
    }

    fn query(mut self, q: &str) -> Self {
        self.inner.query = Some(q.into());
        self
    }

    fn basic(mut self, id: &str, secret: &str) -> Self {
        self.inner.authorization = Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{id}:{secret}"))
        ));
        self
    }

    fn method(mut self, m: Method) -> Self {
        self.inner.method = m;
        self
    }

    fn plain_http(mut self, forwarded_https: bool) -> Self {
        self.inner.tls = false;
        self.inner.forwarded_https = forwarded_https;
        self
    }

    async fn send(self) -> Resp {
        let h = self.h;
        let r = handle(
            self.inner,
            &h.route,
            &h.oauth,
            &h.catalog,
            &*h.store,
            h.clock.now(),
        )
        .await;
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        Resp {
            status: r.status,
            headers,
            json,
        }
    }
}

impl Harness {
    fn new(tweak: impl FnOnce(&mut RouteOAuth2)) -> Self {
        Self::with_route("default/stepon", tweak)
    }

    fn with_route(id: &str, tweak: impl FnOnce(&mut RouteOAuth2)) -> Self {
        let mut oauth = mk_oauth();
        tweak(&mut oauth);
        let clock = Clock::manual(T0);
        Harness {
            route: mk_route(id, &oauth),
            oauth,
            catalog: mk_catalog(),
            store: std::sync::Arc::new(MemoryStore::with_clock(10_000, clock.clone())),
            clock,
        }
    }

    /// Another route sharing this harness's store and clock.
    fn sibling(&self, id: &str, tweak: impl FnOnce(&mut RouteOAuth2)) -> Harness {
        let mut oauth = mk_oauth();
        tweak(&mut oauth);
        Harness {
            route: mk_route(id, &oauth),
            oauth,
            catalog: mk_catalog(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        }
    }

    fn req(&self, endpoint: Endpoint) -> Req<'_> {
        Req {
            h: self,
            inner: OAuthRequest {
                endpoint,
                method: Method::POST,
                query: None,
                content_type: None,
                authorization: None,
                body: Bytes::new(),
                tls: true,
                forwarded_https: false,
                issuer: Some("https://api.stepon.example/stepon".into()),
                peer: None,
                audit: crate::audit::AuditLog::off(),
                counters: Default::default(),
            },
        }
    }

    async fn authorize(&self, form: &str) -> Resp {
        self.req(Endpoint::Authorize).form(form).send().await
    }

    async fn token(&self, form: &str) -> Resp {
        self.req(Endpoint::Token).form(form).send().await
    }

    /// A code for `clark` issued to Shoe Fly Shoe with `extra` parameters.
    async fn code(&self, extra: &str) -> String {
        let r = self
            .authorize(&format!(
                "provision_key={PROVISION_KEY}&authenticated_userid=clark&client_id={SFS}&response_type=code&scope=step_counts{extra}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.redirect_params()["code"].clone()
    }

    async fn redeem(&self, code: &str, extra: &str) -> Resp {
        self.token(&format!(
            "grant_type=authorization_code&code={code}&client_id={SFS}&client_secret={SFS_SECRET}{extra}"
        ))
        .await
    }

    /// Access + refresh tokens for clark via the authorization code grant.
    async fn tokens(&self) -> (String, String) {
        let code = self.code("").await;
        let r = self.redeem(&code, "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        (
            r.s("access_token").to_owned(),
            r.s("refresh_token").to_owned(),
        )
    }

    async fn refresh(&self, refresh_token: &str, extra: &str) -> Resp {
        self.token(&format!(
            "grant_type=refresh_token&refresh_token={refresh_token}&client_id={SFS}&client_secret={SFS_SECRET}{extra}"
        ))
        .await
    }

    async fn live(&self, access_token: &str) -> bool {
        self.store
            .access_token(Digest::of(access_token.as_bytes()))
            .await
            .unwrap()
            .is_some()
    }
}

// ---------------------------------------------------------------- common rules

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
    let strict = Harness::new(|_| {});
    let r = strict
        .req(Endpoint::Token)
        .form("grant_type=client_credentials")
        .basic(SFS, SFS_SECRET)
        .plain_http(true)
        .send()
        .await;
    r.assert_error(400, "access_denied", "You must use HTTPS");

    let lenient = Harness::new(|o| o.accept_http_if_already_terminated = true);
    let r = lenient
        .req(Endpoint::Token)
        .form("grant_type=client_credentials")
        .basic(SFS, SFS_SECRET)
        .plain_http(true)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    // Without the trusted X-Forwarded-Proto, plain HTTP is still refused.
    let r = lenient
        .req(Endpoint::Token)
        .form("grant_type=client_credentials")
        .basic(SFS, SFS_SECRET)
        .plain_http(false)
        .send()
        .await;
    r.assert_error(400, "access_denied", "You must use HTTPS");
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
            let r = handle(inner, &h.route, &h.oauth, &h.catalog, &Down, T0).await;
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

// ---------------------------------------------------------------- authorize

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

// ---------------------------------------------------------------- PKCE

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

// ---------------------------------------------------------------- token: code

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
    let a = h
        .store
        .access_token(Digest::of(access.as_bytes()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.client_id, SFS);
    assert_eq!(a.consumer_id, "default/shoe-fly-shoe-owner");
    assert_eq!(a.authenticated_userid.as_deref(), Some("clark"));
    assert_eq!(a.scopes, vec!["step_counts"]);
    assert_eq!(a.route_id, "default/stepon");
    assert!(!a.global);
    assert_eq!(a.expires_at, Some(T0 + 7200));
    assert_eq!(a.refresh, Some(Digest::of(refresh.as_bytes())));
    let rt = h
        .store
        .refresh_token(Digest::of(refresh.as_bytes()))
        .await
        .unwrap()
        .unwrap();
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
    let a = g1
        .store
        .access_token(Digest::of(r.s("access_token").as_bytes()))
        .await
        .unwrap()
        .unwrap();
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

// ---------------------------------------------------------------- token: refresh

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
    let a = h
        .store
        .access_token(Digest::of(new_access.as_bytes()))
        .await
        .unwrap()
        .unwrap();
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

// ---------------------------------------------------------------- token: others

#[tokio::test]
async fn client_credentials_issue_an_access_token_without_refresh_token() {
    let h = Harness::new(|_| {});
    let r = h
        .token(&format!("grant_type=client_credentials&client_id={SFS}&client_secret={SFS_SECRET}&scope=step_counts"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(r.json.get("refresh_token").is_none());
    assert_eq!(r.json["scope"], "step_counts");
    let a = h
        .store
        .access_token(Digest::of(r.s("access_token").as_bytes()))
        .await
        .unwrap()
        .unwrap();
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
    let a = h
        .store
        .access_token(Digest::of(r.s("access_token").as_bytes()))
        .await
        .unwrap()
        .unwrap();
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

// ---------------------------------------------------------------- introspection

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

// ---------------------------------------------------------------- revocation

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

// ---------------------------------------------------------------- metadata

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
