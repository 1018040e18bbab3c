//! Decisions of [`decide`] on a compiled snapshot with the in-memory store: trust,
//! endpoint and method checks, route selection from the original host and path, and
//! the enforcement outcomes (the fronting proxies themselves are tested in e2e).

use std::sync::Arc;

use http::{HeaderValue, Method, Request};

use super::*;
use crate::config::Snapshot;
use crate::forwarded::TrustedProxies;
use crate::headers::*;
use crate::store::memory::{Clock, MemoryStore};
use crate::store::{AccessToken, Digest, Grant, IssuedPair};

const NOW: UnixTime = 1_700_000_000;
const TOKEN: &str = "good-token";
const NARROW: &str = "narrow-token";

/// Routes: `/stepon` (OAuth2, `/admin` needs scope `admin`) on any host,
/// `/stepon` on `other.example.com` (another OAuth2 route), `/public` without OAuth2.
fn mk_compiled() -> Compiled {
    let upstream = serde_json::json!({"endpoints": ["http://127.0.0.1:9"]});
    let snapshot = serde_json::json!({
        "format": 1,
        "revision": "t",
        "routes": [
            {"id": "default/stepon", "paths": ["/stepon"], "upstream": upstream,
             "oauth2": {"rules": [{"path": "/admin", "required_scopes": ["admin"]}],
                        "realm": "stepon"}},
            {"id": "default/other", "hosts": ["other.example.com"], "paths": ["/stepon"],
             "upstream": upstream, "oauth2": {}},
            {"id": "default/public", "paths": ["/public"], "upstream": upstream},
        ],
        "consumers": [{"id": "default/sfs", "username": "shoeflyshoe", "custom_id": "sfs-1"}],
        "clients": [{"client_id": "sfs-app", "consumer_id": "default/sfs"}],
    });
    let snapshot = Snapshot::from_json(snapshot.to_string().as_bytes()).expect("valid snapshot");
    Compiled::new(Arc::new(snapshot))
}

fn mk_token(scopes: &[&str]) -> AccessToken {
    AccessToken {
        grant: Grant {
            route_id: "default/stepon".into(),
            global: false,
            client_id: "sfs-app".into(),
            consumer_id: "default/sfs".into(),
            authenticated_userid: Some("clark".into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            issued_at: NOW,
            expires_at: Some(NOW + 3600),
            family: format!("fam-{}", scopes.len()),
            audience: Vec::new(),
        },
        refresh: None,
    }
}

async fn mk_store() -> MemoryStore {
    let store = MemoryStore::with_clock(100, Clock::manual(NOW));
    for (raw, scopes) in [(TOKEN, &["admin", "read"][..]), (NARROW, &["read"][..])] {
        store
            .issue(IssuedPair {
                access_digest: Digest::of(raw.as_bytes()),
                access: mk_token(scopes),
                refresh: None,
            })
            .await
            .expect("memory store accepts a token");
    }
    store
}

fn mk_conn(trusted: bool) -> ConnInfo {
    let proxies = if trusted {
        TrustedProxies::loopback()
    } else {
        TrustedProxies::none()
    };
    ConnInfo::new(
        "127.0.0.1:40000".parse().unwrap(),
        "127.0.0.1:8000".parse().unwrap(),
        false,
        &proxies,
    )
}

fn mk_parts(method: Method, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).unwrap().into_parts().0
}

/// An nginx `auth_request` subrequest for `method url`, with extra headers.
fn auth_request(method: &str, url: &str, extra: &[(&str, &str)]) -> Parts {
    let mut headers = vec![("x-original-method", method), ("x-original-url", url)];
    headers.extend_from_slice(extra);
    mk_parts(Method::GET, "/_gatehouse/authz/auth-request", &headers)
}

async fn run(parts: Parts) -> Result<Allowed, Refusal> {
    let compiled = mk_compiled();
    let store = mk_store().await;
    decide(
        &compiled,
        &store,
        &Signin::new(None),
        &mk_conn(true),
        &parts,
        NOW,
    )
    .await
}

#[tokio::test]
async fn a_valid_token_is_allowed_with_the_identity_headers() {
    let allowed = run(auth_request(
        "GET",
        "http://api.example.com/stepon/counts",
        &[("authorization", "Bearer good-token")],
    ))
    .await
    .expect("allowed");
    let h = &allowed.identity;
    assert_eq!(h[X_CONSUMER_ID], "default/sfs");
    assert_eq!(h[X_CONSUMER_USERNAME], "shoeflyshoe");
    assert_eq!(h[X_CONSUMER_CUSTOM_ID], "sfs-1");
    assert_eq!(h[X_CREDENTIAL_IDENTIFIER], "sfs-app");
    assert_eq!(h[X_AUTHENTICATED_USERID], "clark");
    assert_eq!(h[X_AUTHENTICATED_SCOPE], "admin read");
    // Only identity headers are handed back, never the token or anything else.
    assert_eq!(h.len(), 6, "{h:?}");
}

#[tokio::test]
async fn denials_are_the_inline_rejections() {
    let missing = run(auth_request("GET", "http://h/stepon/x", &[])).await;
    assert_eq!(
        missing.unwrap_err(),
        Refusal::Denied(Rejection::token_missing("stepon"))
    );
    let unknown = run(auth_request(
        "GET",
        "http://h/stepon/x",
        &[("authorization", "Bearer nope")],
    ))
    .await;
    assert_eq!(
        unknown.unwrap_err(),
        Refusal::Denied(Rejection::token_invalid("stepon"))
    );
    let narrow = run(auth_request(
        "GET",
        "http://h/stepon/admin/users",
        &[("authorization", "Bearer narrow-token")],
    ))
    .await;
    assert_eq!(
        narrow.unwrap_err(),
        Refusal::Denied(Rejection::insufficient_scope("stepon", "admin".into()))
    );
}

#[tokio::test]
async fn the_original_host_selects_the_route_so_tokens_stay_bound_to_theirs() {
    // Same path, other host: another route, on which this token is not valid.
    let other = run(auth_request(
        "GET",
        "http://other.example.com/stepon/x",
        &[("authorization", "Bearer good-token")],
    ))
    .await;
    assert!(
        matches!(other, Err(Refusal::Denied(Rejection::TokenInvalid { .. }))),
        "{other:?}"
    );
}

#[tokio::test]
async fn the_original_path_is_normalized_before_the_scope_rules_apply() {
    let sneaky = run(auth_request(
        "GET",
        "http://h/stepon/public/../admin/users",
        &[("authorization", "Bearer narrow-token")],
    ))
    .await;
    assert!(
        matches!(
            sneaky,
            Err(Refusal::Denied(Rejection::InsufficientScope { .. }))
        ),
        "{sneaky:?}"
    );
}

#[tokio::test]
async fn a_token_in_the_original_query_is_honoured() {
    let allowed = run(auth_request(
        "GET",
        "http://h/stepon/x?access_token=good-token",
        &[],
    ))
    .await;
    assert!(allowed.is_ok(), "{allowed:?}");
}

#[tokio::test]
async fn a_copied_body_length_and_form_type_never_make_the_decision_read_a_body() {
    // Traefik copies the client's headers: a form POST's Content-Length must not turn
    // into a 413 or a wait for a body that never comes.
    let parts = mk_parts(
        Method::GET,
        "/_gatehouse/authz/forward-auth",
        &[
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "h"),
            ("x-forwarded-uri", "/stepon/x"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "100000"),
            ("authorization", "Bearer good-token"),
        ],
    );
    assert!(run(parts).await.is_ok());
}

#[tokio::test]
async fn a_route_without_oauth2_is_allowed_without_identity() {
    let allowed = run(auth_request("GET", "http://h/public/x", &[]))
        .await
        .unwrap();
    assert!(allowed.identity.is_empty());
}

#[tokio::test]
async fn no_route_is_a_refusal_never_an_allow() {
    let got = run(auth_request(
        "GET",
        "http://h/elsewhere",
        &[("authorization", "Bearer good-token")],
    ))
    .await;
    assert_eq!(got.unwrap_err(), Refusal::NoRoute);
}

#[tokio::test]
async fn only_trusted_peers_get_a_decision() {
    let compiled = mk_compiled();
    let store = mk_store().await;
    let parts = auth_request(
        "GET",
        "http://h/stepon/x",
        &[("authorization", "Bearer good-token")],
    );
    let got = decide(
        &compiled,
        &store,
        &Signin::new(None),
        &mk_conn(false),
        &parts,
        NOW,
    )
    .await;
    assert_eq!(got.unwrap_err(), Refusal::Untrusted);
}

#[tokio::test]
async fn endpoint_method_and_shape_errors_are_refusals() {
    let unknown = mk_parts(Method::GET, "/_gatehouse/authz/other", &[]);
    assert_eq!(run(unknown).await.unwrap_err(), Refusal::UnknownEndpoint);
    let post = mk_parts(
        Method::POST,
        "/_gatehouse/authz/auth-request",
        &[
            ("x-original-method", "GET"),
            ("x-original-url", "http://h/stepon"),
        ],
    );
    assert_eq!(run(post).await.unwrap_err(), Refusal::MethodNotAllowed);
    let no_method = mk_parts(
        Method::GET,
        "/_gatehouse/authz/auth-request",
        &[("x-original-url", "http://h/stepon")],
    );
    assert_eq!(
        run(no_method).await.unwrap_err(),
        Refusal::BadRequest(DialectError::Missing("X-Original-Method"))
    );
}

#[tokio::test]
async fn ext_authz_and_forward_auth_reach_the_same_decision() {
    let ext = mk_parts(
        Method::DELETE,
        "/_gatehouse/authz/ext-authz/stepon/admin/x",
        &[("host", "h"), ("authorization", "Bearer narrow-token")],
    );
    assert!(matches!(
        run(ext).await,
        Err(Refusal::Denied(Rejection::InsufficientScope { .. }))
    ));
    let mut fwd = mk_parts(
        Method::GET,
        "/_gatehouse/authz/forward-auth",
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "h"),
            ("x-forwarded-uri", "/stepon/x"),
        ],
    );
    fwd.headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Bearer good-token"),
    );
    assert!(run(fwd).await.is_ok());
}
