//! The request rates: per tenant and per token, each a keyed limiter, and the wait a refused
//! request is told.

use uuid::Uuid;

use super::hashing::HashedToken;
use crate::settings::RateLimitSettings;

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

// ANCHOR: limits
/// The request rates of [`RateLimitSettings`], kept per tenant and per token (its hash) by
/// `governor`'s keyed limiters (a generic cell rate algorithm: no timer, one atomic per key).
#[derive(Default)]
pub struct Limits {
    per_tenant: Option<Keyed<Uuid>>,
    per_token: Option<Keyed<String>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_tenant", &self.per_tenant.is_some())
            .field("per_token", &self.per_token.is_some())
            .finish()
    }
}

impl Limits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let burst = settings.burst_seconds;
        Limits {
            per_tenant: keyed(settings.per_tenant, burst),
            per_token: keyed(settings.per_token, burst),
        }
    }

    /// `Err(seconds to wait)` when the tenant is over its rate.
    pub(super) fn check_tenant(&self, tenant: Uuid) -> Result<(), u64> {
        match &self.per_tenant {
            Some(l) => l.check_key(&tenant).map_err(wait),
            None => Ok(()),
        }
    }

    /// `Err(seconds to wait)` when the tenant or the token is over its rate.
    pub(super) fn check(&self, tenant: Uuid, token: &HashedToken) -> Result<(), u64> {
        self.check_tenant(tenant)?;
        if let Some(l) = &self.per_token {
            l.check_key(&token.hex).map_err(wait)?;
        }
        Ok(())
    }
}

/// Whole seconds until `not_until`, at least one: what `Retry-After` can say.
fn wait(
    not_until: governor::NotUntil<
        <governor::clock::DefaultClock as governor::clock::Clock>::Instant,
    >,
) -> u64 {
    use governor::clock::{Clock, DefaultClock};
    let secs = not_until
        .wait_time_from(DefaultClock::default().now())
        .as_secs_f64();
    secs.ceil().max(1.0) as u64
}

/// A keyed limiter of `rate` per second with `burst_seconds` of burst; `None` for rate 0.
fn keyed<K: std::hash::Hash + Eq + Clone>(rate: u32, burst_seconds: u32) -> Option<Keyed<K>> {
    let rate = std::num::NonZeroU32::new(rate)?;
    let seconds = std::num::NonZeroU32::new(burst_seconds).unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::per_second(rate).allow_burst(rate.saturating_mul(seconds));
    Some(governor::RateLimiter::keyed(quota))
}
// ANCHOR_END: limits
