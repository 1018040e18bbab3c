//! Where a token family's records live in Redis Cluster.
//!
//! Cluster runs a multi-key Lua script only when every key it touches hashes to one
//! slot, and our scripts change several records of one token family at once (code →
//! tokens, rotation, reuse and replay revocation). Putting every key in one slot
//! (`{gatehouse}`) would keep the scripts atomic but send all tokens to one shard.
//! Instead every family id, and every code and token of that family, starts with the
//! same three-character *slot tag*; in cluster mode the tag becomes the keys' hash tag
//! (see [`super::redis::keys`]). A family's keys share a slot, and families spread
//! over all slots.
//!
//! The tag is the first [`TAG_LEN`] characters of the raw value, so a presented token
//! names its own slot; it is not secret (the digest covers the whole token) and costs
//! the token 18 of its 256 random bits.

/// Characters of the tag at the start of a family id, code or token.
pub const TAG_LEN: usize = 3;

/// A slot tag, or none (the value does not start with three URL-safe base64
/// characters, so Gatehouse never issued it).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Slot([u8; TAG_LEN]);

impl Slot {
    pub const NONE: Slot = Slot([0; TAG_LEN]);

    /// The tag a raw value starts with.
    pub fn of(raw: &[u8]) -> Slot {
        match raw.get(..TAG_LEN) {
            Some(&[a, b, c]) if [a, b, c].iter().all(|&x| url_safe(x)) => Slot([a, b, c]),
            _ => Slot::NONE,
        }
    }

    /// The tag's text; `None` for [`Slot::NONE`].
    pub fn as_str(&self) -> Option<&str> {
        // Only URL-safe base64 bytes get in, so this is ASCII.
        (*self != Slot::NONE).then(|| std::str::from_utf8(&self.0).unwrap_or_default())
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slot({})", self.as_str().unwrap_or("-"))
    }
}

fn url_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_is_the_first_three_url_safe_characters() {
        assert_eq!(Slot::of(b"AbC-restoftoken").as_str(), Some("AbC"));
        assert_eq!(Slot::of(b"a_9").as_str(), Some("a_9"));
        // Too short, or characters Gatehouse never puts in a token (a `}` would end
        // the hash tag early): no slot.
        assert_eq!(Slot::of(b"ab"), Slot::NONE);
        assert_eq!(Slot::of(b"a}bcdef"), Slot::NONE);
        assert_eq!(Slot::of(b"a b"), Slot::NONE);
        assert_eq!(Slot::of("é12".as_bytes()), Slot::NONE);
        assert_eq!(Slot::NONE.as_str(), None);
    }
}
