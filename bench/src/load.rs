//! Load generation: closed-loop event and lookup senders, the open-loop lookup schedule, and
//! the HdrHistogram helpers. Every loop is bounded by a count and a deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::upstream::now_ns;

/// Distinct caller k (k < 8,000,000) as an E.164 US number: +1 317 EEE LLLL.
pub fn phone(k: u64) -> String {
    format!("+1317{:03}{:04}", 200 + (k / 10_000) % 800, k % 10_000)
}

/// Nanosecond histogram, 1 ns .. 1 h, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail (and is not on a network path).
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    if let Err(e) = into.add(from) {
        eprintln!("bench: histogram merge failed: {e}");
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(Self {
            count: h.len(),
            mean_ms: h.mean() / 1e6,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        })
    }
}

/// HTTP outcomes by status (0 = transport error).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub by_status: BTreeMap<u16, u64>,
}

impl Tally {
    fn add(&mut self, status: u16) {
        *self.by_status.entry(status).or_insert(0) += 1;
    }
    fn merge(&mut self, other: &Tally) {
        for (s, n) in &other.by_status {
            *self.by_status.entry(*s).or_insert(0) += n;
        }
    }
    pub fn count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
    pub fn json(&self) -> serde_json::Value {
        self.by_status
            .iter()
            .map(|(s, n)| {
                let key = if *s == 0 {
                    "transport_error".to_owned()
                } else {
                    s.to_string()
                };
                (key, serde_json::Value::from(*n))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    }
}

/// A bench HTTP client: loopback only, no proxy, enough idle connections for the senders.
pub fn client(concurrency: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency.max(8) * 2)
        .timeout(Duration::from_secs(60))
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// Events, closed loop

pub struct EventRequests {
    pub url: String,
    pub header: reqwest::header::HeaderName,
    pub key: HeaderValue,
    pub bodies: Arc<Vec<Bytes>>,
}

pub struct EventReport {
    /// Per event: when its first attempt started (ns, 0 = never sent).
    pub sent_at: Vec<u64>,
    /// Per event: answered 202.
    pub acked: Vec<bool>,
    /// Latency of the answer (the attempt that got 202).
    pub http: Histogram<u64>,
    pub tally: Tally,
    /// 503 answers that were retried (queue full or load shed).
    pub retried_503: u64,
    pub first_send_ns: u64,
    pub last_ack_ns: u64,
}

/// Sends every body once (503 is retried after a short pause) with `concurrency` senders.
pub async fn send_events(
    http: &reqwest::Client,
    req: &EventRequests,
    concurrency: usize,
    deadline: Instant,
) -> EventReport {
    let n = req.bodies.len();
    let next = Arc::new(AtomicUsize::new(0));
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let http = http.clone();
        let url = req.url.clone();
        let header = req.header.clone();
        let key = req.key.clone();
        let bodies = req.bodies.clone();
        let next = next.clone();
        let sent_at = sent_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut tally = Tally::default();
            let mut acked = Vec::new();
            let mut retried = 0u64;
            let mut last_ack = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= bodies.len() || Instant::now() >= deadline {
                    break;
                }
                let first = now_ns();
                if let Some(slot) = sent_at.get(i) {
                    slot.store(first, Ordering::Relaxed);
                }
                // Bounded: at most 200 attempts, and the deadline.
                for _attempt in 0..200 {
                    let started = now_ns();
                    let result = http
                        .post(&url)
                        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                        .header(header.clone(), key.clone())
                        .body(bodies[i].clone())
                        .send()
                        .await;
                    let status = match result {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            // Read the body so the connection is reused.
                            let _ = response.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    let done = now_ns();
                    tally.add(status);
                    if status == 202 {
                        hist.saturating_record(done.saturating_sub(started).max(1));
                        acked.push(i);
                        last_ack = last_ack.max(done);
                        break;
                    }
                    if (status == 503 || status == 0) && Instant::now() < deadline {
                        retried += u64::from(status == 503);
                        tokio::time::sleep(Duration::from_millis(if status == 0 {
                            50
                        } else {
                            10
                        }))
                        .await;
                        continue;
                    }
                    break;
                }
            }
            (hist, tally, acked, retried, last_ack)
        }));
    }
    let mut report = EventReport {
        sent_at: Vec::new(),
        acked: vec![false; n],
        http: histogram(),
        tally: Tally::default(),
        retried_503: 0,
        first_send_ns: 0,
        last_ack_ns: 0,
    };
    for task in tasks {
        match task.await {
            Ok((hist, tally, acked, retried, last_ack)) => {
                merge(&mut report.http, &hist);
                report.tally.merge(&tally);
                for i in acked {
                    report.acked[i] = true;
                }
                report.retried_503 += retried;
                report.last_ack_ns = report.last_ack_ns.max(last_ack);
            }
            Err(e) => eprintln!("bench: a sender failed: {e}"),
        }
    }
    report.sent_at = sent_at.iter().map(|a| a.load(Ordering::Relaxed)).collect();
    report.first_send_ns = report
        .sent_at
        .iter()
        .copied()
        .filter(|&t| t > 0)
        .min()
        .unwrap_or(0);
    report
}

// ---------------------------------------------------------------------------------------------
// Lookups

/// `Authorization: Basic` for the lookup endpoint.
pub fn basic_auth(username: &str, password: &str) -> anyhow::Result<HeaderValue> {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    Ok(HeaderValue::from_str(&format!("Basic {encoded}"))?)
}

pub fn lookup_body(phone: &str) -> Bytes {
    Bytes::from(format!("{{\"ani\":\"tel:{phone}\"}}"))
}

/// One lookup; returns (status, found) with status 0 for a transport error.
pub async fn lookup_once(
    http: &reqwest::Client,
    url: &str,
    auth: &HeaderValue,
    phone: &str,
) -> (u16, bool) {
    let result = http
        .post(url)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(AUTHORIZATION, auth.clone())
        .body(lookup_body(phone))
        .send()
        .await;
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            let found = contains(&body, b"\"found\":\"true\"");
            (status, found)
        }
        Err(_) => (0, false),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub struct LookupReport {
    pub http: Histogram<u64>,
    pub tally: Tally,
    pub found: u64,
    pub elapsed: Duration,
}

/// `count` lookups of callers `first..first+count` with `concurrency` senders; `done` counts
/// the finished ones (for progress sampling).
#[allow(clippy::too_many_arguments)]
pub async fn lookups_closed(
    http: &reqwest::Client,
    url: &str,
    auth: &HeaderValue,
    first: u64,
    count: u64,
    concurrency: usize,
    deadline: Instant,
    done: Arc<AtomicU64>,
) -> LookupReport {
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let http = http.clone();
        let url = url.to_owned();
        let auth = auth.clone();
        let next = next.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut tally = Tally::default();
            let mut found = 0u64;
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= count || Instant::now() >= deadline {
                    break;
                }
                let phone = phone(first + k);
                let t0 = now_ns();
                let (status, hit) = lookup_once(&http, &url, &auth, &phone).await;
                hist.saturating_record(now_ns().saturating_sub(t0).max(1));
                tally.add(status);
                found += u64::from(hit);
                done.fetch_add(1, Ordering::Relaxed);
            }
            (hist, tally, found)
        }));
    }
    let mut report = LookupReport {
        http: histogram(),
        tally: Tally::default(),
        found: 0,
        elapsed: Duration::ZERO,
    };
    for task in tasks {
        match task.await {
            Ok((hist, tally, found)) => {
                merge(&mut report.http, &hist);
                report.tally.merge(&tally);
                report.found += found;
            }
            Err(e) => eprintln!("bench: a sender failed: {e}"),
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// One open-loop request: when it was due, sent, answered.
#[derive(Debug, Clone)]
pub struct Sample {
    pub caller: u64,
    pub due_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
    pub status: u16,
    pub found: bool,
}

pub struct OpenLoopReport {
    pub samples: Vec<Sample>,
    /// Requests not sent because too many were in flight.
    pub skipped: u64,
    pub elapsed: Duration,
}

/// Lookups of `callers` at a fixed rate, whatever the answers' latency (open loop).
pub async fn lookups_open(
    http: &reqwest::Client,
    url: &str,
    auth: &HeaderValue,
    callers: &[u64],
    rate_per_sec: f64,
    max_in_flight: usize,
) -> OpenLoopReport {
    let http = http.clone();
    let url: Arc<str> = Arc::from(url);
    let auth = auth.clone();
    open_loop(callers, rate_per_sec, max_in_flight, move |caller| {
        let http = http.clone();
        let url = url.clone();
        let auth = auth.clone();
        async move {
            let phone = phone(caller);
            lookup_once(&http, &url, &auth, &phone).await
        }
    })
    .await
}

/// The CRM asked directly, the way attrsync's http adapter asks it: the control for what one
/// loopback HTTP exchange costs when measured the same way.
pub async fn crm_direct_open(
    http: &reqwest::Client,
    crm_url: &str,
    callers: &[u64],
    rate_per_sec: f64,
) -> OpenLoopReport {
    let http = http.clone();
    let base: Arc<str> = Arc::from(format!("{crm_url}/api/customers"));
    open_loop(callers, rate_per_sec, 5_000, move |caller| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let phone = phone(caller);
            match http.get(&*base).query(&[("phone", phone)]).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let _ = response.bytes().await;
                    (status, true)
                }
                Err(_) => (0, false),
            }
        }
    })
    .await
}

/// Requests for `callers` at a fixed rate, whatever their latency (open loop): request k is due
/// at start + k / rate. At most `max_in_flight` at once; beyond that a request is skipped and
/// counted. `request(caller)` returns (status, found).
pub async fn open_loop<F, Fut>(
    callers: &[u64],
    rate_per_sec: f64,
    max_in_flight: usize,
    request: F,
) -> OpenLoopReport
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = (u16, bool)> + Send + 'static,
{
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate_per_sec.max(1.0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
    let mut skipped = 0u64;
    for (k, &caller) in callers.iter().enumerate() {
        let due = started + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        let due_ns = now_ns().saturating_sub(
            u64::try_from(Instant::now().saturating_duration_since(due).as_nanos()).unwrap_or(0),
        );
        if in_flight.load(Ordering::Acquire) >= max_in_flight {
            skipped += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::AcqRel);
        let tx = tx.clone();
        let in_flight = in_flight.clone();
        let call = request(caller);
        tokio::spawn(async move {
            let sent_ns = now_ns();
            let (status, found) = call.await;
            let done_ns = now_ns();
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(Sample {
                caller,
                due_ns,
                sent_ns,
                done_ns,
                status,
                found,
            });
        });
    }
    drop(tx);
    let mut samples = Vec::with_capacity(callers.len());
    // Bounded: every request has the client's 60 s timeout; give up 90 s after the last.
    let give_up = Instant::now() + Duration::from_secs(90);
    while samples.len() + (skipped as usize) < callers.len() {
        match tokio::time::timeout_at(give_up.into(), rx.recv()).await {
            Ok(Some(sample)) => samples.push(sample),
            Ok(None) | Err(_) => break,
        }
    }
    OpenLoopReport {
        samples,
        skipped,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn phones_are_distinct_and_e164() {
        let set: HashSet<String> = (0..100_000).map(phone).collect();
        assert_eq!(set.len(), 100_000);
        assert_eq!(phone(0), "+13172000000");
        assert_eq!(phone(12_345), "+13172012345");
        assert_eq!(phone(0).len(), 12);
    }
}
