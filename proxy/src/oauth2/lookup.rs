//! Finding a presented token in the store for introspection and revocation, honouring
//! `token_type_hint` (RFC 7009 §2.1, RFC 7662 §2.1) as a search order, never as a
//! filter.

use super::error::{OAuthError, Result};
use super::params::Params;
use crate::store::{AccessToken, Digest, Grant, RefreshToken, TokenStore};

/// A live token found by its raw value.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    Access(Digest, AccessToken),
    Refresh(Digest, RefreshToken),
}

impl Found {
    pub fn client_id(&self) -> &str {
        &self.grant().client_id
    }

    /// What the token carries, whichever kind it is.
    pub fn grant(&self) -> &Grant {
        match self {
            Found::Access(_, t) => &t.grant,
            Found::Refresh(_, t) => &t.grant,
        }
    }

    pub fn digest(&self) -> Digest {
        match self {
            Found::Access(d, _) | Found::Refresh(d, _) => *d,
        }
    }
}

/// Read the `token` parameter and look it up. `Ok(None)` when it is not live.
pub(crate) async fn find(params: &Params, store: &dyn TokenStore) -> Result<Option<Found>> {
    let raw = params
        .get("token")?
        .ok_or_else(|| OAuthError::invalid_request("Missing token parameter"))?;
    let d = Digest::of(raw.as_bytes());
    let refresh_first = params.get("token_type_hint")? == Some("refresh_token");
    let access =
        async { Ok::<_, OAuthError>(store.access_token(d).await?.map(|t| Found::Access(d, t))) };
    let refresh =
        async { Ok::<_, OAuthError>(store.refresh_token(d).await?.map(|t| Found::Refresh(d, t))) };
    if refresh_first {
        if let Some(f) = refresh.await? {
            return Ok(Some(f));
        }
        access.await
    } else {
        if let Some(f) = access.await? {
            return Ok(Some(f));
        }
        refresh.await
    }
}
