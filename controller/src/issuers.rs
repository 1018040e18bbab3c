//! Whether each `oauth2.login` provider answers, checked by the controller so that a
//! route whose identity provider cannot be reached says so in its status
//! (`Ready=False`, `IssuerUnreachable`) from start-up on, not only on a user's first
//! sign-in. The check is the proxy's own discovery (document and keys, the same URL
//! rules), run afresh: failing issuers again after [`RECHECK_FAILED`], answering ones
//! after [`RECHECK_OK`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use gatehouse_proxy::login::oidc::Providers;

use crate::translate::Input;

/// How soon a failing issuer is checked again (and the objects re-translated).
pub const RECHECK_FAILED: Duration = Duration::from_secs(30);
/// How long an answering issuer is taken to be up.
pub const RECHECK_OK: Duration = Duration::from_secs(300);

/// The issuers named by `oauth2.login` of the input's routes (as the snapshot keys them).
pub fn issuers_of(input: &Input) -> BTreeSet<String> {
    input
        .routes
        .iter()
        .filter_map(|r| r.spec.oauth2.login.as_ref())
        .map(|l| l.oidc.issuer_url.trim_end_matches('/').to_owned())
        .collect()
}

/// Recent check results, by issuer.
#[derive(Default)]
pub struct IssuerProbe {
    providers: Providers,
    results: HashMap<String, (Instant, Result<(), String>)>,
}

impl IssuerProbe {
    /// Check what is due among `issuers` (concurrently) and return the unreachable
    /// ones with their errors. Issuers no longer named are forgotten.
    pub async fn unreachable(&mut self, issuers: &BTreeSet<String>) -> BTreeMap<String, String> {
        self.results.retain(|issuer, _| issuers.contains(issuer));
        let now = Instant::now();
        let due: Vec<&String> = issuers
            .iter()
            .filter(|issuer| match self.results.get(*issuer) {
                None => true,
                Some((at, Ok(()))) => now.duration_since(*at) >= RECHECK_OK,
                Some((at, Err(_))) => now.duration_since(*at) >= RECHECK_FAILED,
            })
            .collect();
        let providers = &self.providers;
        let checked = futures::future::join_all(due.into_iter().map(|issuer| async move {
            let result = providers.probe(issuer).await.map_err(|e| e.to_string());
            if let Err(error) = &result {
                tracing::warn!(issuer, %error, "Identity provider unreachable");
            }
            (issuer.clone(), result)
        }))
        .await;
        for (issuer, result) in checked {
            self.results.insert(issuer, (now, result));
        }
        self.results
            .iter()
            .filter_map(|(issuer, (_, r))| r.as_ref().err().map(|e| (issuer.clone(), e.clone())))
            .collect()
    }

    /// When the next check is due while some issuer is failing.
    pub fn retry_after(&self) -> Option<Duration> {
        self.results
            .values()
            .any(|(_, r)| r.is_err())
            .then_some(RECHECK_FAILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port nothing listens on (bound, then released).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn an_issuer_that_does_not_answer_is_reported_and_rechecked_soon() {
        let down = format!("http://127.0.0.1:{}", closed_port());
        let mut probe = IssuerProbe::default();
        assert_eq!(probe.retry_after(), None);
        let issuers = BTreeSet::from([down.clone()]);
        let unreachable = probe.unreachable(&issuers).await;
        assert_eq!(unreachable.keys().collect::<Vec<_>>(), vec![&down]);
        assert!(unreachable[&down].contains("GET"), "{unreachable:?}");
        assert_eq!(probe.retry_after(), Some(RECHECK_FAILED));
        // Not due again yet: the remembered result is returned without a new check.
        let (at, _) = probe.results[&down].clone();
        assert_eq!(probe.unreachable(&issuers).await, unreachable);
        assert_eq!(probe.results[&down].0, at);
        // An issuer no longer named is forgotten, and with it the retry.
        assert!(probe.unreachable(&BTreeSet::new()).await.is_empty());
        assert_eq!(probe.retry_after(), None);
    }

    #[tokio::test]
    async fn plain_http_issuers_off_loopback_are_refused_without_a_request() {
        // The proxy's URL rule: an issuer must be https unless it is on loopback.
        let mut probe = IssuerProbe::default();
        let issuer = "http://idp.example".to_owned();
        let unreachable = probe.unreachable(&BTreeSet::from([issuer.clone()])).await;
        assert!(unreachable.contains_key(&issuer), "{unreachable:?}");
    }
}
