//! The client-side limit on HubSpot's search endpoint: at most `n` searches in any rolling
//! second. HubSpot limits search "to five requests per second per account" (search guide,
//! developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm, Limits), separately from
//! and stricter than the account's ten-secondly limit; a token bucket refilled per minute would
//! let a burst through, so this keeps the send times of the last second and waits for the oldest
//! to age out.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Slack added to each wait, so that a request sent exactly a second after another does not
/// reach HubSpot a hair early and count in the same window.
const MARGIN: Duration = Duration::from_millis(25);
const WINDOW: Duration = Duration::from_secs(1);

pub(super) struct SearchLimiter {
    per_second: usize,
    sent: Mutex<VecDeque<Instant>>,
}

impl SearchLimiter {
    /// `per_second` = 0: no limit.
    pub(super) fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second as usize,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until one more search keeps the last second's count within the limit, and counts
    /// it. Returns how long it waited.
    pub(super) async fn acquire(&self) -> Duration {
        let started = Instant::now();
        if self.per_second == 0 {
            return Duration::ZERO;
        }
        loop {
            let wait = {
                let mut sent = self.sent.lock().await;
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW + MARGIN)
                {
                    sent.pop_front();
                }
                if sent.len() < self.per_second {
                    sent.push_back(now);
                    return started.elapsed();
                }
                sent.front()
                    .map(|oldest| (*oldest + WINDOW + MARGIN).saturating_duration_since(now))
                    .unwrap_or(MARGIN)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_go_in_any_rolling_second() {
        let limiter = SearchLimiter::new(5);
        let started = Instant::now();
        let mut times = Vec::new();
        for _ in 0..12 {
            limiter.acquire().await;
            times.push(started.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().filter(|u| **u < *t + WINDOW).count();
            assert!(
                in_window <= 5,
                "{in_window} searches within a second of {t:?}"
            );
        }
        assert!(times[11] >= Duration::from_secs(2), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let limiter = SearchLimiter::new(0);
        for _ in 0..100 {
            assert_eq!(limiter.acquire().await, Duration::ZERO);
        }
    }
}
