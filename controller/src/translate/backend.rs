//! Resolving a route's backend to upstream endpoint URLs: a Service port's ready
//! endpoints from its EndpointSlices, or (standalone only) a literal URL.

use gatehouse_crds::conditions::reason;
use gatehouse_crds::{Backend, ServiceBackend};
use k8s_openapi::api::core::v1::ServicePort;

use super::object::{Context, Verdict};

/// Endpoint URLs for a backend (sorted, deduplicated). Problems go into `v`; the
/// route is still served, with no endpoints, so the proxy answers 503.
pub fn resolve(
    ctx: &Context<'_>,
    namespace: &str,
    backend: &Backend,
    v: &mut Verdict,
) -> Vec<String> {
    let mut endpoints = match (&backend.service, &backend.url) {
        (Some(svc), None) => service_endpoints(ctx, namespace, svc, v),
        (None, Some(url)) if ctx.options.allow_backend_url => url_endpoint(url, v),
        (None, Some(_)) => {
            v.reject(
                reason::BACKEND_URL_NOT_ALLOWED,
                "backend.url is only allowed in standalone mode; use backend.service",
            );
            Vec::new()
        }
        _ => {
            v.reject(
                reason::INVALID_BACKEND,
                "backend must set exactly one of service or url",
            );
            Vec::new()
        }
    };
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

fn url_endpoint(raw: &str, v: &mut Verdict) -> Vec<String> {
    let problem = match url::Url::parse(raw) {
        Err(e) => format!("backend.url {raw:?} is not a valid URL ({e})"),
        Ok(u) if !matches!(u.scheme(), "http" | "https" | "grpc" | "grpcs") => {
            format!("backend.url {raw:?} must use http, https, grpc or grpcs")
        }
        Ok(u) if u.host().is_none() => format!("backend.url {raw:?} has no host"),
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            format!("backend.url {raw:?} must not have a query or fragment")
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            format!("backend.url {raw:?} must not carry credentials")
        }
        Ok(u) => {
            // The proxy prepends the URL's path to the request path: drop a trailing
            // slash so `/base/` + `/x` does not become `/base//x`.
            let path = u.path().trim_end_matches('/');
            // Built by hand: `Url::origin` is opaque for grpc:// (not a special scheme).
            let host = u.host_str().unwrap_or_default();
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            return vec![format!("{}://{host}{port}{path}", u.scheme())];
        }
    };
    v.reject(reason::INVALID_BACKEND, problem);
    Vec::new()
}

pub fn service_endpoints(
    ctx: &Context<'_>,
    namespace: &str,
    backend: &ServiceBackend,
    v: &mut Verdict,
) -> Vec<String> {
    let Some(service) = ctx.service(namespace, &backend.name) else {
        v.reject(
            reason::BACKEND_NOT_FOUND,
            format!(
                "Service {:?} not found in namespace {namespace:?}; requests get 503 until it exists",
                backend.name
            ),
        );
        return Vec::new();
    };
    let spec = service.spec.as_ref();
    let port = spec
        .and_then(|s| s.ports.as_ref())
        .and_then(|ports| ports.iter().find(|p| p.port == backend.port));
    let Some(port) = port else {
        v.reject(
            reason::BACKEND_NOT_FOUND,
            format!(
                "Service {:?} has no port {}; requests get 503 until it does",
                backend.name, backend.port
            ),
        );
        return Vec::new();
    };
    let scheme = scheme(port);

    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return match spec.and_then(|s| s.external_name.as_deref()) {
            Some(host) => vec![format!("{scheme}://{host}:{}", port.port)],
            None => Vec::new(),
        };
    }

    let mut out = Vec::new();
    for slice in ctx.endpoint_slices(namespace, &backend.name) {
        // The slice port that carries this Service port has the same name ("" when
        // the Service has a single unnamed port).
        let want = port.name.as_deref().unwrap_or_default();
        let Some(number) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == want)
            .and_then(|p| p.port)
        else {
            continue;
        };
        for ep in &slice.endpoints {
            // `ready` unset means ready (EndpointConditions API docs).
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready {
                continue;
            }
            for addr in &ep.addresses {
                let host = if addr.contains(':') {
                    format!("[{addr}]")
                } else {
                    addr.clone()
                };
                out.push(format!("{scheme}://{host}:{number}"));
            }
        }
    }
    out
}

/// From the Service port's `appProtocol`: `https` for TLS, `grpc` (the proxy's
/// HTTP/2 cleartext scheme) for `kubernetes.io/h2c`, otherwise `http`.
fn scheme(port: &ServicePort) -> &'static str {
    match port.app_protocol.as_deref() {
        Some("https") | Some("kubernetes.io/https") => "https",
        Some("kubernetes.io/h2c") | Some("h2c") => "grpc",
        _ => "http",
    }
}
