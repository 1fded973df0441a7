//! Scenario 2: repeat callers (90% seen before): the CRM cache should answer every repeat.

use std::time::Duration;

use crate::report::ScenarioResult;

use super::events::{repeat_callers, EventPlan};
use super::{Bench, Scenario};

impl Bench {
    pub(super) async fn repeat_callers(&self) -> anyhow::Result<ScenarioResult> {
        let n = self.sizes.events;
        let plan = EventPlan {
            name: Scenario::RepeatCallers.name(),
            callers: repeat_callers(n, 0.10, 0x5eed),
            queue_capacity: n + self.sizes.warmup_events + 1_000,
            warmup: self.sizes.warmup_events,
            budget: None,
            drain_timeout: Duration::from_secs(120),
        };
        let mut r = self.run_events(&plan).await?;
        if let Some(per) = r.crm_calls_per_unique_caller {
            r.target(
                "CRM calls per unique caller",
                "1.0 (every repeat served by the cache)",
                format!("{per:.3}"),
                (per - 1.0).abs() < 1e-9,
            );
        }
        Ok(r)
    }
}
