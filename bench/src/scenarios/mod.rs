//! The scenarios, one file each; this file holds what they share: the scenario list, the
//! sizes, the [`Bench`] that starts upstreams and an attrsync child for each scenario (so
//! nothing carries over from one scenario to the next: cache, connections, rate windows), and
//! the helpers that read attrsync's configuration and counters.

mod crm_servicenow_freshdesk;
mod crm_sql;
mod crm_vendors;
mod crm_zendesk_hubspot;
mod event_throughput;
mod events;
mod journal_lookup;
mod lookup_latency;
mod lookup_zero_call;
mod memory;
mod rate_budget;
mod repeat_callers;
mod token_pool;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::{json, Value};
use sqlx::Executor as _;

use crate::child::{free_port, AttrsyncChild, ChildSpec, Prom};
use crate::load::{self};
use crate::report::ScenarioResult;
use crate::upstream::{CrmFront, CrmKind, GenesysFront};

/// The five scenarios of the brief, plus the smoothed-budget variant of the fourth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    EventThroughput,
    RepeatCallers,
    LookupLatency,
    RateBudgetDrain,
    RateBudgetSmooth,
    Memory,
    TokenPool,
    LookupZeroCall,
    CrmSql,
    CrmVendors,
    CrmServicenowFreshdesk,
    CrmZendeskHubspot,
    JournalLookup,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::EventThroughput,
        Scenario::RepeatCallers,
        Scenario::LookupLatency,
        Scenario::RateBudgetDrain,
        Scenario::RateBudgetSmooth,
        Scenario::Memory,
        Scenario::TokenPool,
        Scenario::LookupZeroCall,
        Scenario::CrmSql,
        Scenario::CrmVendors,
        Scenario::CrmServicenowFreshdesk,
        Scenario::CrmZendeskHubspot,
        Scenario::JournalLookup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::EventThroughput => "event-throughput",
            Scenario::RepeatCallers => "repeat-callers",
            Scenario::LookupLatency => "lookup-latency",
            Scenario::RateBudgetDrain => "rate-budget-drain",
            Scenario::RateBudgetSmooth => "rate-budget-smooth",
            Scenario::Memory => "memory",
            Scenario::TokenPool => "token-pool",
            Scenario::LookupZeroCall => "lookup-zero-call",
            Scenario::CrmSql => "crm-sql",
            Scenario::CrmVendors => "crm-vendors",
            Scenario::CrmServicenowFreshdesk => "crm-servicenow-freshdesk",
            Scenario::CrmZendeskHubspot => "crm-zendesk-hubspot",
            Scenario::JournalLookup => "journal-lookup",
        }
    }
}

/// Callers used for warm-up only, never in a measured phase.
pub(super) const WARMUP_CALLERS: u64 = 7_000_000;
/// Callers of the lookup scenario's control phase (the bench asking the CRM directly).
pub(super) const CONTROL_CALLERS: u64 = 6_000_000;

/// Sizes and knobs, after `--quick` and the command-line overrides.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub quick: bool,
    pub events: usize,
    pub warmup_events: usize,
    pub concurrency: usize,
    pub lookup_rate: f64,
    pub lookup_secs: f64,
    pub lookup_hit_secs: f64,
    pub drain_events: usize,
    pub drain_budget_per_minute: u32,
    pub memory_lookups: u64,
    pub memory_concurrency: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                events: 2_000,
                warmup_events: 100,
                concurrency: 64,
                lookup_rate: 1_000.0,
                lookup_secs: 2.0,
                lookup_hit_secs: 1.0,
                drain_events: 1_000,
                drain_budget_per_minute: 12_000,
                memory_lookups: 50_000,
                memory_concurrency: 64,
            }
        } else {
            Self {
                quick,
                events: 20_000,
                warmup_events: 200,
                concurrency: 64,
                lookup_rate: 1_000.0,
                lookup_secs: 10.0,
                lookup_hit_secs: 3.0,
                drain_events: 10_000,
                drain_budget_per_minute: 12_000,
                memory_lookups: 1_000_000,
                memory_concurrency: 64,
            }
        }
    }
}

pub struct Bench {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub wrap: Vec<String>,
    pub crm: CrmKind,
    pub sizes: Sizes,
    pub log_dir: PathBuf,
    /// `genesys.<key>` of a client-side rate limit, if this attrsync has one.
    pub client_rate_key: Option<String>,
    /// `genesys.rate_limit_burst` in config/default.toml, if present.
    pub client_rate_burst: Option<i64>,
    /// Whether this attrsync has `queue.sqlite_path` (a durable queue on disk).
    pub has_queue_path: bool,
    /// A command run with the child's pid right before each timed phase.
    pub on_timed: Option<String>,
    /// Settings given to every child on top of the scenario's (`--journal-both` sets
    /// `ATTRSYNC_JOURNAL__ENABLED`).
    pub child_env: Vec<(String, String)>,
    /// `--queue-postgres`: the database each child's queue lives in, instead of SQLite.
    pub queue_postgres: Option<String>,
    /// The schemas made for the children's queues, dropped by [`Bench::drop_queue_schemas`].
    pub queue_schemas: std::sync::Mutex<Vec<String>>,
}

pub(super) struct Secrets {
    api_key: String,
    lookup_password: String,
}

impl Secrets {
    fn generate() -> Self {
        Self {
            api_key: uuid::Uuid::new_v4().simple().to_string(),
            lookup_password: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

pub(super) struct Running {
    child: AttrsyncChild,
    http: reqwest::Client,
    secrets: Secrets,
    ready_after: Duration,
    /// A directory of this child's own (its queue database), removed when it stops.
    run_dir: PathBuf,
}

/// Waits are stretched this much when attrsync runs under a wrapper such as valgrind.
pub(super) fn slow(bench: &Bench) -> u32 {
    if bench.wrap.is_empty() {
        1
    } else {
        30
    }
}

impl Bench {
    pub async fn run(&self, scenario: Scenario) -> ScenarioResult {
        let name = scenario.name();
        let load_before = crate::report::loadavg();
        let result = match scenario {
            Scenario::EventThroughput => self.event_throughput().await,
            Scenario::RepeatCallers => self.repeat_callers().await,
            Scenario::LookupLatency => self.lookup_latency().await,
            Scenario::RateBudgetDrain => self.rate_budget(false).await,
            Scenario::RateBudgetSmooth => self.rate_budget(true).await,
            Scenario::Memory => self.memory().await,
            Scenario::TokenPool => self.token_pool().await,
            Scenario::LookupZeroCall => self.lookup_zero_call().await,
            Scenario::CrmSql => self.crm_sql().await,
            Scenario::CrmVendors => self.crm_vendors().await,
            Scenario::CrmServicenowFreshdesk => self.crm_servicenow_freshdesk().await,
            Scenario::CrmZendeskHubspot => self.crm_zendesk_hubspot().await,
            Scenario::JournalLookup => self.journal_lookup().await,
        };
        let mut result = result.unwrap_or_else(|e| ScenarioResult::failed(name, &e));
        // Other work on the machine shows in every number: keep a trace of it.
        result.detail("loadavg_before", load_before);
        result.detail("loadavg_after", crate::report::loadavg());
        result
    }

    pub(super) fn env(
        &self,
        genesys: &GenesysFront,
        crm: &CrmFront,
        port: u16,
        secrets: &Secrets,
        extra: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = [
            ("GENESYS_API_URL", genesys.url().to_owned()),
            ("GENESYS_LOGIN_URL", genesys.url().to_owned()),
            ("GENESYS_CLIENT_ID", genesys.config.client_id.clone()),
            (
                "GENESYS_CLIENT_SECRET",
                genesys.config.client_secret.clone(),
            ),
            ("ATTRSYNC_SERVER__HOST", "127.0.0.1".to_owned()),
            ("ATTRSYNC_SERVER__PORT", port.to_string()),
            ("ATTRSYNC_SERVER__SHUTDOWN_GRACE_SECS", "2".to_owned()),
            ("ATTRSYNC_AUTH__GENESYS__MODE", "api_key".to_owned()),
            ("ATTRSYNC_AUTH__GENESYS__SECRETS", secrets.api_key.clone()),
            ("ATTRSYNC_AUTH__LOOKUP__MODE", "basic".to_owned()),
            (
                "ATTRSYNC_AUTH__LOOKUP__SECRETS",
                secrets.lookup_password.clone(),
            ),
            ("ATTRSYNC_AUTH__CTI__MODE", "none".to_owned()),
            ("ATTRSYNC_TELEMETRY__LOG_LEVEL", "warn".to_owned()),
            ("ATTRSYNC_CRM__ADAPTER", "http".to_owned()),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                format!("{}/api/customers?phone={{phone}}", crm.url()),
            ),
            ("ATTRSYNC_CRM__HTTP__ALLOWED_HOSTS", "127.0.0.1".to_owned()),
            ("ATTRSYNC_CRM__HTTP__RESULTS_POINTER", "/results".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in extra {
            env.retain(|(name, _)| *name != k);
            env.push((k, v));
        }
        env
    }

    pub(super) async fn start_attrsync(
        &self,
        name: &str,
        genesys: &GenesysFront,
        crm: &CrmFront,
        extra: Vec<(String, String)>,
        concurrency: usize,
    ) -> anyhow::Result<Running> {
        let secrets = Secrets::generate();
        let port = free_port()?;
        let run_dir = std::env::temp_dir().join(format!(
            "attrsync-bench-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&run_dir)
            .with_context(|| format!("creating {}", run_dir.display()))?;
        let mut extra = extra;
        extra.extend(self.child_env.iter().cloned());
        if let Some(url) = &self.queue_postgres {
            // A fresh schema per child: nothing left over from an earlier run.
            let schema = format!("bench_queue_{}", uuid::Uuid::new_v4().simple());
            let admin = Self::queue_admin(url).await?;
            admin
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await
                .context("creating the queue's schema")?;
            if let Ok(mut made) = self.queue_schemas.lock() {
                made.push(schema.clone());
            }
            extra.extend([
                ("ATTRSYNC_QUEUE__BACKEND".to_owned(), "postgres".to_owned()),
                ("ATTRSYNC_QUEUE__POSTGRES_URL".to_owned(), url.clone()),
                ("ATTRSYNC_QUEUE__POSTGRES_SCHEMA".to_owned(), schema),
            ]);
        } else if self.has_queue_path {
            // A fresh queue database per child: nothing left over from an earlier run.
            extra.push((
                "ATTRSYNC_QUEUE__SQLITE_PATH".to_owned(),
                run_dir.join("queue.db").display().to_string(),
            ));
        }
        let env = self.env(genesys, crm, port, &secrets, extra);
        let mut child = AttrsyncChild::spawn(
            ChildSpec {
                binary: &self.binary,
                wrap: &self.wrap,
                env,
                cwd: &self.root,
                log: self.log_dir.join(format!("attrsync-{name}.log")),
            },
            port,
        )?;
        let http = load::client(concurrency)?;
        let ready_after = match child
            .wait_ready(&http, Duration::from_secs(30) * slow(self))
            .await
        {
            Ok(d) => d,
            Err(e) => {
                let how = child.stop(Duration::from_secs(5)).await;
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(e.context(format!("attrsync {how}")));
            }
        };
        Ok(Running {
            child,
            http,
            secrets,
            ready_after,
            run_dir,
        })
    }

    /// Runs `ATTRSYNC_BENCH_ON_TIMED` (if set) with the child's pid appended, right before the
    /// timed phase: e.g. `callgrind_control -z` so a profile leaves start-up and warm-up out.
    pub(super) async fn on_timed_phase(&self, child: &AttrsyncChild) {
        let Some(hook) = &self.on_timed else {
            return;
        };
        let mut parts = hook.split_whitespace();
        let Some(program) = parts.next() else {
            return;
        };
        let status = tokio::process::Command::new(program)
            .args(parts)
            .arg(child.pid().to_string())
            .stdin(std::process::Stdio::null())
            .status();
        match tokio::time::timeout(Duration::from_secs(60), status).await {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => eprintln!("bench: ATTRSYNC_BENCH_ON_TIMED exited with {s}"),
            Ok(Err(e)) => eprintln!("bench: ATTRSYNC_BENCH_ON_TIMED failed: {e}"),
            Err(_) => eprintln!("bench: ATTRSYNC_BENCH_ON_TIMED timed out"),
        }
    }

    pub(super) async fn stop(&self, running: Running, result: &mut ScenarioResult) {
        let how = running
            .child
            .stop(Duration::from_secs(10) * slow(self))
            .await;
        result.detail("attrsync_exit", how);
        let disk: u64 = std::fs::read_dir(&running.run_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if disk > 0 {
            result.detail("queue_db_bytes_at_exit", disk);
        }
        if let Err(e) = std::fs::remove_dir_all(&running.run_dir) {
            eprintln!("bench: could not remove {}: {e}", running.run_dir.display());
        }
    }
}

/// At most `max` evenly spaced elements, keeping the last.
pub(super) fn thin(samples: Vec<Value>, max: usize) -> Vec<Value> {
    if samples.len() <= max {
        return samples;
    }
    let step = samples.len().div_ceil(max);
    let last = samples.len() - 1;
    samples
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == last)
        .map(|(_, v)| v)
        .collect()
}

/// CPU seconds used so far by attrsync and by the bench process.
pub(super) struct Cpu {
    attrsync: Option<f64>,
    bench: Option<f64>,
}

impl Cpu {
    fn now(child: &AttrsyncChild) -> Self {
        Self {
            attrsync: crate::child::cpu_secs(&child.pid().to_string()),
            bench: crate::child::cpu_secs("self"),
        }
    }

    /// CPU used between `self` and `later` over `wall` seconds, per unit of work.
    fn report(&self, later: &Cpu, wall: f64, units: u64) -> Value {
        let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a).max(0.0));
        let attrsync = used(self.attrsync, later.attrsync);
        let bench = used(self.bench, later.bench);
        let per = |cpu: Option<f64>| cpu.filter(|_| units > 0).map(|c| c * 1e6 / units as f64);
        let cores = |cpu: Option<f64>| cpu.filter(|_| wall > 0.0).map(|c| c / wall);
        json!({
            "wall_secs": wall,
            "attrsync_cpu_secs": attrsync,
            "attrsync_cpu_us_per_unit": per(attrsync),
            "attrsync_cores_busy": cores(attrsync),
            "bench_cpu_secs": bench,
            "bench_cpu_us_per_unit": per(bench),
            "bench_cores_busy": cores(bench),
            "note": "bench = load generator + simulators (+ CRM) in one process; 100 ticks/s assumed",
        })
    }
}

pub(super) fn secs(end_ns: u64, start_ns: u64) -> f64 {
    end_ns.saturating_sub(start_ns) as f64 / 1e9
}

/// Events attrsync has finished with (any final pipeline outcome, failures included); the
/// ingest-side outcomes and scheduled retries are left out.
pub(super) fn processed(prom: &Prom) -> f64 {
    prom.by_label("attrsync_events_total", "outcome")
        .iter()
        .filter(|(outcome, _)| {
            !matches!(
                outcome.as_str(),
                "rejected" | "ignored" | "refused" | "retry_scheduled"
            )
        })
        .map(|(_, v)| v)
        .sum()
}

/// What changed in attrsync's own counters during the timed phase.
pub(super) fn metrics_delta(before: &Prom, after: &Prom) -> Value {
    let delta = |name: &str, label: &str| -> Value {
        let b = before.by_label(name, label);
        after
            .by_label(name, label)
            .into_iter()
            .map(|(k, v)| {
                let d = v - b.get(&k).copied().unwrap_or(0.0);
                (k, Value::from(d))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    json!({
        "events_by_outcome": delta("attrsync_events_total", "outcome"),
        "upstream_retries_by_operation": delta("attrsync_upstream_retries_total", "operation"),
        "upstream_rate_limited_by_upstream": delta("attrsync_upstream_rate_limited_total", "upstream"),
        "cache_lookups_by_result": delta("attrsync_crm_cache_lookups_total", "result"),
        "token_fetches_by_outcome": delta("attrsync_genesys_token_fetches_total", "outcome"),
        "requests_shed": after.sum("attrsync_requests_shed_total", &[]) - before.sum("attrsync_requests_shed_total", &[]),
    })
}

/// The key of a client-side Genesys rate limit in config/default.toml, if attrsync has one.
pub fn client_rate_key(default_toml: &str) -> Option<String> {
    let table: toml::Table = default_toml.parse().ok()?;
    let genesys = table.get("genesys")?.as_table()?;
    const CANDIDATES: &[&str] = &[
        "rate_limit_per_minute",
        "requests_per_minute",
        "max_requests_per_minute",
        "rate_limit",
    ];
    CANDIDATES
        .iter()
        .find(|k| genesys.get(**k).is_some_and(toml::Value::is_integer))
        .map(|k| (*k).to_owned())
}

/// Whether `[section] key` exists in config/default.toml.
pub fn has_setting(default_toml: &str, section: &str, key: &str) -> bool {
    default_toml
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get(section)?.as_table()?.get(key).cloned())
        .is_some()
}

/// An integer under `[genesys]` in config/default.toml.
pub fn genesys_integer(default_toml: &str, key: &str) -> Option<i64> {
    let table: toml::Table = default_toml.parse().ok()?;
    table.get("genesys")?.as_table()?.get(key)?.as_integer()
}

impl Bench {
    async fn queue_admin(url: &str) -> anyhow::Result<sqlx::PgPool> {
        tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(url))
            .await
            .context("PostgreSQL (--queue-postgres) did not answer")?
            .context("connecting to --queue-postgres")
    }

    /// Drops the schemas made for the children's queues (`--queue-postgres`).
    pub async fn drop_queue_schemas(&self) {
        let made: Vec<String> = self
            .queue_schemas
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default();
        let (Some(url), false) = (&self.queue_postgres, made.is_empty()) else {
            return;
        };
        let Ok(admin) = Self::queue_admin(url).await else {
            eprintln!(
                "could not drop the bench's queue schemas: {}",
                made.join(", ")
            );
            return;
        };
        for schema in made {
            if let Err(e) = admin
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
            {
                eprintln!("could not drop schema {schema}: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_rate_key_is_found_only_when_present() {
        assert_eq!(client_rate_key("[genesys]\nregion = \"x\"\n"), None);
        assert_eq!(
            client_rate_key("[genesys]\nrate_limit_per_minute = 300\n").as_deref(),
            Some("rate_limit_per_minute")
        );
    }
}
