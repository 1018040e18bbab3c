//! Redirect URI rules, in one place: exact matching, the loopback exception of
//! RFC 8252 §7.3 (OAuth 2.1), and what a client nobody vetted may register.

use url::{Host, Url};

/// Longest redirect URI a client that registered itself may use.
const MAX_LEN: usize = 2048;

/// Whether `presented` matches `registered`: byte for byte, or — with
/// `loopback_any_port` (OAuth 2.1 routes and unvetted clients) — differing only in the
/// port of an `http` loopback IP literal (`127.0.0.1`, `[::1]`), as native apps
/// listen on a port the system picks (RFC 8252 §7.3).
pub fn matches(registered: &str, presented: &str, loopback_any_port: bool) -> bool {
    if registered == presented {
        return true;
    }
    if !loopback_any_port {
        return false;
    }
    let (Ok(mut r), Ok(mut p)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    if !is_loopback_ip(&r) || !is_loopback_ip(&p) {
        return false;
    }
    // Compare everything but the port, as the client wrote it otherwise.
    let (Ok(()), Ok(())) = (r.set_port(None), p.set_port(None)) else {
        return false;
    };
    r.as_str() == p.as_str()
}

/// The registered URI a presented one matches, if any.
pub fn find<'r>(
    registered: &'r [String],
    presented: &str,
    loopback_any_port: bool,
) -> Option<&'r String> {
    registered
        .iter()
        .find(|r| matches(r, presented, loopback_any_port))
}

fn is_loopback_ip(u: &Url) -> bool {
    u.scheme() == "http"
        && match u.host() {
            Some(Host::Ipv4(ip)) => ip.is_loopback(),
            Some(Host::Ipv6(ip)) => ip.is_loopback(),
            _ => false,
        }
}

/// Whether a client that registered itself (or a metadata document) may use `uri`:
/// an absolute URI without fragment or credentials, and `https`, `http` on a loopback
/// host, or a private-use scheme in reverse-domain form (`com.example.app:/cb`,
/// RFC 8252 §7.1). Plain `http` elsewhere would hand codes to the network.
pub fn check_unvetted(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_LEN {
        return Err(format!("redirect URIs are limited to {MAX_LEN} characters"));
    }
    let u = Url::parse(uri).map_err(|_| format!("{uri} is not an absolute URI"))?;
    if u.fragment().is_some() {
        return Err(format!("{uri} has a fragment"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("{uri} carries credentials"));
    }
    match u.scheme() {
        "https" if u.host().is_some() => Ok(()),
        "http" if gatehouse_config::loopback::is_loopback_host(&u) => Ok(()),
        "http" | "https" => Err(format!(
            "{uri}: plain http is allowed for loopback addresses only"
        )),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => {
            Err(format!("{uri}: this scheme cannot be a redirect URI"))
        }
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "{uri}: a private-use scheme must be a reverse domain name (com.example.app)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_exact_unless_the_loopback_rule_applies() {
        let reg = "http://127.0.0.1/callback";
        assert!(matches(reg, reg, false));
        assert!(!matches(reg, "http://127.0.0.1:53100/callback", false));
        assert!(matches(reg, "http://127.0.0.1:53100/callback", true));
        assert!(matches(
            "http://[::1]:1/cb?x=1",
            "http://[::1]:2/cb?x=1",
            true
        ));
        for other in [
            "http://127.0.0.1:53100/callback2",
            "http://127.0.0.2.nip.io:53100/callback",
            "https://127.0.0.1:53100/callback",
            "http://localhost:53100/callback",
            "http://127.0.0.1:53100/callback?x=1",
        ] {
            assert!(!matches(reg, other, true), "{other}");
        }
        // Not loopback: the port is part of the exact match.
        assert!(!matches(
            "https://app.example/cb",
            "https://app.example:444/cb",
            true
        ));
    }

    #[test]
    fn unvetted_clients_may_use_https_loopback_http_and_reverse_domain_schemes() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:3000/callback",
            "http://localhost:3000/callback",
            "http://[::1]/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_unvetted(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "https://user:pw@app.example/cb",
            "javascript:alert(1)",
            "myapp:/cb",
            "/relative",
            "",
        ] {
            assert!(check_unvetted(bad).is_err(), "{bad}");
        }
    }
}
