//! What the event scenarios (1, 2 and 4) share: the plan of a run, creating the conversations,
//! starting attrsync, sending the events and waiting for every PATCH.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::simulator::{NewConversation, SimStats};
use axum::body::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;

use crate::load::{self, histogram, Latency};
use crate::report::{kb_to_mb, ScenarioResult};
use crate::upstream::{now_ns, CrmFront, GenesysFront};

use super::{metrics_delta, processed, secs, slow, Bench, Cpu, Running, WARMUP_CALLERS};
use crate::load::phone;

pub(super) struct Budget {
    pub(super) per_minute: u32,
    pub(super) smooth: bool,
}

pub(super) struct EventPlan {
    pub(super) name: &'static str,
    /// The caller of each measured event (an index for [`phone`]).
    pub(super) callers: Vec<u64>,
    pub(super) warmup: usize,
    pub(super) queue_capacity: usize,
    pub(super) budget: Option<Budget>,
    pub(super) drain_timeout: Duration,
}

impl Bench {
    pub(super) async fn run_events(&self, plan: &EventPlan) -> anyhow::Result<ScenarioResult> {
        let mut r = ScenarioResult::new(plan.name);
        let concurrency = self.sizes.concurrency;
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;

        // Conversations exist before anything is timed.
        let new_call = |phone: &str| {
            genesys.sim.create_conversation(NewConversation {
                ani: Some(format!("tel:{phone}")),
                dnis: Some("tel:+18005550100".to_owned()),
                attributes: BTreeMap::from([("flow.language".to_owned(), "en-US".to_owned())]),
                ..NewConversation::default()
            })
        };
        let warm: Vec<Bytes> = (0..plan.warmup as u64)
            .map(|k| {
                let p = phone(WARMUP_CALLERS + k);
                event_body(&new_call(&p), &p)
            })
            .collect::<anyhow::Result<_>>()?;
        let mut ids = Vec::with_capacity(plan.callers.len());
        let mut bodies = Vec::with_capacity(plan.callers.len());
        for &caller in &plan.callers {
            let p = phone(caller);
            let call = new_call(&p);
            bodies.push(event_body(&call, &p)?);
            ids.push(call.conversation_id);
        }
        genesys.track(&ids)?;
        let unique: HashSet<u64> = plan.callers.iter().copied().collect();

        let mut extra = vec![(
            "ATTRSYNC_QUEUE__CAPACITY".to_owned(),
            plan.queue_capacity.to_string(),
        )];
        match (&plan.budget, &self.client_rate_key) {
            (Some(budget), Some(key)) => {
                extra.push((
                    format!("ATTRSYNC_GENESYS__{}", key.to_ascii_uppercase()),
                    budget.per_minute.to_string(),
                ));
                r.detail(
                    "client_rate_limit",
                    format!(
                        "genesys.{key} = {} (burst: the default, {})",
                        budget.per_minute,
                        self.client_rate_burst
                            .map_or_else(|| "n/a".to_owned(), |b| b.to_string())
                    ),
                );
            }
            (None, Some(key)) => {
                extra.push((
                    format!("ATTRSYNC_GENESYS__{}", key.to_ascii_uppercase()),
                    "0".to_owned(),
                ));
                r.detail(
                    "client_rate_limit",
                    format!("genesys.{key} = 0 (off: this scenario measures attrsync's own speed, and the simulator has no limit either)"),
                );
            }
            (Some(_), None) => r.detail(
                "client_rate_limit",
                "none: config/default.toml has no genesys rate-limit key, so attrsync sends as fast as its workers go",
            ),
            (None, None) => {}
        }
        let running = self
            .start_attrsync(plan.name, &genesys, &crm, extra, concurrency)
            .await?;
        let outcome = self
            .drive_events(
                plan, &genesys, &crm, &running, warm, bodies, &unique, &mut r,
            )
            .await;
        self.stop(running, &mut r).await;
        outcome?;
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn drive_events(
        &self,
        plan: &EventPlan,
        genesys: &GenesysFront,
        crm: &CrmFront,
        running: &Running,
        warm: Vec<Bytes>,
        bodies: Vec<Bytes>,
        unique: &HashSet<u64>,
        r: &mut ScenarioResult,
    ) -> anyhow::Result<()> {
        let http = &running.http;
        let url = format!("{}/v1/events/genesys", running.child.base);
        let header = HeaderName::from_static("x-api-key");
        let key = HeaderValue::from_str(&running.secrets.api_key)?;
        let slow = slow(self);
        r.detail("ready_after_ms", running.ready_after.as_millis() as u64);

        // Warm-up: connections, token, allocator; not measured.
        let warm_n = warm.len() as u64;
        if warm_n > 0 {
            let req = load::EventRequests {
                url: url.clone(),
                header: header.clone(),
                key: key.clone(),
                bodies: Arc::new(warm),
            };
            let deadline = Instant::now() + Duration::from_secs(60) * slow;
            let w = load::send_events(
                http,
                &req,
                self.sizes.concurrency.min(warm_n as usize),
                deadline,
            )
            .await;
            let acked = w.acked.iter().filter(|a| **a).count() as u64;
            while genesys.untracked_patches() < acked && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r.detail("warmup_events", warm_n);
            r.detail("warmup_patched", genesys.untracked_patches());
        }

        if let Some(budget) = &plan.budget {
            if budget.smooth {
                genesys.set_smooth_limit(Some(budget.per_minute));
            } else {
                genesys.sim.set_rate_limit(Some(budget.per_minute));
            }
        }
        self.on_timed_phase(&running.child).await;
        let cpu0 = Cpu::now(&running.child);
        let stats0 = genesys.sim.stats();
        let crm0 = crm.requests();
        let front0 = genesys.front_429s();
        let prom0 = running.child.metrics(http).await?;

        // Timed phase.
        let req = load::EventRequests {
            url,
            header,
            key,
            bodies: Arc::new(bodies),
        };
        let deadline = Instant::now() + plan.drain_timeout * slow;
        let sent = load::send_events(http, &req, self.sizes.concurrency, deadline).await;
        let acked = sent.acked.iter().filter(|a| **a).count() as u64;

        // Drain: until every acknowledged event is patched, or attrsync has finished with every
        // one of them (some failed), or the deadline.
        let mut last_scrape = Instant::now();
        let mut finished_by_metrics = false;
        let mut scrape_failures = 0u32;
        let drained = loop {
            if genesys.tracked_patches() >= acked {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            if last_scrape.elapsed() >= Duration::from_millis(500) {
                last_scrape = Instant::now();
                match running.child.metrics(http).await {
                    Ok(prom) => {
                        scrape_failures = 0;
                        if processed(&prom) - processed(&prom0) >= acked as f64 {
                            finished_by_metrics = true;
                            break false;
                        }
                    }
                    Err(e) => {
                        scrape_failures += 1;
                        if scrape_failures >= 10 {
                            anyhow::bail!(
                                "attrsync stopped answering /metrics while draining: {e}"
                            );
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let drain_end = now_ns();
        let cpu1 = Cpu::now(&running.child);
        let stats1 = genesys.sim.stats();
        let crm1 = crm.requests();
        let front1 = genesys.front_429s();
        let prom1 = running.child.metrics(http).await.ok();
        let memory = running.child.memory();

        let events = plan.callers.len() as u64;
        let patched = genesys.tracked_patches();
        let first = sent.first_send_ns;
        let last_patch = genesys.last_patch_ns();
        let drain_secs = secs(last_patch.max(first), first);
        let mut e2e = histogram();
        for (i, &at) in sent.sent_at.iter().enumerate() {
            let done = genesys.patched_at(i);
            if at > 0 && done > 0 && sent.acked[i] {
                e2e.saturating_record(done.saturating_sub(at).max(1));
            }
        }

        r.rate = (drain_secs > 0.0).then(|| patched as f64 / drain_secs);
        r.rate_unit = "ev/s".to_owned();
        r.rate_definition =
            "participants patched / (last PATCH accepted by the simulator - first POST sent)"
                .to_owned();
        r.latency_kind =
            "acceptance-to-PATCH: POST sent by the bench -> PATCH accepted by the Genesys simulator"
                .to_owned();
        r.latency = Latency::of(&e2e);
        if let Some(l) = Latency::of(&sent.http) {
            r.more_latencies.insert("HTTP 202".to_owned(), l);
        }
        let d = |f: fn(&SimStats) -> u64| f(&stats1).saturating_sub(f(&stats0));
        let gets = d(|s| s.get_conversation);
        let patches = d(|s| s.patch_attributes);
        let front_429 = front1.saturating_sub(front0);
        r.genesys_calls_per_event =
            (acked > 0).then(|| (gets + patches + front_429) as f64 / acked as f64);
        r.token_fetches = Some(stats1.tokens_issued);
        let crm_calls = crm1.saturating_sub(crm0);
        r.crm_calls_per_unique_caller =
            (!unique.is_empty()).then(|| crm_calls as f64 / unique.len() as f64);
        r.rate_limited_429 = Some(d(|s| s.rate_limited) + front_429);
        r.events_lost = Some(acked as i64 - patched as i64);
        if let Some(m) = memory {
            r.rss_after_mb = Some(kb_to_mb(m.rss_kb));
            r.rss_peak_mb = Some(kb_to_mb(m.hwm_kb));
        }

        r.detail("events", events);
        r.detail("unique_callers", unique.len() as u64);
        r.detail("concurrency", self.sizes.concurrency as u64);
        r.detail("queue_capacity", plan.queue_capacity as u64);
        r.detail("acknowledged_202", acked);
        r.detail("patched", patched);
        r.detail("drained", drained);
        r.detail("attrsync_finished_all_by_metrics", finished_by_metrics);
        r.detail("drain_secs", drain_secs);
        r.detail("drain_wait_end_secs", secs(drain_end, first));
        r.detail("ingest_secs", secs(sent.last_ack_ns.max(first), first));
        r.detail(
            "ingest_rate_per_sec",
            acked as f64 / secs(sent.last_ack_ns.max(first), first).max(1e-9),
        );
        r.detail("http_status", sent.tally.json());
        r.detail("retried_503", sent.retried_503);
        r.detail(
            "genesys_calls",
            json!({
                "get_conversation": gets,
                "patch_attributes": patches,
                "rejected_by_front_budget": front_429,
                "patches_accepted": d(|s| s.patches_accepted),
                "token_requests_total": stats1.token_requests,
                "tokens_issued_total": stats1.tokens_issued,
                "tokens_issued_timed_phase": d(|s| s.tokens_issued),
            }),
        );
        r.detail("crm_calls", crm_calls);
        r.detail("crm_backend", serde_json::to_value(crm.kind)?);
        r.detail("cpu", cpu0.report(&cpu1, secs(drain_end, first), acked));
        r.detail("repeated_patches", genesys.repeated_patches());
        if let Some(prom) = &prom1 {
            r.detail("attrsync_metrics", metrics_delta(&prom0, prom));
        }
        if let Some(m) = memory {
            r.detail("memory", serde_json::to_value(m)?);
        }
        r.target(
            "Genesys calls per event",
            "1.0 (event carries the participant id)",
            r.genesys_calls_per_event
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}")),
            r.genesys_calls_per_event
                .is_some_and(|v| (v - 1.0).abs() < 1e-9),
        );
        Ok(())
    }
}

/// 90% of events (for `fresh` = 0.1) for a caller seen before; deterministic.
pub(super) fn repeat_callers(n: usize, fresh: f64, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(n);
    let mut seen = 0u64;
    for i in 0..n {
        if i == 0 || rng.unit() < fresh {
            out.push(seen);
            seen += 1;
        } else {
            out.push(rng.next() % seen);
        }
    }
    out
}

pub(super) struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A customer.start event as EventBridge delivers it (the simulator's builder, as the demo uses).
pub(super) fn event_body(
    call: &attrsync::simulator::CreatedConversation,
    phone: &str,
) -> anyhow::Result<Bytes> {
    let body = attrsync::simulator::eventbridge_customer_start(call, &format!("tel:{phone}"));
    Ok(Bytes::from(serde_json::to_vec(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_count(callers: &[u64]) -> usize {
        callers.iter().collect::<HashSet<_>>().len()
    }

    #[test]
    fn repeat_callers_are_mostly_repeats() {
        let callers = repeat_callers(20_000, 0.1, 1);
        let unique = unique_count(&callers);
        assert!((1_700..2_300).contains(&unique), "{unique}");
        // Every caller is introduced before it repeats.
        let mut max = 0;
        for (i, &c) in callers.iter().enumerate() {
            assert!(c <= max + u64::from(i > 0), "{i}: {c} after max {max}");
            max = max.max(c);
        }
    }
}
