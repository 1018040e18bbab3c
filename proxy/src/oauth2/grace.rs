//! The refresh-token grace window (`refresh_token_grace_seconds`, opt-in per route;
//! RFC 9700 §4.14.2 allows it): a client whose rotation response was lost retries
//! with the same (now rotated-away) refresh token within N seconds and gets the same
//! new pair, instead of the reuse rule revoking its token family.
//!
//! The new pair's raw tokens must be kept to answer the retry, and the store holds
//! tokens only as digests. So the answer is **sealed** (AES-256-GCM-SIV, the
//! `gatehouse_config::seal` construction) under a key derived from the *old* refresh
//! token, which only its holder has; the store keys the sealed blob by the old
//! token's SHA-256 (a different derivation, so the digest reveals nothing of the
//! key), and it expires with the window. Someone reading the store learns nothing;
//! someone holding the old refresh token could have rotated it themselves anyway.
//!
//! Limit: two retries racing the first rotation (both seeing the old token still
//! live) still trip the reuse rule; the window covers a retry after a lost answer.

use serde::{Deserialize, Serialize};

use super::token::Minted;
use super::Ctx;
use crate::seal::LoginKey;
use crate::store::{AccessToken, Digest, IssuedPair, LoginKind, UnixTime};

/// Separates grace-window keys from any other use of a token as key material.
const KEY_LABEL: &str = "gatehouse/refresh-grace/v1:";

/// What is sealed: enough to answer the retry exactly as the first time.
#[derive(Serialize, Deserialize)]
struct Answer {
    access: String,
    refresh: Option<String>,
    expires_in: Option<u64>,
    scopes: Vec<String>,
    record: AccessToken,
}

fn key(old_refresh: &str) -> Option<LoginKey> {
    LoginKey::from_bytes(format!("{KEY_LABEL}{old_refresh}").as_bytes()).ok()
}

/// Remember the answer to a rotation of `old_refresh` for the route's window.
/// Failing to remember only loses the grace (the rotation itself succeeded).
pub(crate) async fn remember(ctx: &Ctx<'_>, old_refresh: &str, minted: &Minted) {
    let secs = UnixTime::from(ctx.oauth.refresh_token_grace_seconds);
    let Some(key) = key(old_refresh) else { return };
    let answer = Answer {
        access: minted.access.clone(),
        refresh: minted.refresh.clone(),
        expires_in: minted.expires_in,
        scopes: minted.scopes.clone(),
        record: minted.pair.access.clone(),
    };
    let Ok(json) = serde_json::to_vec(&answer) else {
        return;
    };
    let sealed = key.seal(&json, &ctx.route.id);
    let digest = Digest::of(old_refresh.as_bytes());
    let expires_at = ctx.now.saturating_add(secs);
    if let Err(error) = ctx
        .store
        .put_login(LoginKind::RefreshGrace, digest, sealed, expires_at)
        .await
    {
        tracing::warn!(route.id = %ctx.route.id, %error, "Refresh grace answer not stored");
    }
}

/// The answer of an earlier rotation of `old_refresh` still within its window.
pub(crate) async fn replay(ctx: &Ctx<'_>, old_refresh: &str) -> Option<Minted> {
    let digest = Digest::of(old_refresh.as_bytes());
    let sealed = ctx
        .store
        .get_login(LoginKind::RefreshGrace, digest)
        .await
        .ok()??;
    let json = key(old_refresh)?.open(&sealed, &ctx.route.id)?;
    let a: Answer = serde_json::from_slice(&json).ok()?;
    // The pair handed out then must still be alive (not revoked or expired since).
    let access_digest = Digest::of(a.access.as_bytes());
    ctx.store.access_token(access_digest).await.ok()??;
    Some(Minted {
        access: a.access,
        refresh: a.refresh,
        expires_in: a.expires_in,
        scopes: a.scopes,
        pair: IssuedPair {
            access_digest,
            access: a.record,
            refresh: None,
        },
    })
}
