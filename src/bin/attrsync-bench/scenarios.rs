//! The scenarios. Each starts its own upstreams and its own attrsync child, so nothing carries
//! over (cache, connections, rate windows) from one scenario to the next.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use attrsync::simulator::{NewConversation, SimStats};
use axum::body::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::{json, Value};

use crate::child::{free_port, AttrsyncChild, ChildSpec, Prom};
use crate::load::{self, histogram, Latency};
use crate::report::{kb_to_mb, ScenarioResult};
use crate::upstream::{now_ns, CrmFront, CrmKind, GenesysFront};

/// The five scenarios of the brief, plus the smoothed-budget variant of the fourth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    EventThroughput,
    RepeatCallers,
    LookupLatency,
    RateBudgetDrain,
    RateBudgetSmooth,
    Memory,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::EventThroughput,
        Scenario::RepeatCallers,
        Scenario::LookupLatency,
        Scenario::RateBudgetDrain,
        Scenario::RateBudgetSmooth,
        Scenario::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::EventThroughput => "event-throughput",
            Scenario::RepeatCallers => "repeat-callers",
            Scenario::LookupLatency => "lookup-latency",
            Scenario::RateBudgetDrain => "rate-budget-drain",
            Scenario::RateBudgetSmooth => "rate-budget-smooth",
            Scenario::Memory => "memory",
        }
    }
}

/// Distinct caller k (k < 8,000,000) as an E.164 US number: +1 317 EEE LLLL.
pub fn phone(k: u64) -> String {
    format!("+1317{:03}{:04}", 200 + (k / 10_000) % 800, k % 10_000)
}

/// Callers used for warm-up only, never in a measured phase.
const WARMUP_CALLERS: u64 = 7_000_000;
/// Callers of the lookup scenario's control phase (the bench asking the CRM directly).
const CONTROL_CALLERS: u64 = 6_000_000;

/// Sizes and knobs, after `--quick` and the command-line overrides.
#[derive(Debug, Clone)]
pub struct Sizes {
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
}

struct Secrets {
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

struct Running {
    child: AttrsyncChild,
    http: reqwest::Client,
    secrets: Secrets,
    ready_after: Duration,
    /// A directory of this child's own (its queue database), removed when it stops.
    run_dir: PathBuf,
}

/// Waits are stretched this much when attrsync runs under a wrapper such as valgrind.
fn slow(bench: &Bench) -> u32 {
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
        };
        let mut result = result.unwrap_or_else(|e| ScenarioResult::failed(name, &e));
        // Other work on the machine shows in every number: keep a trace of it.
        result.detail("loadavg_before", load_before);
        result.detail("loadavg_after", crate::report::loadavg());
        result
    }

    fn env(
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

    async fn start_attrsync(
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
        if self.has_queue_path {
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
    async fn on_timed_phase(&self, child: &AttrsyncChild) {
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

    async fn stop(&self, running: Running, result: &mut ScenarioResult) {
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

    // -----------------------------------------------------------------------------------------
    // Events

    async fn event_throughput(&self) -> anyhow::Result<ScenarioResult> {
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

    async fn repeat_callers(&self) -> anyhow::Result<ScenarioResult> {
        let n = self.sizes.events;
        let plan = EventPlan {
            name: Scenario::RepeatCallers.name(),
            callers: repeat_callers(n, 0.10, 0x5eed),
            queue_capacity: n + self.sizes.warmup_events + 1_000,
            warmup: self.sizes.warmup_events,
            budget: None,
            drain_timeout: Duration::from_secs(120),
        };
        let mut r = self.run_events(&plan).await?;
        if let Some(per) = r.crm_calls_per_unique_caller {
            r.target(
                "CRM calls per unique caller",
                "1.0 (every repeat served by the cache)",
                format!("{per:.3}"),
                (per - 1.0).abs() < 1e-9,
            );
        }
        Ok(r)
    }

    async fn rate_budget(&self, smooth: bool) -> anyhow::Result<ScenarioResult> {
        let n = self.sizes.drain_events;
        let budget = self.sizes.drain_budget_per_minute;
        let ideal = n as f64 / (f64::from(budget) / 60.0);
        let name = if smooth {
            Scenario::RateBudgetSmooth.name()
        } else {
            Scenario::RateBudgetDrain.name()
        };
        let plan = EventPlan {
            name,
            callers: (0..n as u64).collect(),
            queue_capacity: 20_000.max(n + 1_000),
            warmup: 20,
            budget: Some(Budget {
                per_minute: budget,
                smooth,
            }),
            drain_timeout: Duration::from_secs_f64(ideal * 2.5 + 30.0),
        };
        let mut r = self.run_events(&plan).await?;
        let drain = r
            .details
            .get("drain_secs")
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN);
        r.detail("ideal_drain_secs", ideal);
        r.detail("drain_vs_ideal", drain / ideal);
        r.detail(
            "budget",
            if smooth {
                format!(
                    "{budget}/min per token as a token bucket ({:.1}/s, bucket of 1 s) in the bench's front, simulator limit off",
                    f64::from(budget) / 60.0
                )
            } else {
                format!("{budget}/min per token: the simulator's fixed 60-second window")
            },
        );
        if !smooth && n as u64 <= u64::from(budget) {
            r.detail(
                "note",
                "the simulator's window is a fixed 60 s: a burst no larger than the per-minute budget is admitted at once, so the drain is bounded by attrsync's own speed, not by the budget",
            );
        }
        r.target(
            "drain time",
            "<= 1.05 x ideal (events / budget)",
            format!("{drain:.1} s vs ideal {ideal:.1} s ({:.2}x)", drain / ideal),
            drain <= ideal * 1.05,
        );
        let lost = r.events_lost.unwrap_or(i64::MAX);
        r.target("events lost", "0", lost.to_string(), lost == 0);
        let limited = r.rate_limited_429.unwrap_or(u64::MAX);
        r.target("429s", "0", limited.to_string(), limited == 0);
        Ok(r)
    }

    async fn run_events(&self, plan: &EventPlan) -> anyhow::Result<ScenarioResult> {
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
    async fn drive_events(
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

    // -----------------------------------------------------------------------------------------
    // Lookups

    async fn lookup_latency(&self) -> anyhow::Result<ScenarioResult> {
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

    async fn drive_lookups(
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

    // -----------------------------------------------------------------------------------------
    // Memory

    async fn memory(&self) -> anyhow::Result<ScenarioResult> {
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

    async fn drive_memory(
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

/// At most `max` evenly spaced elements, keeping the last.
fn thin(samples: Vec<Value>, max: usize) -> Vec<Value> {
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
struct Cpu {
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

struct Budget {
    per_minute: u32,
    smooth: bool,
}

struct EventPlan {
    name: &'static str,
    /// The caller of each measured event (an index for [`phone`]).
    callers: Vec<u64>,
    warmup: usize,
    queue_capacity: usize,
    budget: Option<Budget>,
    drain_timeout: Duration,
}

fn secs(end_ns: u64, start_ns: u64) -> f64 {
    end_ns.saturating_sub(start_ns) as f64 / 1e9
}

/// Events attrsync has finished with (any final pipeline outcome, failures included); the
/// ingest-side outcomes and scheduled retries are left out.
fn processed(prom: &Prom) -> f64 {
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
fn metrics_delta(before: &Prom, after: &Prom) -> Value {
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

/// 90% of events (for `fresh` = 0.1) for a caller seen before; deterministic.
fn repeat_callers(n: usize, fresh: f64, seed: u64) -> Vec<u64> {
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

struct SplitMix(u64);

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
fn event_body(
    call: &attrsync::simulator::CreatedConversation,
    phone: &str,
) -> anyhow::Result<Bytes> {
    let body = attrsync::simulator::eventbridge_customer_start(call, &format!("tel:{phone}"));
    Ok(Bytes::from(serde_json::to_vec(&body)?))
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
        .find(|k| genesys.get(**k).is_some_and(|v| v.is_integer()))
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

#[cfg(test)]
fn unique_count(callers: &[u64]) -> usize {
    callers.iter().collect::<HashSet<_>>().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_distinct_and_e164() {
        let set: HashSet<String> = (0..100_000).map(phone).collect();
        assert_eq!(set.len(), 100_000);
        assert_eq!(phone(0), "+13172000000");
        assert_eq!(phone(12_345), "+13172012345");
        assert_eq!(phone(0).len(), 12);
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

    #[test]
    fn the_client_rate_key_is_found_only_when_present() {
        assert_eq!(client_rate_key("[genesys]\nregion = \"x\"\n"), None);
        assert_eq!(
            client_rate_key("[genesys]\nrate_limit_per_minute = 300\n").as_deref(),
            Some("rate_limit_per_minute")
        );
    }
}
