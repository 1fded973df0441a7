//! The Genesys token pool: several client-credentials tokens (`genesys.tokens` per OAuth client,
//! and optional extra clients), each a *slot* with its own single-flight token fetch, its own 401
//! renewal, its own budget and a parked-until time. Genesys limits requests per token (about 300
//! a minute; a community figure, see README), so N tokens carry N times one token's traffic.
//!
//! Each call takes a permit from the free slot with the most budget left ([`slots::choose`]); a
//! 429 parks that slot for its `Retry-After` and the caller moves on to another slot at once.
//! Slots are reported by number (`slot` = "0".."N-1"), never by token or client id.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::slots::{choose, Choice, SlotBudget, SlotState};
use super::token::{AccessToken, TokenProvider};
use super::GenesysError;
use crate::metrics;

/// How long a slot whose token could not be fetched is left alone, so calls go elsewhere.
const PARK_AFTER_TOKEN_FAILURE: Duration = Duration::from_secs(5);
/// A 429 without `Retry-After` parks its slot this long.
const PARK_WITHOUT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct TokenPool {
    providers: Vec<TokenProvider>,
    /// "0", "1", ...: the `slot` label, a closed set fixed by the configuration.
    labels: Vec<String>,
    state: Mutex<Vec<SlotState>>,
}

/// A permit to send one request on `slot`.
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    pub slot: usize,
}

impl TokenPool {
    /// One slot per provider, each with the same budget.
    pub fn new(providers: Vec<TokenProvider>, per_minute: u32, burst: u32) -> Self {
        let state = providers
            .iter()
            .map(|_| SlotState::new(SlotBudget::new(per_minute, Duration::from_secs(60), burst)))
            .collect();
        let labels = (0..providers.len()).map(|i| i.to_string()).collect();
        Self {
            providers,
            labels,
            state: Mutex::new(state),
        }
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    fn state(&self) -> MutexGuard<'_, Vec<SlotState>> {
        // A panic while holding the lock leaves consistent data (each update is one assignment).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a slot may send, and takes its permit; when no slot will be free within
    /// `max_wait` (every one parked after 429s), returns how long until the first is, without
    /// waiting: the caller's job goes back to the queue rather than holding a worker.
    pub async fn acquire(&self, max_wait: Duration) -> Result<Permit, Duration> {
        let mut waited: Option<tokio::time::Instant> = None;
        loop {
            let now = Instant::now();
            let choice = {
                let mut slots = self.state();
                let choice = choose(&mut slots, now);
                if let Choice::Use(slot) = choice {
                    slots[slot].budget.take(now);
                    let remaining = slots[slot].budget.remaining(now);
                    if remaining != u32::MAX {
                        ::metrics::gauge!(metrics::GENESYS_SLOT_REMAINING, "slot" => self.labels[slot].clone())
                            .set(f64::from(remaining));
                    }
                }
                choice
            };
            match choice {
                Choice::Use(slot) => {
                    if let Some(started) = waited {
                        ::metrics::histogram!(metrics::LIMITER_WAIT_SECONDS, "upstream" => "genesys")
                            .record(started.elapsed().as_secs_f64());
                    }
                    ::metrics::counter!(metrics::GENESYS_SLOT_REQUESTS, "slot" => self.labels[slot].clone())
                        .increment(1);
                    return Ok(Permit { slot });
                }
                Choice::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(now);
                    if wait > max_wait {
                        return Err(wait);
                    }
                    if waited.is_none() {
                        waited = Some(tokio::time::Instant::now());
                        ::metrics::counter!(metrics::LIMITER_WAITS, "upstream" => "genesys")
                            .increment(1);
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                }
            }
        }
    }

    /// The slot's token, fetched once for all concurrent callers. A failed fetch parks the slot
    /// briefly, so the next calls try the others.
    pub async fn token(&self, permit: Permit) -> Result<Arc<AccessToken>, GenesysError> {
        let result = self.providers[permit.slot].token().await;
        if result.is_err() {
            self.park(permit.slot, PARK_AFTER_TOKEN_FAILURE);
        }
        result
    }

    /// Drops the slot's token after Genesys rejected it (401).
    pub async fn invalidate(&self, permit: Permit, stale: &AccessToken) {
        self.providers[permit.slot].invalidate(stale).await;
    }

    /// Parks the slot after a 429; returns whether another slot is free to take the call now.
    pub fn rate_limited(&self, permit: Permit, retry_after: Option<Duration>) -> bool {
        self.park(permit.slot, retry_after.unwrap_or(PARK_WITHOUT_RETRY_AFTER));
        ::metrics::counter!(metrics::GENESYS_SLOT_PARKED, "slot" => self.labels[permit.slot].clone())
            .increment(1);
        let now = Instant::now();
        matches!(choose(&mut self.state(), now), Choice::Use(_))
    }

    fn park(&self, slot: usize, duration: Duration) {
        let until = Instant::now() + duration;
        let mut slots = self.state();
        let parked = &mut slots[slot].parked_until;
        if parked.is_none_or(|p| p < until) {
            *parked = Some(until);
        }
    }

    /// Each slot's token, for readiness: `Ok` or the error, by slot number (fetched at once).
    pub async fn check(&self) -> Vec<Result<(), GenesysError>> {
        let mut fetches = tokio::task::JoinSet::new();
        for (slot, provider) in self.providers.iter().enumerate() {
            let provider = provider.clone();
            fetches.spawn(async move { (slot, provider.token().await.map(|_| ())) });
        }
        let mut out: Vec<Result<(), GenesysError>> = (0..self.providers.len())
            .map(|_| {
                Err(GenesysError::Connect(
                    "token check did not finish".to_owned(),
                ))
            })
            .collect();
        while let Some(joined) = fetches.join_next().await {
            if let Ok((slot, result)) = joined {
                out[slot] = result;
            }
        }
        out
    }
}
