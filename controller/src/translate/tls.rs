//! TLS certificates from `kubernetes.io/tls` Secrets, for the hosts of the objects that
//! name them (Gateway listeners, Ingress `spec.tls`, ProtectedRoute `tls.secretName`).
//!
//! A Secret that cannot be used marks its owner not Ready; if the snapshot in force
//! already serves a certificate from that Secret, it keeps being served (a botched
//! renewal must not take a site's TLS down).

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
    by_id: BTreeMap<String, (String, String, BTreeSet<String>)>,
    previous: BTreeMap<String, (String, String)>,
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
            .map(|c| (c.id.clone(), (c.cert_pem.clone(), c.key_pem.clone())))
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
            Ok(pair) => (Some(pair), Ok(())),
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
        if let Some((cert, key)) = pair {
            let entry = self
                .by_id
                .entry(id)
                .or_insert_with(|| (cert, key, BTreeSet::new()));
            entry.2.extend(
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
            .filter(|(_, (_, _, hosts))| !hosts.is_empty())
            .map(|(id, (cert_pem, key_pem, hosts))| TlsCertificate {
                id,
                hosts: hosts.into_iter().collect(),
                cert_pem,
                key_pem,
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
