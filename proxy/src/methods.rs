//! Which methods a request acts as, for scope rules that filter on methods.
//!
//! `HEAD` returns the same resource as `GET`, so a `GET` rule covers it. Many
//! frameworks let a `POST` act as another method (`X-HTTP-Method-Override`,
//! `X-HTTP-Method`, `X-Method-Override`, a `_method` query parameter), so the rule of
//! each method named that way applies too; the caller requires the union of their
//! scopes.

use http::{HeaderMap, HeaderName, Method};

/// Headers frameworks read a method override from.
pub const OVERRIDE_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// The query parameter Rails, Laravel, Symfony and Spring read an override from.
pub const OVERRIDE_PARAM: &str = "_method";

/// The methods (upper-case) a request with `method`, `headers` and raw `query` may
/// act as upstream, the request's own first.
pub fn effective_methods(method: &Method, headers: &HeaderMap, query: Option<&str>) -> Vec<String> {
    let mut out = vec![method.as_str().to_ascii_uppercase()];
    let add = |out: &mut Vec<String>, m: &str| {
        let m = m.trim().to_ascii_uppercase();
        if !m.is_empty() && !out.contains(&m) {
            out.push(m);
        }
    };
    for name in &OVERRIDE_HEADERS {
        for value in headers.get_all(name) {
            if let Ok(v) = value.to_str() {
                v.split(',').for_each(|m| add(&mut out, m));
            }
        }
    }
    if let Some(q) = query.filter(|q| q.contains(OVERRIDE_PARAM)) {
        form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == OVERRIDE_PARAM)
            .for_each(|(_, v)| add(&mut out, &v));
    }
    if out.iter().any(|m| m == "HEAD") {
        add(&mut out, "GET");
    }
    out
}

/// Whether a rule listing `rule_methods` (empty = every method) applies to a request
/// acting as `method` (upper-case).
pub fn rule_applies(rule_methods: &[String], method: &str) -> bool {
    rule_methods.is_empty() || rule_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(method: Method, headers: &[(&str, &str)], query: Option<&str>) -> Vec<String> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        effective_methods(&method, &h, query)
    }

    #[test]
    fn a_plain_request_acts_as_its_own_method() {
        assert_eq!(methods(Method::POST, &[], Some("a=1")), ["POST"]);
    }

    #[test]
    fn head_also_acts_as_get() {
        assert_eq!(methods(Method::HEAD, &[], None), ["HEAD", "GET"]);
    }

    #[test]
    fn every_override_spelling_is_counted() {
        assert_eq!(
            methods(
                Method::POST,
                &[
                    ("x-http-method-override", "delete"),
                    ("X-HTTP-Method", "PUT, patch")
                ],
                Some("_method=head&x=1")
            ),
            ["POST", "DELETE", "PUT", "PATCH", "HEAD", "GET"]
        );
        assert_eq!(
            methods(Method::POST, &[("x-method-override", "DELETE")], None),
            ["POST", "DELETE"]
        );
    }

    #[test]
    fn rules_without_methods_apply_to_all() {
        assert!(rule_applies(&[], "DELETE"));
        assert!(rule_applies(&["get".into()], "GET"));
        assert!(!rule_applies(&["GET".into()], "POST"));
    }
}
