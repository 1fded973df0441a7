//! `crm-servicenow-freshdesk`: `/v1/lookup` cache misses through each vendor adapter against its simulator
//! with 20 ms of added latency, side by side with the generic REST (`http`) adapter in the same
//! run: the latency attrsync adds to the CRM's 20 ms and the CRM calls per unique caller.
//!
//! The vendor simulators do not time their requests, so for every adapter alike "added" is
//! end to end minus the configured 20 ms: it includes the simulator's own handling (query
//! parsing, a scan of its few records), which the `lookup-latency` scenario's per-request CRM
//! timing leaves out.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::simulator::{FreshdeskSim, FreshdeskSimConfig, ServiceNowSim, ServiceNowSimConfig};
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::load::{self, histogram, Latency};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, Bench, Scenario, WARMUP_CALLERS};

/// The CRM latency every simulator adds.
const CRM_LATENCY: Duration = Duration::from_millis(20);

/// What one adapter's run measured.
struct Measured {
    e2e: Option<Latency>,
    added: Option<Latency>,
    calls_per_caller: Option<f64>,
    status: Value,
}

impl Bench {
    pub(super) async fn crm_servicenow_freshdesk(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::CrmServicenowFreshdesk.name();
        let mut r = ScenarioResult::new(name);
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        crm.set_latency(CRM_LATENCY);

        let http = self
            .itsm_measure_adapter(
                "crm-servicenow-freshdesk-http",
                &genesys,
                &crm,
                Vec::new(),
                &|| crm.requests(),
            )
            .await?;

        let servicenow = ServiceNowSim::start(
            ServiceNowSimConfig {
                latency: CRM_LATENCY,
                ..ServiceNowSimConfig::default()
            },
            TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        for (table, record) in ServiceNowSim::sample_records() {
            servicenow.insert(table, record)?;
        }
        let env = [
            ("ATTRSYNC_CRM__ADAPTER", "servicenow".to_owned()),
            (
                "ATTRSYNC_CRM__SERVICENOW__INSTANCE_URL",
                servicenow.base_url(),
            ),
            (
                "ATTRSYNC_CRM__SERVICENOW__USERNAME",
                "attrsync.integration".to_owned(),
            ),
            (
                "ATTRSYNC_CRM__SERVICENOW__PASSWORD",
                "sim-password".to_owned(),
            ),
        ];
        let sn = self
            .itsm_measure_adapter(
                "crm-servicenow-freshdesk-servicenow",
                &genesys,
                &crm,
                owned(&env),
                &|| servicenow.traffic().count("table"),
            )
            .await;
        servicenow.shutdown();
        let sn = sn?;

        // The plan's limits are lifted (and attrsync's budget off): this measures latency.
        let freshdesk = FreshdeskSim::start(
            FreshdeskSimConfig {
                latency: CRM_LATENCY,
                per_minute: 1_000_000,
                contacts_list_per_minute: 1_000_000,
                ..FreshdeskSimConfig::default()
            },
            TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        for contact in FreshdeskSim::sample_contacts() {
            freshdesk.insert(contact)?;
        }
        let env = [
            ("ATTRSYNC_CRM__ADAPTER", "freshdesk".to_owned()),
            ("ATTRSYNC_CRM__FRESHDESK__DOMAIN_URL", freshdesk.base_url()),
            ("ATTRSYNC_CRM__FRESHDESK__API_KEY", "sim-api-key".to_owned()),
            (
                "ATTRSYNC_CRM__FRESHDESK__RATE_LIMIT_PER_MINUTE",
                "0".to_owned(),
            ),
        ];
        let fd = self
            .itsm_measure_adapter(
                "crm-servicenow-freshdesk-freshdesk",
                &genesys,
                &crm,
                owned(&env),
                &|| freshdesk.traffic().total(),
            )
            .await;
        freshdesk.shutdown();
        let fd = fd?;

        for (adapter, m) in [("http", &http), ("servicenow", &sn), ("freshdesk", &fd)] {
            if let Some(l) = &m.added {
                r.more_latencies
                    .insert(format!("{adapter}: added (e2e - 20 ms)"), l.clone());
            }
            if let Some(l) = &m.e2e {
                r.more_latencies
                    .insert(format!("{adapter}: e2e"), l.clone());
            }
            r.detail(
                adapter,
                json!({"crm_calls_per_unique_caller": m.calls_per_caller, "http_status": m.status}),
            );
        }
        r.rate = Some(self.itsm_vendor_rate());
        r.rate_unit = "req/s".to_owned();
        r.rate_definition =
            "open loop per adapter, distinct callers (each a cache miss, one CRM call)".to_owned();
        r.latency_kind = "servicenow: end-to-end /v1/lookup, cache miss, CRM +20 ms".to_owned();
        r.latency = sn.e2e.clone();
        r.crm_calls_per_unique_caller = sn.calls_per_caller;
        r.detail(
            "latency_definitions",
            json!({
                "added (e2e - 20 ms)": "bench sends POST /v1/lookup -> full answer, minus the 20 ms every simulator sleeps; includes the simulator's own handling",
                "e2e": "bench sends POST /v1/lookup -> full answer read",
            }),
        );
        Ok(r)
    }

    fn itsm_vendor_rate(&self) -> f64 {
        (self.sizes.lookup_rate / 4.0).max(50.0)
    }

    /// One attrsync child on the adapter `extra` selects: warm-up, then distinct callers at a
    /// fixed rate; `calls` counts the CRM requests so far.
    async fn itsm_measure_adapter(
        &self,
        name: &str,
        genesys: &GenesysFront,
        crm: &CrmFront,
        extra: Vec<(String, String)>,
        calls: &dyn Fn() -> u64,
    ) -> anyhow::Result<Measured> {
        let running = self.start_attrsync(name, genesys, crm, extra, 256).await?;
        let url = format!("{}/v1/lookup", running.child.base);
        let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
        load::lookups_closed(
            &running.http,
            &url,
            &auth,
            WARMUP_CALLERS,
            200,
            16,
            Instant::now() + Duration::from_secs(60) * slow(self),
            Arc::new(AtomicU64::new(0)),
        )
        .await;
        let rate = self.itsm_vendor_rate();
        let n = (rate * self.sizes.lookup_secs).round() as u64;
        let callers: Vec<u64> = (0..n).collect();
        self.on_timed_phase(&running.child).await;
        let before = calls();
        let report = load::lookups_open(&running.http, &url, &auth, &callers, rate, 5_000).await;
        let made = calls().saturating_sub(before);
        let mut e2e = histogram();
        let mut added = histogram();
        let mut status = std::collections::BTreeMap::<u16, u64>::new();
        let crm_ns = u64::try_from(CRM_LATENCY.as_nanos()).unwrap_or(u64::MAX);
        for s in &report.samples {
            *status.entry(s.status).or_insert(0) += 1;
            if s.status == 200 {
                let took = s.done_ns.saturating_sub(s.sent_ns).max(1);
                e2e.saturating_record(took);
                added.saturating_record(took.saturating_sub(crm_ns).max(1));
            }
        }
        let mut ignored = ScenarioResult::new(name);
        self.stop(running, &mut ignored).await;
        Ok(Measured {
            e2e: Latency::of(&e2e),
            added: Latency::of(&added),
            calls_per_caller: (n > 0).then(|| made as f64 / n as f64),
            status: json!(status),
        })
    }
}

fn owned(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
