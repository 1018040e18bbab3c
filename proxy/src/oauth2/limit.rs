//! Abuse limits of the OAuth2 endpoints that mint, reveal or check credentials
//! (`/oauth2/token`, `/oauth2/authorize`, `/oauth2/introspect`): one budget per
//! source address and one per client of the configuration, counted in the token
//! store ([`TokenStore::rate_hit`]), so replicas sharing a Redis store share budgets.
//! A refused request gets `429` with `Retry-After` and an RFC 6749-style body, and is
//! audited; a store that cannot count fails closed (503).

use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};

use super::{Ctx, Endpoint, OAuthResponse};
use crate::audit::Event;
use crate::config::RateLimits;
use crate::ratelimit::{address_key, client_key, parse_optional_quota, Decision, Quota};
use crate::respond::Reply;
use crate::store::TokenStore;

/// Per source address when a route sets nothing: generous for a login app or a
/// NAT-ed office, far below what guessing secrets needs.
pub const DEFAULT_PER_ADDRESS: Quota = Quota {
    count: 300,
    period: std::time::Duration::from_secs(60),
    burst: 60,
};

/// Per client when a route sets nothing.
pub const DEFAULT_PER_CLIENT: Quota = Quota {
    count: 600,
    period: std::time::Duration::from_secs(60),
    burst: 120,
};

/// Whether `endpoint` is rate limited.
pub fn limited(endpoint: Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::Token | Endpoint::Authorize | Endpoint::Introspect
    )
}

/// The quotas a route's `rate_limits` set (`None` = off); a value the controller's
/// schema would have refused also fails closed, as the strictest default.
fn quotas(limits: &RateLimits) -> (Option<Quota>, Option<Quota>) {
    let read = |value: &Option<String>, default: Quota| match value {
        None => Some(default),
        Some(v) => parse_optional_quota(v).unwrap_or_else(|error| {
            tracing::warn!(%error, "Invalid rate limit in the configuration; using the default");
            Some(default)
        }),
    };
    (
        read(&limits.per_address, DEFAULT_PER_ADDRESS),
        read(&limits.per_client, DEFAULT_PER_CLIENT),
    )
}

/// Count this request against its budgets; the answer to send instead when one is
/// exhausted (or the store cannot count).
pub(crate) async fn check(ctx: &Ctx<'_>, endpoint: Endpoint) -> Option<OAuthResponse> {
    let (per_address, per_client) = quotas(&ctx.oauth.rate_limits);
    let basic = super::client_auth::basic_client_id(ctx.req.authorization.as_deref());
    let client_id = ctx
        .client_id_param()
        .or(basic.as_deref())
        .filter(|id| ctx.catalog.client(id).is_some());
    let mut budgets: Vec<(&'static str, String, Quota)> = Vec::with_capacity(2);
    if let (Some(q), Some(peer)) = (per_address, ctx.req.peer) {
        budgets.push(("address", address_key(peer), q));
    }
    if let (Some(q), Some(id)) = (per_client, client_id) {
        budgets.push(("client", client_key(id), q));
    }
    for (limit, key, quota) in budgets {
        match hit(ctx.store, &key, &quota).await {
            Ok(Decision::Allowed) => {}
            Ok(decision) => {
                let secs = decision.retry_after_secs().unwrap_or(1);
                ctx.req.counters.rate_limited(limit);
                ctx.audit(Event::RateLimited {
                    limit,
                    client_id,
                    endpoint: endpoint.name(),
                    retry_after_secs: secs,
                });
                return Some(too_many(secs));
            }
            Err(()) => return Some(Reply::store_unavailable()),
        }
    }
    None
}

/// Count a dynamic registration against the route's per-address registration
/// budget; the answer to send instead when it is exhausted.
pub(crate) async fn registration(ctx: &Ctx<'_>) -> Option<OAuthResponse> {
    let rate = &ctx.oauth.client_registration.registration_rate;
    let quota = match parse_optional_quota(rate) {
        Ok(None) => return None,
        Ok(Some(q)) => q,
        Err(error) => {
            // The schema refuses bad values; one that slipped through fails closed.
            tracing::warn!(%error, "Invalid registration rate in the configuration");
            return Some(Reply::store_unavailable());
        }
    };
    let peer = ctx.req.peer?;
    let key = format!("register:{}", address_key(peer));
    match hit(ctx.store, &key, &quota).await {
        Ok(Decision::Allowed) => None,
        Ok(decision) => {
            let secs = decision.retry_after_secs().unwrap_or(1);
            ctx.req.counters.rate_limited("registration");
            ctx.audit(Event::RateLimited {
                limit: "registration",
                client_id: None,
                endpoint: Endpoint::Register.name(),
                retry_after_secs: secs,
            });
            Some(too_many(secs))
        }
        Err(()) => Some(Reply::store_unavailable()),
    }
}

async fn hit(store: &dyn TokenStore, key: &str, quota: &Quota) -> Result<Decision, ()> {
    store.rate_hit(key, quota).await.map_err(|error| {
        tracing::warn!(%error, "Rate limit check failed");
    })
}

/// `429` with `Retry-After` and an RFC 6749-style error body.
fn too_many(secs: u64) -> OAuthResponse {
    Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        &format!("Rate limit exceeded; retry after {secs} s"),
    )
    .header(RETRY_AFTER, HeaderValue::from(secs))
}
