//! Scenario `crm-zendesk-hubspot`: `/v1/lookup` cache misses through the vendor adapters (`zendesk`,
//! `hubspot`) side by side with the generic REST adapter (`http`) in the same run, each CRM
//! answering after 20 ms: what attrsync adds to the CRM's time per adapter, and how many CRM
//! calls a unique caller costs.
//!
//! Method: one attrsync child per adapter, the same closed loop of distinct callers (each a
//! cache miss, each known to the CRM), the end-to-end time of each lookup minus the 20 ms the
//! simulator sleeps ("added" = e2e − 20 ms: the vendor simulators do not time their handlers, so
//! their own parsing and matching count as added; for `http` the same subtraction is used, so the
//! rows compare). HubSpot's search limit (5 a second) would make the run measure the limiter, so
//! both the simulator's limit and `search_per_second` are lifted for this scenario; the
//! limiter's own behaviour is tested in tests/api/crm_hubspot.rs.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use attrsync::simulator::{HubSpotSim, HubSpotSimConfig, ZendeskSim, ZendeskSimConfig};
use serde_json::json;
use tokio::net::TcpListener;

use crate::load::{self, phone, Latency, LookupReport};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, GenesysFront};

use super::{slow, Bench, Scenario, WARMUP_CALLERS};

const CRM_LATENCY: Duration = Duration::from_millis(20);
const CONCURRENCY: usize = 16;
const WARMUP: u64 = 50;

impl Bench {
    pub(super) async fn crm_zendesk_hubspot(&self) -> anyhow::Result<ScenarioResult> {
        let name = Scenario::CrmZendeskHubspot.name();
        let mut r = ScenarioResult::new(name);
        let callers: u64 = if self.sizes.quick { 300 } else { 2_000 };
        let genesys = GenesysFront::start().await?;
        let crm = CrmFront::start(self.crm).await?;
        crm.set_latency(CRM_LATENCY);

        let zendesk = ZendeskSim::start(
            ZendeskSimConfig {
                rate_limit_per_minute: 10_000_000,
                search_rate_limit_per_minute: 10_000_000,
                latency: CRM_LATENCY,
                ..ZendeskSimConfig::default()
            },
            TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        let hubspot = HubSpotSim::start(
            HubSpotSimConfig {
                search_per_second: 100_000,
                ten_secondly_limit: 1_000_000,
                daily_limit: 100_000_000,
                index_lag: Duration::ZERO,
                latency: CRM_LATENCY,
                ..HubSpotSimConfig::default()
            },
            TcpListener::bind("127.0.0.1:0").await?,
        )
        .await?;
        for k in (0..callers).chain(WARMUP_CALLERS..WARMUP_CALLERS + WARMUP) {
            zendesk.seed_user(json!({"name": format!("Caller {k}"), "phone": phone(k)}));
            hubspot.seed_contact(json!({"firstname": format!("Caller {k}"), "phone": phone(k)}));
        }

        let env = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        let runs = [
            ("http", Vec::new()),
            (
                "zendesk",
                env(&[
                    ("ATTRSYNC_CRM__ADAPTER", "zendesk".to_owned()),
                    ("ATTRSYNC_CRM__ZENDESK__BASE_URL", zendesk.base_url()),
                    (
                        "ATTRSYNC_CRM__ZENDESK__EMAIL",
                        "agent@example.com".to_owned(),
                    ),
                    (
                        "ATTRSYNC_CRM__ZENDESK__API_TOKEN",
                        "sim-api-token".to_owned(),
                    ),
                    (
                        "ATTRSYNC_CRM__ZENDESK__RATE_LIMIT_PER_MINUTE",
                        "0".to_owned(),
                    ),
                ]),
            ),
            (
                "hubspot",
                env(&[
                    ("ATTRSYNC_CRM__ADAPTER", "hubspot".to_owned()),
                    ("ATTRSYNC_CRM__HUBSPOT__BASE_URL", hubspot.base_url()),
                    (
                        "ATTRSYNC_CRM__HUBSPOT__ACCESS_TOKEN",
                        "pat-na1-sim-token".to_owned(),
                    ),
                    ("ATTRSYNC_CRM__HUBSPOT__SEARCH_PER_SECOND", "0".to_owned()),
                    (
                        "ATTRSYNC_CRM__HUBSPOT__RATE_LIMIT_PER_MINUTE",
                        "0".to_owned(),
                    ),
                ]),
            ),
        ];
        let mut per_caller = serde_json::Map::new();
        for (adapter, extra) in runs {
            let running = self
                .start_attrsync(&format!("{name}-{adapter}"), &genesys, &crm, extra, 64)
                .await?;
            let url = format!("{}/v1/lookup", running.child.base);
            let auth = load::basic_auth("attrsync", &running.secrets.lookup_password)?;
            let deadline = || Instant::now() + Duration::from_secs(120) * slow(self);
            let run = |first: u64, count: u64| {
                load::lookups_closed(
                    &running.http,
                    &url,
                    &auth,
                    first,
                    count,
                    CONCURRENCY,
                    deadline(),
                    Arc::new(AtomicU64::new(0)),
                )
            };
            let _warm = run(WARMUP_CALLERS, WARMUP).await;
            let before = calls(adapter, &crm, &zendesk, &hubspot);
            let report: LookupReport = run(0, callers).await;
            let made = calls(adapter, &crm, &zendesk, &hubspot).saturating_sub(before);
            self.stop(running, &mut r).await;
            let Some(e2e) = Latency::of(&report.http) else {
                anyhow::bail!("{adapter}: no lookups completed");
            };
            r.more_latencies.insert(
                format!("{adapter} added (e2e - 20 ms)"),
                minus(&e2e, CRM_LATENCY),
            );
            r.more_latencies.insert(format!("{adapter} e2e"), e2e);
            let ratio = made as f64 / callers as f64;
            per_caller.insert(adapter.to_owned(), json!(ratio));
            r.detail(&format!("{adapter}_found"), report.found);
            r.detail(
                &format!("{adapter}_lookups_per_second"),
                callers as f64 / report.elapsed.as_secs_f64().max(1e-9),
            );
        }
        zendesk.shutdown();
        hubspot.shutdown();
        r.crm_calls_per_unique_caller = per_caller
            .values()
            .filter_map(serde_json::Value::as_f64)
            .reduce(f64::max);
        r.detail("crm_calls_per_unique_caller", json!(per_caller));
        r.detail("callers", callers);
        r.detail("concurrency", CONCURRENCY as u64);
        r.latency_kind =
            "added = end-to-end /v1/lookup minus the CRM's 20 ms, cache miss, per adapter"
                .to_owned();
        Ok(r)
    }
}

/// The CRM calls `adapter`'s CRM has received so far.
fn calls(adapter: &str, crm: &CrmFront, zendesk: &ZendeskSim, hubspot: &HubSpotSim) -> u64 {
    match adapter {
        "zendesk" => zendesk.traffic().total(),
        "hubspot" => hubspot.traffic().total(),
        _ => crm.requests(),
    }
}

/// `l` with `d` taken off every percentile (at least 0).
fn minus(l: &Latency, d: Duration) -> Latency {
    let ms = d.as_secs_f64() * 1000.0;
    let off = |v: f64| (v - ms).max(0.0);
    Latency {
        count: l.count,
        mean_ms: off(l.mean_ms),
        p50_ms: off(l.p50_ms),
        p90_ms: off(l.p90_ms),
        p99_ms: off(l.p99_ms),
        p999_ms: off(l.p999_ms),
        max_ms: off(l.max_ms),
    }
}
