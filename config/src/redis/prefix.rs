//! The key prefix every Gatehouse key and channel starts with (default `gatehouse:`),
//! and the names of the snapshot's own key and channel under it.
//!
//! Redis Cluster: the snapshot's key and channel go under a prefix with a hash tag
//! (`{gatehouse}:`); [`effective_prefix`] adds one when the configured prefix has none.
//! Token keys spread over the shards by token family instead (the proxy's
//! `store::redis::keys`).

/// The prefix of the snapshot's key and channel. With `cluster`, a prefix without a
/// `{hash tag}` gets one (`gatehouse:` → `{gatehouse}:`).
pub fn effective_prefix(prefix: &str, cluster: bool) -> String {
    if cluster && !has_hash_tag(prefix) {
        let name = prefix.trim_end_matches(':');
        let name = if name.is_empty() { "gatehouse" } else { name };
        format!("{{{name}}}:")
    } else {
        prefix.to_owned()
    }
}

/// The snapshot hash (`snapshot`, `sha256`, `version`) under an effective prefix.
pub fn config_key(prefix: &str) -> String {
    format!("{prefix}config")
}

/// The channel announcing a new snapshot version, under an effective prefix.
pub fn config_channel(prefix: &str) -> String {
    format!("{prefix}config:changed")
}

/// Redis hashes only the part between the first `{` and the next `}` when that part
/// is non-empty.
pub fn has_hash_tag(s: &str) -> bool {
    match s.find('{') {
        Some(open) => s[open + 1..].find('}').is_some_and(|close| close > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_adds_a_hash_tag_when_the_prefix_has_none() {
        assert_eq!(effective_prefix("gatehouse:", true), "{gatehouse}:");
        assert_eq!(effective_prefix("prod:gh:", true), "{prod:gh}:");
        assert_eq!(effective_prefix("{gh}:", true), "{gh}:");
        // `{}` is not a hash tag for Redis.
        assert_eq!(effective_prefix("{}x:", true), "{{}x}:");
        assert_eq!(effective_prefix("gatehouse:", false), "gatehouse:");
        assert_eq!(config_key("gatehouse:"), "gatehouse:config");
        assert_eq!(config_channel("{gh}:"), "{gh}:config:changed");
    }
}
