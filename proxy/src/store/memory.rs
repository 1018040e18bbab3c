//! In-memory token store: the standalone default. (to be written: placeholder that
//! refuses every operation so that nothing silently works without a real store)

use async_trait::async_trait;

use super::*;

/// Process-local token store with expiry and a size bound.
pub struct MemoryStore {
    _capacity: usize,
}

impl MemoryStore {
    /// A store holding at most `capacity` live tokens and codes.
    pub fn new(capacity: usize) -> Self {
        MemoryStore {
            _capacity: capacity,
        }
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn put_code(&self, _code: Digest, _record: AuthorizationCode) -> Result<()> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn take_code(&self, _code: Digest) -> Result<CodeRedemption> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn issue(&self, _pair: IssuedPair) -> Result<()> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn access_token(&self, _token: Digest) -> Result<Option<AccessToken>> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn refresh_token(&self, _token: Digest) -> Result<Option<RefreshToken>> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn rotate(&self, _old: Digest, _new: IssuedPair) -> Result<Rotation> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn revoke(&self, _token: Digest) -> Result<bool> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn revoke_family(&self, _family: &str) -> Result<()> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
    async fn ping(&self) -> Result<()> {
        Err(StoreError::Unavailable(
            "memory store not written yet".into(),
        ))
    }
}
