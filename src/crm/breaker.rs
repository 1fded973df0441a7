//! A circuit breaker in front of the CRM adapter: after `threshold` consecutive failures the CRM
//! is left alone for `cooldown` and lookups fail at once, so a struggling CRM is not hammered and
//! the synchronous lookup answers within its deadline instead of waiting on timeouts. After the
//! cooldown one trial call is let through: success closes the circuit, failure opens it again.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight.
    HalfOpen,
}

pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

/// Permission to call the CRM; report how the call went with `succeeded` or `failed`.
#[derive(Debug)]
pub enum Permit {
    Go,
    /// Open: how long until a trial call will be allowed.
    Refused(Duration),
}

impl Breaker {
    /// `threshold = 0` disables the breaker.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        ::metrics::gauge!(metrics::BREAKER_STATE).set(0.0);
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, state: &mut State, next: State) {
        *state = next;
        let value = match next {
            State::Closed { .. } => 0.0,
            State::Open { .. } => 1.0,
            State::HalfOpen => 2.0,
        };
        ::metrics::gauge!(metrics::BREAKER_STATE).set(value);
    }

    pub fn permit(&self) -> Permit {
        if self.threshold == 0 {
            return Permit::Go;
        }
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Permit::Go,
            State::HalfOpen => Permit::Refused(self.cooldown),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    self.set(&mut state, State::HalfOpen);
                    tracing::info!("CRM circuit half-open: trying one call");
                    Permit::Go
                } else {
                    Permit::Refused(until - now)
                }
            }
        }
    }

    pub fn succeeded(&self) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        if *state == State::HalfOpen {
            tracing::info!("CRM circuit closed");
        }
        if *state != (State::Closed { failures: 0 }) {
            self.set(&mut state, State::Closed { failures: 0 });
        }
    }

    pub fn failed(&self) {
        if self.threshold == 0 {
            return;
        }
        let mut state = self.lock();
        let next = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Open { until } => State::Open { until },
            _ => {
                tracing::warn!(
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "CRM circuit open"
                );
                State::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
        };
        self.set(&mut state, next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_the_threshold_and_recovers_after_a_good_trial() {
        let b = Breaker::new(3, Duration::from_secs(10));
        for _ in 0..2 {
            b.failed();
            assert!(matches!(b.permit(), Permit::Go));
        }
        b.failed();
        assert!(matches!(b.permit(), Permit::Refused(_)));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(
            matches!(b.permit(), Permit::Go),
            "one trial after the cooldown"
        );
        assert!(
            matches!(b.permit(), Permit::Refused(_)),
            "only one trial at a time"
        );
        b.succeeded();
        assert!(matches!(b.permit(), Permit::Go));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_opens_the_circuit_again() {
        let b = Breaker::new(1, Duration::from_secs(5));
        b.failed();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(b.permit(), Permit::Go));
        b.failed();
        assert!(matches!(b.permit(), Permit::Refused(_)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = Breaker::new(2, Duration::from_secs(5));
        b.failed();
        b.succeeded();
        b.failed();
        assert!(matches!(b.permit(), Permit::Go));
    }

    #[test]
    fn threshold_zero_disables_the_breaker() {
        let b = Breaker::new(0, Duration::from_secs(5));
        for _ in 0..100 {
            b.failed();
        }
        assert!(matches!(b.permit(), Permit::Go));
    }
}
