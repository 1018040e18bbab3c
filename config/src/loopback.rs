//! Which URL hosts are this machine: the one place plain `http` is allowed for redirect
//! URIs and provider URLs, so the controller and the proxy draw the line alike.

/// Whether `u`'s host is `localhost` or a loopback address (127.0.0.0/8, `::1`).
pub fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_and_loopback_addresses_only() {
        for yes in [
            "http://localhost/cb",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1/",
            "http://127.9.9.9:1/",
            "http://[::1]/",
        ] {
            assert!(is_loopback_host(&url::Url::parse(yes).unwrap()), "{yes}");
        }
        for no in [
            "http://localhost.example.com/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "http://example.com/",
            "com.example.app:/cb",
        ] {
            assert!(!is_loopback_host(&url::Url::parse(no).unwrap()), "{no}");
        }
    }
}
