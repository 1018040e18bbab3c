//! The request path policy, the one home of path normalisation: one function turns the request target's path into the
//! path that routing and scope rules check *and* the path forwarded upstream, or
//! refuses it. Upstreams disagree on what some spellings mean (a WSGI server decodes
//! `%2F` into a separator, a servlet container drops `;` parameters before resolving
//! `..`, Windows servers ignore trailing dots), so the proxy either resolves a spelling
//! the way every upstream would or refuses it with `400`:
//!
//! - `%XX` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; other
//!   escapes stay encoded with upper-case hex. A `%` not followed by two hex digits is
//!   refused.
//! - Control characters (raw or `%00`–`%1F`, `%7F`), backslashes (raw or `%5C`), and
//!   segments ending in `.` or an encoded space (`/admin./`, `/admin%20/`) are refused.
//! - `;` starts a segment's parameters (RFC 3986 §3.3): `/admin;x=1/users` is matched as
//!   `/admin/users` and forwarded with its parameters. A segment whose name (the part
//!   before `;`) is empty, `.` or `..` is resolved like one without parameters, so
//!   `/x/..;/admin` is `/admin` — matched *and* forwarded.
//! - `.`/`..` segments are resolved (RFC 3986 §5.2.4) and empty segments merged.
//! - An encoded slash (`%2F`) stays inside its segment and is reported in
//!   [`NormalPath::encoded_slash`]; the caller refuses it unless the matched route opts
//!   in. Even then a segment hiding a dot segment or an empty one behind `%2F`
//!   (`..%2Fadmin`, `a%2F%2Fb`) is refused.
//!
//! The common case (an already canonical path) borrows and allocates nothing.
//!
//! The proxy's router and scope rules and the controller's translate (route conflicts)
//! all use [`normalize_path`] / [`normalize_prefix`], so they agree on what "the same
//! path" means.

use std::borrow::Cow;
use std::fmt;

/// A request path the policy accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalPath<'a> {
    forward: Cow<'a, str>,
    /// `forward` without `;` parameters, when it has any.
    matched: Option<String>,
    encoded_slash: bool,
}

impl<'a> NormalPath<'a> {
    /// The path sent upstream: canonical, `;` parameters kept.
    pub fn forward(&self) -> &str {
        &self.forward
    }

    /// The path routes and scope rules are matched against: [`forward`](Self::forward)
    /// with every segment's `;` parameters removed.
    pub fn matched(&self) -> &str {
        self.matched.as_deref().unwrap_or(&self.forward)
    }

    /// Whether a segment holds an encoded slash (`%2F`).
    pub fn encoded_slash(&self) -> bool {
        self.encoded_slash
    }

    /// The forwarded path after its first `segments` segments (what `strip_path`
    /// sends upstream after a prefix of that many segments), always starting with `/`.
    /// Segments of [`forward`](Self::forward) and [`matched`](Self::matched) correspond
    /// one to one.
    pub fn forward_after(&self, segments: usize) -> &str {
        let path: &str = &self.forward;
        let mut start = 0;
        for _ in 0..segments {
            match path[start + 1..].find('/') {
                Some(i) => start += 1 + i,
                None => return "/",
            }
        }
        &path[start..]
    }
}

/// Why a path is refused (answered with `400`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// A control character, raw or encoded.
    ControlCharacter,
    /// A backslash, raw or `%5C`.
    Backslash,
    /// A segment ending in `.` or an encoded space.
    TrailingDotOrSpace,
    /// `.`, `..` or an empty segment hidden behind an encoded slash.
    HiddenDotSegment,
    /// An encoded slash on a route that does not allow them (the router's caller
    /// raises this; [`normalize_path`] only reports [`NormalPath::encoded_slash`]).
    EncodedSlash,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "the path does not start with /",
            PathError::BadEscape => "a % is not followed by two hex digits",
            PathError::ControlCharacter => "the path holds a control character",
            PathError::Backslash => "the path holds a backslash",
            PathError::TrailingDotOrSpace => "a path segment ends in a dot or a space",
            PathError::HiddenDotSegment => "an encoded slash hides a dot or empty segment",
            PathError::EncodedSlash => "the path holds an encoded slash (%2F)",
        })
    }
}

impl std::error::Error for PathError {}

/// Apply the [path policy](self) to the path of a request target (no query).
pub fn normalize_path(raw: &str) -> Result<NormalPath<'_>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    if is_canonical(raw) {
        return Ok(NormalPath {
            forward: Cow::Borrowed(raw),
            matched: None,
            encoded_slash: false,
        });
    }
    let mut forward: Vec<String> = Vec::new();
    let mut matched: Vec<usize> = Vec::new(); // length of each segment's name
    let mut trailing_slash = false;
    let mut encoded_slash = false;
    for raw_segment in raw[1..].split('/') {
        let segment = decode_segment(raw_segment)?;
        let name_len = segment.find(';').unwrap_or(segment.len());
        let name = &segment[..name_len];
        trailing_slash = true;
        match name {
            "" | "." => continue,
            ".." => {
                forward.pop();
                matched.pop();
                continue;
            }
            _ => {}
        }
        trailing_slash = false;
        if name.ends_with(['.', ' ']) || name.ends_with("%20") {
            return Err(PathError::TrailingDotOrSpace);
        }
        if segment.contains("%2F") {
            encoded_slash = true;
            let hidden = segment.split("%2F").any(|piece| {
                let piece_name = piece.split(';').next().unwrap_or("");
                matches!(piece_name, "" | "." | "..")
            });
            if hidden {
                return Err(PathError::HiddenDotSegment);
            }
        }
        matched.push(name_len);
        forward.push(segment);
    }
    let mut out = String::with_capacity(raw.len() + 1);
    for segment in &forward {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing_slash && !forward.is_empty()) {
        out.push('/');
    }
    let has_params = forward.iter().zip(&matched).any(|(s, &n)| s.len() != n);
    let matched = has_params.then(|| {
        let mut m = String::with_capacity(out.len());
        for (segment, &n) in forward.iter().zip(&matched) {
            m.push('/');
            m.push_str(&segment[..n]);
        }
        if m.is_empty() || out.ends_with('/') {
            m.push('/');
        }
        m
    });
    Ok(NormalPath {
        forward: Cow::Owned(out),
        matched,
        encoded_slash,
    })
}

/// True when no rule of the policy could change or refuse `path` (checked byte by
/// byte once; most real paths take this exit).
fn is_canonical(path: &str) -> bool {
    let bytes = path.as_bytes();
    let mut prev = b'/';
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'%' | b';' | b'\\' => return false,
            _ if b <= b' ' || b == 0x7f => return false,
            b'/' if prev == b'/' && i > 0 => return false,
            b'/' if prev == b'.' => return false,
            b'.' if prev == b'/' => return false,
            _ => {}
        }
        prev = b;
    }
    prev != b'.'
}

/// One raw segment with escapes of unreserved characters decoded and the others
/// upper-cased; refuses what no upstream agrees on.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).and_then(|&c| hex_value(c)),
                    bytes.get(i + 2).and_then(|&c| hex_value(c)),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let c = h * 16 + l;
                if c < 0x20 || c == 0x7f {
                    return Err(PathError::ControlCharacter);
                }
                if c == b'\\' {
                    return Err(PathError::Backslash);
                }
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c);
                } else {
                    out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            _ if b < 0x20 || b == 0x7f => return Err(PathError::ControlCharacter),
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Only ASCII was replaced by ASCII, so a valid str stays valid UTF-8.
    Ok(String::from_utf8(out).expect("decoding ASCII escapes keeps a str valid UTF-8"))
}

const HEX: [u8; 16] = *b"0123456789ABCDEF";

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The path with each encoded slash read as a separator: what an upstream that
/// decodes `%2F` acts on. Scope rules of a route that lets `%2F` through are checked
/// against this view too.
pub fn slashes_decoded(path: &str) -> Cow<'_, str> {
    if path.contains("%2F") {
        Cow::Owned(path.replace("%2F", "/"))
    } else {
        Cow::Borrowed(path)
    }
}

/// Canonical form of a configured prefix: leading `/`, no trailing `/` (except root),
/// normalized like request paths (the [`matched`](NormalPath::matched) form) so both
/// sides compare equal. A prefix the policy refuses can never match a request (such
/// requests are refused before routing), so it is kept as written.
pub fn normalize_prefix(prefix: &str) -> String {
    let with_slash: Cow<str> = if prefix.starts_with('/') {
        Cow::Borrowed(prefix)
    } else {
        Cow::Owned(format!("/{prefix}"))
    };
    let normalized = match normalize_path(&with_slash) {
        Ok(p) => p.matched().to_owned(),
        Err(_) => with_slash.into_owned(),
    };
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

    fn fwd(raw: &str) -> String {
        normalize_path(raw).unwrap().forward().to_owned()
    }

    fn matched(raw: &str) -> String {
        normalize_path(raw).unwrap().matched().to_owned()
    }

    #[test]
    fn canonical_paths_are_borrowed_untouched() {
        for p in ["/", "/a/b", "/a/b/", "/v1.2/x", "/a-b_c~d", "/x.y/z"] {
            let n = normalize_path(p).unwrap();
            assert!(matches!(n.forward, Cow::Borrowed(_)), "{p}");
            assert_eq!((n.forward(), n.matched()), (p, p));
        }
    }

    #[test]
    fn dot_segments_and_empty_segments_are_resolved() {
        assert_eq!(fwd("/public/../private"), "/private");
        assert_eq!(fwd("/public/%2e%2e/private"), "/private");
        assert_eq!(fwd("/public/%2E%2E/private"), "/private");
        assert_eq!(fwd("//a///b/"), "/a/b/");
        assert_eq!(fwd("/a/./b/."), "/a/b/");
        assert_eq!(fwd("/a/b/.."), "/a/");
        assert_eq!(fwd("/../.."), "/");
        assert_eq!(fwd("/."), "/");
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(fwd("/%7euser/%41"), "/~user/A");
        assert_eq!(fwd("/caf%c3%a9"), "/caf%C3%A9");
        assert_eq!(fwd("/a%3bb"), "/a%3Bb");
        assert_eq!(matched("/a%3bb"), "/a%3Bb");
    }

    #[test]
    fn parameters_are_kept_for_the_upstream_and_ignored_for_matching() {
        let n = normalize_path("/admin;x=1/users").unwrap();
        assert_eq!(n.forward(), "/admin;x=1/users");
        assert_eq!(n.matched(), "/admin/users");
        assert_eq!(matched("/admin;/users/"), "/admin/users/");
        assert_eq!(fwd("/x/..;/admin"), "/admin");
        assert_eq!(fwd("/x/%2e%2e;p=1/admin"), "/admin");
        assert_eq!(fwd("/x/.;/../admin"), "/admin");
        assert_eq!(fwd("/;x/admin"), "/admin");
        assert_eq!(fwd("/a/b/..;x"), "/a/");
        assert_eq!(matched("/a;jsessionid=1"), "/a");
    }

    #[test]
    fn spellings_upstreams_disagree_on_are_refused() {
        use PathError::*;
        for (raw, error) in [
            ("a/b", NotAbsolute),
            ("*", NotAbsolute),
            ("/a%zz", BadEscape),
            ("/a%2", BadEscape),
            ("/a%", BadEscape),
            ("/a%00", ControlCharacter),
            ("/a%09b", ControlCharacter),
            ("/a%0A", ControlCharacter),
            ("/a%7f", ControlCharacter),
            ("/a\tb", ControlCharacter),
            ("/a\\b", Backslash),
            ("/a%5Cb", Backslash),
            ("/a%5cb", Backslash),
            ("/admin./x", TrailingDotOrSpace),
            ("/admin%2e/x", TrailingDotOrSpace),
            ("/admin.", TrailingDotOrSpace),
            ("/admin...;x/y", TrailingDotOrSpace),
            ("/admin%20/x", TrailingDotOrSpace),
            ("/x/..%2Fadmin", HiddenDotSegment),
            ("/x%2F..%2F..%2Fadmin", HiddenDotSegment),
            ("/a%2F%2Fb", HiddenDotSegment),
            ("/a%2F", HiddenDotSegment),
            ("/a;p%2F..%2F..", HiddenDotSegment),
        ] {
            assert_eq!(normalize_path(raw), Err(error), "{raw}");
        }
    }

    #[test]
    fn encoded_slashes_stay_inside_their_segment_and_are_reported() {
        let n = normalize_path("/api/group%2fname/x").unwrap();
        assert_eq!(n.forward(), "/api/group%2Fname/x");
        assert!(n.encoded_slash());
        assert_eq!(slashes_decoded(n.matched()), "/api/group/name/x");
        assert!(!normalize_path("/api/x").unwrap().encoded_slash());
    }

    #[test]
    fn forward_after_skips_whole_segments_with_their_parameters() {
        let n = normalize_path("/api;v=1/x;y/z").unwrap();
        assert_eq!(n.matched(), "/api/x/z");
        assert_eq!(n.forward_after(0), "/api;v=1/x;y/z");
        assert_eq!(n.forward_after(1), "/x;y/z");
        assert_eq!(n.forward_after(2), "/z");
        assert_eq!(n.forward_after(3), "/");
        let n = normalize_path("/api/").unwrap();
        assert_eq!(n.forward_after(1), "/");
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
        assert_eq!(normalize_prefix("/a;x/b/"), "/a/b");
        assert_eq!(normalize_prefix("/a/../b"), "/b");
    }
}
