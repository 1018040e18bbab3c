//! The token-to-route binding rule, in one place: the token endpoint (refresh, code
//! redemption), introspection and enforcement on proxied requests all ask it.

use crate::config::{Route, RouteOAuth2};

/// Whether a token (or code) bound to `token_route` / `token_global` may be used on
/// `route`: on the route it was issued on, or — when issued on a route sharing global
/// credentials — on every route that also shares them (Kong's rule).
pub fn valid_on_route(
    token_route: &str,
    token_global: bool,
    route: &Route,
    oauth: &RouteOAuth2,
) -> bool {
    token_route == route.id || (token_global && oauth.global_credentials)
}
