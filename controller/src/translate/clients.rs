//! OAuth2Clients: consumer reference, credentials Secret (read, or generated when
//! absent), redirect URI rules, and `client_id` uniqueness (the older client keeps it).

use std::collections::HashMap;

use gatehouse_config::loopback::is_loopback_host;
use gatehouse_config::snapshot as config;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::{ClientType, GrantType, OAuth2Client, OAuth2ClientStatus};
use rand::RngCore;
use sha2::{Digest as _, Sha256};

use super::consumers::{Consumers, Lookup};
use super::object::{is_scope_token, object_ref, Context, Verdict};
use super::secrets::{self, GeneratedSecret, CLIENT_ID_KEY, CLIENT_SECRET_KEY};
use super::{Kind, ObjectStatus, Status, MIN_CLIENT_SECRET_BYTES};

/// Result of translating clients.
pub struct Clients {
    pub snapshot: Vec<config::OAuth2Client>,
    pub statuses: Vec<ObjectStatus>,
    pub secrets_to_create: Vec<GeneratedSecret>,
    /// `client_id`s of admitted clients marked `trusted` (consent may be skipped).
    pub trusted: Vec<String>,
}

/// Credentials read from a Secret.
struct Credentials {
    client_id: String,
    secret_sha256: Option<String>,
}

pub fn translate(ctx: &Context<'_>, consumers: &Consumers, rng: &mut dyn RngCore) -> Clients {
    let mut out = Clients {
        snapshot: Vec::new(),
        statuses: Vec::new(),
        secrets_to_create: Vec::new(),
        trusted: Vec::new(),
    };
    // client_id → the (older) client that holds it.
    let mut holders: HashMap<String, String> = HashMap::new();

    for c in ctx.oldest_first(&ctx.input.clients) {
        let object = object_ref(Kind::OAuth2Client, &c.metadata);
        let public = c.spec.client_type == ClientType::Public;
        let mut v = Verdict::default();
        check_spec(c, &mut v);
        check_redirect_uris(&c.spec.redirect_uris, &mut v);

        let consumer_id = match consumers.lookup(&object.namespace, &c.spec.consumer_ref.name) {
            Lookup::Ready(id) => Some(id.to_owned()),
            Lookup::NotReady => {
                v.reject(
                    reason::CONSUMER_NOT_READY,
                    format!("Consumer {:?} is not Ready", c.spec.consumer_ref.name),
                );
                None
            }
            Lookup::NotFound => {
                v.reject(
                    reason::CONSUMER_NOT_FOUND,
                    format!(
                        "Consumer {:?} not found in namespace {:?}",
                        c.spec.consumer_ref.name, object.namespace
                    ),
                );
                None
            }
        };

        let secret_name = match &c.spec.credentials_secret_ref {
            Some(r) => r.name.clone(),
            None => secrets::generated_secret_name(&object.name),
        };
        let credentials = match ctx.secret(&object.namespace, &secret_name) {
            Some(secret) => read_credentials(secret, &secret_name, public, &mut v),
            None if c.spec.credentials_secret_ref.is_some() => {
                v.reject(
                    reason::CREDENTIALS_SECRET_NOT_FOUND,
                    format!(
                        "credentials Secret {secret_name:?} not found in namespace {:?}",
                        object.namespace
                    ),
                );
                None
            }
            None => {
                // Only ask for a Secret when the client is otherwise valid, so a
                // broken client does not leave credentials behind.
                if v.is_ok() {
                    out.secrets_to_create.push(GeneratedSecret::generate(
                        object.clone(),
                        public,
                        rng,
                    ));
                }
                v.reject(
                    reason::CREDENTIALS_PENDING,
                    format!("generating credentials Secret {secret_name:?}"),
                );
                None
            }
        };

        if let (true, Some(creds)) = (v.is_ok(), &credentials) {
            if let Some(holder) = holders.get(&creds.client_id) {
                v.reject(
                    reason::DUPLICATE_CLIENT_ID,
                    format!("client_id is already used by the older OAuth2Client {holder}"),
                );
            } else {
                holders.insert(
                    creds.client_id.clone(),
                    format!("{}/{}", object.namespace, object.name),
                );
            }
        }

        if let (true, Some(creds), Some(consumer_id)) = (v.is_ok(), &credentials, consumer_id) {
            if c.spec.trusted {
                out.trusted.push(creds.client_id.clone());
            }
            out.snapshot.push(config::OAuth2Client {
                client_id: creds.client_id.clone(),
                secret_sha256: creds.secret_sha256.clone(),
                name: c.spec.name.clone(),
                consumer_id,
                client_type: match c.spec.client_type {
                    ClientType::Confidential => config::ClientType::Confidential,
                    ClientType::Public => config::ClientType::Public,
                },
                redirect_uris: c.spec.redirect_uris.clone(),
                grant_types: grant_types(&c.spec.grant_types),
                scopes: c.spec.scopes.clone(),
                resource_server: c.spec.resource_server,
            });
        }

        let previous = c.status.as_ref().map(|s| s.conditions.as_slice());
        out.statuses.push(v.into_status(
            "Client is registered",
            object,
            previous,
            &ctx.options.now,
            |conditions, observed_generation| {
                Status::OAuth2Client(OAuth2ClientStatus {
                    client_id: credentials.map(|c| c.client_id),
                    conditions,
                    observed_generation,
                })
            },
        ));
    }
    out.snapshot.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    out
}

fn check_spec(c: &OAuth2Client, v: &mut Verdict) {
    if c.spec.name.trim().is_empty() {
        v.reject(reason::INVALID_SPEC, "name must not be empty");
    }
    if c.spec.client_type == ClientType::Public
        && c.spec.grant_types.contains(&GrantType::ClientCredentials)
    {
        v.reject(
            reason::INVALID_SPEC,
            "public clients cannot use the client_credentials grant",
        );
    }
    for s in c.spec.scopes.iter().flatten() {
        if !is_scope_token(s) {
            v.reject(
                reason::INVALID_SPEC,
                format!("scope {s:?} is not a valid scope token"),
            );
        }
    }
}

/// RFC 6749 §3.1.2: absolute, no fragment; RFC 9700 §2.1 / RFC 8252 §7.3: https,
/// except plain http on a loopback host for native apps and local development.
fn check_redirect_uris(uris: &[String], v: &mut Verdict) {
    for raw in uris {
        let problem = match url::Url::parse(raw) {
            Err(e) => Some(format!("redirect URI {raw:?} is not an absolute URI ({e})")),
            Ok(u) if u.fragment().is_some() => {
                Some(format!("redirect URI {raw:?} must not contain a fragment"))
            }
            Ok(u) if u.scheme() == "https" && u.host().is_some() => None,
            Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => None,
            Ok(_) => Some(format!(
                "redirect URI {raw:?} must use https (http is allowed only for localhost)"
            )),
        };
        if let Some(p) = problem {
            v.reject(reason::INVALID_REDIRECT_URI, p);
        }
    }
}

fn read_credentials(
    secret: &k8s_openapi::api::core::v1::Secret,
    secret_name: &str,
    public: bool,
    v: &mut Verdict,
) -> Option<Credentials> {
    let text = |key: &str, v: &mut Verdict| -> Option<String> {
        let raw = secrets::value(secret, key)?;
        match std::str::from_utf8(raw) {
            // RFC 6749 Appendix A: client_id and client_secret are VSCHAR.
            Ok(s) if !s.is_empty() && s.bytes().all(|b| (0x20..=0x7e).contains(&b)) => {
                Some(s.to_owned())
            }
            _ => {
                v.reject(
                    reason::CREDENTIALS_SECRET_INVALID,
                    format!(
                        "key {key:?} of Secret {secret_name:?} must be printable ASCII \
                         (a trailing newline is a common cause)"
                    ),
                );
                None
            }
        }
    };
    let present = |key: &str| secrets::value(secret, key).is_some();

    if !present(CLIENT_ID_KEY) {
        v.reject(
            reason::CREDENTIALS_SECRET_INVALID,
            format!("Secret {secret_name:?} has no {CLIENT_ID_KEY:?} key"),
        );
        return None;
    }
    let client_id = text(CLIENT_ID_KEY, v)?;
    if public {
        return Some(Credentials {
            client_id,
            secret_sha256: None,
        });
    }
    if !present(CLIENT_SECRET_KEY) {
        v.reject(
            reason::CREDENTIALS_SECRET_INVALID,
            format!("Secret {secret_name:?} has no {CLIENT_SECRET_KEY:?} key"),
        );
        return Some(Credentials {
            client_id,
            secret_sha256: None,
        });
    }
    let secret_sha256 = text(CLIENT_SECRET_KEY, v).and_then(|s| {
        if s.len() < MIN_CLIENT_SECRET_BYTES {
            v.reject(
                reason::CLIENT_SECRET_TOO_SHORT,
                format!(
                    "client_secret in Secret {secret_name:?} is {} bytes; at least \
                     {MIN_CLIENT_SECRET_BYTES} are required",
                    s.len()
                ),
            );
            None
        } else {
            Some(hex::encode(Sha256::digest(s.as_bytes())))
        }
    });
    Some(Credentials {
        client_id,
        secret_sha256,
    })
}

fn grant_types(grants: &[GrantType]) -> Vec<config::GrantType> {
    let mut out: Vec<_> = grants
        .iter()
        .map(|g| match g {
            GrantType::AuthorizationCode => config::GrantType::AuthorizationCode,
            GrantType::ClientCredentials => config::GrantType::ClientCredentials,
            GrantType::Password => config::GrantType::Password,
            GrantType::Implicit => config::GrantType::Implicit,
            GrantType::RefreshToken => config::GrantType::RefreshToken,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
