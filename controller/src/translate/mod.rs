//! The pure heart of the controller: observed resources in, proxy [`Snapshot`] +
//! per-object status + Secrets to create out.
//!
//! No I/O and no clock reads happen here: the caller passes everything in (the three
//! CR kinds, Secrets, Services, EndpointSlices, the current time, a random source for
//! generated credentials) and applies what comes out. The cluster controller, the
//! standalone mode and `gatehouse render` all call [`translate`], so they agree.
//!
//! Rules that hold for every kind:
//! - a rejected object gets `Ready=False` with a stable reason (see
//!   [`gatehouse_crds::conditions::reason`]) and never affects unrelated objects;
//! - the output is deterministic: the same input yields a byte-identical snapshot
//!   (lists sorted, revision = content hash), so publishers can skip no-op updates;
//! - secrets and provision keys appear in the snapshot only as SHA-256 hex digests.

mod backend;
mod backend_tls;
#[cfg(test)]
mod backend_tls_tests;
mod claims;
mod clients;
mod consumers;
mod duration;
mod gateway;
#[cfg(test)]
mod gateway_tests;
mod grants;
mod httproute;
mod ingress;
mod last_good;
#[cfg(test)]
mod last_good_tests;
mod login;
#[cfg(test)]
mod manifest_tests;
mod object;
mod policy;
#[cfg(test)]
mod reason_tests;
mod routes;
mod secrets;
#[cfg(test)]
mod tests;
mod tls;

use std::sync::Arc;

use gatehouse_config::snapshot::{Snapshot, TlsCertificate, FORMAT_VERSION};
use gatehouse_crds::gateway_api::{
    BackendTlsPolicy, BackendTlsPolicyStatus, Gateway, GatewayClass, GatewayClassStatus,
    GatewayStatus, HttpRoute, HttpRouteStatus, ReferenceGrant,
};
use gatehouse_crds::{
    conditions, Consumer, ConsumerStatus, OAuth2Client, OAuth2ClientStatus, OAuth2Policy,
    OAuth2PolicyStatus, ProtectedRoute, ProtectedRouteStatus,
};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress, IngressStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use rand::RngCore;
use sha2::{Digest as _, Sha256};

pub use last_good::LastGood;
pub use secrets::{generated_secret_name, GeneratedSecret, CLIENT_ID_KEY, CLIENT_SECRET_KEY};

/// Label selecting which Gatehouse installation handles an object (like an ingress
/// class). Objects without it belong to the installation that has no instance name.
pub const INSTANCE_LABEL: &str = "gatehouse.dev/instance";

/// Minimum length of a client secret in bytes (RFC 6749 §10.10: guessing must be
/// infeasible; 32 bytes matches the generated secrets' entropy).
pub const MIN_CLIENT_SECRET_BYTES: usize = 32;

/// Everything translate looks at. Objects are `Arc`s so a controller can pass its
/// reflector stores' contents without copying.
#[derive(Clone, Debug, Default)]
pub struct Input {
    pub consumers: Vec<Arc<Consumer>>,
    pub clients: Vec<Arc<OAuth2Client>>,
    pub routes: Vec<Arc<ProtectedRoute>>,
    /// Secrets that may be referenced (credentials, provision keys, generated ones).
    pub secrets: Vec<Arc<Secret>>,
    /// Services that ProtectedRoute backends may name.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices of those Services (label `kubernetes.io/service-name`).
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// OAuth2Policies attaching protection to HTTPRoutes, Gateways and Ingresses.
    pub policies: Vec<Arc<OAuth2Policy>>,
    /// Gateway API objects (empty when their CRDs are not installed).
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    pub gateways: Vec<Arc<Gateway>>,
    pub http_routes: Vec<Arc<HttpRoute>>,
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
    /// BackendTLSPolicies (empty when their CRD is not installed).
    pub backend_tls_policies: Vec<Arc<BackendTlsPolicy>>,
    /// ConfigMaps that may hold CA bundles (BackendTLSPolicy `caCertificateRefs`,
    /// ProtectedRoute `backend.tls.caCertificateRef`).
    pub config_maps: Vec<Arc<ConfigMap>>,
    /// Ingresses (only those of [`Options::ingress_class`] are served).
    pub ingresses: Vec<Arc<Ingress>>,
    /// Certificates of the snapshot in force: a Secret that turns bad keeps serving its
    /// previous certificate (matched by id) instead of dropping TLS for its hosts.
    pub previous_certificates: Vec<TlsCertificate>,
    /// The last good version of each object (see [`LastGood`]): the previous
    /// [`Output::last_good`], or empty (a fresh controller, `render`).
    pub last_good: LastGood,
}

/// How to translate.
#[derive(Clone, Debug)]
pub struct Options {
    /// "Now", used for condition `lastTransitionTime` (translate reads no clock).
    pub now: Time,
    /// Instance name (see [`INSTANCE_LABEL`]); `None` handles unlabelled objects.
    pub instance: Option<String>,
    /// Whether `backend.url` may be used (standalone: yes; in a cluster: no, a route
    /// must not be able to send traffic anywhere the controller's user chooses).
    pub allow_backend_url: bool,
    /// The installation's login key: seals `oauth2.login` client secrets into the
    /// snapshot (the proxies hold the same key). `None`: login routes get
    /// `LoginKeyMissing` and sign-in stays off.
    pub login_key: Option<gatehouse_config::seal::LoginKey>,
    /// `oauth2.login` issuers the controller could not reach, with the error (see
    /// `crate::issuers`). Empty when not checked (`render` stays offline).
    pub unreachable_issuers: std::collections::BTreeMap<String, String>,
    /// Ingress class served (`ingressClassName`, or the legacy annotation).
    pub ingress_class: String,
    /// Addresses written to served Ingresses' `status.loadBalancer` (the proxy Service's).
    pub load_balancer: Vec<IngressLoadBalancerIngress>,
    /// A GatewayClass name served without reading the GatewayClass (`None`: only
    /// classes read with our `controllerName`). Set when the controller may not read
    /// GatewayClasses (a namespaced install: they are cluster-scoped).
    pub assumed_gateway_class: Option<String>,
}

/// The Ingress class served unless `--ingress-class` says otherwise.
pub const DEFAULT_INGRESS_CLASS: &str = "gatehouse";

impl Options {
    /// Options for a cluster controller: Services only.
    pub fn cluster(now: Time) -> Self {
        Options {
            now,
            instance: None,
            allow_backend_url: false,
            login_key: None,
            unreachable_issuers: Default::default(),
            ingress_class: DEFAULT_INGRESS_CLASS.to_owned(),
            load_balancer: Vec::new(),
            assumed_gateway_class: None,
        }
    }

    /// Options for standalone and render: `backend.url` allowed.
    pub fn standalone(now: Time) -> Self {
        Options {
            now,
            instance: None,
            allow_backend_url: true,
            login_key: None,
            unreachable_issuers: Default::default(),
            ingress_class: DEFAULT_INGRESS_CLASS.to_owned(),
            load_balancer: Vec::new(),
            assumed_gateway_class: None,
        }
    }
}

/// What translate decided.
#[derive(Clone, Debug)]
pub struct Output {
    /// The proxy configuration; `revision` is a hash of the content.
    pub snapshot: Snapshot,
    /// Status of every handled object, sorted by kind, namespace and name.
    pub statuses: Vec<ObjectStatus>,
    /// Credentials Secrets to create for OAuth2Clients that have none.
    pub secrets_to_create: Vec<GeneratedSecret>,
    /// Objects whose current version is not Ready and whose last good version is
    /// served instead.
    pub held: Vec<ObjectRef>,
    /// The memory to pass as the next [`Input::last_good`].
    pub last_good: LastGood,
}

impl Output {
    /// Objects whose `Ready` condition is not `True`.
    pub fn not_ready(&self) -> impl Iterator<Item = &ObjectStatus> {
        self.statuses.iter().filter(|s| !s.is_ready())
    }
}

/// The kinds translate reports status for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Consumer,
    OAuth2Client,
    ProtectedRoute,
    OAuth2Policy,
    GatewayClass,
    Gateway,
    HttpRoute,
    Ingress,
    BackendTlsPolicy,
}

impl Kind {
    /// The Kubernetes `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Consumer => "Consumer",
            Kind::OAuth2Client => "OAuth2Client",
            Kind::ProtectedRoute => "ProtectedRoute",
            Kind::OAuth2Policy => "OAuth2Policy",
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::Ingress => "Ingress",
            Kind::BackendTlsPolicy => "BackendTLSPolicy",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of a handled object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// `metadata.uid`, absent in standalone manifests.
    pub uid: Option<String>,
    /// `metadata.generation`, absent in standalone manifests.
    pub generation: Option<i64>,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The status translate computed for one object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectStatus {
    pub object: ObjectRef,
    pub status: Status,
}

/// The `status` subresource content, per kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Consumer(ConsumerStatus),
    OAuth2Client(OAuth2ClientStatus),
    ProtectedRoute(ProtectedRouteStatus),
    OAuth2Policy(OAuth2PolicyStatus),
    /// Gateway API and Ingress statuses have no `Ready` condition of their own; each
    /// carries a summary `Ready` (for logs, render and standalone) beside the status
    /// that is written.
    GatewayClass(GatewayClassStatus, Vec<Condition>),
    Gateway(GatewayStatus, Vec<Condition>),
    HttpRoute(HttpRouteStatus, Vec<Condition>),
    Ingress(IngressStatus, Vec<Condition>),
    BackendTlsPolicy(BackendTlsPolicyStatus, Vec<Condition>),
}

impl Status {
    /// The conditions of this status.
    pub fn conditions(&self) -> &[Condition] {
        match self {
            Status::Consumer(s) | Status::ProtectedRoute(s) => &s.conditions,
            Status::OAuth2Client(s) => &s.conditions,
            Status::OAuth2Policy(s) => &s.conditions,
            Status::GatewayClass(_, c)
            | Status::Gateway(_, c)
            | Status::HttpRoute(_, c)
            | Status::Ingress(_, c)
            | Status::BackendTlsPolicy(_, c) => c,
        }
    }

    /// The `status` object as JSON, ready for a server-side-apply patch body.
    pub fn to_json(&self) -> serde_json::Value {
        let v = match self {
            Status::Consumer(s) | Status::ProtectedRoute(s) => serde_json::to_value(s),
            Status::OAuth2Client(s) => serde_json::to_value(s),
            Status::OAuth2Policy(s) => serde_json::to_value(s),
            Status::GatewayClass(s, _) => serde_json::to_value(s),
            Status::Gateway(s, _) => serde_json::to_value(s),
            Status::HttpRoute(s, _) => serde_json::to_value(s),
            Status::Ingress(s, _) => serde_json::to_value(s),
            Status::BackendTlsPolicy(s, _) => serde_json::to_value(s),
        };
        v.expect("statuses contain only JSON-representable data")
    }
}

impl ObjectStatus {
    /// The `Ready` condition (translate always sets one).
    pub fn ready(&self) -> &Condition {
        conditions::find(self.status.conditions(), conditions::READY)
            .expect("translate sets a Ready condition on every status")
    }

    /// Whether `Ready` is `True`.
    pub fn is_ready(&self) -> bool {
        self.ready().status == conditions::TRUE
    }
}

/// Translate observed resources into a snapshot, statuses and Secrets to create.
///
/// An object whose current version is not Ready is served at its last good version
/// when `input.last_good` has one (see [`LastGood`]); pass `output.last_good` back in
/// next time.
///
/// `rng` is used only to generate credentials for OAuth2Clients without a Secret;
/// pass a cryptographically secure generator (e.g. `rand::rng()`), or a seeded one in
/// tests.
pub fn translate(input: &Input, options: &Options, rng: &mut dyn RngCore) -> Output {
    let mut output = translate_once(input, options, rng);
    // Credentials are generated for the current versions, whatever is served.
    let secrets_to_create = std::mem::take(&mut output.secrets_to_create);
    let mut held = std::collections::BTreeMap::new();
    // Holding one object back can make another one not Ready (a client of a held
    // Consumer is fine, but a route whose paths the held version still claims is
    // not): repeat until nothing new is held. Each pass holds at least one more
    // object; the bound only caps pathological chains.
    for _ in 1..MAX_PASSES {
        let more = input.last_good.to_hold(input, &output.statuses, &held);
        if more.is_empty() {
            break;
        }
        held.extend(more);
        let substituted = LastGood::substituted(input, &held);
        output = translate_once(&substituted, options, rng);
    }
    output.secrets_to_create = secrets_to_create;
    output.last_good = input.last_good.remember(input, &output.statuses, &held);
    if !held.is_empty() {
        // Report the current (bad) versions, not the served ones.
        output
            .statuses
            .retain(|s| !held.contains_key(&last_good::key(&s.object)));
        for h in held.into_values() {
            output.held.push(h.status.object.clone());
            output.statuses.push(h.into_status());
        }
        output.statuses.sort_by(|a, b| a.object.cmp(&b.object));
    }
    output
}

/// Translation passes at most (see [`translate`]).
const MAX_PASSES: usize = 4;

/// One translation of exactly the objects in `input`.
fn translate_once(input: &Input, options: &Options, rng: &mut dyn RngCore) -> Output {
    let ctx = object::Context::new(input, options);

    let consumers = consumers::translate(&ctx);
    let clients = clients::translate(&ctx, &consumers, rng);
    let mut certs = tls::Certificates::new(&ctx);

    // Routes from every source share one table: gather them, claim host+path pairs
    // oldest object first, then let each source report what it lost.
    let policies = policy::resolve(&ctx, &consumers, &clients.trusted);
    let gateways = gateway::translate(&ctx, &mut certs);
    let http_routes = httproute::translate(&ctx, &gateways, &policies);
    let ingresses = ingress::translate(&ctx, &policies, &mut certs);
    let mut claims = claims::Claims::default();
    routes::claim(&ctx, &mut claims);
    http_routes.claim(&mut claims);
    ingresses.claim(&mut claims);
    let routes = routes::translate(&ctx, &consumers, &clients.trusted, &claims, &mut certs);
    let (mut foreign_routes, route_statuses, attached) = http_routes.finish(&ctx, &claims);
    let (ingress_routes, ingress_statuses) = ingresses.finish(&ctx, &claims);
    foreign_routes.extend(ingress_routes);

    let mut statuses = consumers.statuses;
    statuses.extend(clients.statuses);
    statuses.extend(routes.statuses);
    statuses.extend(policies.statuses(&ctx));
    statuses.extend(gateways.statuses(&ctx, &attached));
    statuses.extend(route_statuses);
    statuses.extend(ingress_statuses);
    // Last: the route sources above recorded which Services they reach.
    statuses.extend(ctx.backend_tls_statuses());
    statuses.sort_by(|a, b| a.object.cmp(&b.object));

    // ProtectedRoutes first (sorted by id, as before); then the other sources in
    // claim order, which is the tie-break order among equally specific matches.
    let mut all_routes = routes.routes;
    all_routes.extend(foreign_routes);
    let mut snapshot = Snapshot {
        format: FORMAT_VERSION,
        revision: String::new(),
        routes: all_routes,
        consumers: consumers.snapshot,
        clients: clients.snapshot,
        certificates: certs.into_snapshot(),
    };
    snapshot.revision = content_revision(&snapshot);

    Output {
        snapshot,
        statuses,
        secrets_to_create: clients.secrets_to_create,
        held: Vec::new(),
        last_good: LastGood::default(),
    }
}

/// A short content hash of the snapshot (with an empty revision field), so equal
/// content always carries an equal revision.
fn content_revision(snapshot: &Snapshot) -> String {
    debug_assert!(snapshot.revision.is_empty());
    let digest = Sha256::digest(snapshot.to_json());
    hex::encode(&digest[..8])
}
