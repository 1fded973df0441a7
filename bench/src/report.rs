//! Results: one [`ScenarioResult`] per scenario, the table printed to the terminal, the machine
//! description and the JSON file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::load::Latency;

/// A target from the brief, and where the run stands against it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub wanted: String,
    pub actual: String,
    pub met: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub ok: bool,
    pub error: Option<String>,
    /// Headline rate (events or requests per second) and what it counts.
    pub rate: Option<f64>,
    pub rate_unit: String,
    pub rate_definition: String,
    /// The headline latency and what it measures.
    pub latency_kind: String,
    pub latency: Option<Latency>,
    /// Further latency distributions (name -> percentiles), printed as extra table lines.
    pub more_latencies: BTreeMap<String, Latency>,
    pub genesys_calls_per_event: Option<f64>,
    /// Tokens the Genesys simulator issued over the whole child lifetime (readiness included).
    pub token_fetches: Option<u64>,
    pub crm_calls_per_unique_caller: Option<f64>,
    pub rate_limited_429: Option<u64>,
    pub events_lost: Option<i64>,
    pub rss_idle_mb: Option<f64>,
    pub rss_after_mb: Option<f64>,
    pub rss_peak_mb: Option<f64>,
    pub targets: Vec<Target>,
    pub details: Map<String, Value>,
}

impl ScenarioResult {
    pub fn new(name: &str) -> Self {
        Self {
            scenario: name.to_owned(),
            ok: true,
            ..Self::default()
        }
    }

    pub fn failed(name: &str, error: &anyhow::Error) -> Self {
        Self {
            scenario: name.to_owned(),
            ok: false,
            error: Some(format!("{error:#}")),
            ..Self::default()
        }
    }

    pub fn detail(&mut self, key: &str, value: impl Into<Value>) {
        self.details.insert(key.to_owned(), value.into());
    }

    pub fn target(&mut self, name: &str, wanted: &str, actual: String, met: bool) {
        self.targets.push(Target {
            name: name.to_owned(),
            wanted: wanted.to_owned(),
            actual,
            met,
        });
    }
}

pub fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}"))
}

const HEADER: &[(&str, usize)] = &[
    ("scenario", 26),
    ("rate", 14),
    ("p50 ms", 9),
    ("p90 ms", 9),
    ("p99 ms", 9),
    ("p99.9 ms", 9),
    ("G/ev", 6),
    ("tokens", 6),
    ("CRM/caller", 10),
    ("429s", 6),
    ("lost", 6),
    ("peak RSS", 9),
];

fn line(cells: &[String]) -> String {
    let mut out = String::new();
    for (i, (cell, (_, width))) in cells.iter().zip(HEADER).enumerate() {
        if i == 0 {
            let _ = write!(out, "{cell:<width$}");
        } else {
            let _ = write!(out, " {cell:>width$}");
        }
    }
    out
}

pub fn header() -> String {
    let names: Vec<String> = HEADER.iter().map(|(n, _)| (*n).to_owned()).collect();
    let head = line(&names);
    format!("{head}\n{}", "-".repeat(head.len()))
}

fn latency_cells(l: Option<&Latency>) -> [String; 4] {
    match l {
        Some(l) => [
            format!("{:.3}", l.p50_ms),
            format!("{:.3}", l.p90_ms),
            format!("{:.3}", l.p99_ms),
            format!("{:.3}", l.p999_ms),
        ],
        None => ["n/a".into(), "n/a".into(), "n/a".into(), "n/a".into()],
    }
}

/// The scenario's table line(s): the headline, then one line per further latency.
pub fn rows(r: &ScenarioResult) -> String {
    if !r.ok {
        return format!(
            "{:<26} FAILED: {}",
            r.scenario,
            r.error.as_deref().unwrap_or("unknown error")
        );
    }
    let rate = r
        .rate
        .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.0} {}", r.rate_unit));
    let [p50, p90, p99, p999] = latency_cells(r.latency.as_ref());
    let mut out = line(&[
        r.scenario.clone(),
        rate,
        p50,
        p90,
        p99,
        p999,
        opt(r.genesys_calls_per_event, 2),
        r.token_fetches
            .map_or_else(|| "n/a".to_owned(), |v| v.to_string()),
        opt(r.crm_calls_per_unique_caller, 3),
        r.rate_limited_429
            .map_or_else(|| "n/a".to_owned(), |v| v.to_string()),
        r.events_lost
            .map_or_else(|| "n/a".to_owned(), |v| v.to_string()),
        r.rss_peak_mb
            .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1} MB")),
    ]);
    let _ = write!(out, "\n{:<26}   latency = {}", "", r.latency_kind);
    for (name, l) in &r.more_latencies {
        let [p50, p90, p99, p999] = latency_cells(Some(l));
        let label = format!("  + {name}");
        let mut cells = vec![label, String::new(), p50, p90, p99, p999];
        cells.resize(HEADER.len(), String::new());
        let _ = write!(out, "\n{}", line(&cells).trim_end());
    }
    if r.rss_idle_mb.is_some() || r.rss_after_mb.is_some() {
        let _ = write!(
            out,
            "\n{:<26}   RSS idle {} MB, after {} MB, peak {} MB",
            "",
            opt(r.rss_idle_mb, 1),
            opt(r.rss_after_mb, 1),
            opt(r.rss_peak_mb, 1)
        );
    }
    for t in &r.targets {
        let _ = write!(
            out,
            "\n{:<26}   target {}: want {}, got {} -> {}",
            "",
            t.name,
            t.wanted,
            t.actual,
            if t.met { "MET" } else { "NOT MET" }
        );
    }
    out
}

/// nproc, CPU model, memory, kernel.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    serde_json::json!({
        "nproc": std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(0),
        "cpu_model": model,
        "mem_total_mb": mem_kb.map(kb_to_mb),
        "kernel": kernel,
        "loadavg_at_start": loadavg(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub fn write_json(path: &Path, doc: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(doc)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// One line per scenario run more than once (`--repeat`): the median rate and headline p50 / p99
/// over its runs, and for a `--journal-both` pair the journal-on median against the off one.
pub fn medians(results: &[ScenarioResult]) -> Vec<String> {
    let mut groups: BTreeMap<String, Vec<&ScenarioResult>> = BTreeMap::new();
    for r in results.iter().filter(|r| r.ok) {
        let name = r
            .scenario
            .rsplit_once(" #")
            .map_or(r.scenario.as_str(), |(n, _)| n);
        groups.entry(name.to_owned()).or_default().push(r);
    }
    let summary = |runs: &[&ScenarioResult]| Summary {
        rate: median(runs.iter().filter_map(|r| r.rate)),
        p50: median(
            runs.iter()
                .filter_map(|r| r.latency.as_ref().map(|l| l.p50_ms)),
        ),
        p99: median(
            runs.iter()
                .filter_map(|r| r.latency.as_ref().map(|l| l.p99_ms)),
        ),
    };
    let mut out = Vec::new();
    for (name, runs) in &groups {
        let s = summary(runs);
        out.push(format!(
            "{name}: {} runs, median {} ; {} p50 / p99 {} / {} ms",
            runs.len(),
            s.rate
                .map_or("n/a".into(), |v| format!("{v:.0} {}", runs[0].rate_unit)),
            runs[0].latency_kind,
            s.p50.map_or("n/a".into(), |v| format!("{v:.2}")),
            s.p99.map_or("n/a".into(), |v| format!("{v:.2}")),
        ));
        // A pair's second run against its first: the journal on against off, or B against A.
        let Some((base, first, versus)) = PAIRS.iter().find_map(|(first, second, versus)| {
            name.strip_suffix(&format!(" ({second})"))
                .map(|base| (base, first, versus))
        }) else {
            continue;
        };
        let Some(off) = groups.get(&format!("{base} ({first})")) else {
            continue;
        };
        let paired = paired_rate_change(runs, off);
        let off = summary(off);
        let change = |on: Option<f64>, off: Option<f64>| match (on, off) {
            (Some(on), Some(off)) if off > 0.0 => format!("{:+.1}%", (on / off - 1.0) * 100.0),
            _ => "n/a".to_owned(),
        };
        out.push(format!(
            "{base}: {versus}: rate {}, p50 {}, p99 {}",
            change(s.rate, off.rate),
            change(s.p50, off.p50),
            change(s.p99, off.p99),
        ));
        if let Some((median, low, high, n)) = paired {
            out.push(format!(
                "{base}: {versus}, round by round: median {median:+.1}% over {n} rounds \
                 (from {low:+.1}% to {high:+.1}%)"
            ));
        }
    }
    out
}

/// The labels of a pair's two runs (see `--journal-both` and `--aa`), first and second, and
/// how the comparison is named.
const PAIRS: [(&str, &str, &str); 2] = [
    ("journal off", "journal on", "journal on vs off"),
    ("A", "B", "B vs A"),
];

/// The rate change of each round's journal-on run against the same round's off run: the
/// median, the lowest, the highest and how many rounds had both. A round's two runs share the
/// machine's state at that moment, so this is steadier than comparing the two medians when the
/// machine's speed drifts over a long run.
fn paired_rate_change(
    on: &[&ScenarioResult],
    off: &[&ScenarioResult],
) -> Option<(f64, f64, f64, usize)> {
    let round = |r: &ScenarioResult| r.scenario.rsplit_once(" #").map(|(_, n)| n.to_owned());
    let off: BTreeMap<String, f64> = off
        .iter()
        .filter_map(|r| Some((round(r)?, r.rate?)))
        .collect();
    let changes: Vec<f64> = on
        .iter()
        .filter_map(|r| {
            let (on, off) = (r.rate?, *off.get(&round(r)?)?);
            (off > 0.0).then(|| (on / off - 1.0) * 100.0)
        })
        .collect();
    let low = changes.iter().copied().reduce(f64::min)?;
    let high = changes.iter().copied().reduce(f64::max)?;
    Some((median(changes.iter().copied())?, low, high, changes.len()))
}

struct Summary {
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
}

/// The median (the mean of the middle two for an even count); `None` for no values.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, rate: f64) -> ScenarioResult {
        ScenarioResult {
            scenario: name.to_owned(),
            ok: true,
            rate: Some(rate),
            rate_unit: "events/s".to_owned(),
            ..ScenarioResult::default()
        }
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([4.0, 1.0, 3.0, 2.0].into_iter()), Some(2.5));
        assert_eq!(median([5.0, 1.0, 3.0].into_iter()), Some(3.0));
        assert_eq!(median(std::iter::empty()), None);
    }

    #[test]
    fn repeated_journal_pairs_are_summarised_as_on_against_off() {
        let results = [
            run("event-throughput (journal off) #1", 1000.0),
            run("event-throughput (journal on) #1", 900.0),
            run("event-throughput (journal off) #2", 3000.0),
            run("event-throughput (journal on) #2", 1900.0),
            run("event-throughput (journal off) #3", 2000.0),
            run("event-throughput (journal on) #3", 1800.0),
        ];
        let lines = medians(&results);
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("event-throughput (journal off): 3 runs, median 2000 events/s")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l == "event-throughput: journal on vs off: rate -10.0%, p50 n/a, p99 n/a"),
            "{lines:?}"
        );
        // Rounds: -10%, -36.7%, -10%.
        assert!(
            lines.iter().any(|l| l
                == "event-throughput: journal on vs off, round by round: median -10.0% over 3 \
                    rounds (from -36.7% to -10.0%)"),
            "{lines:?}"
        );
    }

    #[test]
    fn an_a_a_pair_is_summarised_as_b_against_a() {
        let results = [
            run("event-throughput (A) #1", 1000.0),
            run("event-throughput (B) #1", 980.0),
            run("event-throughput (B) #2", 1010.0),
            run("event-throughput (A) #2", 1000.0),
        ];
        let lines = medians(&results);
        assert!(
            lines.iter().any(|l| l
                == "event-throughput: B vs A, round by round: median -0.5% over 2 rounds \
                    (from -2.0% to +1.0%)"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_round_missing_one_of_its_pair_is_left_out_of_the_round_by_round_change() {
        let mut failed = run("event-throughput (journal off) #2", 3000.0);
        failed.ok = false;
        let results = [
            run("event-throughput (journal off) #1", 1000.0),
            run("event-throughput (journal on) #1", 1050.0),
            failed,
            run("event-throughput (journal on) #2", 100.0),
        ];
        let lines = medians(&results);
        assert!(
            lines.iter().any(|l| l
                == "event-throughput: journal on vs off, round by round: median +5.0% over 1 \
                    rounds (from +5.0% to +5.0%)"),
            "{lines:?}"
        );
    }

    #[test]
    fn failed_runs_are_left_out_of_the_medians() {
        let mut failed = run("event-throughput #2", 1.0);
        failed.ok = false;
        let results = [
            run("event-throughput #1", 10.0),
            failed,
            run("event-throughput #3", 20.0),
        ];
        let lines = medians(&results);
        assert!(
            lines[0].starts_with("event-throughput: 2 runs, median 15 events/s"),
            "{lines:?}"
        );
    }
}
