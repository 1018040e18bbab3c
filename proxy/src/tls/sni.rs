//! Certificate choice by SNI: the snapshot's certificates (from Kubernetes Secrets),
//! exact name first, then `*.wildcard` (one label), then the default certificate
//! (`--tls-cert`, or standalone's self-signed one).
//!
//! The table is built with each compiled snapshot and read per handshake, so a renewed
//! Secret is served to the next connection without a restart; connections already
//! established keep their session.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use gatehouse_config::seal::LoginKey;

use crate::compiled::CompiledRx;
use crate::config::TlsCertificate;
use crate::metrics::CertificateExpiry;

/// Certificates by host name, compiled from one snapshot.
#[derive(Debug, Default)]
pub struct CertTable {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// A certificate named `*` (a Gateway listener without hostname).
    catch_all: Option<Arc<CertifiedKey>>,
    /// Compiled keys by certificate id, reused when the same PEM comes again.
    by_id: HashMap<String, (String, Arc<CertifiedKey>)>,
    /// When each (certificate, host) served expires, for the metrics.
    expiries: Vec<CertificateExpiry>,
}

impl CertTable {
    /// Compile `certs`, opening sealed private keys with `login_key`. A certificate
    /// that does not load keeps the one `previous` compiled for the same id (if any)
    /// and is reported.
    pub fn new(
        certs: &[TlsCertificate],
        previous: Option<&CertTable>,
        login_key: Option<&LoginKey>,
    ) -> (Self, Vec<String>) {
        let mut table = CertTable::default();
        let mut problems = Vec::new();
        for c in certs {
            // A renewal changes the certificate; compare the key too so a re-keyed
            // Secret with the same certificate text is never served with the old key.
            let fingerprint = format!(
                "{}\n{}\n{}",
                c.cert_pem,
                c.key_pem,
                c.key_sealed.as_deref().unwrap_or_default()
            );
            let reused = previous
                .and_then(|p| p.by_id.get(&c.id))
                .filter(|(f, _)| *f == fingerprint)
                .map(|(_, k)| k.clone());
            let key = match reused
                .map(Ok)
                .unwrap_or_else(|| certified_key(c, login_key))
            {
                Ok(k) => k,
                Err(e) => {
                    problems.push(format!("certificate {}: {e}", c.id));
                    match previous.and_then(|p| p.by_id.get(&c.id)) {
                        Some((_, k)) => k.clone(),
                        None => continue,
                    }
                }
            };
            let not_after = super::not_after(&key);
            for host in &c.hosts {
                let host = host.to_ascii_lowercase();
                if let Some(not_after) = not_after {
                    table.expiries.push(CertificateExpiry {
                        certificate: c.id.clone(),
                        host: host.clone(),
                        not_after,
                    });
                }
                if host == "*" {
                    table.catch_all.get_or_insert_with(|| key.clone());
                } else if let Some(suffix) = host.strip_prefix("*.") {
                    table
                        .wildcard
                        .entry(suffix.to_owned())
                        .or_insert_with(|| key.clone());
                } else {
                    table.exact.entry(host).or_insert_with(|| key.clone());
                }
            }
            table.by_id.insert(c.id.clone(), (fingerprint, key));
        }
        (table, problems)
    }

    /// When each certificate expires, per host it is configured for.
    pub fn expiries(&self) -> &[CertificateExpiry] {
        &self.expiries
    }

    /// The certificate for `sni`, if one is configured.
    pub fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.catch_all.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return Some(k.clone());
            }
        }
        self.catch_all.clone()
    }
}

fn certified_key(
    c: &TlsCertificate,
    login_key: Option<&LoginKey>,
) -> Result<Arc<CertifiedKey>, String> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut c.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM".to_owned());
    }
    let opened;
    let key_pem = match &c.key_sealed {
        None => c.key_pem.as_bytes(),
        Some(sealed) => {
            let key = login_key.ok_or(
                "the private key is sealed and this proxy has no login key (--login-key-file)",
            )?;
            opened = key
                .open(sealed, &TlsCertificate::seal_context(&c.id))
                .ok_or("the sealed private key does not open with this proxy's login key")?;
            &opened[..]
        }
    };
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| format!("key is not PEM: {e}"))?
        .ok_or("no private key in the PEM")?;
    let provider = rustls::crypto::ring::default_provider();
    let ck = CertifiedKey::from_der(certs, key, &provider).map_err(|e| e.to_string())?;
    Ok(Arc::new(ck))
}

/// Picks the certificate per handshake from the current compiled snapshot.
#[derive(Debug)]
pub struct SniResolver {
    compiled: CompiledRx,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(compiled: CompiledRx, default: Arc<CertifiedKey>) -> Self {
        SniResolver { compiled, default }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self
            .compiled
            .borrow()
            .as_ref()
            .and_then(|c| c.certs.find(hello.server_name()));
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login_key(b: u8) -> LoginKey {
        LoginKey::from_bytes(&[b; 40]).unwrap()
    }

    /// A certificate for `host` whose private key is sealed under `key`.
    fn sealed_cert(host: &str, key: &LoginKey) -> TlsCertificate {
        let issued = rcgen::generate_simple_self_signed(vec![host.to_owned()]).unwrap();
        let id = "default/site-tls".to_owned();
        TlsCertificate {
            key_sealed: Some(key.seal(
                issued.signing_key.serialize_pem().as_bytes(),
                &TlsCertificate::seal_context(&id),
            )),
            id,
            hosts: vec![host.to_owned()],
            cert_pem: issued.cert.pem(),
            key_pem: String::new(),
        }
    }

    #[test]
    fn a_sealed_private_key_loads_only_with_the_login_key_it_was_sealed_under() {
        let key = login_key(1);
        let certs = [sealed_cert("site.example", &key)];

        let (table, problems) = CertTable::new(&certs, None, Some(&key));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(table.find(Some("site.example")).is_some());

        for other in [None, Some(login_key(2))] {
            let (table, problems) = CertTable::new(&certs, None, other.as_ref());
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains("default/site-tls"), "{problems:?}");
            assert!(table.find(Some("site.example")).is_none());
        }
    }

    #[test]
    fn a_sealed_key_moved_to_another_certificate_id_does_not_open() {
        let key = login_key(1);
        let mut moved = sealed_cert("site.example", &key);
        moved.id = "default/other-tls".to_owned();
        let (table, problems) = CertTable::new(&[moved], None, Some(&key));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(table.find(Some("site.example")).is_none());
    }
}
