//! TLS certificates from `kubernetes.io/tls` Secrets, for the hosts of the objects that
//! name them (Gateway listeners, Ingress `spec.tls`, ProtectedRoute `tls.secretName`).
//!
//! A Secret that cannot be used marks its owner not Ready; if the snapshot in force
//! already serves a certificate from that Secret, it keeps being served (a botched
//! renewal must not take a site's TLS down).
//!
//! Private keys are sealed under the installation's login key when there is one
//! (`Options::login_key`), as `oauth2.login` client secrets are.

use std::collections::{BTreeMap, BTreeSet};

use gatehouse_config::snapshot::TlsCertificate;
use gatehouse_crds::conditions::reason;

use super::object::{Context, Verdict};
use super::secrets;

/// Secret keys of a `kubernetes.io/tls` Secret.
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// Certificates gathered while translating, keyed by `namespace/name` of the Secret.
pub struct Certificates {
    by_id: BTreeMap<String, (Pair, BTreeSet<String>)>,
    previous: BTreeMap<String, Pair>,
}

/// A certificate chain and its key as the snapshot carries them: the key sealed under
/// the login key when there is one, else in plaintext.
#[derive(Clone)]
struct Pair {
    cert_pem: String,
    key_pem: String,
    key_sealed: Option<String>,
}

impl Pair {
    fn new(ctx: &Context<'_>, id: &str, cert_pem: String, key_pem: String) -> Self {
        match &ctx.options.login_key {
            Some(k) => Pair {
                cert_pem,
                key_pem: String::new(),
                key_sealed: Some(k.seal(key_pem.as_bytes(), &TlsCertificate::seal_context(id))),
            },
            None => Pair {
                cert_pem,
                key_pem,
                key_sealed: None,
            },
        }
    }
}

/// Why a Secret's certificate cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub enum TlsProblem {
    NotFound,
    Invalid(String),
}

impl Certificates {
    pub fn new(ctx: &Context<'_>) -> Self {
        let previous = ctx
            .input
            .previous_certificates
            .iter()
            .map(|c| {
                let pair = Pair {
                    cert_pem: c.cert_pem.clone(),
                    key_pem: c.key_pem.clone(),
                    key_sealed: c.key_sealed.clone(),
                };
                (c.id.clone(), pair)
            })
            .collect();
        Certificates {
            by_id: BTreeMap::new(),
            previous,
        }
    }

    /// Serve Secret `namespace/name` for `hosts`; problems become `Ready=False` with
    /// `TlsSecretNotFound` / `TlsSecretInvalid` in `v`.
    pub fn add(
        &mut self,
        ctx: &Context<'_>,
        namespace: &str,
        name: &str,
        hosts: &[String],
        v: &mut Verdict,
    ) {
        match self.try_add(ctx, namespace, name, hosts) {
            Ok(()) => {}
            Err(TlsProblem::NotFound) => v.reject(
                reason::TLS_SECRET_NOT_FOUND,
                format!("TLS Secret {name:?} not found in namespace {namespace:?}; its hosts get the default certificate"),
            ),
            Err(TlsProblem::Invalid(why)) => v.reject(reason::TLS_SECRET_INVALID, why),
        }
    }

    /// Serve Secret `namespace/name` for `hosts`, or say why not. An unusable Secret
    /// whose certificate is in the previous snapshot keeps that certificate.
    pub fn try_add(
        &mut self,
        ctx: &Context<'_>,
        namespace: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), TlsProblem> {
        let id = format!("{namespace}/{name}");
        let result = match ctx.secret(namespace, name) {
            None => Err(TlsProblem::NotFound),
            Some(secret) => pem_pair(
                secrets::value(secret, TLS_CRT),
                secrets::value(secret, TLS_KEY),
            )
            .map_err(|why| TlsProblem::Invalid(format!("TLS Secret {id:?}: {why}"))),
        };
        let (pair, outcome) = match result {
            Ok((cert, key)) => (Some(Pair::new(ctx, &id, cert, key)), Ok(())),
            Err(TlsProblem::Invalid(why)) => match self.previous.get(&id) {
                Some(prev) => (
                    Some(prev.clone()),
                    Err(TlsProblem::Invalid(format!(
                        "{why}; the previous certificate stays in use"
                    ))),
                ),
                None => (None, Err(TlsProblem::Invalid(why))),
            },
            Err(e) => (None, Err(e)),
        };
        if let Some(pair) = pair {
            let entry = self
                .by_id
                .entry(id)
                .or_insert_with(|| (pair, BTreeSet::new()));
            entry.1.extend(
                hosts
                    .iter()
                    .map(|h| h.trim_end_matches('.').to_ascii_lowercase()),
            );
        }
        outcome
    }

    /// The certificates for the snapshot, sorted by id. A certificate named by no host
    /// (an Ingress `tls` entry without `hosts`) is left out: SNI could never pick it.
    pub fn into_snapshot(self) -> Vec<TlsCertificate> {
        self.by_id
            .into_iter()
            .filter(|(_, (_, hosts))| !hosts.is_empty())
            .map(|(id, (pair, hosts))| TlsCertificate {
                id,
                hosts: hosts.into_iter().collect(),
                cert_pem: pair.cert_pem,
                key_pem: pair.key_pem,
                key_sealed: pair.key_sealed,
            })
            .collect()
    }
}

/// Check that the two values are a PEM certificate chain and a PEM private key.
fn pem_pair(cert: Option<&[u8]>, key: Option<&[u8]>) -> Result<(String, String), String> {
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err(format!("needs both {TLS_CRT:?} and {TLS_KEY:?}"));
    };
    let mut reader = cert;
    let certs = rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{TLS_CRT} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{TLS_CRT} holds no PEM certificate"));
    }
    let mut reader = key;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(_)) => {}
        Ok(None) => return Err(format!("{TLS_KEY} holds no PEM private key")),
        Err(e) => return Err(format!("{TLS_KEY} is not PEM: {e}")),
    }
    let text = |b: &[u8], what: &str| {
        String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8 text"))
    };
    Ok((text(cert, TLS_CRT)?, text(key, TLS_KEY)?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gatehouse_config::seal::LoginKey;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::translate::{Input, Options};

    /// Certificates of one `kubernetes.io/tls` Secret served for `site.example`.
    fn translate_with(login_key: Option<LoginKey>) -> (Vec<TlsCertificate>, String) {
        let issued = rcgen::generate_simple_self_signed(vec!["site.example".into()]).unwrap();
        let key_pem = issued.signing_key.serialize_pem();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("site-tls".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            string_data: Some(
                [
                    (TLS_CRT.to_owned(), issued.cert.pem()),
                    (TLS_KEY.to_owned(), key_pem.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let input = Input {
            secrets: vec![Arc::new(secret)],
            ..Default::default()
        };
        let mut options = Options::cluster(Time(Timestamp::from_second(1).unwrap()));
        options.login_key = login_key;
        let ctx = Context::new(&input, &options);
        let mut certs = Certificates::new(&ctx);
        let mut v = Verdict::default();
        certs.add(
            &ctx,
            "default",
            "site-tls",
            &["site.example".into()],
            &mut v,
        );
        assert!(v.is_ok());
        (certs.into_snapshot(), key_pem)
    }

    #[test]
    fn private_keys_are_sealed_under_the_login_key_when_there_is_one() {
        let key = LoginKey::from_bytes(&[7; 40]).unwrap();
        let (certs, key_pem) = translate_with(Some(key.clone()));
        let c = &certs[0];
        assert!(c.key_pem.is_empty());
        let sealed = c.key_sealed.as_deref().expect("sealed key");
        assert!(!sealed.contains("PRIVATE KEY"));
        let json =
            String::from_utf8(serde_json::to_vec(&certs).expect("certificates serialize")).unwrap();
        assert!(!json.contains("PRIVATE KEY"), "{json}");
        let opened = key
            .open(sealed, &TlsCertificate::seal_context("default/site-tls"))
            .expect("opens with the same key and id");
        assert_eq!(opened, key_pem.as_bytes());
    }

    #[test]
    fn without_a_login_key_the_private_key_travels_as_pem() {
        let (certs, key_pem) = translate_with(None);
        assert_eq!(certs[0].key_pem, key_pem);
        assert!(certs[0].key_sealed.is_none());
    }
}
