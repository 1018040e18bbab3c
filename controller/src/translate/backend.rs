//! Resolving a route's backend to upstream endpoint URLs and TLS settings: a Service
//! port's ready endpoints from its EndpointSlices (over TLS when a BackendTLSPolicy
//! targets the port, or the route says so), or (standalone only) a literal URL.

use gatehouse_config::snapshot::UpstreamTls;
use gatehouse_crds::conditions::reason;
use gatehouse_crds::{Backend, ServiceBackend};
use k8s_openapi::api::core::v1::ServicePort;

use super::backend_tls::{self, AncestorKey};
use super::object::{Context, Verdict};

/// A backend's endpoint URLs (sorted, deduplicated) and how TLS ones are verified.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    pub endpoints: Vec<String>,
    pub tls: Option<UpstreamTls>,
}

/// Endpoints of a ProtectedRoute backend; `via` is the route (for BackendTLSPolicy
/// status). Problems go into `v`; the route is still served, with no endpoints, so
/// the proxy answers 503.
pub fn resolve(
    ctx: &Context<'_>,
    namespace: &str,
    backend: &Backend,
    via: &[AncestorKey],
    v: &mut Verdict,
) -> Resolved {
    // The route's own `backend.tls` beats a BackendTLSPolicy on its Service.
    let own_tls = match &backend.tls {
        None => None,
        Some(t) => match backend_tls::route_settings(ctx, namespace, t, v) {
            Some(settings) => Some(settings),
            // Fail closed: never reach the backend without the verification asked for.
            None => return Resolved::default(),
        },
    };
    let mut resolved = match (&backend.service, &backend.url) {
        (Some(svc), None) => service_endpoints(ctx, namespace, svc, own_tls, via, v),
        (None, Some(url)) if ctx.options.allow_backend_url => {
            let endpoints = url_endpoint(url, v);
            let plain = endpoints
                .iter()
                .any(|e| e.starts_with("http://") || e.starts_with("grpc://"));
            if own_tls.is_some() && plain {
                v.reject(
                    reason::INVALID_BACKEND,
                    format!("backend.tls needs an https:// or grpcs:// url, not {url:?}"),
                );
                return Resolved::default();
            }
            Resolved {
                endpoints,
                tls: own_tls,
            }
        }
        (None, Some(_)) => {
            v.reject(
                reason::BACKEND_URL_NOT_ALLOWED,
                "backend.url is only allowed in standalone mode; use backend.service",
            );
            Resolved::default()
        }
        _ => {
            v.reject(
                reason::INVALID_BACKEND,
                "backend must set exactly one of service or url",
            );
            Resolved::default()
        }
    };
    resolved.endpoints.sort();
    resolved.endpoints.dedup();
    resolved
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

/// The ready endpoints of a Service port, over TLS with `own_tls` (a route's own
/// settings) or the BackendTLSPolicy that targets the port. `via` are the objects
/// whose traffic goes there (BackendTLSPolicy ancestors). A policy that cannot be
/// honoured leaves the port without endpoints (503), reported in `v`.
pub fn service_endpoints(
    ctx: &Context<'_>,
    namespace: &str,
    backend: &ServiceBackend,
    own_tls: Option<UpstreamTls>,
    via: &[AncestorKey],
    v: &mut Verdict,
) -> Resolved {
    let Some(service) = ctx.service(namespace, &backend.name) else {
        v.reject(
            reason::BACKEND_NOT_FOUND,
            format!(
                "Service {:?} not found in namespace {namespace:?}; requests get 503 until it exists",
                backend.name
            ),
        );
        return Resolved::default();
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
        return Resolved::default();
    };
    let port_name = port.name.as_deref();
    ctx.used_by(namespace, &backend.name, port_name, via);
    let tls = match own_tls {
        Some(own) => Some(own),
        None => match ctx.backend_tls(namespace, &backend.name, port_name) {
            None => None,
            Some(Ok(settings)) => Some(settings.clone()),
            Some(Err(problem)) => {
                v.reject(
                    reason::BACKEND_TLS_INVALID,
                    format!(
                        "the BackendTLSPolicy of Service {:?} port {} cannot be used: {problem}",
                        backend.name, backend.port
                    ),
                );
                return Resolved::default();
            }
        },
    };
    let scheme = scheme(port, tls.is_some());

    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        let endpoints = match spec.and_then(|s| s.external_name.as_deref()) {
            Some(host) => vec![format!("{scheme}://{host}:{}", port.port)],
            None => Vec::new(),
        };
        return Resolved { endpoints, tls };
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
    Resolved {
        endpoints: out,
        tls,
    }
}

/// From the Service port's `appProtocol`: `https` for TLS, `grpc` (the proxy's
/// HTTP/2 cleartext scheme) for `kubernetes.io/h2c`, otherwise `http`. With `tls`
/// (a BackendTLSPolicy or the route's `backend.tls`) always over TLS: `grpcs`
/// (HTTP/2 over TLS) where the port speaks HTTP/2, otherwise `https`.
fn scheme(port: &ServicePort, tls: bool) -> &'static str {
    let h2 = matches!(
        port.app_protocol.as_deref(),
        Some("kubernetes.io/h2c" | "h2c" | "kubernetes.io/h2" | "h2" | "grpc")
    );
    match (port.app_protocol.as_deref(), tls, h2) {
        (_, true, true) => "grpcs",
        (_, true, false) => "https",
        (Some("https") | Some("kubernetes.io/https"), false, _) => "https",
        (Some("kubernetes.io/h2c") | Some("h2c"), false, _) => "grpc",
        _ => "http",
    }
}
