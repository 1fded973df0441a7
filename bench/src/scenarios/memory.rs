//! Scenario 5: memory, idle and then with the CRM cache filled by a million distinct callers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::load::{self, Latency};
use crate::report::{kb_to_mb, ScenarioResult};
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, thin, Bench, Cpu, Running, Scenario};

impl Bench {
    pub(super) async fn memory(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::Memory.name();
        let mut r = ScenarioResult::new(name);
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        let conc = self.sizes.memory_concurrency;
        let running = self
            .start_attrsync(name, &genesys, &crm, Vec::new(), conc)
            .await?;
        let outcome = self.drive_memory(&crm, &running, &mut r).await;
        self.stop(running, &mut r).await;
        outcome?;
        Ok(r)
    }

    pub(super) async fn drive_memory(
        &self,
        crm: &CrmFront,
        running: &Running,
        r: &mut ScenarioResult,
    ) -> anyhow::Result<()> {
        let http = &running.http;
        let url = format!("{}/v1/lookup", running.child.base);
        let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = running
            .child
            .memory()
            .context("reading /proc/<pid>/status")?;

        let n = self.sizes.memory_lookups;
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let pid = running.child.pid();
        let sampler = {
            let done = done.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut samples: Vec<Value> = Vec::new();
                // Bounded by the run (stop flag) and by two hours.
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(7200)
                {
                    if let Some(m) = crate::child::read_memory(pid) {
                        samples.push(json!({
                            "secs": (started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
                            "lookups": done.load(Ordering::Relaxed),
                            "rss_mb": (kb_to_mb(m.rss_kb) * 10.0).round() / 10.0,
                        }));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                samples
            })
        };
        self.on_timed_phase(&running.child).await;
        let crm0 = crm.requests();
        let cpu0 = Cpu::now(&running.child);
        let report = load::lookups_closed(
            http,
            &url,
            &auth,
            0,
            n,
            self.sizes.memory_concurrency,
            Instant::now() + Duration::from_secs(3600) * slow(self),
            done.clone(),
        )
        .await;
        let crm1 = crm.requests();
        let cpu1 = Cpu::now(&running.child);
        // Let moka's pending evictions run before reading the resident set.
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        let after = running.child.memory();
        let samples = sampler.await.unwrap_or_default();

        let completed = report.http.len();
        r.rate = Some(completed as f64 / report.elapsed.as_secs_f64().max(1e-9));
        r.rate_unit = "req/s".to_owned();
        r.rate_definition = format!(
            "closed loop, {} senders, distinct callers, CRM at zero latency",
            self.sizes.memory_concurrency
        );
        r.latency_kind = "HTTP /v1/lookup, cache miss, zero-latency CRM (closed loop)".to_owned();
        r.latency = Latency::of(&report.http);
        r.crm_calls_per_unique_caller =
            (completed > 0).then(|| crm1.saturating_sub(crm0) as f64 / completed as f64);
        r.rss_idle_mb = Some(kb_to_mb(idle.rss_kb));
        if let Some(m) = after {
            r.rss_after_mb = Some(kb_to_mb(m.rss_kb));
            r.rss_peak_mb = Some(kb_to_mb(m.hwm_kb));
        }
        r.detail("lookups", completed);
        r.detail(
            "cpu",
            cpu0.report(&cpu1, report.elapsed.as_secs_f64(), completed),
        );
        r.detail("found", report.found);
        r.detail("http_status", report.tally.json());
        r.detail("elapsed_secs", report.elapsed.as_secs_f64());
        r.detail("cache_max_entries", 100_000);
        r.detail("rss_samples", Value::Array(thin(samples, 120)));
        r.target(
            "RSS idle",
            "< 50 MB",
            format!("{:.1} MB", kb_to_mb(idle.rss_kb)),
            kb_to_mb(idle.rss_kb) < 50.0,
        );
        if let Some(m) = after {
            let peak = kb_to_mb(m.hwm_kb.max(m.rss_kb));
            r.target(
                "RSS at the cache cap (peak)",
                "< 250 MB",
                format!("{peak:.1} MB"),
                peak < 250.0,
            );
        }
        if report.tally.count(200) < completed {
            r.detail(
                "warning",
                "some lookups did not answer 200; see http_status",
            );
        }
        Ok(())
    }
}
