//! Status conditions: the one condition type we set (`Ready`), every reason it can
//! carry, small builders, and comparison that ignores timestamps.
//!
//! Reasons are part of our API: users match on them in `kubectl wait`, alerts and Argo CD
//! health checks, so they never change once released. Messages are for humans and may.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition type every Gatehouse resource reports.
pub const READY: &str = "Ready";

/// `status` values of a condition.
pub const TRUE: &str = "True";
/// `status` value of a condition that does not hold.
pub const FALSE: &str = "False";

/// Reasons carried by the `Ready` condition.
pub mod reason {
    /// The object is valid and in effect.
    pub const READY: &str = "Ready";
    /// The spec breaks a rule the schema could not express (or that standalone mode,
    /// which has no API server to validate, must check itself).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `consumerRef` names no Consumer in the namespace.
    pub const CONSUMER_NOT_FOUND: &str = "ConsumerNotFound";
    /// `consumerRef` names a Consumer that is itself not Ready.
    pub const CONSUMER_NOT_READY: &str = "ConsumerNotReady";
    /// `credentialsSecretRef` names no Secret in the namespace.
    pub const CREDENTIALS_SECRET_NOT_FOUND: &str = "CredentialsSecretNotFound";
    /// The credentials Secret lacks `client_id` (or `client_secret` for a confidential
    /// client), or a value is not valid UTF-8 / contains forbidden characters.
    pub const CREDENTIALS_SECRET_INVALID: &str = "CredentialsSecretInvalid";
    /// The client secret is shorter than 32 bytes.
    pub const CLIENT_SECRET_TOO_SHORT: &str = "ClientSecretTooShort";
    /// No credentials Secret yet: the controller is creating one with generated values.
    pub const CREDENTIALS_PENDING: &str = "CredentialsPending";
    /// A redirect URI is not absolute `https` (plain `http` is allowed only for
    /// localhost loopback) or carries a fragment.
    pub const INVALID_REDIRECT_URI: &str = "InvalidRedirectUri";
    /// Another, older OAuth2Client already uses this `client_id`.
    pub const DUPLICATE_CLIENT_ID: &str = "DuplicateClientId";
    /// An older ProtectedRoute already serves one of this route's host + path pairs.
    pub const ROUTE_CONFLICT: &str = "RouteConflict";
    /// The backend Service or its port does not exist; the route answers 503 until it
    /// appears.
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";
    /// `backend.url` is used where only Services are allowed (in a cluster); the route
    /// answers 503.
    pub const BACKEND_URL_NOT_ALLOWED: &str = "BackendUrlNotAllowed";
    /// `backend` names neither or both of `service` and `url`, or the URL is unusable;
    /// the route answers 503.
    pub const INVALID_BACKEND: &str = "InvalidBackend";
    /// `oauth2.anonymousConsumer` names no Ready Consumer; anonymous access is off.
    pub const ANONYMOUS_CONSUMER_NOT_FOUND: &str = "AnonymousConsumerNotFound";
    /// `oauth2.provisionKeySecretRef` names no Secret; authorize and password grants
    /// are refused until it appears.
    pub const PROVISION_KEY_SECRET_NOT_FOUND: &str = "ProvisionKeySecretNotFound";
    /// The provision-key Secret lacks the key or it is empty.
    pub const PROVISION_KEY_SECRET_INVALID: &str = "ProvisionKeySecretInvalid";
    /// `oauth2.login.oidc.clientSecretRef` names no Secret, or it lacks the key;
    /// sign-in is off (the route's other endpoints keep working).
    pub const LOGIN_SECRET_NOT_FOUND: &str = "LoginSecretNotFound";
    /// `oauth2.login` is set but the controller has no login key to seal the client
    /// secret with (`--login-key-file`); sign-in is off.
    pub const LOGIN_KEY_MISSING: &str = "LoginKeyMissing";
    /// The `login.oidc.issuerUrl` provider did not answer its discovery document (or
    /// its keys) when the controller checked; sign-in shows an error page until it does.
    pub const ISSUER_UNREACHABLE: &str = "IssuerUnreachable";
    /// A TLS Secret (`tls.secretName`, Ingress `spec.tls`, Gateway `certificateRefs`)
    /// does not exist; its hosts get the default certificate.
    pub const TLS_SECRET_NOT_FOUND: &str = "TlsSecretNotFound";
    /// A TLS Secret lacks `tls.crt`/`tls.key` or they are not PEM; the previous
    /// certificate (if any) stays in use.
    pub const TLS_SECRET_INVALID: &str = "TlsSecretInvalid";
    /// An OAuth2Policy targets no existing object, or its `oauth2` block is invalid.
    pub const POLICY_NOT_ACCEPTED: &str = "PolicyNotAccepted";
    /// An Ingress backend, HTTPRoute backendRef or parentRef cannot be used.
    pub const ROUTE_NOT_ACCEPTED: &str = "RouteNotAccepted";
    /// A backend must be reached over TLS but how to verify it cannot be worked out:
    /// the CA ConfigMap/Secret of `backend.tls` or of a BackendTLSPolicy is missing,
    /// lacks the key or is not PEM, or the policy asks for what the proxy cannot
    /// verify. The backend gets no traffic (503); it is never reached unverified.
    pub const BACKEND_TLS_INVALID: &str = "BackendTlsInvalid";

    /// Every reason, for documentation and exhaustiveness tests.
    pub const ALL: &[&str] = &[
        READY,
        INVALID_SPEC,
        CONSUMER_NOT_FOUND,
        CONSUMER_NOT_READY,
        CREDENTIALS_SECRET_NOT_FOUND,
        CREDENTIALS_SECRET_INVALID,
        CLIENT_SECRET_TOO_SHORT,
        CREDENTIALS_PENDING,
        INVALID_REDIRECT_URI,
        DUPLICATE_CLIENT_ID,
        ROUTE_CONFLICT,
        BACKEND_NOT_FOUND,
        BACKEND_URL_NOT_ALLOWED,
        INVALID_BACKEND,
        ANONYMOUS_CONSUMER_NOT_FOUND,
        PROVISION_KEY_SECRET_NOT_FOUND,
        PROVISION_KEY_SECRET_INVALID,
        LOGIN_SECRET_NOT_FOUND,
        LOGIN_KEY_MISSING,
        ISSUER_UNREACHABLE,
        TLS_SECRET_NOT_FOUND,
        TLS_SECRET_INVALID,
        POLICY_NOT_ACCEPTED,
        ROUTE_NOT_ACCEPTED,
        BACKEND_TLS_INVALID,
    ];
}

/// `Ready=True`.
pub fn ready(message: impl Into<String>, generation: Option<i64>, now: &Time) -> Condition {
    condition(TRUE, reason::READY, message, generation, now)
}

/// `Ready=False` with a stable `reason` and a human message.
pub fn not_ready(
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    condition(FALSE, reason, message, generation, now)
}

fn condition(
    status: &str,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    Condition {
        type_: READY.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: now.clone(),
    }
}

/// The condition of `type_` in a list, if any.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether a `Ready` condition in `conditions` says `True`.
pub fn is_ready(conditions: &[Condition]) -> bool {
    find(conditions, READY).is_some_and(|c| c.status == TRUE)
}

/// Keep the previous `lastTransitionTime` of every condition whose `status` did not
/// change: Kubernetes convention is that the time marks the last *status* flip, and
/// this keeps an unchanged status byte-identical so it is never re-written.
pub fn carry_transition_times(previous: &[Condition], next: &mut [Condition]) {
    for c in next.iter_mut() {
        if let Some(old) = find(previous, &c.type_) {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
}

/// Compare two condition lists ignoring `lastTransitionTime`, so that a status whose
/// only difference is a timestamp is not patched again.
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.type_ == y.type_
                && x.status == y.status
                && x.reason == y.reason
                && x.message == y.message
                && x.observed_generation == y.observed_generation
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let old = vec![ready("ok", Some(1), &at(10))];
        let mut next = vec![ready("ok", Some(2), &at(20))];
        carry_transition_times(&old, &mut next);
        assert_eq!(next[0].last_transition_time, at(10));
    }

    #[test]
    fn flipped_status_gets_the_new_transition_time() {
        let old = vec![ready("ok", Some(1), &at(10))];
        let mut next = vec![not_ready(reason::ROUTE_CONFLICT, "x", Some(1), &at(20))];
        carry_transition_times(&old, &mut next);
        assert_eq!(next[0].last_transition_time, at(20));
    }

    #[test]
    fn comparison_ignores_only_timestamps() {
        let a = vec![ready("ok", Some(1), &at(10))];
        let b = vec![ready("ok", Some(1), &at(99))];
        let c = vec![ready("ok", Some(2), &at(10))];
        assert!(same_ignoring_time(&a, &b));
        assert!(!same_ignoring_time(&a, &c));
        assert!(is_ready(&a));
    }
}
