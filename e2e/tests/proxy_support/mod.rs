//! Shared set-up for the `proxy_*` end-to-end tests: snapshot builders, an in-process
//! proxy on a random loopback port, a store that fails on demand, and a tiny client.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gatehouse_e2e::upstream::{full, TestBody};
use gatehouse_proxy::config::{
    Consumer, OAuth2Client, Route, RouteOAuth2, Snapshot, Upstream, FORMAT_VERSION,
};
use gatehouse_proxy::server::{self, ServerArgs, ServerHandle};
use gatehouse_proxy::source::{self, ConfigTx};
use gatehouse_proxy::store::memory::MemoryStore;
use gatehouse_proxy::store::*;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A plain route on `paths` to `endpoints`.
pub fn mk_route(id: &str, paths: &[&str], endpoints: &[String]) -> Route {
    Route {
        auth_only: false,
        id: id.to_owned(),
        hosts: vec![],
        paths: paths.iter().map(|p| p.to_string()).collect(),
        strip_path: false,
        preserve_host: false,
        allow_encoded_slashes: false,
        upstream: Upstream {
            endpoints: endpoints.to_vec(),
            connect_timeout_ms: 2_000,
            response_timeout_ms: 5_000,
            ..Default::default()
        },
        timeouts: Default::default(),
        oauth2: None,
        ..Default::default()
    }
}

/// A snapshot of `routes` with the Step On consumer and client.
pub fn mk_snapshot(routes: Vec<Route>) -> Snapshot {
    Snapshot {
        format: FORMAT_VERSION,
        revision: "test".into(),
        routes,
        consumers: vec![
            Consumer {
                id: "default/shoeflyshoe".into(),
                username: Some("shoeflyshoe".into()),
                custom_id: Some("sfs-001".into()),
            },
            Consumer {
                id: "default/guest".into(),
                username: Some("anonymous".into()),
                custom_id: None,
            },
        ],
        clients: vec![OAuth2Client {
            client_id: "shoe-fly-shoe".into(),
            secret_sha256: Some(Digest::of(b"secret").to_hex()),
            name: "Shoe Fly Shoe".into(),
            consumer_id: "default/shoeflyshoe".into(),
            client_type: Default::default(),
            redirect_uris: vec!["https://shoeflyshoe.example/cb".into()],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        }],
        ..Default::default()
    }
}

/// OAuth2 settings with everything at its default.
pub fn mk_oauth() -> RouteOAuth2 {
    RouteOAuth2::default()
}

/// An access token record for the Shoe Fly Shoe client on `route_id`.
pub fn mk_token(route_id: &str, scopes: &[&str], expires_at: Option<UnixTime>) -> AccessToken {
    AccessToken {
        grant: Grant {
            route_id: route_id.into(),
            global: false,
            client_id: "shoe-fly-shoe".into(),
            consumer_id: "default/shoeflyshoe".into(),
            authenticated_userid: Some("clark".into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            issued_at: now(),
            expires_at,
            family: format!("fam-{route_id}"),
            audience: Vec::new(),
        },
        refresh: None,
    }
}

pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Put `record` in `store` under the raw token `raw`.
pub async fn issue(store: &dyn TokenStore, raw: &str, record: AccessToken) {
    store
        .issue(IssuedPair {
            access_digest: Digest::of(raw.as_bytes()),
            access: record,
            refresh: None,
        })
        .await
        .expect("memory store accepts a token");
}

/// A token store that fails every call while `failing` is set, else delegates.
pub struct FlakyStore {
    pub inner: MemoryStore,
    pub failing: AtomicBool,
}

impl FlakyStore {
    pub fn new() -> Self {
        FlakyStore {
            inner: MemoryStore::new(1000),
            failing: AtomicBool::new(false),
        }
    }
    fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("test store switched off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl TokenStore for FlakyStore {
    async fn put_code(&self, code: Digest, record: AuthorizationCode) -> Result<()> {
        self.check()?;
        self.inner.put_code(code, record).await
    }
    async fn take_code(&self, code: Digest) -> Result<CodeRedemption> {
        self.check()?;
        self.inner.take_code(code).await
    }
    async fn issue(&self, pair: IssuedPair) -> Result<()> {
        self.check()?;
        self.inner.issue(pair).await
    }
    async fn access_token(&self, token: Digest) -> Result<Option<AccessToken>> {
        self.check()?;
        self.inner.access_token(token).await
    }
    async fn refresh_token(&self, token: Digest) -> Result<Option<RefreshToken>> {
        self.check()?;
        self.inner.refresh_token(token).await
    }
    async fn rotate(&self, old: Digest, new: IssuedPair) -> Result<Rotation> {
        self.check()?;
        self.inner.rotate(old, new).await
    }
    async fn revoke(&self, token: Digest) -> Result<bool> {
        self.check()?;
        self.inner.revoke(token).await
    }
    async fn revoke_family(&self, family: &str) -> Result<()> {
        self.check()?;
        self.inner.revoke_family(family).await
    }
    async fn ping(&self) -> Result<()> {
        self.check()
    }
    async fn rate_hit(
        &self,
        key: &str,
        quota: &gatehouse_proxy::ratelimit::Quota,
    ) -> Result<gatehouse_proxy::ratelimit::Decision> {
        self.check()?;
        self.inner.rate_hit(key, quota).await
    }
}

/// An in-process proxy on a random loopback port.
pub struct Proxy {
    pub handle: ServerHandle,
    pub config: ConfigTx,
    pub addr: SocketAddr,
}

impl Proxy {
    /// One worker, loopback trusted, listening on 127.0.0.1:0.
    pub async fn start(snapshot: Snapshot, store: Arc<dyn TokenStore>) -> Proxy {
        Self::start_with(snapshot, store, |_| {}).await
    }

    /// Like [`Proxy::start`], with the arguments adjusted by `tweak`.
    pub async fn start_with(
        snapshot: Snapshot,
        store: Arc<dyn TokenStore>,
        tweak: impl FnOnce(&mut ServerArgs),
    ) -> Proxy {
        let mut args = ServerArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: Some(1),
            ..Default::default()
        };
        tweak(&mut args);
        let (config, rx) = source::channel();
        config.send_replace(Some(Arc::new(snapshot)));
        let handle = server::spawn(&args, rx, store).expect("proxy starts");
        let addr = handle.http_addr;
        Proxy {
            handle,
            config,
            addr,
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The upstream echo; panics unless the request was proxied (200).
    pub fn echo(&self) -> serde_json::Value {
        assert_eq!(self.status, 200, "expected a proxied 200, got {self:?}");
        self.json()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, TestBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Send `req` and read the whole response.
pub async fn send(req: Request<TestBody>) -> Resp {
    let resp = client().request(req).await.expect("proxy answers");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// GET `url` with extra headers.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(full(Bytes::new())).unwrap()).await
}

/// POST a form body to `url` with extra headers.
pub async fn post_form(url: &str, form: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::post(url).header("content-type", "application/x-www-form-urlencoded");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req.body(full(form.to_owned())).unwrap()).await
}
