//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3): `client_id` + `client_secret` in the body, or HTTP Basic, or —
//! for public clients — `client_id` alone.
//!
//! Secrets are compared as SHA-256 digests in constant time; the raw secret is
//! hashed and dropped. Basic credentials are accepted both raw (as Kong clients send
//! them) and form-urlencoded (as RFC 6749 §2.3.1 requires and the `oauth2` crate
//! sends them).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, Engine as _};
use percent_encoding::percent_decode_str;

use std::borrow::Cow;

use super::clients::{Client, Directory, LookupError, Origin};
use super::error::{OAuthError, Result};
use super::params::Params;
use crate::catalog::Catalog;
use crate::catalog::ClientEntry;
use crate::config::ClientType;
use crate::store::Digest;

/// Standard alphabet, padding optional: some clients strip it.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A client that proved who it is.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient<'a> {
    pub entry: Cow<'a, ClientEntry>,
    /// Where the client is defined (configuration, metadata document, registration).
    pub origin: Origin,
    /// Credentials came from HTTP Basic (errors then get a 401 + challenge).
    pub via_basic: bool,
}

impl AuthenticatedClient<'_> {
    pub fn client_id(&self) -> &str {
        &self.entry.client.client_id
    }

    pub fn is_public(&self) -> bool {
        self.entry.client.client_type == ClientType::Public
    }

    /// Not registered by an administrator (OAuth 2.1 rules apply).
    pub fn is_unvetted(&self) -> bool {
        self.origin != Origin::Configured
    }
}

/// Credentials as presented, before checking them.
#[derive(Debug, PartialEq, Eq)]
struct Presented {
    /// Candidate (id, secret) readings: raw, then form-decoded when different.
    candidates: Vec<(String, Option<String>)>,
    via_basic: bool,
}

/// Whether an `Authorization` header carries Basic credentials.
fn basic_payload(authorization: Option<&str>) -> Option<&str> {
    let h = authorization?.trim();
    let (scheme, rest) = h.split_once(char::is_whitespace)?;
    scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
}

/// The client id of Basic credentials, when they decode (for rate-limit budgets;
/// nothing is authenticated by it).
pub fn basic_client_id(authorization: Option<&str>) -> Option<String> {
    let decoded = BASIC_B64.decode(basic_payload(authorization)?).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let id = decoded.split(':').next().unwrap_or("");
    Some(form_decode(id))
}

fn form_decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn presented(params: &Params, authorization: Option<&str>) -> Result<Option<Presented>> {
    let body_id = params.get("client_id")?;
    let body_secret = params.raw("client_secret");
    if params.is_present("client_secret") && body_secret.is_none() {
        return Err(OAuthError::invalid_request(
            "client_secret must be a string",
        ));
    }
    // RFC 6749 §2.3: a client MUST NOT use more than one authentication method.
    if body_secret.is_some() && basic_payload(authorization).is_some() {
        return Err(OAuthError::invalid_request(
            "Use one client authentication method: client_secret in the body or HTTP Basic, not both",
        ));
    }
    // Kong's order: body id + secret, then the Authorization header, then a bare
    // body client_id (public clients).
    if let (Some(id), Some(secret)) = (body_id, body_secret) {
        return Ok(Some(Presented {
            candidates: vec![(id.to_owned(), Some(secret.to_owned()))],
            via_basic: false,
        }));
    }
    if let Some(payload) = basic_payload(authorization) {
        let decoded = BASIC_B64
            .decode(payload)
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        let Some(decoded) = decoded else {
            return Err(OAuthError::invalid_client(true));
        };
        let (id, secret) = match decoded.split_once(':') {
            Some((id, secret)) => (id.to_owned(), Some(secret.to_owned())),
            None => (decoded, None),
        };
        let mut candidates = vec![(id.clone(), secret.clone())];
        let (did, dsecret) = (form_decode(&id), secret.as_deref().map(form_decode));
        if did != id || dsecret != secret {
            candidates.push((did, dsecret));
        }
        return Ok(Some(Presented {
            candidates,
            via_basic: true,
        }));
    }
    Ok(body_id.map(|id| Presented {
        candidates: vec![(id.to_owned(), None)],
        via_basic: false,
    }))
}

/// Authenticate the calling client, looking it up in `clients`.
///
/// Errors: `invalid_client` (unknown client, wrong or missing secret, unusable
/// metadata document; 401 after Basic), `invalid_request` when a public client sends
/// a secret (Kong), `temporarily_unavailable` when the store cannot say.
pub async fn authenticate<'a>(
    params: &Params,
    authorization: Option<&str>,
    clients: &Directory<'a>,
) -> Result<AuthenticatedClient<'a>> {
    let Some(p) = presented(params, authorization)? else {
        return Err(OAuthError::invalid_client(
            basic_payload(authorization).is_some(),
        ));
    };
    let mut found = None;
    for (id, _) in &p.candidates {
        match clients.find(id).await {
            Ok(Some(client)) => {
                found = Some((id.clone(), client));
                break;
            }
            Ok(None) => {}
            Err(LookupError::Store(e)) => return Err(e.into()),
            Err(LookupError::Document(why)) => {
                let mut e = OAuthError::invalid_client(p.via_basic);
                e.description = why.into();
                return Err(e);
            }
        }
    }
    verify(&p, found)
}

/// Authenticate against the configuration's clients alone: the same parsing and
/// verification as [`authenticate`] without a store (unit tests, the fuzz target).
pub fn authenticate_configured<'a>(
    params: &Params,
    authorization: Option<&str>,
    catalog: &'a Catalog,
) -> Result<AuthenticatedClient<'a>> {
    let Some(p) = presented(params, authorization)? else {
        return Err(OAuthError::invalid_client(
            basic_payload(authorization).is_some(),
        ));
    };
    let found = p.candidates.iter().find_map(|(id, _)| {
        catalog.client(id).map(|e| {
            (
                id.clone(),
                Client {
                    entry: Cow::Borrowed(e),
                    origin: Origin::Configured,
                },
            )
        })
    });
    verify(&p, found)
}

/// Check the presented credentials against the client they name.
fn verify<'a>(
    p: &Presented,
    found: Option<(String, Client<'a>)>,
) -> Result<AuthenticatedClient<'a>> {
    let via_basic = p.via_basic;
    let Some((found_id, client)) = found else {
        return Err(OAuthError::invalid_client(via_basic));
    };
    let secrets: Vec<&str> = p
        .candidates
        .iter()
        .filter(|(id, _)| *id == found_id)
        .filter_map(|(_, s)| s.as_deref())
        .collect();
    let authenticated = AuthenticatedClient {
        entry: client.entry,
        origin: client.origin,
        via_basic,
    };
    match authenticated.entry.client.client_type {
        ClientType::Public => {
            // A public client has no secret; an empty or blank one is tolerated
            // (`Basic base64("id:")`), anything else is a client mix-up.
            if secrets.iter().all(|s| s.trim().is_empty()) {
                Ok(authenticated)
            } else {
                Err(OAuthError::invalid_request(
                    "client_secret is disallowed for public clients",
                ))
            }
        }
        ClientType::Confidential => {
            let Some(expected) = authenticated.entry.secret else {
                return Err(OAuthError::invalid_client(via_basic));
            };
            // Check every candidate reading so the time taken does not reveal
            // which one matched.
            let matched = secrets.iter().fold(false, |ok, s| {
                Digest::of(s.as_bytes()).ct_eq(&expected) | ok
            });
            if matched {
                Ok(authenticated)
            } else {
                Err(OAuthError::invalid_client(via_basic))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::config::{OAuth2Client, Snapshot};
    use crate::oauth2::error::ErrorCode;

    fn mk_catalog() -> Catalog {
        let confidential = OAuth2Client {
            client_id: "shoe-fly-shoe".into(),
            secret_sha256: Some(Digest::of(b"s3cret+/=").to_hex()),
            name: String::new(),
            consumer_id: "default/sfs".into(),
            client_type: ClientType::Confidential,
            redirect_uris: vec![],
            grant_types: vec![],
            scopes: None,
            resource_server: false,
        };
        let public = OAuth2Client {
            client_id: "mobile".into(),
            secret_sha256: None,
            client_type: ClientType::Public,
            ..confidential.clone()
        };
        Catalog::new(&Snapshot {
            clients: vec![confidential, public],
            ..Snapshot::default()
        })
    }

    fn form(s: &str) -> Params {
        Params::parse(
            None,
            Some("application/x-www-form-urlencoded"),
            s.as_bytes(),
        )
        .unwrap()
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(user_pass))
    }

    #[test]
    fn body_credentials_authenticate_a_confidential_client() {
        let cat = mk_catalog();
        let c = authenticate_configured(
            &form("client_id=shoe-fly-shoe&client_secret=s3cret%2B%2F%3D"),
            None,
            &cat,
        )
        .unwrap();
        assert_eq!(c.client_id(), "shoe-fly-shoe");
        assert!(!c.via_basic);
    }

    #[test]
    fn basic_credentials_are_accepted_raw_and_form_encoded() {
        let cat = mk_catalog();
        let raw = basic("shoe-fly-shoe:s3cret+/=");
        assert!(
            authenticate_configured(&form(""), Some(&raw), &cat)
                .unwrap()
                .via_basic
        );
        let encoded = basic("shoe-fly-shoe:s3cret%2B%2F%3D");
        assert!(authenticate_configured(&form(""), Some(&encoded), &cat).is_ok());
        let lower = format!("basic {}", STANDARD.encode("shoe-fly-shoe:s3cret+/="));
        assert!(authenticate_configured(&form(""), Some(&lower), &cat).is_ok());
    }

    #[test]
    fn a_wrong_secret_over_basic_is_a_401_and_in_the_body_a_400() {
        let cat = mk_catalog();
        let e = authenticate_configured(&form(""), Some(&basic("shoe-fly-shoe:nope")), &cat)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
        assert_eq!(e.status, http::StatusCode::UNAUTHORIZED);
        let e = authenticate_configured(
            &form("client_id=shoe-fly-shoe&client_secret=nope"),
            None,
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        assert_eq!(e.description, "Invalid client authentication");
    }

    #[test]
    fn two_authentication_methods_in_one_request_are_refused() {
        let cat = mk_catalog();
        let e = authenticate_configured(
            &form("client_id=shoe-fly-shoe&client_secret=s3cret%2B%2F%3D"),
            Some(&basic("shoe-fly-shoe:s3cret+/=")),
            &cat,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        // A client_id in the body next to Basic is one method, not two.
        assert!(authenticate_configured(
            &form("client_id=shoe-fly-shoe"),
            Some(&basic("shoe-fly-shoe:s3cret+/=")),
            &cat
        )
        .is_ok());
    }

    #[test]
    fn a_confidential_client_without_secret_is_refused() {
        let cat = mk_catalog();
        let e = authenticate_configured(&form("client_id=shoe-fly-shoe"), None, &cat).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient);
    }

    #[test]
    fn unknown_or_missing_clients_are_invalid_clients() {
        let cat = mk_catalog();
        for p in ["client_id=ghost&client_secret=x", "client_id=ghost", ""] {
            let e = authenticate_configured(&form(p), None, &cat).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidClient, "{p}");
        }
        let e = authenticate_configured(&form(""), Some("Basic !!!not-base64"), &cat).unwrap_err();
        assert_eq!(e.status, http::StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_public_client_authenticates_with_its_id_and_no_secret() {
        let cat = mk_catalog();
        assert!(
            authenticate_configured(&form("client_id=mobile"), None, &cat)
                .unwrap()
                .is_public()
        );
        assert!(authenticate_configured(&form(""), Some(&basic("mobile:")), &cat).is_ok());
        assert!(authenticate_configured(&form(""), Some(&basic("mobile:   ")), &cat).is_ok());
        assert!(authenticate_configured(&form(""), Some(&basic("mobile")), &cat).is_ok());
    }

    #[test]
    fn a_public_client_sending_a_secret_is_refused_as_kong_does() {
        let cat = mk_catalog();
        let e = authenticate_configured(&form("client_id=mobile&client_secret=x"), None, &cat)
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert_eq!(
            e.description,
            "client_secret is disallowed for public clients"
        );
        let e = authenticate_configured(&form(""), Some(&basic("mobile:x")), &cat).unwrap_err();
        assert_eq!(
            e.description,
            "client_secret is disallowed for public clients"
        );
    }
}
