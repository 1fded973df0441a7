//! The client-side limit on HubSpot's search endpoint: at most `n` searches in any rolling
//! second, as HubSpot counts them. HubSpot limits search "to five requests per second per
//! account" (search guide, developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm,
//! Limits), separately from and stricter than the account's ten-secondly limit; a token bucket
//! refilled per minute would let a burst through.
//!
//! HubSpot sees a request somewhere between its sending and its answer, so a search occupies its
//! slot from the moment it is sent until a second after its answer came back ([`Permit`] marks
//! the answer when dropped). A new search goes only when fewer than `n` slots are taken: then no
//! `n + 1` of them can reach HubSpot within one second, however late the network delivered the
//! earlier ones.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

const WINDOW: Duration = Duration::from_secs(1);
/// How often a waiter looks again while every slot is held by a search still in flight (an
/// answer also wakes it).
const IN_FLIGHT_POLL: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Slots {
    in_flight: usize,
    /// When each recent search's answer came back, oldest first.
    answered: VecDeque<Instant>,
}

pub(super) struct SearchLimiter {
    per_second: usize,
    slots: Mutex<Slots>,
    answered: Notify,
}

/// One search's slot: held while it is in flight, released (its answer time recorded) on drop.
pub(super) struct Permit<'a> {
    limiter: Option<&'a SearchLimiter>,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(limiter) = self.limiter {
            {
                let mut slots = limiter.lock();
                slots.in_flight = slots.in_flight.saturating_sub(1);
                slots.answered.push_back(Instant::now());
            }
            limiter.answered.notify_waiters();
        }
    }
}

impl SearchLimiter {
    /// `per_second` = 0: no limit.
    pub(super) fn new(per_second: u32) -> Self {
        Self {
            per_second: per_second as usize,
            slots: Mutex::new(Slots::default()),
            answered: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a free slot and takes it; keep the permit until the answer has arrived.
    pub(super) async fn acquire(&self) -> Permit<'_> {
        if self.per_second == 0 {
            return Permit { limiter: None };
        }
        loop {
            let wait = {
                let mut slots = self.lock();
                let now = Instant::now();
                while slots
                    .answered
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
                {
                    slots.answered.pop_front();
                }
                if slots.in_flight + slots.answered.len() < self.per_second {
                    slots.in_flight += 1;
                    return Permit {
                        limiter: Some(self),
                    };
                }
                slots
                    .answered
                    .front()
                    .map(|oldest| (*oldest + WINDOW).saturating_duration_since(now))
                    .unwrap_or(IN_FLIGHT_POLL)
            };
            let notified = self.answered.notified();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = notified => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_limit_go_in_any_rolling_second_counted_from_their_answers() {
        let limiter = SearchLimiter::new(5);
        let started = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..12 {
            let permit = limiter.acquire().await;
            sent.push(started.elapsed());
            // Each search takes 100 ms to answer.
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(permit);
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[i..].iter().filter(|u| **u < *t + WINDOW).count();
            assert!(
                in_window <= 5,
                "{in_window} searches within a second of {t:?}"
            );
        }
        assert!(sent[5] >= Duration::from_millis(1100), "{sent:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn searches_in_flight_hold_their_slots() {
        let limiter = SearchLimiter::new(2);
        let a = limiter.acquire().await;
        let _b = limiter.acquire().await;
        let waiting = tokio::time::timeout(Duration::from_secs(5), limiter.acquire()).await;
        assert!(waiting.is_err(), "both slots are in flight");
        drop(a);
        let started = Instant::now();
        let _c = limiter.acquire().await;
        assert!(started.elapsed() >= WINDOW, "a second after the answer");
    }

    #[tokio::test(start_paused = true)]
    async fn zero_means_no_limit() {
        let limiter = SearchLimiter::new(0);
        let started = Instant::now();
        let permits: Vec<_> = futures::future::join_all((0..100).map(|_| limiter.acquire())).await;
        assert_eq!(permits.len(), 100);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
