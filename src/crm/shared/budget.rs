//! A source's rate budget for the whole deployment ([`SharedBudget`]): the source's limits
//! (`rate_limit_per_minute` with its burst, `rate_limit_per_second`) are rows of
//! `attrsync_crm_budget` holding their GCRA TATs. Each call locks its source's rows, reads the
//! database's clock, takes the earliest slot every limit allows (`gcra::reserve`), writes the
//! TATs back and commits; then it sleeps until its slot. The lock serialises reservations
//! across replicas, one short transaction each (about a millisecond on a local network), so
//! however many replicas there are the CRM sees at most the budget.
//!
//! A slot further away than the source's `max_retry_after_secs` is not taken: the call fails as
//! `OverBudget` with the wait (a queued event is retried then), instead of a lookup holding a
//! slot it would give up before (its deadline) and wasting it for everyone.
//!
//! Fails closed: when the database cannot be reached the call fails (`SharedState`, retryable)
//! and the CRM is not called. A budget is the CRM's contract (HubSpot and Zendesk answer 429
//! past it, and persistent overuse can get an integration's key suspended); with
//! `queue.backend = "postgres"` the queue stops with the database anyway.

use std::time::{Duration, Instant};

use sqlx::Row as _;

use super::gcra::{self, Limit};
use super::{bounded, SharedError, SharedStore, NOW_US};
use crate::config::SourceSettings;
use crate::crm::budget::CallBudget;
use crate::crm::CrmError;
use crate::metrics;

pub struct SharedBudget {
    store: SharedStore,
    source: &'static str,
    limits: Vec<Limit>,
    /// The furthest slot a call takes.
    horizon: Duration,
    /// One reservation at a time from this process: the others queue here rather than each
    /// holding one of the queue's pooled connections while waiting for the row lock.
    turn: tokio::sync::Mutex<()>,
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
        }
    }

    /// One reservation, in one transaction: lock the rows, read the clock, decide, write.
    async fn reserve(&self) -> Result<Reserved, SharedError> {
        let _turn = self.turn.lock().await;
        let names: Vec<String> = self.limits.iter().map(|l| l.name.to_owned()).collect();
        for _ in 0..2 {
            let mut tx = self.store.pool().begin().await?;
            let rows = sqlx::query(
                "SELECT limit_name, tat_us FROM attrsync_crm_budget
                 WHERE source = $1 AND limit_name = ANY($2) ORDER BY limit_name FOR UPDATE",
            )
            .bind(self.source)
            .bind(&names)
            .fetch_all(&mut *tx)
            .await?;
            if rows.len() < self.limits.len() {
                // First use of this source (or the table was emptied): make the rows, then
                // lock them again.
                tx.rollback().await?;
                sqlx::query(
                    "INSERT INTO attrsync_crm_budget (source, limit_name, tat_us)
                     SELECT $1, unnest($2::text[]), 0 ON CONFLICT DO NOTHING",
                )
                .bind(self.source)
                .bind(&names)
                .execute(self.store.pool())
                .await?;
                continue;
            }
            let mut tats = vec![0_i64; self.limits.len()];
            for row in &rows {
                let name: String = row.try_get("limit_name")?;
                if let Some(i) = self.limits.iter().position(|l| l.name == name) {
                    tats[i] = row.try_get("tat_us")?;
                }
            }
            // The clock is read once the rows are locked: a reservation must not be decided
            // on a time from before the previous holder's commit.
            let now: i64 = sqlx::query_scalar(&format!("SELECT {NOW_US}"))
                .fetch_one(&mut *tx)
                .await?;
            // The slot in this process's clock: the commit's round trips must not delay it.
            let read_at = Instant::now();
            let reservation = gcra::reserve(now, &self.limits, &tats);
            let wait = reservation.wait(now);
            if wait > self.horizon {
                tx.rollback().await?;
                return Ok(Reserved::TooFar(wait));
            }
            sqlx::query(
                "UPDATE attrsync_crm_budget AS b SET tat_us = v.tat_us
                 FROM (SELECT unnest($2::text[]) AS limit_name, unnest($3::bigint[]) AS tat_us) AS v
                 WHERE b.source = $1 AND b.limit_name = v.limit_name",
            )
            .bind(self.source)
            .bind(&names)
            .bind(&reservation.tats_us)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Reserved::At(read_at + wait));
        }
        Err(SharedError::Corrupt(
            "the budget rows could not be created".into(),
        ))
    }
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
        match bounded(self.reserve()).await {
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
                refused("over_budget");
                Err(CrmError::OverBudget { retry_after: wait })
            }
            Err(e) => {
                refused("unavailable");
                tracing::warn!(source = self.source, error = %e, "the shared CRM budget is unreachable; not calling the CRM");
                Err(e.into())
            }
        }
    }
}
