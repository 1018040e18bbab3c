//! The two browser cookies of a login route: the session cookie and the short-lived
//! sign-in cookie that ties the provider's callback to the browser that started it
//! (login CSRF, RFC 9700 §4.7.1).
//!
//! Both hold only a random value, encrypted and authenticated under the login key
//! ([`crate::seal::LoginKey::seal_cookie`]); the state itself lives in the token store.
//! Both are `__Host-` cookies (`Secure`, `Path=/`, no `Domain`: only this exact host
//! can set or read them), `HttpOnly` and `SameSite=Lax` (sent on the top-level
//! navigation back from the provider, never on cross-site POSTs). The name carries a
//! short hash of the route id, so two login routes on one host keep separate sessions.

use http::HeaderMap;

use crate::seal::LoginKey;
use crate::store::Digest;

/// Which cookie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Jar {
    Session,
    SignIn,
}

/// The cookie name for `route_id`.
pub fn name(jar: Jar, route_id: &str) -> String {
    let tag = &Digest::of(route_id.as_bytes()).to_hex()[..12];
    match jar {
        Jar::Session => format!("__Host-gatehouse-{tag}"),
        Jar::SignIn => format!("__Host-gatehouse-signin-{tag}"),
    }
}

/// The decrypted value of cookie `jar` for `route_id`, if present and authentic.
pub fn read(headers: &HeaderMap, key: &LoginKey, jar: Jar, route_id: &str) -> Option<String> {
    let wanted = name(jar, route_id);
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == wanted)
        .find_map(|(_, v)| key.open_cookie(v.trim_matches('"'), &wanted))
        .and_then(|raw| String::from_utf8(raw).ok())
}

/// `Set-Cookie` value storing `value` for `max_age` seconds.
pub fn set(key: &LoginKey, jar: Jar, route_id: &str, value: &str, max_age: u64) -> String {
    let name = name(jar, route_id);
    let sealed = key.seal_cookie(value.as_bytes(), &name);
    format!("{name}={sealed}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax")
}

/// `Set-Cookie` value deleting the cookie.
pub fn clear(jar: Jar, route_id: &str) -> String {
    let name = name(jar, route_id);
    format!("{name}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn a_cookie_set_for_one_route_is_read_back_only_there() {
        let key = LoginKey::from_bytes(&[7; 32]).unwrap();
        let set_cookie = set(&key, Jar::Session, "default/app", "sid-1", 60);
        assert!(set_cookie.starts_with("__Host-gatehouse-"));
        assert!(set_cookie.contains("; Secure; HttpOnly; SameSite=Lax"));
        assert!(!set_cookie.contains("sid-1"));
        let pair = set_cookie.split(';').next().unwrap().to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        assert_eq!(
            read(&headers, &key, Jar::Session, "default/app").as_deref(),
            Some("sid-1")
        );
        assert_eq!(read(&headers, &key, Jar::Session, "default/other"), None);
        assert_eq!(read(&headers, &key, Jar::SignIn, "default/app"), None);
        let other_key = LoginKey::from_bytes(&[8; 32]).unwrap();
        assert_eq!(
            read(&headers, &other_key, Jar::Session, "default/app"),
            None
        );
    }
}
