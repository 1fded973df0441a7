//! Scenario 3: `/v1/lookup` at a fixed rate against a CRM with added latency: what attrsync adds
//! to the CRM's own time, and what a cache hit costs.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::load::{self, histogram, Latency};
use crate::report::{kb_to_mb, ScenarioResult};
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, Bench, Cpu, Running, Scenario, CONTROL_CALLERS, WARMUP_CALLERS};
use crate::load::phone;

impl Bench {
    pub(super) async fn lookup_latency(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::LookupLatency.name();
        let mut r = ScenarioResult::new(name);
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        let running = self
            .start_attrsync(name, &genesys, &crm, Vec::new(), 256)
            .await?;
        let outcome = self.drive_lookups(&crm, &running, &mut r).await;
        self.stop(running, &mut r).await;
        outcome?;
        Ok(r)
    }

    pub(super) async fn drive_lookups(
        &self,
        crm: &CrmFront,
        running: &Running,
        r: &mut ScenarioResult,
    ) -> anyhow::Result<()> {
        let http = &running.http;
        let url = format!("{}/v1/lookup", running.child.base);
        let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
        let crm_latency = Duration::from_millis(20);
        crm.set_latency(crm_latency);

        // Warm-up at the CRM latency: connections to attrsync and from attrsync to the CRM.
        let warm = load::lookups_closed(
            http,
            &url,
            &auth,
            WARMUP_CALLERS,
            300,
            32,
            Instant::now() + Duration::from_secs(60) * slow(self),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        r.detail("warmup_lookups", warm.http.len());

        let rate = self.sizes.lookup_rate;
        let n = (rate * self.sizes.lookup_secs).round() as u64;
        let callers: Vec<u64> = (0..n).collect();
        self.on_timed_phase(&running.child).await;
        crm.time_requests(true);
        let crm0 = crm.requests();
        let cpu0 = Cpu::now(&running.child);
        let miss = load::lookups_open(http, &url, &auth, &callers, rate, 5_000).await;
        let cpu1 = Cpu::now(&running.child);
        crm.time_requests(false);
        let crm1 = crm.requests();
        let crm_times = crm.timing();

        let mut e2e = histogram();
        let mut from_due = histogram();
        let mut added = histogram();
        let mut crm_hist = histogram();
        let mut untimed = 0u64;
        let mut status = BTreeMap::<u16, u64>::new();
        let mut found = 0u64;
        for s in &miss.samples {
            *status.entry(s.status).or_insert(0) += 1;
            found += u64::from(s.found);
            if s.status != 200 {
                continue;
            }
            let took = s.done_ns.saturating_sub(s.sent_ns).max(1);
            e2e.saturating_record(took);
            from_due.saturating_record(s.done_ns.saturating_sub(s.due_ns).max(1));
            match crm_times.get(&phone(s.caller)) {
                Some(&crm_ns) => {
                    crm_hist.saturating_record(crm_ns.max(1));
                    added.saturating_record(took.saturating_sub(crm_ns).max(1));
                }
                None => untimed += 1,
            }
        }
        let elapsed = miss.elapsed.as_secs_f64();
        r.detail(
            "cpu",
            cpu0.report(&cpu1, elapsed, miss.samples.len() as u64),
        );
        r.rate = Some(miss.samples.len() as f64 / elapsed.max(1e-9));
        r.rate_unit = "req/s".to_owned();
        r.rate_definition = format!(
            "open loop, {rate:.0} lookups/s scheduled, distinct callers (every one a CRM call)"
        );
        r.latency_kind =
            "end-to-end /v1/lookup, cache miss with a 20 ms CRM (from send to full answer)"
                .to_owned();
        r.latency = Latency::of(&e2e);
        if let Some(l) = Latency::of(&added) {
            r.more_latencies.insert("added (e2e - CRM)".to_owned(), l);
        }
        if let Some(l) = Latency::of(&from_due) {
            r.more_latencies.insert("e2e from schedule".to_owned(), l);
        }
        if let Some(l) = Latency::of(&crm_hist) {
            r.more_latencies.insert("CRM time at the CRM".to_owned(), l);
        }
        let unique = callers.len() as u64;
        let crm_calls = crm1.saturating_sub(crm0);
        r.crm_calls_per_unique_caller = (unique > 0).then(|| crm_calls as f64 / unique as f64);
        r.detail("lookups_scheduled", n);
        r.detail("lookups_skipped_in_flight_cap", miss.skipped);
        r.detail("http_status", json!(status));
        r.detail("found", found);
        r.detail("expect_found", crm.finds_callers());
        r.detail("untimed_at_crm", untimed);
        r.detail("crm_latency_ms", 20);

        // Cache hits: the same callers again, right away, at the same rate.
        let hits_n = ((rate * self.sizes.lookup_hit_secs).round() as u64).min(n);
        let hit_callers: Vec<u64> = (0..hits_n).collect();
        let crm2 = crm.requests();
        let hits = load::lookups_open(http, &url, &auth, &hit_callers, rate, 5_000).await;
        let crm3 = crm.requests();
        let mut hit_hist = histogram();
        for s in hits.samples.iter().filter(|s| s.status == 200) {
            hit_hist.saturating_record(s.done_ns.saturating_sub(s.sent_ns).max(1));
        }
        if let Some(l) = Latency::of(&hit_hist) {
            r.more_latencies.insert("cache hit e2e".to_owned(), l);
        }
        r.detail("cache_hit_lookups", hits.samples.len() as u64);

        // Control: the bench asks the CRM itself, same rate, same timing method. Its
        // (e2e - CRM time) is what one loopback HTTP exchange costs in this process on this
        // machine; attrsync's added latency contains two such exchanges (bench -> attrsync,
        // attrsync -> CRM).
        let control_callers: Vec<u64> = (CONTROL_CALLERS..CONTROL_CALLERS + hits_n).collect();
        crm.time_requests(true);
        let control = load::crm_direct_open(http, crm.url(), &control_callers, rate).await;
        crm.time_requests(false);
        let control_times = crm.timing();
        let mut overhead = histogram();
        for s in control.samples.iter().filter(|s| s.status == 200) {
            if let Some(&crm_ns) = control_times.get(&phone(s.caller)) {
                let took = s.done_ns.saturating_sub(s.sent_ns);
                overhead.saturating_record(took.saturating_sub(crm_ns).max(1));
            }
        }
        if let Some(l) = Latency::of(&overhead) {
            r.more_latencies.insert("control (e2e - CRM)".to_owned(), l);
        }
        r.detail("cache_hit_crm_calls", crm3.saturating_sub(crm2));
        r.detail(
            "latency_definitions",
            json!({
                "headline": "bench sends POST /v1/lookup -> full answer read; distinct callers, each a CRM call (cache miss)",
                "added (e2e - CRM)": "per request: headline minus the time the CRM front measured for that caller's request (handler entry to response, 20 ms sleep included)",
                "CRM time at the CRM": "what the CRM front measured per request (the 20 ms sleep plus timer slop)",
                "e2e from schedule": "from the request's scheduled start (open loop, corrects coordinated omission)",
                "cache hit e2e": "the same callers again right after: no CRM call",
                "control (e2e - CRM)": "the bench asking the CRM directly, measured the same way: one loopback HTTP exchange in this process",
            }),
        );
        if let Some(m) = running.child.memory() {
            r.rss_after_mb = Some(kb_to_mb(m.rss_kb));
            r.rss_peak_mb = Some(kb_to_mb(m.hwm_kb));
        }
        if let Some(l) = Latency::of(&added) {
            r.target(
                "added latency p99",
                "< 1 ms",
                format!("{:.3} ms", l.p99_ms),
                l.p99_ms < 1.0,
            );
        }
        Ok(())
    }
}
