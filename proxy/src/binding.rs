//! The token-to-route binding rule, in one place: the token endpoint (refresh, code
//! redemption), introspection and enforcement on proxied requests all ask it.

use crate::config::{Route, RouteOAuth2};

/// Whether a token (or code) bound to `token_route` / `token_global` may be used on
/// `route`: on the route it was issued on, or — when issued on a route sharing global
/// credentials, for no particular resource — on every route that also shares them
/// (Kong's rule). A token naming resources (RFC 8707: `audience_bound`) is for the
/// route that issued it alone: every resource it names was checked to be that route.
pub fn valid_on_route(
    token_route: &str,
    token_global: bool,
    audience_bound: bool,
    route: &Route,
    oauth: &RouteOAuth2,
) -> bool {
    token_route == route.id || (token_global && !audience_bound && oauth.global_credentials)
}
