//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document, used
//! by MCP): a `client_id` that is an `https` URL is the address of a JSON document
//! describing the client, fetched here and used as a public client.
//!
//! Fetching a URL a stranger chose is a server-side request forgery risk, so:
//! `https` only; the host must be on the route's allow-list when it has one; the name
//! must resolve to public addresses only unless the allow-list names the host; the
//! connection goes to the address that was checked (no second lookup an attacker could
//! answer differently); redirects are refused, not followed; the body is read up to
//! [`MAX_DOCUMENT`] bytes within [`FETCH_TIMEOUT`]. Documents are cached as their
//! `Cache-Control` says (at most a day; five minutes without one).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::{Host, Url};

use super::redirect::check_unvetted;
use crate::config::{ClientType, GrantType, OAuth2Client};

/// Largest document read.
pub const MAX_DOCUMENT: usize = 16 * 1024;
/// Whole fetch, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest metadata URL accepted as a `client_id`.
const MAX_URL: usize = 2048;
/// Cache lifetime without caching headers, and the cap with them.
const DEFAULT_TTL: Duration = Duration::from_secs(300);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most documents cached at once.
const CACHE_CAPACITY: usize = 4096;
/// Most redirect URIs in one document.
const MAX_REDIRECT_URIS: usize = 16;

/// Whether `client_id` has the shape of a metadata document URL: `https`, a path
/// other than `/`, no fragment, credentials or dot segments.
pub fn is_document_url(client_id: &str) -> bool {
    if client_id.len() > MAX_URL || !client_id.starts_with("https://") {
        return false;
    }
    let Ok(u) = Url::parse(client_id) else {
        return false;
    };
    let raw_path = client_id["https://".len()..]
        .split_once('/')
        .map(|(_, p)| p)
        .unwrap_or("");
    u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none()
        && u.path() != "/"
        && !raw_path
            .split(['/', '?'])
            .any(|seg| seg == "." || seg == "..")
}

/// The metadata documents this proxy has seen, and how to fetch more.
pub struct MetadataDocuments {
    /// Extra trust anchors for document hosts (`--client-metadata-ca`), beside the
    /// system's.
    roots: Vec<reqwest::Certificate>,
    cache: Mutex<HashMap<String, (OAuth2Client, Instant)>>,
}

impl Default for MetadataDocuments {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

/// The fields of a document this server reads; others are ignored, as the
/// specification asks.
#[derive(Deserialize)]
struct Document {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    client_secret: Option<serde_json::Value>,
}

impl MetadataDocuments {
    pub fn new(roots: Vec<reqwest::Certificate>) -> Self {
        MetadataDocuments {
            roots,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The client `url` describes, from cache or fetched now. `allowed_hosts` is the
    /// route's allow-list (`host`, `host:port` or `*.suffix`; empty: any public host).
    /// Errors are reasons fit to show the client.
    pub async fn client(
        &self,
        url: &str,
        allowed_hosts: &[String],
    ) -> Result<OAuth2Client, String> {
        let parsed = Url::parse(url).map_err(|_| "the client_id is not a valid URL".to_owned())?;
        let host = parsed
            .host_str()
            .ok_or("the client_id URL has no host")?
            .to_ascii_lowercase();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let listed = host_listed(&host, port, allowed_hosts);
        if !allowed_hosts.is_empty() && !listed {
            return Err(format!(
                "client metadata documents from {host} are not accepted here"
            ));
        }
        if let Some(client) = self.cached(url) {
            return Ok(client);
        }
        let addr = vetted_address(&parsed, &host, port, listed).await?;
        let (client, ttl) = self.fetch(url, &host, addr).await?;
        if let Some(ttl) = ttl {
            self.remember(url, &client, ttl);
        }
        Ok(client)
    }

    fn cached(&self, url: &str) -> Option<OAuth2Client> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(url)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(c, _)| c.clone())
    }

    fn remember(&self, url: &str, client: &OAuth2Client, ttl: Duration) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (_, until)| *until > now);
        }
        if cache.len() < CACHE_CAPACITY {
            cache.insert(url.to_owned(), (client.clone(), now + ttl));
        }
    }

    /// Fetch and validate; the cache lifetime comes back beside the client (`None`:
    /// not to be cached).
    async fn fetch(
        &self,
        url: &str,
        host: &str,
        addr: SocketAddr,
    ) -> Result<(OAuth2Client, Option<Duration>), String> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .pool_max_idle_per_host(0)
            // Connect to the address that was checked, whatever DNS says now.
            .resolve(host, addr)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")));
        for root in &self.roots {
            builder = builder.add_root_certificate(root.clone());
        }
        let http = builder
            .build()
            .map_err(|e| format!("cannot fetch the client metadata document: {e}"))?;
        let mut resp = http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                tracing::info!(client.id = %url, error = %e, "Client metadata document fetch failed");
                "the client metadata document could not be fetched".to_owned()
            })?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(
                "the client metadata document URL redirects; redirects are not followed".into(),
            );
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!(
                "the client metadata document answered {}",
                status.as_u16()
            ));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT as u64)
        {
            return Err(too_big());
        }
        let ttl = cache_lifetime(resp.headers());
        let mut body = Vec::new();
        let read = async {
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|_| "the client metadata document could not be read".to_owned())?
            {
                if body.len() + chunk.len() > MAX_DOCUMENT {
                    return Err(too_big());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(())
        };
        tokio::time::timeout(FETCH_TIMEOUT, read)
            .await
            .map_err(|_| "the client metadata document took too long".to_owned())??;
        let client = validate(url, &body)?;
        Ok((client, ttl))
    }
}

fn too_big() -> String {
    format!("the client metadata document is larger than {MAX_DOCUMENT} bytes")
}

/// Check a document and turn it into a public client.
fn validate(url: &str, body: &[u8]) -> Result<OAuth2Client, String> {
    let doc: Document = serde_json::from_slice(body)
        .map_err(|e| format!("the client metadata document is not valid: {e}"))?;
    if doc.client_id != url {
        return Err("the client metadata document's client_id is not its own URL".into());
    }
    if doc.client_secret.is_some() {
        return Err("a client metadata document must not carry a client_secret".into());
    }
    match doc.token_endpoint_auth_method.as_deref() {
        None | Some("none") => {}
        Some(other) => {
            return Err(format!(
                "token_endpoint_auth_method {other} is not supported for metadata document clients (use none)"
            ))
        }
    }
    if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(format!(
            "the client metadata document must list 1 to {MAX_REDIRECT_URIS} redirect_uris"
        ));
    }
    for uri in &doc.redirect_uris {
        check_unvetted(uri)?;
    }
    if let Some(grants) = &doc.grant_types {
        if grants
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
        {
            return Err(
                "metadata document clients may use authorization_code and refresh_token only"
                    .into(),
            );
        }
    }
    if let Some(types) = &doc.response_types {
        if types.iter().any(|t| t != "code") {
            return Err("metadata document clients may use response_type code only".into());
        }
    }
    let name = doc.client_name.filter(|n| {
        !n.trim().is_empty() && n.chars().count() <= 200 && !n.chars().any(char::is_control)
    });
    Ok(OAuth2Client {
        client_id: doc.client_id,
        secret_sha256: None,
        name: name.unwrap_or_default(),
        consumer_id: String::new(),
        client_type: ClientType::Public,
        redirect_uris: doc.redirect_uris,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: doc
            .scope
            .map(|s| s.split_whitespace().map(str::to_owned).collect()),
        resource_server: false,
    })
}

/// How long a response may be cached: `no-store`/`no-cache` → not at all,
/// `max-age=N` → N seconds (at most a day), otherwise five minutes.
fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let Some(cc) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return Some(DEFAULT_TTL);
    };
    let mut ttl = DEFAULT_TTL;
    for directive in cc.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return None;
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            let secs: u64 = v.trim_matches('"').parse().ok()?;
            if secs == 0 {
                return None;
            }
            ttl = Duration::from_secs(secs).min(MAX_TTL);
        }
    }
    Some(ttl)
}

/// Whether `host[:port]` is on the allow-list (`host`, `host:port`, `*.suffix`).
fn host_listed(host: &str, port: u16, allowed: &[String]) -> bool {
    allowed.iter().any(|pattern| {
        let (name, want_port) = match pattern.rsplit_once(':') {
            Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (n, p.parse::<u16>().ok()),
            _ => (pattern.as_str(), None),
        };
        if want_port.is_some_and(|p| p != port) {
            return false;
        }
        match name.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|label| label.ends_with('.') && label.len() > 1),
            None => host == name,
        }
    })
}

/// Resolve the host and return the address to connect to: every address it
/// resolves to must be public, unless the allow-list names the host.
async fn vetted_address(
    url: &Url,
    host: &str,
    port: u16,
    listed: bool,
) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        _ => tokio::time::timeout(FETCH_TIMEOUT, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("{host} did not resolve in time"))?
            .map_err(|_| format!("{host} does not resolve"))?
            .collect(),
    };
    let first = *addrs
        .first()
        .ok_or_else(|| format!("{host} does not resolve"))?;
    if !listed {
        if let Some(private) = addrs.iter().find(|a| !is_public(a.ip())) {
            tracing::warn!(host, address = %private.ip(), "Client metadata document host resolves to a non-public address; refused");
            return Err(format!(
                "{host} resolves to a non-public address; such documents are not fetched"
            ));
        }
    }
    Ok(first)
}

/// Whether an address is reachable on the public internet (not loopback, private,
/// link-local, shared, documentation, multicast or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                // NAT64 and IPv4-compatible forms embed an IPv4 address.
                || (s[0] == 0x64 && s[1] == 0xff9b)
                || s[..6].iter().all(|x| *x == 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_urls_are_https_with_a_path_and_nothing_odd() {
        assert!(is_document_url("https://app.example/oauth/client.json"));
        for bad in [
            "http://app.example/client.json",
            "https://app.example/",
            "https://app.example",
            "https://app.example/a#b",
            "https://u:p@app.example/c",
            "https://app.example/a/../c",
            "https://app.example/./c",
            "my-client",
        ] {
            assert!(!is_document_url(bad), "{bad}");
        }
    }

    #[test]
    fn non_public_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "1.1.1.1"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn allow_list_patterns_match_hosts_ports_and_subdomains() {
        let list = vec![
            "mcp.example".to_owned(),
            "*.apps.example".to_owned(),
            "127.0.0.1:8443".to_owned(),
        ];
        assert!(host_listed("mcp.example", 443, &list));
        assert!(host_listed("a.apps.example", 443, &list));
        assert!(!host_listed("apps.example", 443, &list));
        assert!(!host_listed("evilapps.example", 443, &list));
        assert!(host_listed("127.0.0.1", 8443, &list));
        assert!(!host_listed("127.0.0.1", 8444, &list));
    }

    #[test]
    fn documents_are_validated_before_use() {
        let url = "https://app.example/client.json";
        let ok = format!(
            r#"{{"client_id":"{url}","client_name":"App","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none","extra":1}}"#
        );
        let c = validate(url, ok.as_bytes()).unwrap();
        assert_eq!(c.client_type, ClientType::Public);
        assert_eq!(c.name, "App");
        for (bad, why) in [
            (r#"{"client_id":"https://other.example/c.json","redirect_uris":["https://a.example/cb"]}"#.to_owned(), "its own URL"),
            (format!(r#"{{"client_id":"{url}","redirect_uris":[]}}"#), "redirect_uris"),
            (format!(r#"{{"client_id":"{url}","redirect_uris":["http://app.example/cb"]}}"#), "loopback"),
            (format!(r#"{{"client_id":"{url}","redirect_uris":["https://a.example/cb"],"client_secret":"x"}}"#), "client_secret"),
            (format!(r#"{{"client_id":"{url}","redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}}"#), "none"),
            (format!(r#"{{"client_id":"{url}","redirect_uris":["https://a.example/cb"],"grant_types":["password"]}}"#), "authorization_code"),
            ("[]".to_owned(), "not valid"),
        ] {
            let e = validate(url, bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn cache_headers_decide_the_lifetime() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(cache_lifetime(&h), Some(DEFAULT_TTL));
        h.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=60".parse().unwrap(),
        );
        assert_eq!(cache_lifetime(&h), Some(Duration::from_secs(60)));
        h.insert(
            reqwest::header::CACHE_CONTROL,
            "max-age=9999999".parse().unwrap(),
        );
        assert_eq!(cache_lifetime(&h), Some(MAX_TTL));
        h.insert(reqwest::header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(cache_lifetime(&h), None);
    }
}
