//! Resource indicators (RFC 8707): the `resource` parameters of authorization and
//! token requests, and the protected resource a route is.
//!
//! A route's authorization server issues tokens for that route alone, so every
//! `resource` must name it: the route's origin (scheme, host and port of its base
//! URL) and a path under one of its path prefixes. The token then carries the
//! resources as its audience, which also takes it out of `globalCredentials` sharing
//! (see [`crate::binding`]). A resource that names anything else is `invalid_target`.

use gatehouse_config::path::{normalize_prefix, prefix_covers};
use url::Url;

use super::error::{OAuthError, Result};
use super::params::Params;
use crate::config::Route;

/// Longest `resource` value accepted.
const MAX_LEN: usize = 2048;
/// Most `resource` values in one request.
const MAX_COUNT: usize = 8;

/// The validated `resource` values of a request (empty when none was sent), in the
/// order sent, without repeats.
pub fn requested(params: &Params, base: Option<&str>, route: &Route) -> Result<Vec<String>> {
    let values = params.all("resource")?;
    if values.len() > MAX_COUNT {
        return Err(OAuthError::invalid_target(format!(
            "At most {MAX_COUNT} resource values are accepted"
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for value in values {
        let Some(base) = base else {
            return Err(OAuthError::invalid_target(
                "This route names no issuer, so it cannot check resource indicators: set oauth2.issuer",
            ));
        };
        if !names_route(value, base, route) {
            return Err(OAuthError::invalid_target(format!(
                "The resource {value} is not served by this authorization server"
            )));
        }
        if !out.iter().any(|v| v == value) {
            out.push(value.to_owned());
        }
    }
    Ok(out)
}

/// At the token endpoint: the resources of the new token. A request naming none
/// keeps what the grant had; one naming some may only narrow it (RFC 8707 §2.2), and
/// a grant that named none may be narrowed to resources of this route.
pub fn narrow(requested: Vec<String>, granted: &[String]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if !granted.is_empty() {
        if let Some(extra) = requested.iter().find(|r| !granted.contains(r)) {
            return Err(OAuthError::invalid_target(format!(
                "The resource {extra} was not part of the authorization grant"
            )));
        }
    }
    Ok(requested)
}

/// Whether `resource` is an absolute `http(s)` URI without fragment or query whose
/// origin is `base`'s and whose path lies under one of the route's paths.
pub fn names_route(resource: &str, base: &str, route: &Route) -> bool {
    if resource.len() > MAX_LEN || resource.contains('#') {
        return false;
    }
    let (Ok(resource), Ok(base)) = (Url::parse(resource), Url::parse(base)) else {
        return false;
    };
    let web = |u: &Url| matches!(u.scheme(), "http" | "https");
    if !web(&resource)
        || resource.query().is_some()
        || !resource.username().is_empty()
        || resource.password().is_some()
        || resource.origin() != base.origin()
    {
        return false;
    }
    // `Url` already resolved dot segments; a trailing slash names the same resource.
    let path = match resource.path().trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    if route.paths.is_empty() {
        return true;
    }
    route
        .paths
        .iter()
        .any(|p| prefix_covers(&normalize_prefix(p), path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(paths: &[&str]) -> Route {
        Route {
            id: "ns/mcp".into(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    const BASE: &str = "https://gw.example:8443/mcp";

    #[test]
    fn a_resource_under_the_route_on_its_origin_is_accepted() {
        let r = route(&["/mcp", "/tools"]);
        for ok in [
            "https://gw.example:8443/mcp",
            "https://gw.example:8443/mcp/",
            "https://GW.example:8443/mcp/stream",
            "https://gw.example:8443/tools",
        ] {
            assert!(names_route(ok, BASE, &r), "{ok}");
        }
    }

    #[test]
    fn other_origins_paths_and_malformed_values_are_refused() {
        let r = route(&["/mcp"]);
        for bad in [
            "https://gw.example/mcp",
            "http://gw.example:8443/mcp",
            "https://gw.example:8443/mcpx",
            "https://gw.example:8443/other",
            "https://gw.example:8443/mcp/../other",
            "https://gw.example:8443/mcp#frag",
            "https://gw.example:8443/mcp?x=1",
            "https://user@gw.example:8443/mcp",
            "urn:example:mcp",
            "/mcp",
            "",
        ] {
            assert!(!names_route(bad, BASE, &r), "{bad}");
        }
    }

    #[test]
    fn a_route_at_the_root_covers_its_whole_origin() {
        assert!(names_route(
            "https://gw.example:8443/anything",
            "https://gw.example:8443",
            &route(&[])
        ));
    }

    #[test]
    fn the_token_endpoint_may_only_narrow_the_granted_resources() {
        let granted = vec!["https://a/x".to_owned(), "https://a/y".to_owned()];
        assert_eq!(narrow(vec![], &granted).unwrap(), granted);
        assert_eq!(
            narrow(vec!["https://a/y".into()], &granted).unwrap(),
            ["https://a/y"]
        );
        let e = narrow(vec!["https://a/z".into()], &granted).unwrap_err();
        assert_eq!(e.code.as_str(), "invalid_target");
        assert_eq!(
            narrow(vec!["https://a/z".into()], &[]).unwrap(),
            ["https://a/z"]
        );
    }

    #[test]
    fn several_resources_are_read_and_checked_each() {
        let r = route(&["/mcp"]);
        let form = Some("application/x-www-form-urlencoded");
        let p = Params::parse(
            None,
            form,
            b"resource=https%3A%2F%2Fgw.example%3A8443%2Fmcp&resource=https%3A%2F%2Fgw.example%3A8443%2Fmcp",
        )
        .unwrap();
        assert_eq!(
            requested(&p, Some(BASE), &r).unwrap(),
            ["https://gw.example:8443/mcp"]
        );
        let p = Params::parse(None, form, b"resource=https%3A%2F%2Fevil.example%2Fmcp").unwrap();
        assert_eq!(
            requested(&p, Some(BASE), &r).unwrap_err().code.as_str(),
            "invalid_target"
        );
        assert!(requested(&p, None, &r).is_err());
    }
}
