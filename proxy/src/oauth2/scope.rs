//! Which scopes a grant receives: what was asked for, limited by the route's
//! `scopes` and the client's allowed `scopes`, with Kong's `mandatory_scope` rule and
//! messages. On refresh, the scope can only shrink (RFC 6749 §6).

use super::error::{OAuthError, Result};
use super::params::Params;
use crate::config::{OAuth2Client, RouteOAuth2};

/// The space-separated `scope` parameter as a de-duplicated list.
fn requested(params: &Params) -> Result<Vec<String>> {
    if params.is_present("scope") && params.raw("scope").is_none() {
        return Err(OAuthError::invalid_scope("scope must be a string"));
    }
    let mut out: Vec<String> = Vec::new();
    for s in params.raw("scope").unwrap_or("").split_ascii_whitespace() {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// Scopes for a new grant (authorize, client credentials, password).
///
/// A route without `scopes` does not use scopes: nothing is granted and requested
/// scopes are ignored, as in Kong.
pub fn resolve(params: &Params, oauth: &RouteOAuth2, client: &OAuth2Client) -> Result<Vec<String>> {
    let wanted = requested(params)?;
    if wanted.is_empty() {
        if oauth.mandatory_scope {
            return Err(OAuthError::invalid_scope("You must specify a scope"));
        }
        return Ok(Vec::new());
    }
    if oauth.scopes.is_empty() {
        return Ok(Vec::new());
    }
    for s in &wanted {
        if !oauth.scopes.contains(s) {
            return Err(OAuthError::invalid_scope(format!(
                "\"{s}\" is an invalid scope"
            )));
        }
        if client
            .scopes
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(s))
        {
            return Err(OAuthError::invalid_scope(format!(
                "\"{s}\" is not allowed for this client"
            )));
        }
    }
    Ok(wanted)
}

/// Scopes for a refreshed access token: a subset of what was `granted`, never more.
/// Scopes the route or client no longer offers are dropped silently, so a narrowed
/// configuration takes effect at the next refresh.
pub fn narrow(
    params: &Params,
    granted: &[String],
    oauth: &RouteOAuth2,
    client: &OAuth2Client,
) -> Result<Vec<String>> {
    let wanted = requested(params)?;
    let base: Vec<String> = if wanted.is_empty() {
        granted.to_vec()
    } else {
        for s in &wanted {
            if !granted.contains(s) {
                return Err(OAuthError::invalid_scope(format!(
                    "\"{s}\" was not granted to this refresh token"
                )));
            }
        }
        wanted
    };
    Ok(base
        .into_iter()
        .filter(|s| oauth.scopes.is_empty() || oauth.scopes.contains(s))
        .filter(|s| {
            client
                .scopes
                .as_ref()
                .is_none_or(|allowed| allowed.contains(s))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth2::error::ErrorCode;

    fn q(s: &str) -> Params {
        Params::parse(Some(s), None, b"").unwrap()
    }

    fn mk_route(mandatory: bool) -> RouteOAuth2 {
        RouteOAuth2 {
            scopes: vec![
                "user_profile".into(),
                "biometric".into(),
                "step_counts".into(),
            ],
            mandatory_scope: mandatory,
            ..RouteOAuth2::default()
        }
    }

    fn mk_client(scopes: Option<&[&str]>) -> OAuth2Client {
        OAuth2Client {
            client_id: "c".into(),
            secret_sha256: None,
            name: String::new(),
            consumer_id: "k".into(),
            client_type: Default::default(),
            redirect_uris: vec![],
            grant_types: vec![],
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            resource_server: false,
        }
    }

    #[test]
    fn requested_scopes_within_route_and_client_are_granted_once_each() {
        let got = resolve(
            &q("scope=step_counts%20biometric%20step_counts"),
            &mk_route(false),
            &mk_client(None),
        )
        .unwrap();
        assert_eq!(got, vec!["step_counts", "biometric"]);
    }

    #[test]
    fn an_unknown_scope_is_invalid_with_kongs_message() {
        let e = resolve(&q("scope=wot"), &mk_route(false), &mk_client(None)).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        assert_eq!(e.description, "\"wot\" is an invalid scope");
    }

    #[test]
    fn a_scope_the_client_may_not_have_is_refused() {
        let e = resolve(
            &q("scope=biometric"),
            &mk_route(false),
            &mk_client(Some(&["step_counts"])),
        )
        .unwrap_err();
        assert_eq!(
            e.description,
            "\"biometric\" is not allowed for this client"
        );
    }

    #[test]
    fn mandatory_scope_requires_a_scope() {
        let e = resolve(&q("scope=%20"), &mk_route(true), &mk_client(None)).unwrap_err();
        assert_eq!(e.description, "You must specify a scope");
        assert!(resolve(&q(""), &mk_route(false), &mk_client(None))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_route_without_scopes_grants_none() {
        let route = RouteOAuth2::default();
        assert!(resolve(&q("scope=anything"), &route, &mk_client(None))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_non_string_scope_is_refused_as_kong_does() {
        let p = Params::parse(None, Some("application/json"), br#"{"scope":["email"]}"#).unwrap();
        let e = resolve(&p, &mk_route(false), &mk_client(None)).unwrap_err();
        assert_eq!(
            (e.code, &*e.description),
            (ErrorCode::InvalidScope, "scope must be a string")
        );
    }

    #[test]
    fn refresh_can_narrow_but_never_grow_the_scope() {
        let granted = vec!["step_counts".to_string(), "biometric".to_string()];
        let r = mk_route(false);
        let c = mk_client(None);
        assert_eq!(narrow(&q(""), &granted, &r, &c).unwrap(), granted);
        assert_eq!(
            narrow(&q("scope=biometric"), &granted, &r, &c).unwrap(),
            vec!["biometric"]
        );
        let e = narrow(&q("scope=user_profile"), &granted, &r, &c).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidScope);
        // A scope the client lost since is dropped.
        let c2 = mk_client(Some(&["step_counts"]));
        assert_eq!(
            narrow(&q(""), &granted, &r, &c2).unwrap(),
            vec!["step_counts"]
        );
    }
}
