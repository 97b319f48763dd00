//! The request rates: per tenant and per token, each a keyed limiter, and the wait a refused
//! request is told.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use governor::clock::{Clock, DefaultClock};
use uuid::Uuid;

use super::hashing::HashedToken;
use crate::settings::RateLimitSettings;

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

// ANCHOR: limits
/// The request rates of [`RateLimitSettings`], kept per tenant and per token (its hash) by
/// `governor`'s keyed limiters (a generic cell rate algorithm: no timer, one atomic per key).
///
/// A request over its token's rate is refused at once. A request over its tenant's rate waits
/// for its turn when that comes within the queue ([`RateLimitSettings::queue_ms`]), and is
/// refused when it does not: so a busy tenant's clients are slowed to its rate instead of
/// spinning on refusals, which would cost the server as much as serving them.
#[derive(Default)]
pub struct Limits {
    per_tenant: Option<Keyed<Uuid>>,
    per_token: Option<Keyed<String>>,
    queue: Duration,
    /// Per tenant, the requests waiting for a turn (one entry per tenant that ever waited).
    lines: std::sync::Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_tenant", &self.per_tenant.is_some())
            .field("per_token", &self.per_token.is_some())
            .field("queue", &self.queue)
            .finish()
    }
}

impl Limits {
    pub fn new(settings: &RateLimitSettings) -> Self {
        let burst = settings.burst_seconds;
        Limits {
            per_tenant: keyed(settings.per_tenant, burst),
            per_token: keyed(settings.per_token, burst),
            queue: Duration::from_millis(settings.queue_ms),
            lines: std::sync::Mutex::default(),
        }
    }

    /// Waits for the tenant's turn, up to the queue; `Err(seconds to wait)` when its turn is
    /// further away than that.
    pub(super) async fn admit_tenant(&self, tenant: Uuid) -> Result<(), u64> {
        let Some(limiter) = &self.per_tenant else {
            return Ok(());
        };
        let Err(not_until) = limiter.check_key(&tenant) else {
            return Ok(());
        };
        if self.queue.is_zero() {
            return Err(whole_seconds(wait_of(&not_until)));
        }
        // The tenant's waiting requests take their turns in the order they came: its line is
        // a fair (first in, first out) lock, and only the request at its head asks the
        // limiter again, once its turn is due. Without it every waiter woke at each turn and
        // the same ones could lose every time until the queue ran out.
        let deadline = Instant::now() + self.queue;
        let line = self.line_of(tenant);
        let Ok(_head) = tokio::time::timeout_at(deadline, line.lock()).await else {
            return Err(whole_seconds(self.queue));
        };
        loop {
            let Err(not_until) = limiter.check_key(&tenant) else {
                return Ok(());
            };
            let wait = wait_of(&not_until);
            if Instant::now() + wait > deadline {
                return Err(whole_seconds(wait));
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// The line of `tenant`'s requests waiting for their turn.
    fn line_of(&self, tenant: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.entry(tenant).or_default().clone()
    }

    /// `Err(seconds to wait)` when the token is over its rate; otherwise waits for the
    /// tenant's turn as [`Self::admit_tenant`] does.
    pub(super) async fn admit(&self, tenant: Uuid, token: &HashedToken) -> Result<(), u64> {
        if let Some(l) = &self.per_token {
            l.check_key(&token.hex)
                .map_err(|not_until| whole_seconds(wait_of(&not_until)))?;
        }
        self.admit_tenant(tenant).await
    }
}

/// How long from now until the limiter's `not_until`.
fn wait_of(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

/// Whole seconds of `wait`, at least one: what `Retry-After` can say.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// A keyed limiter of `rate` per second with `burst_seconds` of burst (at least one request);
/// `None` for rate 0.
fn keyed<K: std::hash::Hash + Eq + Clone>(rate: u32, burst_seconds: f64) -> Option<Keyed<K>> {
    let rate = std::num::NonZeroU32::new(rate)?;
    let burst = (f64::from(rate.get()) * burst_seconds.max(0.0))
        .ceil()
        .min(f64::from(u32::MAX));
    let burst = std::num::NonZeroU32::new(burst as u32).unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::per_second(rate).allow_burst(burst);
    Some(governor::RateLimiter::keyed(quota))
}
// ANCHOR_END: limits
