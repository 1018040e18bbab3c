//! Path normalisation: the one spelling of a request path that the router matches,
//! the scope rules check and the upstream receives, and the one canonical form of a
//! configured prefix. The proxy's router and the controller's translate (route
//! conflicts) both use these functions, so they agree on what "the same path" means.

use std::borrow::Cow;

/// Normalize a request path before routing and proxying, so that a route or scope rule
/// cannot be bypassed by spelling the path differently than the upstream will read it:
/// percent-encoded unreserved characters are decoded (`%2e` → `.`), `.`/`..` segments
/// are resolved (RFC 3986 §5.2.4) and repeated slashes merged. Borrowed when the path is
/// already canonical (the common case: no allocation).
pub fn normalize_path(path: &str) -> Cow<'_, str> {
    let needs_work =
        !path.starts_with('/') || path.contains("//") || path.contains("/.") || path.contains('%');
    if !needs_work {
        return Cow::Borrowed(path);
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let trailing_slash =
        decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(decoded.len() + 1);
    for segment in &out {
        result.push('/');
        result.push_str(segment);
    }
    if result.is_empty() || (trailing_slash && !out.is_empty()) {
        result.push('/');
    }
    Cow::Owned(result)
}

/// Decode `%XX` only where XX is an unreserved character (RFC 3986 §2.3); other
/// escapes (`%2F`, `%3F`, ...) keep their meaning and stay encoded (upper-cased hex).
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let (hi, lo) = (bytes[i + 1], bytes[i + 2]);
            if let (Some(h), Some(l)) = (hex_value(hi), hex_value(lo)) {
                let c = h * 16 + l;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c);
                } else {
                    out.extend_from_slice(&[
                        b'%',
                        hi.to_ascii_uppercase(),
                        lo.to_ascii_uppercase(),
                    ]);
                }
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII bytes were replaced by ASCII bytes, so UTF-8 validity is preserved.
    String::from_utf8(out).expect("decoding ASCII escapes keeps a str valid UTF-8")
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Canonical form of a configured prefix: leading `/`, no trailing `/` (except root),
/// normalized like request paths so both sides compare equal.
pub fn normalize_prefix(prefix: &str) -> String {
    let with_slash: Cow<str> = if prefix.starts_with('/') {
        Cow::Borrowed(prefix)
    } else {
        Cow::Owned(format!("/{prefix}"))
    };
    let normalized = normalize_path(&with_slash).into_owned();
    let trimmed = normalized.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Whether `prefix` (normalized) covers `path` on a segment boundary
/// (`/api` covers `/api`, `/api/` and `/api/x`, not `/apix`).
pub fn prefix_covers(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_against_traversal() {
        assert_eq!(normalize_path("/a/b"), "/a/b");
        assert!(matches!(normalize_path("/a/b"), Cow::Borrowed(_)));
        assert_eq!(normalize_path("/public/../private"), "/private");
        assert_eq!(normalize_path("/public/%2e%2e/private"), "/private");
        assert_eq!(normalize_path("//a///b/"), "/a/b/");
        assert_eq!(normalize_path("/a/./b/."), "/a/b/");
        assert_eq!(normalize_path("/../.."), "/");
        assert_eq!(normalize_path("/a%2Fb"), "/a%2Fb");
        assert_eq!(normalize_path("/%7euser"), "/~user");
        assert_eq!(normalize_path("/bad%zz"), "/bad%zz");
    }

    #[test]
    fn prefixes_are_normalized_like_paths() {
        assert_eq!(normalize_prefix("api/"), "/api");
        assert_eq!(normalize_prefix("/"), "/");
        assert_eq!(normalize_prefix(""), "/");
        assert!(prefix_covers("/api", "/api/x"));
        assert!(prefix_covers("/api", "/api"));
        assert!(!prefix_covers("/api", "/apix"));
        assert!(prefix_covers("/", "/anything"));
    }
}
