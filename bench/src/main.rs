//! `attrsync-bench`: the benchmark of attrsync.
//!
//! The bench process serves the upstreams (the Genesys simulator behind a measuring front, and
//! a CRM) on 127.0.0.1, starts `attrsync serve` as a child process configured only through its
//! environment, drives load from tokio tasks, and reads the child's memory from /proc. One
//! table line per scenario goes to the terminal; everything goes to a JSON file.
//!
//! ```text
//! cargo build --release                  # the attrsync binary the bench runs
//! cargo run --release -p attrsync-bench -- [scenario...] [--json FILE] [--quick]
//! ```
//!
//! `ATTRSYNC_BENCH_WRAP="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out"` runs the
//! child under that command (for profiling; combine with `--events`), and
//! `ATTRSYNC_BENCH_ON_TIMED="callgrind_control -z"` runs a command with the child's pid right
//! before each timed phase. Method notes are in `bench/README.md`.

mod child;
mod load;
mod report;
mod scenarios;
mod upstream;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Parser;
use serde_json::{json, Value};

use scenarios::{Bench, Scenario, Sizes};
use upstream::CrmKind;

#[derive(Debug, Parser)]
#[command(
    name = "attrsync-bench",
    about = "Benchmarks attrsync (run as a child process) against in-process simulators"
)]
struct Args {
    /// Scenarios to run, in order (default: all).
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    /// Where to write the JSON results.
    #[arg(long, value_name = "FILE", default_value = "bench-results/latest.json")]
    json: PathBuf,
    /// Small sizes, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Events in event-throughput and repeat-callers (also the burst of the rate-budget
    /// scenarios when given).
    #[arg(long, value_name = "N")]
    events: Option<usize>,
    /// Concurrent senders for the event scenarios.
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,
    /// Distinct callers looked up in the memory scenario.
    #[arg(long, value_name = "N")]
    memory_lookups: Option<u64>,
    /// Per-token Genesys budget (requests per minute) of the rate-budget scenarios.
    #[arg(long, value_name = "PER_MINUTE")]
    drain_budget: Option<u32>,
    /// Seconds of open-loop lookups in lookup-latency.
    #[arg(long, value_name = "SECS")]
    lookup_secs: Option<f64>,
    /// The CRM attrsync's http adapter calls.
    #[arg(long, value_enum, default_value = "synthetic")]
    crm: CrmKind,
    /// Run each scenario twice, side by side: with `journal.enabled = false`, then `true`.
    #[arg(long)]
    journal_both: bool,
    /// Run each scenario twice, side by side, with the same settings ("A" and "B"): what two
    /// identical children differ by here is the noise floor of a `--journal-both` comparison.
    #[arg(long, conflicts_with = "journal_both")]
    aa: bool,
    /// Run each scenario (with `--journal-both` or `--aa`, each pair) this many times, interleaved, and
    /// summarise the median: one run on a shared machine says little about a few per cent.
    #[arg(long, value_name = "N", default_value_t = 1)]
    repeat: usize,
    /// Run each child's queue (and journal) on this PostgreSQL database instead of a SQLite
    /// file: a fresh schema per child, dropped at the end.
    #[arg(long, value_name = "URL")]
    queue_postgres: Option<String>,
    /// The attrsync binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    attrsync: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("attrsync-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(all_ok) if all_ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("attrsync-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn attrsync_binary(explicit: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<String>)> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let binary = match explicit {
        Some(path) => path,
        None => exe
            .parent()
            .map(|dir| dir.join("attrsync"))
            .context("this executable has no directory")?,
    };
    if !binary.is_file() {
        anyhow::bail!(
            "{} not found: run `cargo build --release` first",
            binary.display()
        );
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let warning = match (modified(&binary), modified(&exe)) {
        (Some(a), Some(b)) if a + std::time::Duration::from_secs(60) < b => Some(format!(
            "{} is older than the bench binary: if src/ changed, run `cargo build --release`",
            binary.display()
        )),
        _ => None,
    };
    Ok((binary, warning))
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let (binary, stale) = attrsync_binary(args.attrsync.clone())?;
    if let Some(w) = &stale {
        eprintln!("warning: {w}");
    }
    // The repository root (this package is `bench/` in it): the child runs there, so the
    // embedded defaults' relative paths (config/customers.json) resolve.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let default_toml =
        std::fs::read_to_string(root.join("config/default.toml")).unwrap_or_default();
    let client_rate_key = scenarios::client_rate_key(&default_toml);
    let wrap: Vec<String> = std::env::var("ATTRSYNC_BENCH_WRAP")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();

    let mut sizes = Sizes::new(args.quick);
    if let Some(n) = args.events {
        sizes.events = n;
        sizes.drain_events = n;
    }
    if let Some(c) = args.concurrency {
        sizes.concurrency = c.max(1);
    }
    if let Some(n) = args.memory_lookups {
        sizes.memory_lookups = n;
    }
    if let Some(b) = args.drain_budget {
        sizes.drain_budget_per_minute = b.max(1);
    }
    if let Some(s) = args.lookup_secs {
        sizes.lookup_secs = s.clamp(0.1, 600.0);
    }
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let log_dir = args
        .json
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        .join("logs");
    let mut bench = Bench {
        binary: binary.clone(),
        root,
        wrap: wrap.clone(),
        crm: args.crm,
        sizes: sizes.clone(),
        log_dir,
        client_rate_key: client_rate_key.clone(),
        client_rate_burst: scenarios::genesys_integer(&default_toml, "rate_limit_burst"),
        has_queue_path: scenarios::has_setting(&default_toml, "queue", "sqlite_path"),
        on_timed: std::env::var("ATTRSYNC_BENCH_ON_TIMED")
            .ok()
            .filter(|s| !s.trim().is_empty()),
        child_env: Vec::new(),
        queue_postgres: args.queue_postgres.clone(),
        queue_schemas: Default::default(),
    };

    let machine = report::machine();
    println!("attrsync-bench");
    println!("  attrsync:  {}", binary.display());
    println!(
        "  machine:   {} cores, {}, {:.0} MB",
        machine["nproc"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["mem_total_mb"].as_f64().unwrap_or(0.0)
    );
    if !wrap.is_empty() {
        println!(
            "  wrapped:   {} (timings are not representative)",
            wrap.join(" ")
        );
    }
    println!(
        "  client-side Genesys rate limit: {}",
        client_rate_key.as_deref().map_or(
            "not in this attrsync's configuration".to_owned(),
            |k| format!("genesys.{k}")
        )
    );
    println!();

    let started = chrono::Utc::now();
    let mut results = Vec::new();
    // Each run of a round: the journal setting given to the child, and the label.
    let journal: &[(Option<bool>, &str)] = if args.journal_both {
        &[(Some(false), "journal off"), (Some(true), "journal on")]
    } else if args.aa {
        &[(None, "A"), (None, "B")]
    } else {
        &[(None, "")]
    };
    let repeat = args.repeat.max(1);
    // Odd rounds run the pair in the other order, so neither setting is always the one that
    // follows a run (and pays for its leftover disk writeback and cache misses).
    let runs = scenarios.iter().flat_map(|s| {
        (0..repeat).flat_map(move |round| {
            let order: Vec<_> = if round % 2 == 1 {
                journal.iter().rev().copied().collect()
            } else {
                journal.to_vec()
            };
            order.into_iter().map(move |j| (*s, j, round))
        })
    });
    for (scenario, (journal, label), round) in runs {
        println!("running {} ...", scenario.name());
        bench.child_env = journal
            .map(|on| vec![("ATTRSYNC_JOURNAL__ENABLED".to_owned(), on.to_string())])
            .unwrap_or_default();
        let mut result = bench.run(scenario).await;
        if !label.is_empty() {
            result.scenario = format!("{} ({label})", result.scenario);
        }
        if repeat > 1 {
            result.scenario = format!("{} #{}", result.scenario, round + 1);
        }
        println!("{}", report::header());
        println!("{}\n", report::rows(&result));
        results.push(result);
        let doc = document(
            &args,
            &sizes,
            &machine,
            &binary,
            &wrap,
            stale.as_deref(),
            &results,
            started,
        );
        report::write_json(&args.json, &doc)?;
    }

    bench.drop_queue_schemas().await;
    println!("summary");
    println!("{}", report::header());
    for r in &results {
        println!("{}", report::rows(r));
    }
    if repeat > 1 {
        println!("\nmedians over {repeat} interleaved runs");
        for line in report::medians(&results) {
            println!("{line}");
        }
    }
    println!("\nJSON: {}", args.json.display());
    Ok(results.iter().all(|r| r.ok))
}

#[allow(clippy::too_many_arguments)]
fn document(
    args: &Args,
    sizes: &Sizes,
    machine: &Value,
    binary: &Path,
    wrap: &[String],
    stale: Option<&str>,
    results: &[report::ScenarioResult],
    started: chrono::DateTime<chrono::Utc>,
) -> Value {
    json!({
        "tool": "attrsync-bench",
        "started_at": started.to_rfc3339(),
        "written_at": chrono::Utc::now().to_rfc3339(),
        "quick": args.quick,
        "machine": machine,
        "attrsync_binary": binary.display().to_string(),
        "attrsync_binary_modified": std::fs::metadata(binary)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
        "stale_binary_warning": stale,
        "wrapped_with": if wrap.is_empty() { Value::Null } else { Value::from(wrap.join(" ")) },
        "crm_backend": serde_json::to_value(args.crm).unwrap_or(Value::Null),
        "sizes": {
            "events": sizes.events,
            "warmup_events": sizes.warmup_events,
            "concurrency": sizes.concurrency,
            "lookup_rate_per_sec": sizes.lookup_rate,
            "lookup_secs": sizes.lookup_secs,
            "lookup_cache_hit_secs": sizes.lookup_hit_secs,
            "drain_events": sizes.drain_events,
            "drain_budget_per_minute": sizes.drain_budget_per_minute,
            "memory_lookups": sizes.memory_lookups,
            "memory_concurrency": sizes.memory_concurrency,
        },
        "targets": {
            "event-throughput": ">= 5000 events/s",
            "lookup-latency": "added p99 < 1 ms",
            "rate-budget": "drain within 5% of ideal, zero lost, zero 429s",
            "memory": "< 50 MB idle, < 250 MB at the cache cap",
            "genesys_calls_per_event": "1.0 when the event carries the participant id",
        },
        "scenarios": results,
    })
}
