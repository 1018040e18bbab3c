//! Snapshot fixtures shared by tests that build a proxy's configuration directly (not
//! from resources): the Step On route.

use gatehouse_proxy::config::{Route, RouteOAuth2, Upstream};

/// Route `default/stepon` on `path` (prefix stripped before forwarding) to `endpoint`,
/// protected by `oauth2`.
pub fn stepon_route(path: &str, endpoint: String, oauth2: RouteOAuth2) -> Route {
    Route {
        id: "default/stepon".into(),
        paths: vec![path.into()],
        strip_path: true,
        upstream: Upstream {
            endpoints: vec![endpoint],
            connect_timeout_ms: 2_000,
            response_timeout_ms: 5_000,
            ..Default::default()
        },
        oauth2: Some(oauth2),
        ..Default::default()
    }
}
