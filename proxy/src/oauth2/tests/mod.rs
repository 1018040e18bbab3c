//! Every OAuth2 decision, exercised through [`handle`] with the in-memory store and
//! an explicit clock (no sleeps, no network). This module holds the shared fixtures
//! and the [`Harness`]; each endpoint's tests live in their own file below it.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::config::{ClientType, Consumer, OAuth2Client, PkceMode, Snapshot, Upstream};
use crate::store::memory::{Clock, MemoryStore};
use crate::store::{AccessToken, RefreshToken, StoreError};

mod authorize;
mod common_rules;
mod introspection;
mod mcp;
mod metadata;
mod pkce;
mod revocation;
mod token_code;
mod token_others;
mod token_refresh;

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
        ..Default::default()
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
    audit: crate::audit::AuditLog,
    counters: crate::metrics::OAuthCounters,
    documents: super::client_metadata::MetadataDocuments,
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
        let r = handle(self.inner, &h.site(&*h.store)).await;
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
            audit: crate::audit::AuditLog::off(),
            counters: Default::default(),
            documents: Default::default(),
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
            audit: crate::audit::AuditLog::off(),
            counters: Default::default(),
            documents: Default::default(),
        }
    }

    /// The route as the pipeline hands it to [`handle`], over `store`.
    fn site<'s>(&'s self, store: &'s dyn crate::store::TokenStore) -> Site<'s> {
        Site {
            audit: &self.audit,
            counters: &self.counters,
            route: &self.route,
            oauth: &self.oauth,
            catalog: &self.catalog,
            store,
            documents: &self.documents,
            now: self.clock.now(),
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
                suffix: String::new(),
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

    /// The store's record of the raw `access_token`, which must be live.
    async fn stored_access(&self, access_token: &str) -> AccessToken {
        self.store
            .access_token(Digest::of(access_token.as_bytes()))
            .await
            .unwrap()
            .expect("the access token is in the store")
    }

    /// The store's record of the raw `refresh_token`, which must be live.
    async fn stored_refresh(&self, refresh_token: &str) -> RefreshToken {
        self.store
            .refresh_token(Digest::of(refresh_token.as_bytes()))
            .await
            .unwrap()
            .expect("the refresh token is in the store")
    }
}
