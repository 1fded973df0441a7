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
pub const LOAD_SHED: &str = "attrsync_requests_shed_total";

/// Every metric name with its help text, for `describe_*` and the README.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        HTTP_REQUESTS,
        "HTTP requests served, by method, route and status",
    ),
    (
        HTTP_DURATION,
        "HTTP request latency in seconds, by method and route",
    ),
    (
        EVENTS,
        "Events by source (genesys, cti, lookup) and outcome",
    ),
    (
        PIPELINE_DURATION,
        "Time from acceptance to the end of processing, by source, in seconds",
    ),
    (
        UPSTREAM_REQUESTS,
        "Calls to Genesys and the CRM, by upstream, operation and status class",
    ),
    (
        UPSTREAM_DURATION,
        "Upstream call latency in seconds, by upstream and operation",
    ),
    (UPSTREAM_RATE_LIMITED, "429 answers received, by upstream"),
    (
        UPSTREAM_RETRIES,
        "Upstream calls retried after a transient failure, by upstream and operation",
    ),
    (CACHE_LOOKUPS, "CRM cache lookups by result (hit, miss)"),
    (TOKEN_FETCHES, "Genesys OAuth token requests, by outcome"),
    (QUEUE_DEPTH, "Events accepted and waiting for a worker"),
    (
        LOOKUP_RESULTS,
        "/v1/lookup answers by result (found, not_found, timeout, crm_error, no_key)",
    ),
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once; later calls (several apps in one test process) reuse it.
/// The recorder leaves upkeep to its user: without it histogram samples pile up between
/// scrapes, so one thread (not a task: it must outlive any one runtime) runs it every 5 s.
pub fn handle() -> PrometheusHandle {
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
                    for (name, help) in CATALOGUE {
                        if matches!(
                            *name,
                            QUEUE_DEPTH | QUEUE_OLDEST_AGE | DEAD_LETTERS | BREAKER_STATE
                        ) {
                            metrics::describe_gauge!(*name, *help);
                        } else if name.ends_with("_seconds") {
                            metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help);
                        } else {
                            metrics::describe_counter!(*name, *help);
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

/// Records one upstream call attempt.
pub fn upstream_call(
    upstream: &'static str,
    op: &'static str,
    status: Option<u16>,
    elapsed: Duration,
) {
    metrics::counter!(UPSTREAM_REQUESTS, "upstream" => upstream, "operation" => op, "status_class" => status_class(status))
        .increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "upstream" => upstream, "operation" => op)
        .record(elapsed.as_secs_f64());
    if status == Some(429) {
        metrics::counter!(UPSTREAM_RATE_LIMITED, "upstream" => upstream).increment(1);
    }
}

pub fn upstream_retry(upstream: &'static str, op: &'static str) {
    metrics::counter!(UPSTREAM_RETRIES, "upstream" => upstream, "operation" => op).increment(1);
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
