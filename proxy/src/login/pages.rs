//! The HTML pages Gatehouse shows browsers: consent, sign-in error and signed-out.
//!
//! Rendered server-side with minijinja (HTML auto-escaping for every `.html`
//! template), small and accessible (labels, landmarks, real buttons, no script), with
//! no external assets: the one stylesheet is inline and allowed by its hash in the
//! Content-Security-Policy, the optional logo is a `data:` URI. Every page forbids
//! framing (clickjacking a consent button) and caching.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, StatusCode};
use minijinja::{context, Environment};
use sha2::{Digest as _, Sha256};

use crate::oauth2::OAuthResponse;

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}\
main{max-width:28rem;margin:4rem auto;background:#fff;border-radius:.75rem;padding:2rem;box-shadow:0 1px 4px #0002}\
h1{font-size:1.35rem;margin:.5rem 0 1rem}img.logo{max-height:3rem}ul{padding-left:1.2rem}\
li{margin:.3rem 0}.who{color:#4a5468;font-size:.95rem}.actions{display:flex;gap:.75rem;margin-top:1.5rem}\
button{font:inherit;padding:.6rem 1.2rem;border-radius:.4rem;border:1px solid #2f5bd3;cursor:pointer}\
button.approve{background:#2f5bd3;color:#fff}button.deny{background:#fff;color:#2f5bd3}\
button:focus{outline:3px solid #f5a623;outline-offset:2px}.error{color:#a4161a}code{word-break:break-all}";

const BASE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}{% endblock %} · {{ site }}</title>
<style>{{ style }}</style>
</head>
<body>
<main>
{% if logo %}<img class="logo" src="{{ logo }}" alt="{{ site }}">{% endif %}
{% block body %}{% endblock %}
</main>
</body>
</html>
"#;

const CONSENT: &str = r#"{% extends "base.html" %}
{% block title %}Allow access?{% endblock %}
{% block body %}
<h1>Allow <strong>{{ client }}</strong> to access your account?</h1>
<p class="who">Signed in to {{ site }} as <strong>{{ user }}</strong>.</p>
{% if owner %}<p class="who">Application registered by: {{ owner }}</p>{% endif %}
{% if unvetted_host %}<p class="warning" id="unvetted">This application is not registered with {{ site }}: it describes itself, and nobody here has checked it. It is run from <strong>{{ unvetted_host }}</strong>. Allow access only if you trust that site.</p>{% endif %}
{% if scopes %}
<p id="scopes-label">{{ client }} is asking to:</p>
<ul aria-labelledby="scopes-label">
{% for s in scopes %}<li>{{ s }}</li>
{% endfor %}</ul>
{% else %}
<p>{{ client }} is asking for access on your behalf.</p>
{% endif %}
<form method="post" action="{{ action }}">
<input type="hidden" name="ticket" value="{{ ticket }}">
<div class="actions">
<button class="approve" type="submit" name="decision" value="approve">Allow</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</div>
</form>
{% endblock %}
"#;

const ERROR: &str = r#"{% extends "base.html" %}
{% block title %}Sign-in failed{% endblock %}
{% block body %}
<h1 class="error">{{ heading }}</h1>
<p role="alert">{{ message }}</p>
{% if retry %}<p><a href="{{ retry }}">Try again</a></p>{% endif %}
{% endblock %}
"#;

const SIGNED_OUT: &str = r#"{% extends "base.html" %}
{% block title %}Signed out{% endblock %}
{% block body %}
<h1>You are signed out</h1>
<p>You have been signed out of {{ site }}. You can close this window.</p>
{% endblock %}
"#;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", BASE),
        ("consent.html", CONSENT),
        ("error.html", ERROR),
        ("signed_out.html", SIGNED_OUT),
    ] {
        env.add_template(name, source)
            .expect("the built-in page templates are valid minijinja");
    }
    env
});

static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    // No `form-action`: browsers apply it to the redirect that follows the consent
    // POST, which must reach the client's registered redirect URI.
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

/// What every page shows: the site title and logo of the route.
#[derive(Clone, Copy, Debug)]
pub struct Branding<'a> {
    pub title: &'a str,
    pub logo: Option<&'a str>,
}

/// The consent page.
pub struct Consent<'a> {
    pub client: &'a str,
    pub owner: Option<&'a str>,
    /// For a client nobody registered by hand: the host it runs from.
    pub unvetted_host: Option<&'a str>,
    pub user: &'a str,
    pub scopes: &'a [String],
    pub action: &'a str,
    pub ticket: &'a str,
}

/// Render the consent page.
pub fn consent(brand: Branding<'_>, page: &Consent<'_>) -> OAuthResponse {
    let scopes: Vec<String> = page.scopes.iter().map(|s| describe_scope(s)).collect();
    render(
        StatusCode::OK,
        "consent.html",
        context! {
            site => brand.title, logo => brand.logo, style => style(),
            client => page.client, owner => page.owner, user => page.user,
            unvetted_host => page.unvetted_host,
            scopes => scopes, action => page.action, ticket => page.ticket,
        },
    )
}

/// Render the sign-in error page.
pub fn error(
    brand: Branding<'_>,
    status: StatusCode,
    heading: &str,
    message: &str,
    retry: Option<&str>,
) -> OAuthResponse {
    render(
        status,
        "error.html",
        context! {
            site => brand.title, logo => brand.logo, style => style(),
            heading => heading, message => message, retry => retry,
        },
    )
}

/// Render the signed-out page.
pub fn signed_out(brand: Branding<'_>) -> OAuthResponse {
    render(
        StatusCode::OK,
        "signed_out.html",
        context! { site => brand.title, logo => brand.logo, style => style() },
    )
}

/// The stylesheet, marked safe: it is our constant, and escaping would change the
/// bytes the CSP hash allows.
fn style() -> minijinja::Value {
    minijinja::Value::from_safe_string(STYLE.to_owned())
}

/// Words for the scopes OIDC defines; other scopes are shown by name.
fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are".into(),
        "email" => "See your email address".into(),
        "profile" => "See your name and profile".into(),
        "offline_access" => "Keep access while you are away".into(),
        other => format!("Use the “{other}” permission"),
    }
}

fn render(status: StatusCode, template: &str, ctx: minijinja::Value) -> OAuthResponse {
    let body = ENV
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            // The templates are fixed and their inputs are plain strings: rendering
            // cannot fail short of a bug, which must not turn into a blank 200.
            tracing::error!(error = %e, template, "Page rendering failed");
            "<!doctype html><title>Error</title><p>Internal error.</p>".into()
        });
    let mut resp = OAuthResponse {
        status,
        headers: security_headers(),
        body: Bytes::from(body),
    };
    resp.headers.push((
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    ));
    resp
}

/// Headers every sign-in response carries, pages and redirects alike.
pub fn security_headers() -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&CSP).expect("the CSP is ASCII"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // Not `no-referrer`: with it browsers send `Origin: null` on the consent
        // POST, and the origin check must see the real origin.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::PRAGMA, HeaderValue::from_static("no-cache")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brand() -> Branding<'static> {
        Branding {
            title: "Step On",
            logo: None,
        }
    }

    fn header<'a>(r: &'a OAuthResponse, name: &HeaderName) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn the_consent_page_escapes_what_clients_and_users_control() {
        let scopes = vec!["openid".to_owned(), "<b>steps</b>".to_owned()];
        let r = consent(
            brand(),
            &Consent {
                client: "<script>alert(1)</script>",
                owner: Some("Shoe Fly Shoe"),
                unvetted_host: Some("<i>app.example</i>"),
                user: "clark\"><img src=x>",
                scopes: &scopes,
                action: "/stepon/oauth2/consent",
                ticket: "t1",
            },
        );
        let body = std::str::from_utf8(&r.body).unwrap();
        assert!(!body.contains("<script>alert"));
        assert!(body.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
        assert!(!body.contains("\"><img"));
        assert!(body.contains("Know who you are"));
        assert!(body.contains("&lt;b&gt;steps&lt;&#x2f;b&gt;"));
        assert!(body.contains(r#"name="ticket" value="t1""#));
        assert!(body.contains(r#"value="approve""#) && body.contains(r#"value="deny""#));
        // A self-described client is flagged, with its host escaped.
        assert!(body.contains("not registered with"));
        assert!(body.contains("&lt;i&gt;app.example&lt;&#x2f;i&gt;"));
        assert_eq!(r.status, StatusCode::OK);
    }

    #[test]
    fn pages_forbid_framing_caching_and_foreign_assets() {
        let r = error(brand(), StatusCode::BAD_REQUEST, "No", "Nope", None);
        let csp = header(&r, &header::CONTENT_SECURITY_POLICY).unwrap();
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(header(&r, &header::X_FRAME_OPTIONS), Some("DENY"));
        assert_eq!(header(&r, &header::CACHE_CONTROL), Some("no-store"));
        // The inline stylesheet is exactly the one the policy's hash allows.
        let body = std::str::from_utf8(&r.body).unwrap();
        assert!(body.contains(&format!("<style>{STYLE}</style>")));
        assert!(!body.contains("http://") && !body.contains("https://"));
    }
}
