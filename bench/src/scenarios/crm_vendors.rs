//! `crm-vendors`: `/v1/lookup` cache misses through the `salesforce` and `dynamics` adapters, each
//! against its in-process vendor simulator adding 20 ms to every request, side by side with the
//! generic `http` adapter in the same run (same rate, same callers, same method): end-to-end
//! latency, the latency attrsync adds (end to end minus the 20 ms the CRM spends) and the CRM
//! calls per unique caller, counted by each simulator. Dataverse is asked one query per entity
//! set (three, sent at once), Salesforce one SOSL search.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::simulator::dynamics::Limits;
use attrsync::simulator::{DynamicsSim, DynamicsSimConfig, SalesforceSim, SalesforceSimConfig};
use serde_json::json;
use tokio::net::TcpListener;

use crate::load::{self, histogram, Latency};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, Bench, Scenario, WARMUP_CALLERS};

const CRM_LATENCY: Duration = Duration::from_millis(20);
/// Callers of this scenario's timed phases (distinct from every other scenario's).
const VENDOR_CALLERS: u64 = 8_000_000;

/// The CRM one run talks to, and how to count its requests.
enum Vendor {
    Http(CrmFront),
    Salesforce(SalesforceSim),
    Dynamics(DynamicsSim),
}

impl Vendor {
    fn name(&self) -> &'static str {
        match self {
            Vendor::Http(_) => "http",
            Vendor::Salesforce(_) => "salesforce",
            Vendor::Dynamics(_) => "dynamics",
        }
    }

    /// CRM API requests so far (token requests not counted).
    fn requests(&self) -> u64 {
        match self {
            Vendor::Http(crm) => crm.requests(),
            Vendor::Salesforce(sim) => sim.traffic().count("search") + sim.traffic().count("query"),
            Vendor::Dynamics(sim) => sim.traffic().count("query"),
        }
    }

    /// The variables pointing attrsync's adapter at this CRM.
    fn env(&self) -> Vec<(String, String)> {
        let pairs: Vec<(&str, String)> = match self {
            Vendor::Http(_) => Vec::new(),
            Vendor::Salesforce(sim) => {
                let auth = SalesforceSimConfig::default().auth;
                vec![
                    ("ATTRSYNC_CRM__ADAPTER", "salesforce".to_owned()),
                    ("ATTRSYNC_CRM__SALESFORCE__DOMAIN_URL", sim.base_url()),
                    (
                        "ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_ID",
                        auth.consumer_key,
                    ),
                    (
                        "ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_SECRET",
                        auth.consumer_secret,
                    ),
                ]
            }
            Vendor::Dynamics(sim) => {
                let entra = DynamicsSimConfig::default().entra;
                vec![
                    ("ATTRSYNC_CRM__ADAPTER", "dynamics".to_owned()),
                    ("ATTRSYNC_CRM__DYNAMICS__ORG_URL", sim.base_url()),
                    ("ATTRSYNC_CRM__DYNAMICS__AUTHORITY_URL", sim.base_url()),
                    ("ATTRSYNC_CRM__DYNAMICS__TENANT_ID", entra.tenant_id),
                    ("ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_ID", entra.client_id),
                    (
                        "ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_SECRET",
                        entra.client_secret.unwrap_or_default(),
                    ),
                    // The bench's rate is far over a real user's service protection budget.
                    (
                        "ATTRSYNC_CRM__DYNAMICS__RATE_LIMIT_PER_MINUTE",
                        "0".to_owned(),
                    ),
                ]
            }
        };
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }
}

impl Bench {
    pub(super) async fn crm_vendors(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::CrmVendors.name();
        let mut r = ScenarioResult::new(name);
        let rate = 200.0;
        let n: u64 = if self.sizes.quick { 400 } else { 2_000 };
        let mut added_p50 = Vec::new();
        let mut runs = Vec::new();
        for which in ["http", "salesforce", "dynamics"] {
            let vendor = match which {
                "http" => Vendor::Http(CrmFront::start(self.crm).await?),
                "salesforce" => {
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    let sim =
                        SalesforceSim::start(SalesforceSimConfig::default(), listener).await?;
                    for (object, fields) in SalesforceSim::sample_records() {
                        sim.insert(object, fields).map_err(anyhow::Error::msg)?;
                    }
                    Vendor::Salesforce(sim)
                }
                _ => {
                    let listener = TcpListener::bind("127.0.0.1:0").await?;
                    let sim = DynamicsSim::start(DynamicsSimConfig::default(), listener).await?;
                    sim.set_limits(Limits {
                        max_requests: 10_000_000,
                        max_concurrent: 100_000,
                        max_execution: Duration::from_secs(1_000_000),
                        ..Limits::default()
                    });
                    for (set, row) in DynamicsSim::sample_rows() {
                        sim.insert(set, row).map_err(anyhow::Error::msg)?;
                    }
                    Vendor::Dynamics(sim)
                }
            };
            let (latency, added, calls) = self.vendor_run(&vendor, rate, n).await?;
            if let Some(l) = &added {
                added_p50.push((vendor.name(), l.p50_ms, l.p99_ms));
                r.more_latencies
                    .insert(format!("{} added (e2e - 20 ms)", vendor.name()), l.clone());
            }
            if let Some(l) = &latency {
                r.more_latencies
                    .insert(format!("{} e2e", vendor.name()), l.clone());
            }
            runs.push(json!({
                "adapter": vendor.name(),
                "lookups": n,
                "crm_requests": calls,
                "crm_calls_per_unique_caller": calls as f64 / n as f64,
            }));
            match &vendor {
                Vendor::Http(_) => {}
                Vendor::Salesforce(sim) => sim.shutdown(),
                Vendor::Dynamics(sim) => sim.shutdown(),
            }
        }
        r.rate = Some(rate);
        r.rate_unit = "req/s".to_owned();
        r.rate_definition =
            format!("open loop, {rate:.0} lookups/s, {n} distinct callers per adapter");
        r.latency_kind = "end-to-end /v1/lookup through the salesforce adapter, cache miss, every CRM request +20 ms".to_owned();
        r.latency = r.more_latencies.get("salesforce e2e").cloned();
        r.detail("runs", serde_json::Value::Array(runs));
        r.detail("crm_latency_ms", 20);
        let base = added_p50
            .iter()
            .find(|(v, _, _)| *v == "http")
            .map(|(_, p, _)| *p);
        for (vendor, p50, p99) in &added_p50 {
            if *vendor == "http" {
                continue;
            }
            if let Some(base) = base {
                let diff = p50 - base;
                r.target(
                    &format!("{vendor} added p50 within 0.5 ms of http's"),
                    "≤ +0.5 ms",
                    format!("{p50:.2} vs {base:.2} ms ({diff:+.2}); p99 {p99:.2}"),
                    diff <= 0.5,
                );
            }
        }
        Ok(r)
    }

    /// One attrsync child against `vendor`: a warm-up (token, connections), then `n` distinct
    /// callers at `rate`. End-to-end and added latency, and the CRM requests of the timed phase.
    async fn vendor_run(
        &self,
        vendor: &Vendor,
        rate: f64,
        n: u64,
    ) -> anyhow::Result<(Option<Latency>, Option<Latency>, u64)> {
        let name = format!("{}-{}", Scenario::CrmVendors.name(), vendor.name());
        let genesys = GenesysFront::start().await?;
        let placeholder;
        let crm = match vendor {
            Vendor::Http(crm) => crm,
            _ => {
                placeholder = CrmFront::start(self.crm).await?;
                &placeholder
            }
        };
        match vendor {
            Vendor::Http(crm) => crm.set_latency(CRM_LATENCY),
            Vendor::Salesforce(sim) => sim.set_latency(CRM_LATENCY),
            Vendor::Dynamics(sim) => sim.set_latency(CRM_LATENCY),
        }
        let running = self
            .start_attrsync(&name, &genesys, crm, vendor.env(), 256)
            .await?;
        let outcome = async {
            let url = format!("{}/v1/lookup", running.child.base);
            let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
            load::lookups_closed(
                &running.http,
                &url,
                &auth,
                WARMUP_CALLERS + 500_000,
                100,
                8,
                Instant::now() + Duration::from_secs(60) * slow(self),
                Arc::new(AtomicU64::new(0)),
            )
            .await;
            let callers: Vec<u64> = (VENDOR_CALLERS..VENDOR_CALLERS + n).collect();
            let before = vendor.requests();
            let report =
                load::lookups_open(&running.http, &url, &auth, &callers, rate, 5_000).await;
            let calls = vendor.requests().saturating_sub(before);
            let mut e2e = histogram();
            let mut added = histogram();
            let crm_ns = u64::try_from(CRM_LATENCY.as_nanos()).unwrap_or(u64::MAX);
            for s in report.samples.iter().filter(|s| s.status == 200) {
                let took = s.done_ns.saturating_sub(s.sent_ns).max(1);
                e2e.saturating_record(took);
                added.saturating_record(took.saturating_sub(crm_ns).max(1));
            }
            anyhow::Ok((Latency::of(&e2e), Latency::of(&added), calls))
        }
        .await;
        let mut scratch = ScenarioResult::new(&name);
        self.stop(running, &mut scratch).await;
        outcome
    }
}
