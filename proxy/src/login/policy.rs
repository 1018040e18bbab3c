//! Who may sign in: the verified ID-token claims against a route's `allowedDomains`,
//! `allowedUsers` and `requiredClaims`, and the identity that results.

use serde_json::{Map, Value};

use crate::config::Login;

/// The signed-in identity taken from verified claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Value of the configured user claim: becomes `authenticated_userid`.
    pub user: String,
    /// Email, only when the provider did not say it is unverified.
    pub email: Option<String>,
    pub name: Option<String>,
}

/// Why a verified user is still refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the ID token has no usable {0:?} claim")]
    NoUserClaim(String),
    #[error("this account's email domain is not allowed")]
    Domain,
    #[error("this account is not on the list of allowed users")]
    User,
    #[error("this account lacks a required {0:?} value")]
    Claim(String),
}

/// Decide whether `claims` may sign in on a route with `login`.
pub fn admit(login: &Login, claims: &Map<String, Value>) -> Result<Identity, Refusal> {
    let user = match claims.get(&login.user_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(Refusal::NoUserClaim(login.user_claim.clone())),
    };
    // An email the provider marks unverified is no evidence of anything.
    let verified = claims.get("email_verified").and_then(Value::as_bool) != Some(false);
    let email = claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|_| verified)
        .map(str::to_owned);
    let name = claims
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);

    if !login.allowed_domains.is_empty() {
        let domain = email
            .as_deref()
            .and_then(|e| e.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase());
        let ok = domain.is_some_and(|d| {
            login
                .allowed_domains
                .iter()
                .any(|a| a.eq_ignore_ascii_case(&d))
        });
        if !ok {
            return Err(Refusal::Domain);
        }
    }
    if !login.allowed_users.is_empty() {
        let ok = login
            .allowed_users
            .iter()
            .any(|a| *a == user || email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(a)));
        if !ok {
            return Err(Refusal::User);
        }
    }
    for required in &login.required_claims {
        let values: Vec<&str> = match claims.get(&required.claim) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !values
            .iter()
            .any(|v| required.values.iter().any(|r| r == v))
        {
            return Err(Refusal::Claim(required.claim.clone()));
        }
    }
    Ok(Identity { user, email, name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConsentMode, RequiredClaim};
    use serde_json::json;

    fn mk_login() -> Login {
        Login {
            issuer_url: "https://idp.example".into(),
            client_id: "gatehouse".into(),
            client_secret_sealed: String::new(),
            scopes: vec!["openid".into()],
            user_claim: "sub".into(),
            allowed_domains: vec![],
            allowed_users: vec![],
            required_claims: vec![],
            consent: ConsentMode::Remember,
            trusted_clients: vec![],
            session_ttl: 3600,
            idle_timeout: 600,
            consent_ttl: 3600,
            require_session: false,
            title: None,
            logo: None,
        }
    }

    fn claims(v: serde_json::Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_user_claim_becomes_the_user() {
        let id = admit(
            &mk_login(),
            &claims(json!({"sub": "u1", "email": "c@x.io"})),
        )
        .unwrap();
        assert_eq!(id.user, "u1");
        assert_eq!(id.email.as_deref(), Some("c@x.io"));
        let err = admit(&mk_login(), &claims(json!({"email": "c@x.io"}))).unwrap_err();
        assert_eq!(err, Refusal::NoUserClaim("sub".into()));
    }

    #[test]
    fn domains_need_a_verified_email_in_the_list() {
        let mut l = mk_login();
        l.allowed_domains = vec!["dailyplanet.example".into()];
        assert!(admit(
            &l,
            &claims(json!({"sub": "1", "email": "clark@DailyPlanet.example"}))
        )
        .is_ok());
        assert_eq!(
            admit(
                &l,
                &claims(json!({"sub": "1", "email": "lex@lexcorp.example"}))
            ),
            Err(Refusal::Domain)
        );
        assert_eq!(
            admit(
                &l,
                &claims(
                    json!({"sub": "1", "email": "x@dailyplanet.example", "email_verified": false})
                )
            ),
            Err(Refusal::Domain)
        );
        assert_eq!(
            admit(
                &l,
                &claims(json!({"sub": "1", "email": "x@evil.dailyplanet.example.com"}))
            ),
            Err(Refusal::Domain)
        );
    }

    #[test]
    fn allowed_users_and_required_claims_are_enforced() {
        let mut l = mk_login();
        l.allowed_users = vec!["clark".into(), "lois@dp.example".into()];
        assert!(admit(&l, &claims(json!({"sub": "clark"}))).is_ok());
        assert!(admit(&l, &claims(json!({"sub": "2", "email": "Lois@dp.example"}))).is_ok());
        assert_eq!(
            admit(&l, &claims(json!({"sub": "lex"}))),
            Err(Refusal::User)
        );

        let mut l = mk_login();
        l.required_claims = vec![RequiredClaim {
            claim: "groups".into(),
            values: vec!["reporters".into()],
        }];
        assert!(admit(
            &l,
            &claims(json!({"sub": "1", "groups": ["staff", "reporters"]}))
        )
        .is_ok());
        assert!(admit(&l, &claims(json!({"sub": "1", "groups": "reporters"}))).is_ok());
        assert_eq!(
            admit(&l, &claims(json!({"sub": "1", "groups": ["staff"]}))),
            Err(Refusal::Claim("groups".into()))
        );
        assert!(admit(&l, &claims(json!({"sub": "1"}))).is_err());
    }
}
