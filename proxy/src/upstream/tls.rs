//! TLS to upstreams (`https://` endpoints, `h2` over TLS): certificate verification
//! against the system roots or a route's own CA bundle, SNI from the endpoint's host
//! name (or the configured name), and an optional client certificate for mTLS.
//!
//! A client configuration is built once per route when a snapshot is compiled; a
//! route whose TLS settings cannot be loaded keeps no endpoints (503), it never falls
//! back to an unverified connection.

use std::io;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::UpstreamTls;

/// What a TLS-speaking upstream set needs to connect.
#[derive(Clone)]
pub struct ClientTls {
    connector: TlsConnector,
    /// The name verified and sent as SNI when the settings name one.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The system's trusted roots, read once per process (reading the store is slow).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "Could not read part of the system certificate store");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "System trust roots loaded");
        roots
    })
}

fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} `{path}`: {e}"))
}

impl ClientTls {
    /// Build the client configuration for `settings` (`None`: system roots, no client
    /// certificate). `alpn` lists the protocols offered, most preferred first.
    pub fn new(settings: Option<&UpstreamTls>, alpn: &[&[u8]]) -> Result<ClientTls, String> {
        let default = UpstreamTls::default();
        let settings = settings.unwrap_or(&default);
        let mut roots = RootCertStore::empty();
        let mut custom = Vec::new();
        if let Some(pem) = &settings.ca_pem {
            custom.extend(parse_certs(pem.as_bytes(), "CA bundle")?);
        }
        if let Some(path) = &settings.ca_file {
            custom.extend(parse_certs(&read(path, "CA file")?, "CA file")?);
        }
        if custom.is_empty() {
            roots = system_roots().clone();
            if roots.is_empty() {
                return Err("no CA configured and the system certificate store is empty".into());
            }
        } else {
            for cert in custom {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA certificate refused: {e}"))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match (&settings.client_cert_file, &settings.client_key_file) {
            (Some(cert), Some(key)) => {
                let chain = parse_certs(&read(cert, "client certificate")?, "client certificate")?;
                let key_pem = read(key, "client key")?;
                let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
                    .map_err(|e| format!("client key: {e}"))?
                    .ok_or("client key: no PEM private key found")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("a client certificate needs both a certificate and a key".into()),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let server_name = settings
            .server_name
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_owned())
                    .map_err(|e| format!("server name `{name}`: {e}"))
            })
            .transpose()?;
        Ok(ClientTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// Run the TLS handshake on `tcp`, verifying the certificate for the configured
    /// name or else `host` (a DNS name or IP literal), which is also the SNI.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => ServerName::try_from(host.to_owned())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        };
        self.connector.connect(name, tcp).await
    }
}

/// Whether a handshake failed because the upstream's certificate was not trusted (as
/// opposed to a network failure), so it can be logged as the configuration problem
/// it usually is.
pub fn is_verification_failure(error: &io::Error) -> bool {
    error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

/// The protocol the upstream picked by ALPN.
pub fn negotiated_h2(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_settings_are_errors_not_silent_fallbacks() {
        let bad_ca = UpstreamTls {
            ca_pem: Some("not a certificate".into()),
            ..Default::default()
        };
        assert!(ClientTls::new(Some(&bad_ca), &[]).is_err());
        let half_mtls = UpstreamTls {
            ca_pem: None,
            client_cert_file: Some("/nonexistent/cert.pem".into()),
            ..Default::default()
        };
        assert!(ClientTls::new(Some(&half_mtls), &[]).is_err());
        let missing_file = UpstreamTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let error = ClientTls::new(Some(&missing_file), &[]).unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
