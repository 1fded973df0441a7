//! Scenario 4: a burst against a Genesys rate budget, drained by the simulator's fixed window
//! (`rate-budget-drain`) or by a token bucket in the bench's front (`rate-budget-smooth`).

use std::time::Duration;

use serde_json::Value;

use crate::report::ScenarioResult;

use super::events::{Budget, EventPlan};
use super::{Bench, Scenario};

impl Bench {
    pub(super) async fn rate_budget(&self, smooth: bool) -> anyhow::Result<ScenarioResult> {
        let n = self.sizes.drain_events;
        let budget = self.sizes.drain_budget_per_minute;
        let ideal = n as f64 / (f64::from(budget) / 60.0);
        let name = if smooth {
            Scenario::RateBudgetSmooth.name()
        } else {
            Scenario::RateBudgetDrain.name()
        };
        let plan = EventPlan {
            name,
            callers: (0..n as u64).collect(),
            queue_capacity: 20_000.max(n + 1_000),
            warmup: 20,
            budget: Some(Budget {
                per_minute: budget,
                smooth,
            }),
            drain_timeout: Duration::from_secs_f64(ideal * 2.5 + 30.0),
        };
        let mut r = self.run_events(&plan).await?;
        let drain = r
            .details
            .get("drain_secs")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        r.detail("ideal_drain_secs", ideal);
        r.detail("drain_vs_ideal", drain / ideal);
        r.detail(
            "budget",
            if smooth {
                format!(
                    "{budget}/min per token as a token bucket ({:.1}/s, bucket of 1 s) in the bench's front, simulator limit off",
                    f64::from(budget) / 60.0
                )
            } else {
                format!("{budget}/min per token: the simulator's fixed 60-second window")
            },
        );
        if !smooth && n as u64 <= u64::from(budget) {
            r.detail(
                "note",
                "the simulator's window is a fixed 60 s: a burst no larger than the per-minute budget is admitted at once, so the drain is bounded by attrsync's own speed, not by the budget",
            );
        }
        r.target(
            "drain time",
            "<= 1.05 x ideal (events / budget)",
            format!("{drain:.1} s vs ideal {ideal:.1} s ({:.2}x)", drain / ideal),
            drain <= ideal * 1.05,
        );
        let lost = r.events_lost.unwrap_or(i64::MAX);
        r.target("events lost", "0", lost.to_string(), lost == 0);
        let limited = r.rate_limited_429.unwrap_or(u64::MAX);
        r.target("429s", "0", limited.to_string(), limited == 0);
        Ok(r)
    }
}
