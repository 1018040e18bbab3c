//! Request parameters of the OAuth2 endpoints, read as Kong reads them: the query
//! string merged with the body, where the body is a form
//! (`application/x-www-form-urlencoded`) or a JSON object (`application/json`).
//! A body value wins over a query value of the same name.
//!
//! Malformed input never panics: it becomes an `invalid_request` error. A name
//! repeated within one source is refused (RFC 6749 §3.1: parameters "MUST NOT be
//! included more than once"). JSON values that are not strings are remembered as
//! such so each endpoint can answer "… must be a string" as Kong does.

use std::collections::HashMap;

use super::error::{OAuthError, Result};

/// One parameter value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    /// Several values of a [`REPEATABLE`] parameter.
    Many(Vec<String>),
    /// A JSON number, boolean, array or object.
    NotString,
}

/// The merged parameters of one request.
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: HashMap<String, Value>,
}

/// Secrets accepted only from the body (or, for client secrets, HTTP Basic).
const BODY_ONLY: [&str; 2] = ["client_secret", "provision_key"];

/// Parameters that may be sent more than once (RFC 8707 §2: several `resource`s).
const REPEATABLE: [&str; 1] = ["resource"];

/// Media types we read bodies as.
enum BodyKind {
    Form,
    Json,
}

fn body_kind(content_type: Option<&str>) -> Option<BodyKind> {
    let ct = content_type?;
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        "application/json" => Some(BodyKind::Json),
        _ if essence.ends_with("+json") => Some(BodyKind::Json),
        _ => None,
    }
}

impl Params {
    /// Parse and merge the query string and the body.
    pub fn parse(query: Option<&str>, content_type: Option<&str>, body: &[u8]) -> Result<Self> {
        let mut params = Params::default();
        if let Some(q) = query {
            let from_query = parse_form(q.as_bytes())?;
            // Query strings end up in access logs, browser history and Referer
            // headers: a secret sent there is refused, not used.
            if let Some(name) = BODY_ONLY.iter().find(|n| from_query.contains_key(**n)) {
                return Err(OAuthError::invalid_request(format!(
                    "{name} must be sent in the request body, not in the query string"
                )));
            }
            params.merge(from_query);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        let from_body = match body_kind(content_type) {
            Some(BodyKind::Json) => parse_json(body)?,
            Some(BodyKind::Form) => parse_form(body)?,
            // curl-style clients sometimes omit the header; a form is the only body
            // RFC 6749 defines, so try that.
            None if content_type.is_none() => parse_form(body)?,
            None => {
                return Err(OAuthError::invalid_request(
                    "Unsupported Content-Type: send application/x-www-form-urlencoded or application/json",
                ))
            }
        };
        params.merge(from_body);
        Ok(params)
    }

    fn merge(&mut self, other: HashMap<String, Value>) {
        self.values.extend(other);
    }

    /// A string parameter; empty or whitespace-only values count as absent.
    /// A non-string JSON value is an `invalid_request`.
    pub fn get(&self, name: &str) -> Result<Option<&str>> {
        match self.values.get(name) {
            None => Ok(None),
            Some(Value::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.as_str())),
            Some(Value::NotString) => Err(OAuthError::invalid_request(format!(
                "{name} must be a string"
            ))),
            Some(Value::Many(_)) => Err(OAuthError::invalid_request(format!(
                "{name} must not be repeated"
            ))),
        }
    }

    /// Every value of a [`REPEATABLE`] parameter, empty ones left out.
    pub fn all(&self, name: &str) -> Result<Vec<&str>> {
        match self.values.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Str(s)) if s.trim().is_empty() => Ok(Vec::new()),
            Some(Value::Str(s)) => Ok(vec![s.as_str()]),
            Some(Value::Many(v)) => Ok(v
                .iter()
                .map(String::as_str)
                .filter(|s| !s.trim().is_empty())
                .collect()),
            Some(Value::NotString) => Err(OAuthError::invalid_request(format!(
                "{name} must be a string or an array of strings"
            ))),
        }
    }

    /// The `authenticated_userid` the login app vouches for. It is sent upstream in
    /// `X-Authenticated-Userid`, so a value that cannot be a header value (a control
    /// character) is refused here rather than issued and silently dropped later.
    pub fn authenticated_userid(&self) -> Result<&str> {
        let user = self
            .get("authenticated_userid")?
            .ok_or_else(OAuthError::invalid_authenticated_userid)?;
        if user.chars().any(char::is_control) {
            return Err(OAuthError::invalid_request(
                "authenticated_userid must not contain control characters",
            ));
        }
        Ok(user)
    }

    /// Whether the parameter was sent at all (even empty or as a non-string).
    pub fn is_present(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// The raw string value, including empty strings; `None` when absent or not a
    /// string.
    pub fn raw(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }
}

fn parse_form(bytes: &[u8]) -> Result<HashMap<String, Value>> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if k.is_empty() {
            continue;
        }
        if REPEATABLE.contains(&&*k) {
            match out.entry(k.to_string()) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    if let Value::Str(first) = e.get() {
                        let first = first.clone();
                        e.insert(Value::Many(vec![first]));
                    }
                    if let Value::Many(all) = e.get_mut() {
                        all.push(v.into_owned());
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(Value::Str(v.into_owned()));
                }
            }
            continue;
        }
        if out
            .insert(k.to_string(), Value::Str(v.into_owned()))
            .is_some()
        {
            return Err(OAuthError::invalid_request(format!(
                "{k} must not be repeated"
            )));
        }
    }
    Ok(out)
}

fn parse_json(bytes: &[u8]) -> Result<HashMap<String, Value>> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| OAuthError::invalid_request("The request body is not valid JSON"))?;
    let serde_json::Value::Object(map) = value else {
        return Err(OAuthError::invalid_request(
            "The JSON request body must be an object",
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            // `null` is the JSON way of not sending a parameter.
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, Value::Str(s))),
            serde_json::Value::Array(items) if REPEATABLE.contains(&k.as_str()) => {
                let strings: Option<Vec<String>> = items
                    .into_iter()
                    .map(|i| match i {
                        serde_json::Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                Some((k, strings.map(Value::Many).unwrap_or(Value::NotString)))
            }
            _ => Some((k, Value::NotString)),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");
    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    #[test]
    fn resource_may_repeat_in_a_form_and_be_an_array_in_json() {
        let p = Params::parse(
            Some("resource=https%3A%2F%2Fa.example%2Fmcp"),
            FORM,
            b"resource=https%3A%2F%2Fa.example%2Fx&resource=https%3A%2F%2Fa.example%2Fy",
        )
        .unwrap();
        // The body wins over the query, as for every parameter.
        assert_eq!(
            p.all("resource").unwrap(),
            ["https://a.example/x", "https://a.example/y"]
        );
        assert!(p.get("resource").is_err());
        let p = Params::parse(None, JSON, br#"{"resource":["a","b"]}"#).unwrap();
        assert_eq!(p.all("resource").unwrap(), ["a", "b"]);
        let p = Params::parse(None, JSON, br#"{"resource":[1]}"#).unwrap();
        assert!(p.all("resource").is_err());
        let p = Params::parse(None, FORM, b"state=1&state=2");
        assert!(p.is_err(), "other parameters still must not repeat");
    }

    #[test]
    fn query_and_form_body_are_merged_and_the_body_wins() {
        let p = Params::parse(
            Some("client_id=q&state=from%20query"),
            FORM,
            b"client_id=b&scope=a+b",
        )
        .unwrap();
        assert_eq!(p.get("client_id").unwrap(), Some("b"));
        assert_eq!(p.get("state").unwrap(), Some("from query"));
        assert_eq!(p.get("scope").unwrap(), Some("a b"));
        assert_eq!(p.get("missing").unwrap(), None);
    }

    #[test]
    fn a_json_body_is_read_and_non_strings_are_refused_on_access() {
        let p = Params::parse(
            None,
            JSON,
            br#"{"grant_type":"password","scope":["email"],"state":null,"n":12}"#,
        )
        .unwrap();
        assert_eq!(p.get("grant_type").unwrap(), Some("password"));
        let err = p.get("scope").unwrap_err();
        assert_eq!(err.description, "scope must be a string");
        assert_eq!(p.get("state").unwrap(), None);
        assert!(p.is_present("n"));
        assert_eq!(p.raw("n"), None);
    }

    #[test]
    fn empty_values_count_as_absent_but_are_still_present() {
        let p = Params::parse(Some("code_verifier=&state=%20"), None, b"").unwrap();
        assert_eq!(p.get("code_verifier").unwrap(), None);
        assert!(p.is_present("code_verifier"));
        assert_eq!(p.raw("code_verifier"), Some(""));
        assert_eq!(p.get("state").unwrap(), None);
    }

    #[test]
    fn malformed_bodies_are_invalid_requests() {
        for (ct, body) in [
            (JSON, &b"{not json"[..]),
            (JSON, &b"[1,2]"[..]),
            (Some("multipart/form-data; boundary=x"), &b"--x"[..]),
        ] {
            let err = Params::parse(None, ct, body).unwrap_err();
            assert_eq!(err.code, super::super::error::ErrorCode::InvalidRequest);
        }
    }

    #[test]
    fn secrets_in_the_query_string_are_refused() {
        for q in ["client_secret=s", "provision_key=k&a=1"] {
            let err = Params::parse(Some(q), FORM, b"client_id=c").unwrap_err();
            assert_eq!(
                err.code,
                super::super::error::ErrorCode::InvalidRequest,
                "{q}"
            );
        }
        let p = Params::parse(None, FORM, b"client_secret=s&provision_key=k").unwrap();
        assert_eq!(p.get("client_secret").unwrap(), Some("s"));
    }

    #[test]
    fn an_authenticated_userid_with_control_characters_is_refused() {
        for body in [
            &b"authenticated_userid=a%0Db"[..],
            b"authenticated_userid=a%00",
            b"authenticated_userid=%7F",
        ] {
            let p = Params::parse(None, FORM, body).unwrap();
            assert_eq!(
                p.authenticated_userid().unwrap_err().code,
                super::super::error::ErrorCode::InvalidRequest
            );
        }
        let p = Params::parse(None, FORM, b"authenticated_userid=Cl%C3%A1rk+Kent").unwrap();
        assert_eq!(p.authenticated_userid().unwrap(), "Clárk Kent");
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let err = Params::parse(Some("scope=a&scope=b"), None, b"").unwrap_err();
        assert_eq!(err.description, "scope must not be repeated");
    }

    #[test]
    fn a_body_without_content_type_is_read_as_a_form() {
        let p = Params::parse(None, None, b"grant_type=client_credentials").unwrap();
        assert_eq!(p.get("grant_type").unwrap(), Some("client_credentials"));
    }

    #[test]
    fn invalid_utf8_and_odd_encodings_do_not_panic() {
        let p = Params::parse(Some("a=%ff%fe&b=%zz&=x&c"), FORM, b"\xff\xfe=\xfd").unwrap();
        assert!(p.get("a").unwrap().is_some());
        assert_eq!(p.get("b").unwrap(), Some("%zz"));
        assert_eq!(p.get("c").unwrap(), None);
    }
}
