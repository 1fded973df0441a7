//! The rate budget a source's calls wait on, behind one small trait, [`CallBudget`]: this
//! process's governor limiters ([`LocalBudget`], per minute and per second: the SQLite and
//! single-process case) or the deployment-wide one in PostgreSQL (`shared::budget`).
//! `upstream::Budgets` picks one per source from `crm.shared.budget`, once, at start.

use super::CrmError;
use crate::budget::RateBudget;
use crate::config::SourceSettings;

/// Waits for a source's next call to be allowed.
#[async_trait::async_trait]
pub trait CallBudget: Send + Sync {
    /// Returns once one more call may go. Fails when no slot can be had: the shared budget's
    /// database is unreachable (`SharedState`), or its next slot is further away than the
    /// source's `max_retry_after_secs` (`OverBudget`).
    async fn acquire(&self) -> Result<(), CrmError>;
}

/// The budget of one process: `rate_limit_per_minute` (with its burst), then
/// `rate_limit_per_second`, each a governor GCRA of its own.
pub struct LocalBudget {
    per_minute: RateBudget,
    per_second: RateBudget,
}

impl LocalBudget {
    pub fn from_settings(source: &'static str, settings: &SourceSettings) -> Self {
        Self {
            per_minute: settings.budget(source),
            per_second: settings.per_second_budget(source),
        }
    }
}

#[async_trait::async_trait]
impl CallBudget for LocalBudget {
    async fn acquire(&self) -> Result<(), CrmError> {
        self.per_minute.acquire().await;
        // Checked after the minute's wait, at the moment the call would go.
        self.per_second.acquire().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn the_per_second_budget_spaces_calls_evenly() {
        let settings: SourceSettings = serde_json::from_value(serde_json::json!({
            "timeout_ms": 100, "max_retries": 0, "retry_base_ms": 1, "retry_max_ms": 1,
            "max_retry_after_secs": 1, "rate_limit_per_minute": 0, "rate_limit_burst": 1,
            "rate_limit_per_second": 50, "breaker_failures": 0, "breaker_cooldown_ms": 0,
            "cache_ttl_secs": 0, "not_found_ttl_secs": 0
        }))
        .unwrap();
        let budget = LocalBudget::from_settings("test", &settings);
        let started = Instant::now();
        for _ in 0..6 {
            budget.acquire().await.unwrap();
        }
        // 50 a second = one every 20 ms: the first goes at once, five more take 100 ms.
        assert!(started.elapsed() >= Duration::from_millis(95));
    }
}
