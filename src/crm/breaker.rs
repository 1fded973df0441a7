//! A circuit breaker in front of each CRM source: after `threshold` consecutive failures the
//! source is left alone for `cooldown` and lookups fail at once, so a struggling CRM is not
//! hammered and the synchronous lookup answers within its deadline instead of waiting on
//! timeouts. After the cooldown one trial call is let through: success closes the circuit,
//! failure opens it again. A spent allocation (`CrmError::Quota`) opens it at once for as long
//! as the vendor needs ([`Breaker::trip`]).

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

/// What `/readyz` reports of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

pub struct Breaker {
    source: &'static str,
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
    /// The breaker of `source`; `threshold = 0` disables it (except for [`Breaker::trip`]).
    pub fn new(source: &'static str, threshold: u32, cooldown: Duration) -> Self {
        ::metrics::gauge!(metrics::BREAKER_STATE, "source" => source).set(0.0);
        Self {
            source,
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
        ::metrics::gauge!(metrics::BREAKER_STATE, "source" => self.source).set(value);
    }

    /// The state now (an open circuit whose cooldown is over reads half-open: the next call is
    /// the trial).
    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if Instant::now() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen => CircuitState::HalfOpen,
        }
    }

    /// Opens the circuit for `duration` whatever the failure count (a spent daily allocation);
    /// an open circuit stays open at least as long as it already would.
    pub fn trip(&self, duration: Duration) {
        let mut state = self.lock();
        let until = Instant::now() + duration;
        let until = match *state {
            State::Open { until: current } => current.max(until),
            _ => until,
        };
        tracing::warn!(
            source = self.source,
            open_ms = duration.as_millis() as u64,
            "CRM circuit open: the source's allocation is spent"
        );
        self.set(&mut state, State::Open { until });
    }

    pub fn permit(&self) -> Permit {
        let mut state = self.lock();
        if self.threshold == 0 && matches!(*state, State::Closed { .. }) {
            return Permit::Go;
        }
        match *state {
            State::Closed { .. } => Permit::Go,
            State::HalfOpen => Permit::Refused(self.cooldown),
            State::Open { until } => {
                let now = Instant::now();
                if now >= until {
                    self.set(&mut state, State::HalfOpen);
                    tracing::info!(
                        source = self.source,
                        "CRM circuit half-open: trying one call"
                    );
                    Permit::Go
                } else {
                    Permit::Refused(until - now)
                }
            }
        }
    }

    pub fn succeeded(&self) {
        let mut state = self.lock();
        if *state == State::HalfOpen {
            tracing::info!(source = self.source, "CRM circuit closed");
        }
        if *state != (State::Closed { failures: 0 }) {
            self.set(&mut state, State::Closed { failures: 0 });
        }
    }

    pub fn failed(&self) {
        let mut state = self.lock();
        if self.threshold == 0 {
            // No breaker but a trip: a failed trial (other than another trip) closes it again.
            if *state == State::HalfOpen {
                self.set(&mut state, State::Closed { failures: 0 });
            }
            return;
        }
        let next = match *state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            State::Open { until } => State::Open { until },
            _ => {
                tracing::warn!(
                    source = self.source,
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
        let b = Breaker::new("test", 3, Duration::from_secs(10));
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
        let b = Breaker::new("test", 1, Duration::from_secs(5));
        b.failed();
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(b.permit(), Permit::Go));
        b.failed();
        assert!(matches!(b.permit(), Permit::Refused(_)));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let b = Breaker::new("test", 2, Duration::from_secs(5));
        b.failed();
        b.succeeded();
        b.failed();
        assert!(matches!(b.permit(), Permit::Go));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trip_opens_the_circuit_for_its_duration_even_without_a_threshold() {
        let b = Breaker::new("test", 0, Duration::from_secs(5));
        b.trip(Duration::from_secs(60));
        assert_eq!(b.state(), CircuitState::Open);
        assert!(matches!(b.permit(), Permit::Refused(wait) if wait > Duration::from_secs(50)));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(matches!(b.permit(), Permit::Go), "the trial call");
        b.succeeded();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(matches!(b.permit(), Permit::Go));
    }

    #[test]
    fn threshold_zero_disables_the_breaker() {
        let b = Breaker::new("test", 0, Duration::from_secs(5));
        for _ in 0..100 {
            b.failed();
        }
        assert!(matches!(b.permit(), Permit::Go));
    }
}
