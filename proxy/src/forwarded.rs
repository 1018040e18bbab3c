//! Who is on the other end of a connection, whether we believe what it says about the
//! original client (`--trusted-proxies`), and the `X-Forwarded-*` headers we send
//! upstream.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// Peers whose `X-Forwarded-*` headers are believed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Loopback only (`127.0.0.0/8`, `::1/128`): the default.
    pub fn loopback() -> Self {
        TrustedProxies(vec![
            "127.0.0.0/8".parse().expect("literal CIDR"),
            "::1/128".parse().expect("literal CIDR"),
        ])
    }

    /// Trust nobody.
    pub fn none() -> Self {
        TrustedProxies(Vec::new())
    }

    /// Whether `peer` is a trusted proxy. IPv4-mapped IPv6 peers count as IPv4.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}

/// Parse `CIDR,CIDR,...`; a bare address means a single host; empty means nobody.
impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = match part.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => part
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("`{part}` is not a CIDR or IP address"))?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }
}

/// Facts about one accepted connection, computed once per connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// Local port the client connected to.
    pub local_port: u16,
    /// The connection is TLS-terminated here.
    pub tls: bool,
    /// The peer is a trusted proxy.
    pub trusted: bool,
    /// Pre-rendered peer IP (used in every `X-Forwarded-For`).
    pub peer_ip: HeaderValue,
    /// Pre-rendered local port.
    pub local_port_value: HeaderValue,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, tls: bool, trusted: &TrustedProxies) -> Self {
        let ip = peer.ip().to_canonical();
        ConnInfo {
            peer,
            local_port: local.port(),
            tls,
            trusted: trusted.contains(ip),
            peer_ip: HeaderValue::from_str(&ip.to_string())
                .expect("an IP address is a valid header value"),
            local_port_value: HeaderValue::from(local.port()),
        }
    }

    /// Scheme of this hop.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The original client used HTTPS: TLS here, or a trusted proxy says so.
    pub fn forwarded_https(&self, headers: &HeaderMap) -> bool {
        self.trusted
            && headers
                .get(&X_FORWARDED_PROTO)
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    // A chain of proxies may send `https, http`; the first is the client's.
                    v.split(',')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .eq_ignore_ascii_case("https")
                })
                .unwrap_or(false)
    }

    /// The scheme the original client used, as far as we believe.
    pub fn client_scheme(&self, headers: &HeaderMap) -> &'static str {
        if self.tls || self.forwarded_https(headers) {
            "https"
        } else {
            "http"
        }
    }

    /// Rewrite `X-Forwarded-For/Proto/Host/Port` for the upstream request. From a
    /// trusted peer the incoming values are kept (the peer is appended to the `For`
    /// chain); from anyone else they are replaced by what this hop saw.
    pub fn set_forwarded_headers(&self, headers: &mut HeaderMap, host: Option<&HeaderValue>) {
        // Which of the four a trusted peer sent: one walk over the names present
        // instead of a hashed lookup each (nothing from an untrusted peer is kept).
        let (mut has_for, mut has_proto, mut has_host, mut has_port) = (false, false, false, false);
        if self.trusted {
            for name in headers.keys() {
                if *name == X_FORWARDED_FOR {
                    has_for = true;
                } else if *name == X_FORWARDED_PROTO {
                    has_proto = true;
                } else if *name == X_FORWARDED_HOST {
                    has_host = true;
                } else if *name == X_FORWARDED_PORT {
                    has_port = true;
                }
            }
        }
        let for_value = match has_for.then(|| headers.get(&X_FORWARDED_FOR)).flatten() {
            Some(prev) => {
                let mut joined = Vec::with_capacity(prev.len() + 2 + self.peer_ip.len());
                joined.extend_from_slice(prev.as_bytes());
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(self.peer_ip.as_bytes());
                HeaderValue::from_bytes(&joined).unwrap_or_else(|_| self.peer_ip.clone())
            }
            None => self.peer_ip.clone(),
        };
        headers.insert(X_FORWARDED_FOR, for_value);
        if !has_proto {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(self.scheme()));
        }
        if !has_host {
            match host {
                Some(h) => {
                    headers.insert(X_FORWARDED_HOST, h.clone());
                }
                None => {
                    headers.remove(&X_FORWARDED_HOST);
                }
            }
        }
        if !has_port {
            headers.insert(X_FORWARDED_PORT, self.local_port_value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(peer: &str, trusted: bool) -> ConnInfo {
        let t = if trusted {
            TrustedProxies::loopback()
        } else {
            TrustedProxies::none()
        };
        ConnInfo::new(
            peer.parse().unwrap(),
            "127.0.0.1:8000".parse().unwrap(),
            false,
            &t,
        )
    }

    #[test]
    fn cidr_lists_parse_and_match() {
        let t: TrustedProxies = "10.0.0.0/8, 192.168.1.7,::1/128".parse().unwrap();
        assert!(t.contains("10.1.2.3".parse().unwrap()));
        assert!(t.contains("192.168.1.7".parse().unwrap()));
        assert!(!t.contains("192.168.1.8".parse().unwrap()));
        assert!(t.contains("::1".parse().unwrap()));
        assert!("nonsense".parse::<TrustedProxies>().is_err());
        assert_eq!(
            "".parse::<TrustedProxies>().unwrap(),
            TrustedProxies::none()
        );
    }

    #[test]
    fn ipv4_mapped_peers_count_as_ipv4() {
        assert!(TrustedProxies::loopback().contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn trusted_peers_extend_the_forwarded_chain() {
        let c = conn("127.0.0.1:5555", true);
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        h.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
        h.insert(X_FORWARDED_HOST, "api.example.com".parse().unwrap());
        h.insert(X_FORWARDED_PORT, "443".parse().unwrap());
        assert!(c.forwarded_https(&h));
        c.set_forwarded_headers(&mut h, Some(&"internal:8000".parse().unwrap()));
        assert_eq!(h[X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "https");
        assert_eq!(h[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(h[X_FORWARDED_PORT], "443");
    }

    #[test]
    fn untrusted_peers_cannot_spoof_forwarded_headers() {
        let c = conn("127.0.0.1:5555", false);
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, "203.0.113.9".parse().unwrap());
        h.insert(X_FORWARDED_PROTO, "https".parse().unwrap());
        h.insert(X_FORWARDED_PORT, "443".parse().unwrap());
        assert!(!c.forwarded_https(&h));
        c.set_forwarded_headers(&mut h, Some(&"api.example.com".parse().unwrap()));
        assert_eq!(h[X_FORWARDED_FOR], "127.0.0.1");
        assert_eq!(h[X_FORWARDED_PROTO], "http");
        assert_eq!(h[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(h[X_FORWARDED_PORT], "8000");
    }
}
