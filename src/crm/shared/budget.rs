//! A source's rate budget for the whole deployment ([`SharedBudget`]): one row of
//! `attrsync_crm_budget` per source holds the GCRA TATs of its limits (`rate_limit_per_minute`
//! with its burst, `rate_limit_per_second`). A call reserves its slot with one `UPDATE`: the row
//! lock serialises reservations across replicas, and the expressions (including the database's
//! clock, `clock_timestamp()`) are evaluated once the lock is held, so no reservation is decided
//! on a time from before the previous one's commit. The arithmetic is `gcra::reserve`'s,
//! transcribed; `gcra` is where it is specified and tested. Then the caller sleeps until its
//! slot. However many replicas there are, the CRM sees at most the budget.
//!
//! A slot further away than the source's `max_retry_after_secs` is not taken (the `UPDATE`'s
//! `WHERE` refuses it): the call fails as `OverBudget` with the wait (a queued event is retried
//! then), instead of a lookup holding a slot it would give up before (its deadline) and wasting
//! it for everyone.
//!
//! Why one `UPDATE` is enough: under Read Committed a concurrent `UPDATE` of the same row waits
//! for the first to commit, then "will attempt to apply its operation to the updated version of
//! the row", re-evaluating its `WHERE` (PostgreSQL documentation, "Transaction Isolation", Read
//! Committed). `clock_timestamp()` is the wall clock, changing during a statement, where
//! `now()` is the transaction's start (PostgreSQL documentation, "Date/Time Functions and
//! Operators"): `now()` here would be a time from before the wait. That the re-evaluation reads
//! `clock_timestamp()` again after the wait follows from it re-running the expressions on the
//! new row version; it is not spelled out there (unverified beyond `tests/shared_state.rs` and
//! `tests/api/replicas.rs`, where no window exceeds the budget).
//!
//! Fails closed: when the database cannot be reached the call fails (`SharedState`, retryable)
//! and the CRM is not called. A budget is the CRM's contract (HubSpot and Zendesk answer 429
//! past it); with `queue.backend = "postgres"` the queue stops with the database anyway.

use std::time::{Duration, Instant};

use super::gcra::Limit;
use super::{bounded, SharedError, SharedStore, NOW_US};
use crate::config::SourceSettings;
use crate::crm::budget::CallBudget;
use crate::crm::CrmError;
use crate::metrics;

/// The `reason` label of `attrsync_crm_shared_budget_refusals_total`: no slot within the
/// horizon, or no database.
pub const OVER_BUDGET: &str = "over_budget";
pub const UNAVAILABLE: &str = "unavailable";
pub const REFUSAL_REASONS: [&str; 2] = [OVER_BUDGET, UNAVAILABLE];

pub struct SharedBudget {
    store: SharedStore,
    source: &'static str,
    limits: Vec<Limit>,
    /// The furthest slot a call takes.
    horizon: Duration,
    /// One reservation at a time from this process: the others queue here rather than each
    /// holding one of the queue's pooled connections while waiting for the row lock.
    turn: tokio::sync::Mutex<()>,
    /// The earliest slot the last refusal named (in this process's clock). TATs only grow, so
    /// until it is within the horizon again every reservation would be refused too: those
    /// are refused here, without a round trip (under load, refused callers would otherwise
    /// crowd the row lock and delay the ones that get a slot).
    refused_until: std::sync::Mutex<Option<Instant>>,
}

/// What a reservation came to.
enum Reserved {
    /// The slot is taken: go at this instant (of this process's clock).
    At(Instant),
    /// The next slot is this far away: none taken.
    TooFar(Duration),
}

impl SharedBudget {
    /// The budget of `source` as its section's `settings` describe it, kept in `store`, its
    /// slots spaced for calls up to `margin` late.
    pub fn from_settings(
        store: SharedStore,
        source: &'static str,
        settings: &SourceSettings,
        margin: Duration,
    ) -> Self {
        let margin_us = i64::try_from(margin.as_micros()).unwrap_or(0);
        let limits = [
            Limit::per_minute(
                settings.rate_limit_per_minute,
                settings.rate_limit_burst,
                margin_us,
            ),
            Limit::per_second(settings.rate_limit_per_second, margin_us),
        ]
        .into_iter()
        .flatten()
        .collect();
        Self {
            store,
            source,
            limits,
            horizon: Duration::from_secs(settings.max_retry_after_secs),
            turn: tokio::sync::Mutex::new(()),
            refused_until: std::sync::Mutex::new(None),
        }
    }

    /// `(interval, tolerance)` of the limit named `name`, or of no limit: no spacing, and a
    /// tolerance so large that it never holds a call back.
    fn params(&self, name: &str) -> (i64, i64) {
        self.limits
            .iter()
            .find(|l| l.name == name)
            .map_or((0, NO_LIMIT), |l| (l.interval_us, l.tolerance_us))
    }

    /// One reservation: `gcra::reserve` as one `UPDATE` of the source's row.
    async fn reserve(&self) -> Result<Reserved, SharedError> {
        let (minute_interval, minute_tolerance) = self.params("minute");
        let (second_interval, second_tolerance) = self.params("second");
        let horizon_us = i64::try_from(self.horizon.as_micros()).unwrap_or(i64::MAX);
        let slot = format!("GREATEST({NOW_US}, b.minute_tat_us - $3, b.second_tat_us - $5)");
        for _ in 0..4 {
            let reserved: Option<i64> = sqlx::query_scalar(&format!(
                "UPDATE attrsync_crm_budget AS b SET
                    minute_tat_us = GREATEST(b.minute_tat_us, {slot}) + $2,
                    second_tat_us = GREATEST(b.second_tat_us, {slot}) + $4,
                    slot_us = {slot}
                 WHERE b.source = $1 AND {slot} - {NOW_US} <= $6
                 RETURNING b.slot_us - {NOW_US}"
            ))
            .bind(self.source)
            .bind(minute_interval)
            .bind(minute_tolerance)
            .bind(second_interval)
            .bind(second_tolerance)
            .bind(horizon_us)
            .fetch_optional(self.store.pool())
            .await?;
            let answered = Instant::now();
            if let Some(wait_us) = reserved {
                return Ok(Reserved::At(answered + micros(wait_us)));
            }
            // Refused: the slot is too far away, or the source has no row yet.
            let wait_us: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT GREATEST({NOW_US}, b.minute_tat_us - $2, b.second_tat_us - $3) - {NOW_US}
                 FROM attrsync_crm_budget AS b WHERE b.source = $1"
            ))
            .bind(self.source)
            .bind(minute_tolerance)
            .bind(second_tolerance)
            .fetch_optional(self.store.pool())
            .await?;
            match wait_us.map(micros) {
                // At least the horizon, as it was when refused: a wait within the source's
                // `max_retry_after_secs` would have `Upstream::call` sleep and try again, holding
                // the lookup (and its shared cache claim) longer than a queued retry would.
                Some(wait) if wait > self.horizon => {
                    return Ok(Reserved::TooFar(
                        wait.max(self.horizon + Duration::from_millis(1)),
                    ))
                }
                // The row appeared (another replica made it) or the slot came within reach
                // since: try again.
                Some(_) => continue,
                None => {}
            }
            sqlx::query(
                "INSERT INTO attrsync_crm_budget (source, minute_tat_us, second_tat_us, slot_us)
                 VALUES ($1, 0, 0, 0) ON CONFLICT DO NOTHING",
            )
            .bind(self.source)
            .execute(self.store.pool())
            .await?;
        }
        Err(SharedError::Corrupt(
            "no reservation after four tries (the budget row keeps changing or cannot be made)"
                .into(),
        ))
    }
}

impl SharedBudget {
    /// The wait to the slot the last refusal named, while it is still beyond the horizon.
    fn known_refusal(&self) -> Option<Duration> {
        let until = (*self.refused_until.lock().ok()?)?;
        let wait = until.checked_duration_since(Instant::now())?;
        (wait > self.horizon).then_some(wait)
    }
}

/// The tolerance of an absent limit: `TAT − tolerance` is always in the past.
const NO_LIMIT: i64 = 1 << 60;

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[async_trait::async_trait]
impl CallBudget for SharedBudget {
    async fn acquire(&self) -> Result<(), CrmError> {
        if self.limits.is_empty() {
            return Ok(());
        }
        let refused = |reason: &'static str| {
            ::metrics::counter!(metrics::SHARED_BUDGET_REFUSALS, "source" => self.source, "reason" => reason)
                .increment(1);
        };
        if let Some(wait) = self.known_refusal() {
            refused(OVER_BUDGET);
            return Err(CrmError::OverBudget { retry_after: wait });
        }
        // In turn within this process (not counted in the statement's time limit): waiting
        // here costs no pooled connection.
        let turn = self.turn.lock().await;
        let reserved = bounded(self.reserve()).await;
        drop(turn);
        match reserved {
            Ok(Reserved::At(slot)) => {
                let started = Instant::now();
                if slot > started {
                    ::metrics::counter!(metrics::LIMITER_WAITS, "upstream" => "crm", "source" => self.source)
                        .increment(1);
                    tokio::time::sleep_until(slot.into()).await;
                    ::metrics::histogram!(metrics::LIMITER_WAIT_SECONDS, "upstream" => "crm", "source" => self.source)
                        .record(started.elapsed().as_secs_f64());
                }
                Ok(())
            }
            Ok(Reserved::TooFar(wait)) => {
                if let Ok(mut until) = self.refused_until.lock() {
                    *until = Some(Instant::now() + wait);
                }
                refused(OVER_BUDGET);
                Err(CrmError::OverBudget { retry_after: wait })
            }
            Err(e) => {
                refused(UNAVAILABLE);
                tracing::warn!(source = self.source, error = %e, "the shared CRM budget is unreachable; not calling the CRM");
                Err(e.into())
            }
        }
    }
}
