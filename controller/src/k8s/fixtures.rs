//! Test fixtures: a mock Kubernetes API behind a real [`kube::Client`]
//! (`tower_test::mock::pair`, as in kube-rs/controller-rs), and a verifier that
//! answers the calls a test expects, asserting method, path, query, content type and
//! body of each.

use std::collections::HashMap;

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// The test's end of the mock API.
pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client whose every request goes to the returned [`ApiServer`].
pub fn client() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer { handle })
}

/// Assertions on a request body.
type BodyCheck = Box<dyn FnOnce(&Value) + Send>;

/// One expected API call and its answer.
pub struct Call {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    content_type: Option<String>,
    check: Option<BodyCheck>,
    status: StatusCode,
    response: Value,
}

impl Call {
    /// Expect `method` on `path` (without query).
    pub fn new(method: Method, path: &str) -> Self {
        Call {
            method,
            path: path.to_owned(),
            query: Vec::new(),
            content_type: None,
            check: None,
            status: StatusCode::OK,
            response: json!({}),
        }
    }

    /// The query must contain `key=value`.
    pub fn query(mut self, key: &str, value: &str) -> Self {
        self.query.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The `Content-Type` must be `ct`.
    pub fn content_type(mut self, ct: &str) -> Self {
        self.content_type = Some(ct.to_owned());
        self
    }

    /// Assertions on the JSON body (`Value::Null` when there is none).
    pub fn body(mut self, check: impl FnOnce(&Value) + Send + 'static) -> Self {
        self.check = Some(Box::new(check));
        self
    }

    /// Answer with `status` and `body`.
    pub fn respond(mut self, status: u16, body: Value) -> Self {
        self.status = StatusCode::from_u16(status).expect("a valid status code");
        self.response = body;
        self
    }

    /// Answer with a Kubernetes `Status` failure.
    pub fn fail(self, code: u16, reason: &str) -> Self {
        self.respond(
            code,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": format!("mock: {reason}"),
                "reason": reason, "code": code
            }),
        )
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method == *method && self.path == path
    }
}

/// The mock API server side.
pub struct ApiServer {
    handle: Handle,
}

impl ApiServer {
    /// Serve `calls` in this order, then stop. Panics (failing the test) on any
    /// mismatch.
    pub fn serve_in_order(mut self, calls: Vec<Call>) -> tokio::task::JoinHandle<ApiServer> {
        tokio::spawn(async move {
            for call in calls {
                self.answer(|method, path| call.matches(method, path).then_some(call))
                    .await;
            }
            self
        })
    }

    /// Serve `calls` in any order (for concurrent writes), then stop.
    pub fn serve_any_order(mut self, mut calls: Vec<Call>) -> tokio::task::JoinHandle<ApiServer> {
        tokio::spawn(async move {
            while !calls.is_empty() {
                self.answer(|method, path| {
                    let i = calls.iter().position(|c| c.matches(method, path))?;
                    Some(calls.remove(i))
                })
                .await;
            }
            self
        })
    }

    async fn answer(&mut self, pick: impl FnOnce(&Method, &str) -> Option<Call>) {
        let (request, send) = self
            .handle
            .next_request()
            .await
            .expect("the client made the expected call");
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let Some(call) = pick(&parts.method, &path) else {
            panic!("unexpected call {} {}", parts.method, parts.uri);
        };
        let query: HashMap<String, String> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        for (k, v) in &call.query {
            assert_eq!(
                query.get(k),
                Some(v),
                "query parameter {k} of {} {}",
                parts.method,
                parts.uri
            );
        }
        if let Some(ct) = &call.content_type {
            let got = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok());
            assert_eq!(got, Some(ct.as_str()), "content type of {}", parts.uri);
        }
        let bytes = body.collect_bytes().await.expect("a readable request body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("a JSON request body")
        };
        if let Some(check) = call.check {
            check(&value);
        }
        let response = Response::builder()
            .status(call.status)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                serde_json::to_vec(&call.response).expect("JSON"),
            ))
            .expect("a valid response");
        send.send_response(response);
    }
}

/// Run `test` with a generous upper bound, so that a call the verifier does not
/// expect (the client then waits forever for an answer) fails instead of hanging.
pub async fn bounded<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), test)
        .await
        .expect("the test finished (a hang means an unexpected API call)")
}
