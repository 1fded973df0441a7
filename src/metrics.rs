//! Prometheus metrics: the one process-wide recorder, the metric names, small recording helpers
//! and the HTTP middleware. Labels are closed sets (source, outcome, upstream, operation, status
//! class, route); ids never become labels.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "attrsync_http_requests_total";
pub const HTTP_DURATION: &str = "attrsync_http_request_duration_seconds";
pub const EVENTS: &str = "attrsync_events_total";
pub const PIPELINE_DURATION: &str = "attrsync_pipeline_duration_seconds";
pub const UPSTREAM_REQUESTS: &str = "attrsync_upstream_requests_total";
pub const UPSTREAM_DURATION: &str = "attrsync_upstream_request_duration_seconds";
pub const UPSTREAM_RATE_LIMITED: &str = "attrsync_upstream_rate_limited_total";
pub const UPSTREAM_RETRIES: &str = "attrsync_upstream_retries_total";
pub const CACHE_LOOKUPS: &str = "attrsync_crm_cache_lookups_total";
pub const TOKEN_FETCHES: &str = "attrsync_genesys_token_fetches_total";
pub const GENESYS_SLOT_REQUESTS: &str = "attrsync_genesys_slot_requests_total";
pub const GENESYS_SLOT_PARKED: &str = "attrsync_genesys_slot_parked_total";
pub const GENESYS_SLOT_REMAINING: &str = "attrsync_genesys_slot_budget_remaining";
pub const QUEUE_DEPTH: &str = "attrsync_queue_depth";
pub const LOOKUP_RESULTS: &str = "attrsync_lookup_results_total";
pub const AUTH_FAILURES: &str = "attrsync_auth_failures_total";
pub const DEDUP_HITS: &str = "attrsync_dedup_hits_total";
pub const QUEUE_OLDEST_AGE: &str = "attrsync_queue_oldest_job_age_seconds";
pub const DEAD_LETTERS: &str = "attrsync_dead_letters";
pub const DEAD_LETTERED: &str = "attrsync_dead_lettered_total";
pub const QUEUE_RETRIES: &str = "attrsync_queue_retries_total";
pub const LIMITER_WAITS: &str = "attrsync_rate_limiter_waits_total";
pub const LIMITER_WAIT_SECONDS: &str = "attrsync_rate_limiter_wait_seconds";
pub const BREAKER_STATE: &str = "attrsync_crm_circuit_state";
pub const CANDIDATES_DROPPED: &str = "attrsync_crm_candidates_dropped_total";
pub const CRM_TOKEN_FETCHES: &str = "attrsync_crm_token_fetches_total";
pub const CRM_API_USAGE: &str = "attrsync_crm_api_usage_ratio";
pub const SHARED_CACHE_LOOKUPS: &str = "attrsync_crm_shared_cache_lookups_total";
pub const SHARED_BUDGET_REFUSALS: &str = "attrsync_crm_shared_budget_refusals_total";
pub const LOAD_SHED: &str = "attrsync_requests_shed_total";
pub const HTTP_REFUSALS: &str = "attrsync_http_refusals_total";
pub const TLS_RELOADS: &str = "attrsync_tls_reloads_total";
pub const IP_RANGE_REFRESHES: &str = "attrsync_genesys_ip_range_refreshes_total";
pub const IP_RANGES: &str = "attrsync_genesys_ip_ranges";
pub const ATTRIBUTES_DROPPED: &str = "attrsync_attributes_dropped_total";
pub const CRM_RATE_REMAINING: &str = "attrsync_crm_rate_limit_remaining";
pub const JOURNAL_ENTRIES: &str = "attrsync_journal_entries_total";

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric attrsync emits: name, kind, HELP text and label names.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub labels: &'static [&'static str],
}

const fn metric(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    labels: &'static [&'static str],
) -> Metric {
    Metric {
        name,
        kind,
        help,
        labels,
    }
}

/// Every metric attrsync emits (a test holds the call sites to it), for `describe_*` and the
/// README.
pub const CATALOGUE: &[Metric] = &[
    metric(
        HTTP_REQUESTS,
        Kind::Counter,
        "HTTP requests served, by method, route and status",
        &["method", "path", "status"],
    ),
    metric(
        HTTP_DURATION,
        Kind::Histogram,
        "HTTP request latency in seconds, by method and route",
        &["method", "path"],
    ),
    metric(
        EVENTS,
        Kind::Counter,
        "Events by source and outcome",
        &["source", "outcome"],
    ),
    metric(
        PIPELINE_DURATION,
        Kind::Histogram,
        "Time from acceptance to the end of processing, by source, in seconds",
        &["source"],
    ),
    metric(
        UPSTREAM_REQUESTS,
        Kind::Counter,
        "Calls to Genesys and the CRM, by upstream, source (the CRM source; genesys for Genesys), operation and status class",
        &["upstream", "source", "operation", "status_class"],
    ),
    metric(
        UPSTREAM_DURATION,
        Kind::Histogram,
        "Upstream call latency in seconds, by upstream, source and operation",
        &["upstream", "source", "operation"],
    ),
    metric(
        UPSTREAM_RATE_LIMITED,
        Kind::Counter,
        "429 answers received, by upstream and source",
        &["upstream", "source"],
    ),
    metric(
        UPSTREAM_RETRIES,
        Kind::Counter,
        "Upstream calls retried after a transient failure, by upstream, source and operation",
        &["upstream", "source", "operation"],
    ),
    metric(
        CACHE_LOOKUPS,
        Kind::Counter,
        "CRM cache lookups by source and result (hit, miss)",
        &["source", "result"],
    ),
    metric(
        TOKEN_FETCHES,
        Kind::Counter,
        "Genesys OAuth token requests, by token pool slot and outcome (ok, rejected, error)",
        &["slot", "outcome"],
    ),
    metric(
        GENESYS_SLOT_REQUESTS,
        Kind::Counter,
        "Genesys API requests sent, by token pool slot (0..N-1, never the token)",
        &["slot"],
    ),
    metric(
        GENESYS_SLOT_PARKED,
        Kind::Counter,
        "429s that parked a token pool slot for their Retry-After, by slot",
        &["slot"],
    ),
    metric(
        GENESYS_SLOT_REMAINING,
        Kind::Gauge,
        "Requests a token pool slot may still send in the current minute, by slot",
        &["slot"],
    ),
    metric(
        QUEUE_DEPTH,
        Kind::Gauge,
        "Events accepted and waiting for a worker or running",
        &[],
    ),
    metric(
        LOOKUP_RESULTS,
        Kind::Counter,
        "/v1/lookup answers by result",
        &["result"],
    ),
    metric(
        AUTH_FAILURES,
        Kind::Counter,
        "Requests refused with 401, by endpoint group and reason",
        &["endpoint", "reason"],
    ),
    metric(
        HTTP_REFUSALS,
        Kind::Counter,
        "Requests refused with 403 (source address or client certificate), by endpoint group and reason",
        &["group", "reason"],
    ),
    metric(
        TLS_RELOADS,
        Kind::Counter,
        "Changed TLS certificate files, by result (ok: now served; error: refused, the old pair kept)",
        &["result"],
    ),
    metric(
        IP_RANGE_REFRESHES,
        Kind::Counter,
        "Reads of Genesys's published address ranges, by result (ok, error, empty)",
        &["result"],
    ),
    metric(
        IP_RANGES,
        Kind::Gauge,
        "Genesys data-action address ranges in use (0 until the first successful read)",
        &[],
    ),
    metric(
        LOAD_SHED,
        Kind::Counter,
        "Requests refused with 503 because server.max_concurrent_requests were in flight",
        &[],
    ),
    metric(
        DEDUP_HITS,
        Kind::Counter,
        "Duplicate events recognised (no CRM call, no PATCH), by source",
        &["source"],
    ),
    metric(
        QUEUE_OLDEST_AGE,
        Kind::Gauge,
        "Age of the oldest event waiting for a worker, in seconds",
        &[],
    ),
    metric(
        QUEUE_RETRIES,
        Kind::Counter,
        "Events scheduled for another attempt",
        &[],
    ),
    metric(
        DEAD_LETTERED,
        Kind::Counter,
        "Events that gave up and became dead letters",
        &[],
    ),
    metric(DEAD_LETTERS, Kind::Gauge, "Events in the dead letters", &[]),
    metric(
        LIMITER_WAITS,
        Kind::Counter,
        "Calls delayed by the client-side rate budget, by upstream and source",
        &["upstream", "source"],
    ),
    metric(
        LIMITER_WAIT_SECONDS,
        Kind::Histogram,
        "Time spent waiting for the client-side rate budget, by upstream and source, in seconds",
        &["upstream", "source"],
    ),
    metric(
        BREAKER_STATE,
        Kind::Gauge,
        "CRM circuit breaker per source: 0 closed, 1 open, 2 half-open",
        &["source"],
    ),
    metric(
        CRM_TOKEN_FETCHES,
        Kind::Counter,
        "CRM OAuth token requests, by source and outcome (ok, rejected, error)",
        &["source", "outcome"],
    ),
    metric(
        CRM_API_USAGE,
        Kind::Gauge,
        "Share of the CRM's daily API allocation used, as the CRM last reported it (Salesforce: Sforce-Limit-Info api-usage=N/M), by source",
        &["source"],
    ),
    metric(
        SHARED_CACHE_LOOKUPS,
        Kind::Counter,
        "Shared (PostgreSQL) CRM cache lookups by source and result (hit; waited: another replica's answer; miss: this replica asked the CRM; wait_timeout; unavailable: the database could not be reached)",
        &["source", "result"],
    ),
    metric(
        SHARED_BUDGET_REFUSALS,
        Kind::Counter,
        "CRM calls the shared budget did not let go, by source and reason (over_budget: no slot within max_retry_after_secs; unavailable: the database could not be reached)",
        &["source", "reason"],
    ),
    metric(
        CANDIDATES_DROPPED,
        Kind::Counter,
        "CRM records dropped before the match policy, by source and reason (not_matching: the record's fields do not match the key; below_minimum: graded below crm.min_match_quality)",
        &["source", "reason"],
    ),
    metric(
        ATTRIBUTES_DROPPED,
        Kind::Counter,
        "Attributes left out of a participant's write by the attribute budget (merge.max_attributes, merge.max_patch_bytes)",
        &[],
    ),
    metric(
        CRM_RATE_REMAINING,
        Kind::Gauge,
        "Requests a CRM vendor says are left in its rate-limit window, from its answers' headers, by source and window",
        &["source", "window"],
    ),
    metric(
        JOURNAL_ENTRIES,
        Kind::Counter,
        "Journal entries (one per run of an event) by result: written, dropped (the writer's backlog was full) or failed (the database refused the batch)",
        &["result"],
    ),
];

/// The values one label of one metric takes, when they are a closed set owned by an enum
/// (gathered by `app::label_values`, which knows every enum): listed in the HELP text and held
/// against the README by a test.
#[derive(Debug, Clone)]
pub struct LabelValues {
    pub metric: &'static str,
    pub label: &'static str,
    pub values: Vec<&'static str>,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once, describing every metric of [`CATALOGUE`] with `labels`'
/// values in its HELP text; later calls (several apps in one test process) reuse it.
/// The recorder leaves upkeep to its user: without it histogram samples pile up between
/// scrapes, so one thread (not a task: it must outlive any one runtime) runs it every 5 s.
pub fn install(labels: &[LabelValues]) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let latency_buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &latency_buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => {
                    for metric in CATALOGUE {
                        let help = help_text(metric, labels);
                        match metric.kind {
                            Kind::Gauge => metrics::describe_gauge!(metric.name, help),
                            Kind::Histogram => metrics::describe_histogram!(
                                metric.name,
                                metrics::Unit::Seconds,
                                help
                            ),
                            Kind::Counter => metrics::describe_counter!(metric.name, help),
                        }
                    }
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".to_owned())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            upkeep.run_upkeep();
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
                    }
                    handle
                }
                // Another recorder is installed (an embedding application): render an empty
                // registry rather than fail start-up.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The HELP text: the catalogue's, then each closed label set, e.g. `...; result: hit, miss`.
pub fn help_text(metric: &Metric, labels: &[LabelValues]) -> String {
    let mut text = metric.help.to_owned();
    for set in labels.iter().filter(|l| l.metric == metric.name) {
        text.push_str(&format!("; {}: {}", set.label, set.values.join(", ")));
    }
    text
}

/// "2xx", "4xx", ... or "error" when no response came back (timeout, connection failure).
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// Records one upstream call attempt to Genesys (`source` is the upstream's own name).
pub fn upstream_call(
    upstream: &'static str,
    op: &'static str,
    status: Option<u16>,
    elapsed: Duration,
) {
    call(upstream, upstream, op, status, elapsed);
}

/// Records one call attempt to the CRM source `source`.
pub fn crm_call(source: &'static str, op: &'static str, status: Option<u16>, elapsed: Duration) {
    call("crm", source, op, status, elapsed);
}

fn call(
    upstream: &'static str,
    source: &'static str,
    op: &'static str,
    status: Option<u16>,
    elapsed: Duration,
) {
    metrics::counter!(UPSTREAM_REQUESTS, "upstream" => upstream, "source" => source, "operation" => op, "status_class" => status_class(status))
        .increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "upstream" => upstream, "source" => source, "operation" => op)
        .record(elapsed.as_secs_f64());
    if status == Some(429) {
        metrics::counter!(UPSTREAM_RATE_LIMITED, "upstream" => upstream, "source" => source)
            .increment(1);
    }
}

pub fn upstream_retry(upstream: &'static str, op: &'static str) {
    metrics::counter!(UPSTREAM_RETRIES, "upstream" => upstream, "source" => upstream, "operation" => op)
        .increment(1);
}

pub fn crm_retry(source: &'static str, op: &'static str) {
    metrics::counter!(UPSTREAM_RETRIES, "upstream" => "crm", "source" => source, "operation" => op)
        .increment(1);
}

/// Middleware for `route_layer`: requests by route template, so unknown paths add no series.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.clone(), "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_name_defined_here_is_in_the_catalogue() {
        let source = include_str!("metrics.rs");
        let defined: Vec<&str> = source
            .lines()
            .filter_map(|l| l.strip_prefix("pub const "))
            .filter_map(|l| l.split_once("= \""))
            .filter_map(|(_, rest)| rest.strip_suffix("\";"))
            .collect();
        assert!(defined.len() >= 22, "found only {defined:?}");
        for name in defined {
            assert!(
                CATALOGUE.iter().any(|m| m.name == name),
                "{name} is not in CATALOGUE"
            );
        }
    }

    #[test]
    fn the_help_text_lists_the_closed_label_values() {
        let metric = CATALOGUE.iter().find(|m| m.name == EVENTS).unwrap();
        let labels = [LabelValues {
            metric: EVENTS,
            label: "source",
            values: vec!["genesys", "cti"],
        }];
        assert_eq!(
            help_text(metric, &labels),
            "Events by source and outcome; source: genesys, cti"
        );
    }
}
