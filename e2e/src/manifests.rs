//! Manifests several end-to-end tests apply (standalone and against the real API
//! server): the `gatehouse` GatewayClass, an OAuth2Policy, and a machine client
//! (Consumer + OAuth2Client + its credentials Secret) for the client-credentials grant.

/// GatewayClass `gatehouse`, handled by Gatehouse's gateway controller.
pub const GATEWAY_CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gatehouse}
spec: {controllerName: gatehouse.dev/gateway-controller}
";

/// OAuth2Policy `ns/name` on `kind/target` of API group `group`, with `oauth2` (a
/// flow-style YAML map) as its settings.
pub fn oauth2_policy(
    ns: &str,
    name: &str,
    (group, kind, target): (&str, &str, &str),
    oauth2: &str,
) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Policy
metadata: {{name: {name}, namespace: {ns}}}
spec:
  targetRefs: [{{group: {group}, kind: {kind}, name: {target}}}]
  oauth2: {oauth2}
"
    )
}

/// Consumer `consumer` and its confidential OAuth2Client `client` (client id `client`,
/// `client_secret` in Secret `<client>-credentials`), allowed the client-credentials
/// grant; all in `ns`.
pub fn machine_client(ns: &str, consumer: &str, client: &str, client_secret: &str) -> String {
    let mut display = consumer.to_owned();
    display[..1].make_ascii_uppercase();
    format!(
        "apiVersion: gatehouse.dev/v1alpha1
kind: Consumer
metadata: {{name: {consumer}, namespace: {ns}}}
spec: {{username: {consumer}}}
---
apiVersion: gatehouse.dev/v1alpha1
kind: OAuth2Client
metadata: {{name: {client}, namespace: {ns}}}
spec:
  consumerRef: {{name: {consumer}}}
  name: {display}
  clientType: confidential
  redirectUris: [https://{consumer}.example.test/callback]
  grantTypes: [client_credentials]
  credentialsSecretRef: {{name: {client}-credentials}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {client}-credentials, namespace: {ns}}}
stringData: {{client_id: {client}, client_secret: {client_secret}}}
"
    )
}
