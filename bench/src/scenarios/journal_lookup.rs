//! `journal-lookup`: what the journal's lookups cost with the table full. The journal indexes
//! nothing but its id (each index on a random UUID cost the hot path about 30 µs per event;
//! see `queue::store::journal`), so a lookup by conversation or event id scans the table. This
//! fills a running attrsync's journal with `journal.max_events` entries (100,000, the default;
//! 20,000 with `--quick`) written through the store, then times the admin endpoints over HTTP:
//! a conversation and an event whose entries are the oldest (the whole table is walked), the
//! newest page of the journal, and a filter that matches one entry in a hundred.

use std::time::Instant;

use anyhow::Context as _;
use attrsync::config::Settings;
use attrsync::domain::KeyKind;
use attrsync::pipeline::{Journey, StepKind};
use attrsync::queue::store::JobStore;
use attrsync::queue::NewEntry;
use attrsync::redact::RedactMode;
use hdrhistogram::Histogram;

use crate::load;
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{Bench, Scenario};

/// Requests timed per endpoint.
const REQUESTS: usize = 40;

impl Bench {
    pub(super) async fn journal_lookup(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::JournalLookup.name();
        anyhow::ensure!(
            self.has_queue_path,
            "this attrsync has no queue.sqlite_path to fill"
        );
        let entries: i64 = if self.sizes.quick { 20_000 } else { 100_000 };
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        let extra = vec![
            ("ATTRSYNC_JOURNAL__ENABLED".to_owned(), "true".to_owned()),
            (
                "ATTRSYNC_JOURNAL__MAX_EVENTS".to_owned(),
                entries.to_string(),
            ),
        ];
        let running = self.start_attrsync(name, &genesys, &crm, extra, 4).await?;
        let mut r = ScenarioResult::new(name);
        let outcome = async {
            let filled = Instant::now();
            fill(&running.run_dir.join("queue.db"), entries).await?;
            r.detail("entries", entries);
            r.detail("fill_secs", filled.elapsed().as_secs_f64());
            let base = &running.child.base;
            let oldest = &conversation(0);
            let paths = [
                (
                    "conversation (oldest)",
                    format!("/admin/conversations/{oldest}"),
                ),
                ("event (oldest)", "/admin/events/evt-0".to_owned()),
                ("journal, newest 50", "/admin/journal?limit=50".to_owned()),
                (
                    "journal, 1-in-100 outcome, 50",
                    "/admin/journal?outcome=crm_miss&limit=50".to_owned(),
                ),
            ];
            for (i, (label, path)) in paths.iter().enumerate() {
                let h = time_get(&running.http, &format!("{base}{path}")).await?;
                let latency = load::Latency::of(&h);
                if i == 0 {
                    r.latency_kind = format!("GET {label} with {entries} entries kept");
                    r.latency = latency;
                } else if let Some(l) = latency {
                    r.more_latencies.insert(format!("GET {label}"), l);
                }
            }
            anyhow::Ok(())
        }
        .await;
        self.stop(running, &mut r).await;
        outcome?;
        Ok(r)
    }
}

/// Conversation `n`'s id: a UUID, as Genesys gives.
fn conversation(n: i64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// Writes `entries` journeys, shaped like a patched call's, into the queue database at `path`.
async fn fill(path: &std::path::Path, entries: i64) -> anyhow::Result<()> {
    let env = [
        ("GENESYS_CLIENT_ID", "bench"),
        ("GENESYS_CLIENT_SECRET", "bench"),
        ("ATTRSYNC_AUTH__GENESYS__MODE", "none"),
        ("ATTRSYNC_AUTH__CTI__MODE", "none"),
        ("ATTRSYNC_AUTH__LOOKUP__MODE", "none"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let mut settings = Settings::load_from(None, &env)
        .context("the store's settings")?
        .queue;
    settings.sqlite_path = path.to_path_buf();
    let store = JobStore::connect(&settings).await?;
    let mut batch = Vec::with_capacity(1_000);
    for n in 0..entries {
        batch.push(entry(n));
        if batch.len() == 1_000 || n == entries - 1 {
            store.journal_many(&batch).await?;
            batch.clear();
        }
    }
    Ok(())
}

fn entry(n: i64) -> NewEntry {
    let outcome = if n % 100 == 99 { "crm_miss" } else { "patched" };
    let mut journey = Journey::new(RedactMode::Mask);
    journey.record(StepKind::Arrived {
        source: "genesys".to_owned(),
        accepted_at_ms: 1_764_000_000_000 + n,
        waited_ms: 2,
        attempt: 1,
    });
    journey.record(StepKind::Key {
        kind: KeyKind::Phone,
        notation: "e164".to_owned(),
        value: "+1317******25".to_owned(),
    });
    journey.record(StepKind::Crm {
        source: "http".to_owned(),
        key: Some(KeyKind::Phone),
        cache: "miss".to_owned(),
        answer: "found".to_owned(),
        error: None,
        candidates: 1,
        ms: 3,
    });
    journey.record(StepKind::Decision {
        verdict: "unique".to_owned(),
        count: 1,
        record_type: Some("contact".to_owned()),
        matched_by: Some(KeyKind::Phone),
    });
    journey.record(StepKind::Upstream {
        service: "genesys".to_owned(),
        operation: "patch_participant_attributes".to_owned(),
        status: "2xx".to_owned(),
        ms: 4,
    });
    journey.record(StepKind::Written {
        attributes: ["crm_id", "crm_name", "crm_tier", "crm_segment"]
            .map(str::to_owned)
            .to_vec(),
    });
    journey.record(StepKind::Outcome {
        outcome: outcome.to_owned(),
    });
    NewEntry {
        job_id: n + 1,
        event_id: format!("evt-{n}"),
        conversation_id: conversation(n),
        source: "genesys",
        attempt: 1,
        outcome: outcome.to_owned(),
        accepted_at_ms: 1_764_000_000_000 + n,
        steps: journey.into_steps(),
    }
}

/// `REQUESTS` sequential GETs of `url`, each required to answer 200.
async fn time_get(http: &reqwest::Client, url: &str) -> anyhow::Result<Histogram<u64>> {
    let mut h = load::histogram();
    for _ in 0..REQUESTS {
        let started = Instant::now();
        let response = http.get(url).send().await?;
        let status = response.status();
        let _ = response.bytes().await?;
        anyhow::ensure!(status.as_u16() == 200, "GET {url} answered {status}");
        let _ = h.record(started.elapsed().as_nanos() as u64);
    }
    Ok(h)
}
