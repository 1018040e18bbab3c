//! Where a `client_id` is looked up, in one place for every endpoint: the
//! configuration's `OAuth2Client`s first, then — on routes whose
//! `client_registration` allows them — clients nobody registered by hand:
//!
//! - a `client_id` that is an `https` URL names a client ID metadata document
//!   ([`super::client_metadata`]), fetched and used as a public client;
//! - a `client_id` handed out by `/oauth2/register` ([`super::register`]) is read from
//!   the token store, where its registration lives until it expires or is deleted.
//!
//! Such clients are public, follow OAuth 2.1 (PKCE S256, loopback redirect URIs with
//! any port) and belong to no Consumer: their tokens tell the upstream the client and
//! the signed-in user, not a consumer.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::client_metadata::{is_document_url, MetadataDocuments};
use crate::catalog::{Catalog, ClientEntry};
use crate::config::{OAuth2Client, Route, RouteOAuth2};
use crate::store::{Digest, LoginKind, StoreError, TokenStore, UnixTime};

/// Prefix of the ids `/oauth2/register` hands out, so other ids never cost a store
/// lookup.
pub const REGISTERED_PREFIX: &str = "dcr_";

/// How a client came to be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An `OAuth2Client` of the configuration.
    Configured,
    /// A client ID metadata document.
    MetadataDocument,
    /// Dynamic registration on this route.
    Registered,
}

/// A client found for a request.
#[derive(Clone, Debug)]
pub struct Client<'a> {
    pub entry: Cow<'a, ClientEntry>,
    pub origin: Origin,
}

impl Client<'_> {
    /// Not registered by an administrator: OAuth 2.1 rules apply, and the consent
    /// page says so.
    pub fn is_unvetted(&self) -> bool {
        self.origin != Origin::Configured
    }

    /// The host the client vouches for: the metadata document's host, or the host
    /// of a registered client's first redirect URI (shown on the consent page).
    pub fn host(&self) -> Option<String> {
        let url = match self.origin {
            Origin::Configured => return None,
            Origin::MetadataDocument => self.entry.client.client_id.as_str(),
            Origin::Registered => self.entry.client.redirect_uris.first()?.as_str(),
        };
        url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
    }
}

/// A dynamically registered client as kept in the token store.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Registration {
    /// The route it was registered on; it exists nowhere else.
    pub route_id: String,
    pub client: OAuth2Client,
    /// Digest of the registration access token (RFC 7592).
    pub access_token: Digest,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    /// The client metadata as registered, returned by RFC 7592 reads.
    pub metadata: serde_json::Value,
}

/// Why a client could not be looked up.
#[derive(Debug)]
pub enum LookupError {
    /// The token store failed: answer 503, never guess.
    Store(StoreError),
    /// A metadata document was unusable (the reason is safe to show the client).
    Document(String),
}

impl From<StoreError> for LookupError {
    fn from(e: StoreError) -> Self {
        LookupError::Store(e)
    }
}

/// The clients one request may name.
pub struct Directory<'a> {
    pub catalog: &'a Catalog,
    pub store: &'a dyn TokenStore,
    pub route: &'a Route,
    pub oauth: &'a RouteOAuth2,
    pub documents: &'a MetadataDocuments,
    pub now: UnixTime,
}

impl<'a> Directory<'a> {
    /// The client `client_id` names, if any.
    pub async fn find(&self, client_id: &str) -> Result<Option<Client<'a>>, LookupError> {
        if let Some(entry) = self.catalog.client(client_id) {
            return Ok(Some(Client {
                entry: Cow::Borrowed(entry),
                origin: Origin::Configured,
            }));
        }
        let open = &self.oauth.client_registration;
        if open.metadata_documents && is_document_url(client_id) {
            let client = self
                .documents
                .client(client_id, &open.metadata_hosts)
                .await
                .map_err(LookupError::Document)?;
            return Ok(Some(unvetted(client, Origin::MetadataDocument)));
        }
        if open.dynamic && client_id.starts_with(REGISTERED_PREFIX) {
            return Ok(registration(self.store, &self.route.id, client_id)
                .await?
                .map(|r| unvetted(r.client, Origin::Registered)));
        }
        Ok(None)
    }
}

/// A registration of `route_id`, if live.
pub async fn registration(
    store: &dyn TokenStore,
    route_id: &str,
    client_id: &str,
) -> Result<Option<Registration>, StoreError> {
    let raw = store
        .get_login(
            LoginKind::RegisteredClient,
            Digest::of(client_id.as_bytes()),
        )
        .await?;
    let Some(raw) = raw else { return Ok(None) };
    let record: Registration = serde_json::from_str(&raw)
        .map_err(|e| StoreError::Corrupt(format!("registered client: {e}")))?;
    Ok((record.route_id == route_id && record.client.client_id == client_id).then_some(record))
}

fn unvetted(client: OAuth2Client, origin: Origin) -> Client<'static> {
    Client {
        entry: Cow::Owned(ClientEntry {
            id_value: http::HeaderValue::from_str(&client.client_id).ok(),
            client,
            secret: None,
        }),
        origin,
    }
}

/// Whether a token issued on `token_route` to `client_id`, a client outside the
/// configuration, may still be used on a route with `oauth`: that route accepts such
/// clients, and a registered one has not expired or been deleted.
pub async fn unvetted_client_alive(
    store: &dyn TokenStore,
    token_route: &str,
    oauth: &RouteOAuth2,
    client_id: &str,
) -> Result<bool, StoreError> {
    let open = &oauth.client_registration;
    if open.metadata_documents && is_document_url(client_id) {
        return Ok(true);
    }
    if open.dynamic && client_id.starts_with(REGISTERED_PREFIX) {
        return Ok(registration(store, token_route, client_id).await?.is_some());
    }
    Ok(false)
}
