//! attrsync as a separate child process: spawned with an environment of its own, probed for
//! readiness, measured through /proc, scraped through /metrics, and stopped with SIGTERM (then
//! SIGKILL on timeout).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Binds 127.0.0.1:0 and gives the port back (the listener is dropped at once).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// What to run: `wrap` (e.g. valgrind and its options) is put in front of the binary.
pub struct ChildSpec<'a> {
    pub binary: &'a Path,
    pub wrap: &'a [String],
    pub env: Vec<(String, String)>,
    pub cwd: &'a Path,
    pub log: PathBuf,
}

pub struct AttrsyncChild {
    child: tokio::process::Child,
    pid: u32,
    pub base: String,
    pub log: PathBuf,
}

/// Resident memory of the child, from /proc/<pid>/status.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kb: u64,
    /// VmHWM: the peak resident set so far.
    pub hwm_kb: u64,
}

impl AttrsyncChild {
    pub fn spawn(spec: ChildSpec<'_>, port: u16) -> anyhow::Result<Self> {
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let log = std::fs::File::create(&spec.log)
            .with_context(|| format!("creating {}", spec.log.display()))?;
        let log_err = log.try_clone()?;
        let mut command = match spec.wrap.split_first() {
            Some((program, args)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(args).arg(spec.binary);
                c
            }
            None => tokio::process::Command::new(spec.binary),
        };
        command.arg("serve").current_dir(spec.cwd);
        // Nothing from the bench's own environment may configure the child.
        for (name, _) in std::env::vars_os()
            .filter_map(|(k, v)| k.into_string().ok().map(|k| (k, v)))
            .filter(|(k, _)| {
                k.starts_with("ATTRSYNC_")
                    || k.starts_with("GENESYS_")
                    || k.starts_with("SIM_")
                    || k == "RUST_LOG"
            })
        {
            command.env_remove(name);
        }
        command
            .envs(spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("the child exited at once"))?;
        Ok(Self {
            child,
            pid,
            base: format!("http://127.0.0.1:{port}"),
            log: spec.log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Polls /readyz until it answers 200; fails if the child exits or `limit` passes.
    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let url = format!("{}/readyz", self.base);
        let mut last = String::from("no answer");
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "attrsync exited before it was ready ({status}); see {}",
                    self.log.display()
                );
            }
            match http.get(&url).timeout(Duration::from_secs(5)).send().await {
                Ok(r) if r.status().is_success() => return Ok(started.elapsed()),
                Ok(r) => {
                    let status = r.status();
                    last = format!("{status}: {}", r.text().await.unwrap_or_default());
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!(
            "attrsync not ready after {limit:?} (last: {last}); see {}",
            self.log.display()
        )
    }

    pub fn memory(&self) -> Option<Memory> {
        read_memory(self.pid)
    }

    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<Prom> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Prom::parse(&text))
    }

    /// SIGTERM, wait up to `limit`, then SIGKILL. Returns how it ended.
    pub async fn stop(mut self, limit: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let term = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = term {
            eprintln!("bench: could not send SIGTERM to {}: {e}", self.pid);
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => format!("stopped on SIGTERM ({status})"),
            Ok(Err(e)) => format!("wait failed: {e}"),
            Err(_) => {
                let _ = self.child.kill().await;
                format!("killed after {limit:?} without exiting on SIGTERM")
            }
        }
    }
}

pub fn read_memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

type Labels = Vec<(String, String)>;

/// CPU time (user + system) a process has used, in seconds, from /proc/<pid>/stat
/// (`self` for this process). Assumes the usual 100 clock ticks per second.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it are plain numbers.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, i.e. 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// A Prometheus text scrape: (name, labels, value).
pub struct Prom {
    samples: Vec<(String, Labels, f64)>,
}

impl Prom {
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            samples.push((name.to_owned(), labels, value));
        }
        Self { samples }
    }

    /// Sum of `name` over the series whose labels include every pair of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Values of `label` across the series of `name`, with their summed value.
    pub fn by_label(&self, name: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
        let mut out = std::collections::BTreeMap::new();
        for (n, labels, v) in &self.samples {
            if n != name {
                continue;
            }
            if let Some((_, lv)) = labels.iter().find(|(k, _)| k == label) {
                *out.entry(lv.clone()).or_insert(0.0) += v;
            }
        }
        out
    }
}

fn parse_labels(text: &str) -> Labels {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end.min(after.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_of_this_process_is_readable() {
        assert!(cpu_secs("self").is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn prometheus_text_is_parsed() {
        let prom = Prom::parse(
            "# HELP x y\nattrsync_events_total{source=\"genesys\",outcome=\"patched\"} 12\n\
             attrsync_events_total{source=\"genesys\",outcome=\"failed\"} 3\nplain 1.5\n",
        );
        assert_eq!(
            prom.sum("attrsync_events_total", &[("source", "genesys")]),
            15.0
        );
        assert_eq!(
            prom.sum("attrsync_events_total", &[("outcome", "failed")]),
            3.0
        );
        assert_eq!(prom.sum("plain", &[]), 1.5);
        assert_eq!(prom.by_label("attrsync_events_total", "outcome").len(), 2);
    }
}
