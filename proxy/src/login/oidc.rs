//! The identity provider, seen from Gatehouse: OIDC discovery, the provider's JWKS,
//! the code-for-tokens exchange and ID-token verification.
//!
//! Discovery documents and key sets are cached per issuer and shared by every worker.
//! An ID token signed with a key id the cache does not know makes the JWKS be fetched
//! again (at most once per [`JWKS_MIN_REFETCH`]), which is how a provider's key
//! rotation is picked up without a restart.
//!
//! The HTTP client talking to the provider has timeouts and a response size limit,
//! follows no redirects, and refuses plain HTTP except to loopback addresses (tests
//! and providers on the same host); so a misconfigured issuer cannot make the proxy
//! fetch from arbitrary places or hang a request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::LoginError;
use crate::store::UnixTime;

/// A provider's response larger than this is refused (discovery, JWKS and token
/// responses are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Whole-request timeout for calls to the provider.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout for calls to the provider.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Discovery documents are re-read after this long.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// An unknown key id refetches the JWKS at most this often (a forged token with a
/// random `kid` must not turn the proxy into a load generator against the provider).
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(2);
/// Clock skew tolerated on `exp` / `iat`.
pub const LEEWAY_SECS: u64 = 60;

/// The parts of the discovery document Gatehouse uses.
#[derive(Clone, Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// One provider's cached state.
#[derive(Debug)]
struct Cached {
    metadata: Metadata,
    fetched: Instant,
    jwks: JwkSet,
    jwks_fetched: Instant,
}

/// The providers known to this proxy, by issuer URL.
pub struct Providers {
    http: reqwest::Client,
    cache: Mutex<HashMap<String, Arc<Cached>>>,
}

impl Default for Providers {
    fn default() -> Self {
        Self::new()
    }
}

impl Providers {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // Workers run separate runtimes; a pooled connection would belong to one
            // of them. Sign-ins are rare, so a fresh connection each time is cheap.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with rustls and no custom roots always builds");
        Providers {
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, issuer: &str) -> Option<Arc<Cached>> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(issuer)
            .cloned()
    }

    fn remember(&self, issuer: &str, cached: Arc<Cached>) {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(issuer.to_owned(), cached);
    }

    /// The provider's metadata, from cache or freshly discovered. A failed refresh
    /// keeps serving the last good document; a provider never reached is an error.
    pub async fn metadata(&self, issuer: &str) -> Result<Metadata, LoginError> {
        Ok(self.provider(issuer).await?.metadata.clone())
    }

    async fn provider(&self, issuer: &str) -> Result<Arc<Cached>, LoginError> {
        let cached = self.cached(issuer);
        if let Some(c) = &cached {
            if c.fetched.elapsed() < DISCOVERY_TTL {
                return Ok(c.clone());
            }
        }
        match self.discover(issuer).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                self.remember(issuer, fresh.clone());
                Ok(fresh)
            }
            Err(e) => match cached {
                Some(c) => {
                    tracing::warn!(issuer, error = %e, "OIDC discovery refresh failed; keeping the last document");
                    Ok(c)
                }
                None => Err(e),
            },
        }
    }

    /// Discover `issuer` afresh (document and keys), bypassing the cache: whether it
    /// answers now, for the controller's start-up check.
    pub async fn probe(&self, issuer: &str) -> Result<(), LoginError> {
        self.discover(issuer).await.map(|_| ())
    }

    async fn discover(&self, issuer: &str) -> Result<Cached, LoginError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let metadata: Metadata = self.get_json(&url).await?;
        // OIDC Discovery §4.3: the document must name the issuer it was fetched for.
        if metadata.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
            return Err(LoginError::Provider(format!(
                "the discovery document names issuer {:?}, not {issuer:?}",
                metadata.issuer
            )));
        }
        for endpoint in [
            &metadata.authorization_endpoint,
            &metadata.token_endpoint,
            &metadata.jwks_uri,
        ] {
            check_url(endpoint)?;
        }
        if let Some(end) = &metadata.end_session_endpoint {
            check_url(end)?;
        }
        let jwks: JwkSet = self.get_json(&metadata.jwks_uri).await?;
        let now = Instant::now();
        Ok(Cached {
            metadata,
            fetched: now,
            jwks,
            jwks_fetched: now,
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LoginError> {
        check_url(url)?;
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| LoginError::Provider(format!("GET {url}: {}", without_url(&e))))?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        if !status.is_success() {
            return Err(LoginError::Provider(format!("GET {url} answered {status}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| LoginError::Provider(format!("GET {url}: unexpected document: {e}")))
    }

    /// Exchange the provider's authorization code for its tokens and return the ID
    /// token (unverified; see [`Providers::verify`]).
    pub async fn exchange(
        &self,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, LoginError> {
        let provider = self.provider(issuer).await?;
        let url = &provider.metadata.token_endpoint;
        // client_secret_basic, with RFC 6749 §2.3.1's form-encoding of both parts.
        let resp = self
            .http
            .post(url)
            .basic_auth(form_encode(client_id), Some(form_encode(client_secret)))
            .header("accept", "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| LoginError::Provider(format!("token request: {}", without_url(&e))))?;
        let status = resp.status();
        let body = read_limited(resp).await?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let error = json.get("error").and_then(Value::as_str).unwrap_or("none");
            return Err(LoginError::Provider(format!(
                "the token endpoint answered {status} (error: {error})"
            )));
        }
        json.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| LoginError::Provider("the token response has no id_token".into()))
    }

    /// Verify an ID token (OIDC Core §3.1.3.7): signature with one of the provider's
    /// keys (an unknown `kid` refetches the key set), `iss`, `aud` (and `azp` when
    /// there are several audiences), `exp` and `iat` against `now`, and `nonce`.
    /// Returns the claims.
    pub async fn verify(
        &self,
        issuer: &str,
        client_id: &str,
        id_token: &str,
        nonce: &str,
        now: UnixTime,
    ) -> Result<Map<String, Value>, LoginError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|e| LoginError::IdToken(format!("malformed header: {e}")))?;
        if !ASYMMETRIC.contains(&header.alg) {
            // Never `none`, and never HS*: a client secret is not a signing key here.
            return Err(LoginError::IdToken(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let mut provider = self.provider(issuer).await?;
        let jwk = match find_key(&provider.jwks, header.kid.as_deref(), header.alg) {
            Some(jwk) => jwk,
            None => {
                provider = self.refetch_jwks(issuer, provider).await?;
                find_key(&provider.jwks, header.kid.as_deref(), header.alg).ok_or_else(|| {
                    LoginError::IdToken("signed with a key the provider does not publish".into())
                })?
            }
        };
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| LoginError::IdToken(format!("unusable provider key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&provider.metadata.issuer]);
        validation.set_audience(&[client_id]);
        // Time is checked below against the caller's clock, so tests can move it.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|e| LoginError::IdToken(e.to_string()))?;
        let claims = data.claims;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        if exp.saturating_add(LEEWAY_SECS) <= now {
            return Err(LoginError::IdToken("expired".into()));
        }
        if let Some(iat) = claims.get("iat").and_then(Value::as_u64) {
            if iat > now.saturating_add(LEEWAY_SECS) {
                return Err(LoginError::IdToken("issued in the future".into()));
            }
        }
        if let Some(Value::Array(aud)) = claims.get("aud") {
            if aud.len() > 1 && claims.get("azp").and_then(Value::as_str) != Some(client_id) {
                return Err(LoginError::IdToken("azp is not this client".into()));
            }
        }
        let presented = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
        let nonce_ok: bool =
            subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), nonce.as_bytes()).into();
        if !nonce_ok {
            return Err(LoginError::IdToken("nonce mismatch".into()));
        }
        Ok(claims)
    }

    async fn refetch_jwks(
        &self,
        issuer: &str,
        current: Arc<Cached>,
    ) -> Result<Arc<Cached>, LoginError> {
        let wait = JWKS_MIN_REFETCH.saturating_sub(current.jwks_fetched.elapsed());
        if !wait.is_zero() {
            // The provider rotated its key right after our last fetch: wait out the
            // interval instead of refusing a genuine sign-in (the ID token came from the
            // provider's own token endpoint), and use a fetch that happened meanwhile.
            tokio::time::sleep(wait).await;
            if let Some(newer) = self.cached(issuer) {
                if newer.jwks_fetched > current.jwks_fetched {
                    return Ok(newer);
                }
            }
        }
        let jwks: JwkSet = self.get_json(&current.metadata.jwks_uri).await?;
        tracing::info!(
            issuer,
            keys = jwks.keys.len(),
            "Provider keys refetched (unknown key id)"
        );
        let fresh = Arc::new(Cached {
            metadata: current.metadata.clone(),
            fetched: current.fetched,
            jwks,
            jwks_fetched: Instant::now(),
        });
        self.remember(issuer, fresh.clone());
        Ok(fresh)
    }
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The key for `kid` (or the only signing key when the token names none).
fn find_key(jwks: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Jwk> {
    let usable = |k: &&Jwk| {
        let for_signing = !matches!(
            k.common.public_key_use,
            Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
        );
        let alg_ok = k
            .common
            .key_algorithm
            .map(|a| format!("{a:?}") == format!("{alg:?}"))
            .unwrap_or(true);
        for_signing && alg_ok
    };
    match kid {
        Some(kid) => jwks
            .keys
            .iter()
            .filter(usable)
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned(),
        None => {
            let mut keys = jwks.keys.iter().filter(usable);
            match (keys.next(), keys.next()) {
                (Some(only), None) => Some(only.clone()),
                _ => None,
            }
        }
    }
}

/// HTTPS, or plain HTTP to a loopback address.
fn check_url(url: &str) -> Result<(), LoginError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| LoginError::Provider(format!("{url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if gatehouse_config::loopback::is_loopback_host(&parsed) => Ok(()),
        _ => Err(LoginError::Provider(format!(
            "{url:?} must use https (plain http only to loopback)"
        ))),
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, LoginError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(LoginError::Provider(
            "the provider's response is too large".into(),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| LoginError::Provider(format!("reading the response: {}", without_url(&e))))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(LoginError::Provider(
                "the provider's response is too large".into(),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest errors repeat the URL; token endpoint URLs carry nothing secret, but
/// keeping messages short keeps the error page readable.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(&format!(" ({url})"), "");
    }
    if e.is_timeout() {
        msg = "timed out".into();
    } else if e.is_connect() {
        msg = "cannot connect".into();
    }
    msg
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_must_be_https_unless_on_loopback() {
        assert!(check_url("https://accounts.google.com/o/oauth2/auth").is_ok());
        assert!(check_url("http://127.0.0.1:5556/dex").is_ok());
        assert!(check_url("http://[::1]:80/").is_ok());
        assert!(check_url("http://localhost:80/").is_ok());
        assert!(check_url("http://idp.example/").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("not a url").is_err());
    }
}
