//! Client-side rate budgets (governor, GCRA) for the upstreams: Genesys allows about 300
//! requests a minute per client-credentials token, CRMs have their own limits. A call over budget
//! waits for its turn instead of failing, so a burst of events drains at the budget's pace and
//! the upstream's 429s stay the exception.

use std::num::NonZeroU32;
use std::time::Instant;

pub use governor::Quota;
use governor::{DefaultDirectRateLimiter, RateLimiter};

use crate::metrics;

pub struct RateBudget {
    upstream: &'static str,
    /// Which of the upstream's sources (a CRM source's name; the upstream itself for Genesys).
    source: &'static str,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl RateBudget {
    /// `per_minute = 0` means no budget. `burst` is how many calls may go at once after a quiet
    /// spell; keep it small, because upstream limits count per window and a burst on top of a
    /// steady rate could exceed them.
    pub fn per_minute(upstream: &'static str, per_minute: u32, burst: u32) -> Self {
        Self::for_source(upstream, upstream, per_minute, burst)
    }

    /// As [`RateBudget::per_minute`], for one `source` of `upstream` (a CRM source).
    pub fn for_source(
        upstream: &'static str,
        source: &'static str,
        per_minute: u32,
        burst: u32,
    ) -> Self {
        let quota = NonZeroU32::new(per_minute).map(|rate| {
            let burst = NonZeroU32::new(burst.min(per_minute)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(rate).allow_burst(burst)
        });
        Self::with_quota(upstream, source, quota)
    }

    /// Any governor quota (`None` = no budget): for a vendor limit counted per second or per
    /// hour, next to the source's per-minute one.
    pub fn with_quota(upstream: &'static str, source: &'static str, quota: Option<Quota>) -> Self {
        Self {
            upstream,
            source,
            limiter: quota.map(RateLimiter::direct),
        }
    }

    /// Waits until the budget allows one more call.
    pub async fn acquire(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        if limiter.check().is_ok() {
            return;
        }
        let started = Instant::now();
        ::metrics::counter!(metrics::LIMITER_WAITS, "upstream" => self.upstream, "source" => self.source)
            .increment(1);
        limiter.until_ready().await;
        ::metrics::histogram!(metrics::LIMITER_WAIT_SECONDS, "upstream" => self.upstream, "source" => self.source)
            .record(started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_budget_never_waits() {
        let budget = RateBudget::per_minute("test", 0, 1);
        for _ in 0..10_000 {
            budget.acquire().await;
        }
    }

    #[tokio::test]
    async fn calls_beyond_the_burst_wait_for_their_turn() {
        // 60/min = one a second; a burst of 2 passes at once, the rest is spaced. (A second,
        // not 10 ms: a loaded machine may take longer than one cell between two checks.)
        let budget = RateBudget::per_minute("test", 60, 2);
        let limiter = budget.limiter.as_ref().unwrap();
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_ok());
        assert!(
            limiter.check().is_err(),
            "the third call in the same instant is over budget"
        );
        budget.acquire().await;
    }
}
