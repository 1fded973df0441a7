//! `token-pool`: 1, 2 and 4 Genesys tokens (`genesys.tokens`) against the simulator's per-token
//! limit, with a backlog that never runs dry during the measurement: the sustained PATCH rate
//! against the ideal (tokens x the per-token limit), the 429s (0 wanted) and the events lost
//! (0 wanted: every event is patched once the backlog drains). The per-token limit is scaled
//! down from Genesys's 300 a minute (60 a minute, 600 with `--quick`) so a run takes minutes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::simulator::NewConversation;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;

use crate::load::phone;
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::events::event_body;
use super::{Bench, Scenario};

/// Callers of this scenario, apart from every other scenario's.
const POOL_CALLERS: u64 = 8_000_000;

impl Bench {
    pub(super) async fn token_pool(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::TokenPool.name();
        let mut r = ScenarioResult::new(name);
        let (per_token, warm_secs, measure_secs) = if self.sizes.quick {
            (600u32, 5.0, 30.0)
        } else {
            (60u32, 20.0, 120.0)
        };
        let mut runs = Vec::new();
        let mut worst = 1.0f64;
        let mut all_429 = 0u64;
        let mut all_lost = 0i64;
        for tokens in [1u32, 2, 4] {
            let run = self
                .pool_run(tokens, per_token, warm_secs, measure_secs)
                .await?;
            worst = worst.min(run.rate_per_min / run.ideal_per_min);
            all_429 += run.rate_limited;
            all_lost += run.lost;
            runs.push(json!({
                "tokens": tokens,
                "per_token_limit_per_min": per_token,
                "ideal_patches_per_min": run.ideal_per_min,
                "sustained_patches_per_min": run.rate_per_min,
                "vs_ideal": run.rate_per_min / run.ideal_per_min,
                "measured_secs": measure_secs,
                "events": run.events,
                "patched": run.patched,
                "rate_limited_429": run.rate_limited,
                "events_lost": run.lost,
                "tokens_issued": run.tokens_issued,
            }));
            r.rate = Some(run.rate_per_min / 60.0);
        }
        r.rate_unit = "PATCH/s".to_owned();
        r.rate_definition = "sustained PATCH rate with 4 tokens (see runs)".to_owned();
        r.rate_limited_429 = Some(all_429);
        r.events_lost = Some(all_lost);
        r.genesys_calls_per_event = Some(1.0);
        r.detail("runs", serde_json::Value::Array(runs));
        r.detail(
            "method",
            format!("simulator limit {per_token}/min per token (fixed 60 s windows), attrsync genesys.rate_limit_per_minute = {per_token}, burst 5; backlog of (ideal x (warm-up + measurement) x 1.1) events; rate = PATCHes the simulator accepted in the {measure_secs} s after a {warm_secs} s warm-up"),
        );
        r.target(
            "sustained rate",
            ">= 0.95 x tokens x per-token limit, for 1, 2 and 4 tokens",
            format!("worst {worst:.3} of ideal"),
            worst >= 0.95,
        );
        r.target("429s", "0", all_429.to_string(), all_429 == 0);
        r.target("events lost", "0", all_lost.to_string(), all_lost == 0);
        Ok(r)
    }

    async fn pool_run(
        &self,
        tokens: u32,
        per_token: u32,
        warm_secs: f64,
        measure_secs: f64,
    ) -> anyhow::Result<PoolRun> {
        let name = format!("{}-{tokens}", Scenario::TokenPool.name());
        let genesys = GenesysFront::start().await?;
        genesys.sim.set_rate_limit(Some(per_token));
        let crm = CrmFront::start(self.crm).await?;
        let ideal_per_min = f64::from(per_token * tokens);
        let events = (ideal_per_min / 60.0 * (warm_secs + measure_secs) * 1.1).ceil() as usize;
        let mut ids = Vec::with_capacity(events);
        let mut bodies = Vec::with_capacity(events);
        for k in 0..events as u64 {
            let p = phone(POOL_CALLERS + u64::from(tokens) * 100_000 + k);
            let call = genesys.sim.create_conversation(NewConversation {
                ani: Some(format!("tel:{p}")),
                dnis: Some("tel:+18005550100".to_owned()),
                attributes: BTreeMap::new(),
                ..NewConversation::default()
            });
            bodies.push(event_body(&call, &p)?);
            ids.push(call.conversation_id);
        }
        genesys.track(&ids)?;
        let extra = [
            ("ATTRSYNC_GENESYS__TOKENS", tokens.to_string()),
            (
                "ATTRSYNC_GENESYS__RATE_LIMIT_PER_MINUTE",
                per_token.to_string(),
            ),
            ("ATTRSYNC_GENESYS__RATE_LIMIT_BURST", "5".to_owned()),
            ("ATTRSYNC_QUEUE__CAPACITY", (events + 1_000).to_string()),
            // The backlog waits for the budget, not for a retry horizon.
            ("ATTRSYNC_QUEUE__RETRY_HORIZON_SECS", "3600".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let running = self
            .start_attrsync(&name, &genesys, &crm, extra, 32)
            .await?;
        let outcome = async {
            let url = format!("{}/v1/events/genesys", running.child.base);
            let header = HeaderName::from_static("x-api-key");
            let key = HeaderValue::from_str(&running.secrets.api_key)?;
            let http = Arc::new(running.http.clone());
            // The whole backlog is accepted first (202s), then drains at the budget's pace.
            let mut accepted = 0usize;
            for chunk in bodies.chunks(64) {
                let mut sends = tokio::task::JoinSet::new();
                for body in chunk {
                    let request = http
                        .post(&url)
                        .header(header.clone(), key.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone());
                    sends.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
                }
                while let Some(sent) = sends.join_next().await {
                    if matches!(sent, Ok(Ok(202))) {
                        accepted += 1;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs_f64(warm_secs)).await;
            let before = genesys.tracked_patches();
            tokio::time::sleep(Duration::from_secs_f64(measure_secs)).await;
            let after = genesys.tracked_patches();
            let rate_per_min = (after - before) as f64 / measure_secs * 60.0;
            // Then the rest drains: every accepted event must be patched.
            let rest = (events as f64 - after as f64).max(0.0) / (ideal_per_min / 60.0);
            let deadline = Instant::now() + Duration::from_secs_f64(rest * 2.0 + 30.0);
            while genesys.tracked_patches() < events as u64 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let patched = genesys.tracked_patches();
            let stats = genesys.sim.stats();
            anyhow::Ok(PoolRun {
                ideal_per_min,
                rate_per_min,
                events,
                patched,
                rate_limited: stats.rate_limited,
                lost: accepted as i64 - patched as i64 + (events - accepted) as i64,
                tokens_issued: stats.tokens_issued,
            })
        }
        .await;
        let mut scratch = ScenarioResult::new(&name);
        self.stop(running, &mut scratch).await;
        outcome
    }
}

struct PoolRun {
    ideal_per_min: f64,
    rate_per_min: f64,
    events: usize,
    patched: u64,
    rate_limited: u64,
    lost: i64,
    tokens_issued: u64,
}
