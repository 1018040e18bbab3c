//! Discovery documents at the locations that sit *outside* a route's path:
//!
//! | request                                                  | answer                                  |
//! |----------------------------------------------------------|-----------------------------------------|
//! | `GET /.well-known/oauth-protected-resource<route path>`  | RFC 9728 protected resource metadata    |
//! | `GET /.well-known/oauth-authorization-server<route path>`| RFC 8414 metadata (path insertion)      |
//! | `GET /.well-known/openid-configuration<route path>`      | the same document, where OIDC clients look |
//!
//! The part after the well-known prefix is routed like any request; when it lands on
//! a route with OAuth2, that route answers (for the authorization server, only at its
//! exact path: the issuer). Otherwise the request goes on to normal routing. Each
//! route also answers `<route path>/.well-known/oauth-authorization-server` and
//! `<route path>/.well-known/openid-configuration` itself ([`super::Endpoint`]).
//!
//! A route's protected resource is its base URL — the issuer when configured,
//! otherwise `scheme://host<route path>` on routes that list their hosts — and its
//! authorization server is that same URL: each route is its own authorization server.

use http::request::Parts;
use http::{Method, StatusCode, Uri};
use serde_json::{json, Map, Value};

use super::metadata;
use crate::compiled::Compiled;
use crate::config::{Route, RouteOAuth2};
use crate::forwarded::ConnInfo;
use crate::respond::Reply;
use crate::router::{self, Routed};

const PROTECTED_RESOURCE: &str = "/.well-known/oauth-protected-resource";
const AUTHORIZATION_SERVER: &str = "/.well-known/oauth-authorization-server";
const OPENID_CONFIGURATION: &str = "/.well-known/openid-configuration";

/// Which document a well-known path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    ProtectedResource,
    AuthorizationServer,
}

/// Split `/.well-known/<document><path>` into the document and the path it is for
/// (`/` for the root form). The root forms of the authorization server documents are
/// left to normal routing (a route at `/` answers them as its own endpoints).
pub fn split(path: &str) -> Option<(Document, &str)> {
    if !path.starts_with("/.well-known/") {
        return None;
    }
    if let Some(rest) = path.strip_prefix(PROTECTED_RESOURCE) {
        return match rest {
            "" | "/" => Some((Document::ProtectedResource, "/")),
            r if r.starts_with('/') => Some((Document::ProtectedResource, r)),
            _ => None,
        };
    }
    for prefix in [AUTHORIZATION_SERVER, OPENID_CONFIGURATION] {
        if let Some(rest) = path.strip_prefix(prefix) {
            return (rest.len() > 1 && rest.starts_with('/'))
                .then_some((Document::AuthorizationServer, rest));
        }
    }
    None
}

/// Answer a well-known request when the path it names is a route with OAuth2;
/// `None` lets the request go on to normal routing.
pub fn serve(
    compiled: &Compiled,
    document: Document,
    target: &str,
    conn: &ConnInfo,
    parts: &Parts,
) -> Option<Reply> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return None;
    }
    let uri = with_path(&parts.uri, target)?;
    let routed = router::route(&compiled.router, &Method::GET, &uri, &parts.headers).ok()?;
    let route = &compiled.snapshot.routes[routed.index];
    let oauth = route.oauth2.as_ref()?;
    let issuer = super::issuer(route, oauth, &routed, conn, &parts.headers);
    match document {
        Document::AuthorizationServer => {
            // Path insertion names the issuer exactly (RFC 8414 §3.1).
            if !matches!(routed.suffix(), "" | "/") {
                return None;
            }
            Some(metadata::document(issuer.as_deref(), oauth))
        }
        Document::ProtectedResource => Some(protected_resource(issuer.as_deref(), route, oauth)),
    }
}

/// `uri` with its path (and query) replaced by `path`.
fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// RFC 9728 §2 metadata of a route's protected resource.
pub fn protected_resource(base: Option<&str>, route: &Route, oauth: &RouteOAuth2) -> Reply {
    let Some(base) = base.map(|b| b.trim_end_matches('/')) else {
        return metadata::no_issuer();
    };
    let mut body = Map::new();
    body.insert("resource".into(), base.into());
    body.insert("authorization_servers".into(), json!([base]));
    if !oauth.scopes.is_empty() {
        body.insert("scopes_supported".into(), json!(oauth.scopes));
    }
    // Where enforcement looks for a token (`crate::enforce::find_token`).
    let methods: &[&str] = if oauth.oauth21 {
        &["header"]
    } else {
        &["header", "body", "query"]
    };
    body.insert("bearer_methods_supported".into(), json!(methods));
    body.insert("resource_name".into(), route.id.clone().into());
    Reply::json(StatusCode::OK, &Value::Object(body))
}

/// The RFC 9728 metadata URL of the resource at `base` (`https://h/mcp` →
/// `https://h/.well-known/oauth-protected-resource/mcp`), named in token challenges.
pub fn resource_metadata_url(base: &str) -> Option<String> {
    let base = base.trim_end_matches('/');
    let after_scheme = base.find("://")? + 3;
    let (origin, path) = match base[after_scheme..].find('/') {
        Some(i) => base.split_at(after_scheme + i),
        None => (base, ""),
    };
    Some(format!("{origin}{PROTECTED_RESOURCE}{path}"))
}

/// The metadata URL for a request that `routed` matched, if the route can name its
/// base URL (the same rule as the metadata documents).
pub fn resource_metadata_for(
    route: &Route,
    oauth: &RouteOAuth2,
    routed: &Routed<'_>,
    conn: &ConnInfo,
    parts: &Parts,
) -> Option<String> {
    let base = super::issuer(route, oauth, routed, conn, &parts.headers)?;
    resource_metadata_url(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_paths_split_into_document_and_route_path() {
        assert_eq!(
            split("/.well-known/oauth-protected-resource/mcp"),
            Some((Document::ProtectedResource, "/mcp"))
        );
        assert_eq!(
            split("/.well-known/oauth-protected-resource"),
            Some((Document::ProtectedResource, "/"))
        );
        assert_eq!(
            split("/.well-known/oauth-authorization-server/mcp"),
            Some((Document::AuthorizationServer, "/mcp"))
        );
        assert_eq!(
            split("/.well-known/openid-configuration/a/b"),
            Some((Document::AuthorizationServer, "/a/b"))
        );
        assert_eq!(split("/.well-known/oauth-authorization-server"), None);
        assert_eq!(split("/.well-known/oauth-protected-resourcex"), None);
        assert_eq!(split("/mcp/.well-known/oauth-authorization-server"), None);
        assert_eq!(split("/.well-known/security.txt"), None);
    }

    #[test]
    fn the_metadata_url_inserts_the_well_known_part_before_the_path() {
        assert_eq!(
            resource_metadata_url("https://gw.example:8443/mcp").as_deref(),
            Some("https://gw.example:8443/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(
            resource_metadata_url("https://gw.example/").as_deref(),
            Some("https://gw.example/.well-known/oauth-protected-resource")
        );
        assert_eq!(resource_metadata_url("nonsense"), None);
    }
}
