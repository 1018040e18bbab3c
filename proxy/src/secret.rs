//! Random secrets: tokens, codes, family ids.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;

use crate::store::slot::{Slot, TAG_LEN};

/// A URL-safe random string carrying 32 bytes (256 bits) of entropy.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random token for `family`: it starts with the family's slot tag (see
/// [`crate::store::slot`]), so a sharded store keeps it beside the rest of its family.
/// The rest still carries 238 bits of entropy.
pub fn random_token_in(family: &str) -> String {
    let mut token = random_token();
    if let Some(tag) = Slot::of(family.as_bytes()).as_str() {
        token.replace_range(..TAG_LEN, tag);
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_token_starts_with_the_family_tag() {
        let family = random_token();
        let token = random_token_in(&family);
        assert_eq!(token.len(), 43);
        assert_eq!(Slot::of(token.as_bytes()), Slot::of(family.as_bytes()));
        assert_ne!(token[TAG_LEN..], random_token_in(&family)[TAG_LEN..]);
        // A family id Gatehouse did not mint (no tag) leaves the token as drawn.
        assert_eq!(random_token_in("x").len(), 43);
    }
}
