//! Scenario 1: event throughput, every event a distinct caller.

use std::time::Duration;

use crate::report::ScenarioResult;

use super::events::EventPlan;
use super::{Bench, Scenario};

impl Bench {
    pub(super) async fn event_throughput(&self) -> anyhow::Result<ScenarioResult> {
        let n = self.sizes.events;
        let plan = EventPlan {
            name: Scenario::EventThroughput.name(),
            callers: (0..n as u64).collect(),
            queue_capacity: n + self.sizes.warmup_events + 1_000,
            warmup: self.sizes.warmup_events,
            budget: None,
            drain_timeout: Duration::from_secs(120),
        };
        let mut r = self.run_events(&plan).await?;
        if let Some(rate) = r.rate {
            r.target(
                "throughput",
                ">= 5000 events/s",
                format!("{rate:.0} events/s"),
                rate >= 5_000.0,
            );
        }
        Ok(r)
    }
}
