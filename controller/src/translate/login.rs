//! `oauth2.login` → the snapshot's [`config::Login`]: spec checks, the OIDC client
//! secret read from its Secret and sealed under the login key (the proxy must present
//! it to the provider, so a digest cannot do; sealed, it never sits in the snapshot in
//! plaintext), and the trusted clients that `consent: skip` applies to.
//!
//! Any problem leaves the route in the snapshot with sign-in off (its login pages say
//! sign-in is unavailable; nothing is ever accepted) and `Ready=False` with a reason.

use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::{ConsentMode, LoginSpec};

use super::object::{Context, Verdict};
use super::secrets;

pub fn translate(
    ctx: &Context<'_>,
    namespace: &str,
    route_id: &str,
    spec: &LoginSpec,
    trusted: &[String],
    v: &mut Verdict,
) -> Option<config::Login> {
    let oidc = &spec.oidc;
    let mut ok = true;
    match url::Url::parse(&oidc.issuer_url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
        _ => {
            v.reject(
                reason::INVALID_SPEC,
                format!(
                    "login.oidc.issuerUrl {:?} is not an http(s) URL",
                    oidc.issuer_url
                ),
            );
            ok = false;
        }
    }
    if oidc.client_id.is_empty() || !oidc.scopes.iter().any(|s| s == "openid") {
        v.reject(
            reason::INVALID_SPEC,
            "login.oidc needs a clientId and the openid scope",
        );
        ok = false;
    }
    for (name, value) in [
        ("sessionTtl", spec.session_ttl),
        ("idleTimeout", spec.idle_timeout),
        ("consentTtl", spec.consent_ttl),
    ] {
        if value < 60 {
            v.reject(
                reason::INVALID_SPEC,
                format!("login.{name} must be at least 60 seconds"),
            );
            ok = false;
        }
    }
    let reference = &oidc.client_secret_ref;
    let secret = ctx
        .secret(namespace, &reference.name)
        .and_then(|s| secrets::value(s, &reference.key))
        .filter(|raw| !raw.is_empty());
    let Some(secret) = secret else {
        v.reject(
            reason::LOGIN_SECRET_NOT_FOUND,
            format!(
                "login client secret {:?} key {:?} not found in namespace {namespace:?}; sign-in is off",
                reference.name, reference.key
            ),
        );
        return None;
    };
    let Some(key) = ctx.options.login_key.as_ref() else {
        v.reject(
            reason::LOGIN_KEY_MISSING,
            "the controller has no login key (--login-key-file) to seal the client secret with; sign-in is off",
        );
        return None;
    };
    if !ok {
        return None;
    }
    let issuer = oidc.issuer_url.trim_end_matches('/');
    if let Some(error) = ctx.options.unreachable_issuers.get(issuer) {
        // Kept in the snapshot: the proxy retries on each sign-in and the route's
        // tokens keep working; the status says why signing in fails meanwhile.
        v.reject(
            reason::ISSUER_UNREACHABLE,
            format!("the identity provider {issuer:?} cannot be reached ({error}); sign-in shows an error page until it answers"),
        );
    }
    let mut trusted_clients = trusted.to_vec();
    trusted_clients.sort();
    trusted_clients.dedup();
    Some(config::Login {
        issuer_url: issuer.to_owned(),
        client_id: oidc.client_id.clone(),
        client_secret_sealed: key.seal(secret, route_id),
        scopes: oidc.scopes.clone(),
        user_claim: oidc.user_claim.clone(),
        allowed_domains: oidc
            .allowed_domains
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect(),
        allowed_users: oidc.allowed_users.clone(),
        required_claims: oidc
            .required_claims
            .iter()
            .map(|c| config::RequiredClaim {
                claim: c.claim.clone(),
                values: c.values.clone(),
            })
            .collect(),
        consent: match spec.consent {
            ConsentMode::Always => config::ConsentMode::Always,
            ConsentMode::Remember => config::ConsentMode::Remember,
            ConsentMode::Skip => config::ConsentMode::Skip,
        },
        trusted_clients,
        session_ttl: spec.session_ttl.max(60) as u64,
        idle_timeout: spec.idle_timeout.max(60) as u64,
        consent_ttl: spec.consent_ttl.max(60) as u64,
        require_session: spec.require_session,
        title: spec.title.clone(),
        logo: spec.logo.clone(),
    })
}
