//! The installation's *login key* and the authenticated encryption built on it.
//!
//! One secret (≥ 32 random bytes, a Kubernetes Secret mounted into the controller and
//! every proxy, or a file in standalone) yields two independent AES-256-GCM-SIV keys by
//! domain-separated SHA-256:
//! - the *seal* key: the controller seals values the proxy must use in plaintext (the
//!   OIDC client secret) before they enter the snapshot; the proxy opens them.
//! - the *cookie* key: session cookies carry only a random session id, encrypted and
//!   authenticated under it, so every replica can read every replica's cookies.
//!
//! GCM-SIV is used because it stays safe when a nonce repeats: the snapshot must be
//! deterministic (same input, same bytes), so sealing derives its nonce from the
//! content, which with plain GCM would be fatal and with GCM-SIV only reveals that two
//! sealed values are equal.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest as _, Sha256};

/// Fewer bytes than this cannot be a key anyone should rely on.
pub const MIN_LOGIN_KEY_BYTES: usize = 32;

const NONCE_BYTES: usize = 12;

/// Why a login key was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the login key must have at least {MIN_LOGIN_KEY_BYTES} bytes (found {0})")]
    TooShort(usize),
    #[error("cannot read the login key file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The installation's login key (never logged: `Debug` prints nothing of it).
/// Cheap to clone: the expanded cipher keys are shared.
#[derive(Clone)]
pub struct LoginKey(std::sync::Arc<Keys>);

struct Keys {
    seal: Sealer,
    cookie: Sealer,
}

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginKey(…)")
    }
}

impl LoginKey {
    /// A key from raw secret bytes (surrounding whitespace of a file is ignored).
    pub fn from_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        let raw = raw.trim_ascii();
        if raw.len() < MIN_LOGIN_KEY_BYTES {
            return Err(KeyError::TooShort(raw.len()));
        }
        Ok(LoginKey(std::sync::Arc::new(Keys {
            seal: Sealer::derive(b"gatehouse/login-key/seal/v1", raw),
            cookie: Sealer::derive(b"gatehouse/login-key/cookie/v1", raw),
        })))
    }

    /// Read a key file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, KeyError> {
        let raw = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&raw)
    }

    /// A fresh random key (standalone without a key file: sealing and opening happen
    /// in the same process, and sessions end when it stops).
    pub fn random() -> Self {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        // Hex, not the raw bytes: `from_bytes` trims whitespace as a key file needs, and
        // raw random bytes start or end with a whitespace byte about 5% of the time.
        Self::from_bytes(hex::encode(raw).as_bytes()).expect("64 hex digits are a valid key")
    }

    /// Seal `plaintext` deterministically; `context` (e.g. the route id) is bound in
    /// as associated data so a sealed value cannot be moved to another route.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = {
            let h = Sha256::new()
                .chain_update(self.0.seal.nonce_salt)
                .chain_update((context.len() as u64).to_be_bytes())
                .chain_update(context.as_bytes())
                .chain_update(plaintext)
                .finalize();
            h[..NONCE_BYTES]
                .try_into()
                .expect("SHA-256 is longer than a nonce")
        };
        self.0.seal.encrypt(nonce, plaintext, context)
    }

    /// Open a value sealed by [`LoginKey::seal`] with the same key and context.
    pub fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        self.0.seal.decrypt(sealed, context)
    }

    /// Encrypt a cookie value (random nonce); `name` binds it to the cookie name.
    pub fn seal_cookie(&self, value: &[u8], name: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        self.0.cookie.encrypt(nonce, value, name)
    }

    /// Decrypt a cookie value; `None` for anything forged, altered or foreign.
    pub fn open_cookie(&self, sealed: &str, name: &str) -> Option<Vec<u8>> {
        self.0.cookie.decrypt(sealed, name)
    }
}

#[derive(Clone)]
struct Sealer {
    cipher: Aes256GcmSiv,
    nonce_salt: [u8; 32],
}

impl Sealer {
    fn derive(label: &[u8], raw: &[u8]) -> Self {
        let key = Sha256::new()
            .chain_update(label)
            .chain_update([0])
            .chain_update(raw)
            .finalize();
        let nonce_salt = Sha256::new()
            .chain_update(label)
            .chain_update(b"/nonce")
            .chain_update([0])
            .chain_update(raw)
            .finalize()
            .into();
        Sealer {
            cipher: Aes256GcmSiv::new_from_slice(&key).expect("SHA-256 output is a 256-bit key"),
            nonce_salt,
        }
    }

    fn encrypt(&self, nonce: [u8; NONCE_BYTES], plaintext: &[u8], aad: &str) -> String {
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM-SIV encrypts any message shorter than 2^36 bytes");
        let mut out = Vec::with_capacity(NONCE_BYTES + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    fn decrypt(&self, sealed: &str, aad: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_BYTES + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .ok()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_keys_are_always_valid() {
        // Raw random bytes failed ~5% of the time (a leading or trailing whitespace
        // byte was trimmed away); 2,000 draws would all but surely hit that.
        for _ in 0..2_000 {
            let key = LoginKey::random();
            assert_eq!(key.open(&key.seal(b"x", "r"), "r").unwrap(), b"x");
        }
    }

    use super::*;

    fn key(b: u8) -> LoginKey {
        LoginKey::from_bytes(&[b; 40]).unwrap()
    }

    #[test]
    fn sealing_is_deterministic_and_opens_only_with_the_same_key_and_context() {
        let k = key(1);
        let a = k.seal(b"client-secret", "default/app");
        assert_eq!(a, k.seal(b"client-secret", "default/app"));
        assert!(!a.contains("client-secret"));
        assert_eq!(k.open(&a, "default/app").unwrap(), b"client-secret");
        assert!(k.open(&a, "default/other").is_none());
        assert!(key(2).open(&a, "default/app").is_none());
    }

    #[test]
    fn cookies_use_fresh_nonces_and_refuse_tampering() {
        let k = key(3);
        let a = k.seal_cookie(b"session-id", "c");
        let b = k.seal_cookie(b"session-id", "c");
        assert_ne!(a, b);
        assert_eq!(k.open_cookie(&a, "c").unwrap(), b"session-id");
        assert!(k.open_cookie(&a, "other-name").is_none());
        let mut raw = URL_SAFE_NO_PAD.decode(&a).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(k.open_cookie(&URL_SAFE_NO_PAD.encode(raw), "c").is_none());
        assert!(k.open_cookie("not base64 !", "c").is_none());
        // The seal key and the cookie key are different keys.
        assert!(k.open(&a, "c").is_none());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            LoginKey::from_bytes(b"  short  \n"),
            Err(KeyError::TooShort(5))
        ));
    }
}
