//! Operations endpoints: `/healthz` (alive; touches nothing upstream, so a Genesys outage never
//! restarts the pod), `/readyz` (configuration loaded, a token obtainable, the CRM sources
//! ready, the queue open, Genesys's address ranges read when a group follows them) and
//! `/metrics` (Prometheus text).
//!
//! CRM sources and readiness: a source whose circuit is open, or whose adapter is not ready
//! while another source is, makes attrsync `degraded` (200): it still answers (from the other
//! sources, or `circuit_open` quickly), and taking every replica out of the load balancer over
//! one CRM's outage would turn a partial outage into a full one. Only when no source is ready is
//! it `not_ready` (503). Genesys's ranges not yet read (for a group that follows them) is
//! `not_ready` too: that group refuses its callers until then.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::error::Refused;
use super::state::AppState;

/// A probe that hangs is as bad as one that fails.
const CHECK_LIMIT: Duration = Duration::from_secs(3);

/// `/healthz` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `/readyz` answer: each check is "ok" or "error: ..." saying what failed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// "ready", "degraded" (a CRM source is down or its circuit open: still serving, 200) or
    /// "not_ready" (503).
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Checks,
}

/// One CRM source's readiness.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceCheck {
    /// The source (its adapter: `file`, `http`, ...).
    #[schema(example = "http")]
    pub name: &'static str,
    /// The adapter's own check: "ok" or "error: ...".
    pub adapter: String,
    /// "closed", "open" or "half_open".
    #[schema(example = "closed")]
    pub circuit: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub config: &'static str,
    /// "ok" when at least one token pool slot has a token.
    pub genesys_token: String,
    /// Each slot of the token pool by number ("0", "1", ...): "ok" or "error: ...".
    pub genesys_tokens: std::collections::BTreeMap<String, String>,
    /// "ok" (every source ready, every circuit closed), "degraded: ..." or "error: ...".
    pub crm: String,
    /// The CRM sources in chain order.
    pub crm_sources: Vec<SourceCheck>,
    pub queue: String,
    /// `sqlite` or `postgres`.
    pub queue_backend: &'static str,
    /// Events queued or running, as last counted.
    pub queue_depth: u64,
    /// Genesys's published address ranges, for groups with `allow_genesys_ranges`: "off" when no
    /// group follows them, "ok: N ranges, read at T" (plus the last refresh's error, if it
    /// failed: the last good list stays in use), or "error: ..." until a first list is read.
    pub genesys_ip_ranges: String,
}

/// The ranges' check and whether it lets the instance be ready.
fn ranges_check(state: &AppState) -> (String, bool) {
    let Some(ranges) = &state.ranges else {
        return ("off".to_owned(), true);
    };
    let status = ranges.status();
    match (status.ranges, status.loaded_at) {
        (Some(count), Some(at)) => {
            let mut text = format!("ok: {count} ranges, read at {}", at.to_rfc3339());
            if let Some(error) = status.last_error {
                text.push_str(&format!("; the last refresh failed: {error}"));
            }
            (text, true)
        }
        _ => (
            format!(
                "error: not read yet, so groups that follow them refuse everyone not in their allow_from ({})",
                status.last_error.as_deref().unwrap_or("first read in progress")
            ),
            false,
        ),
    }
}

/// Liveness: the process answers. Calls nothing upstream.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// "ok", or "error: ..." with what failed or that it timed out.
async fn check<E: Display>(probe: impl Future<Output = Result<(), E>>) -> String {
    match tokio::time::timeout(CHECK_LIMIT, probe).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_owned(),
    }
}

/// The CRM sources' checks, and the `crm` summary: "ok", "degraded: ..." (some source down or
/// its circuit open) or "error: ..." (no source ready).
async fn crm_checks(state: &AppState) -> (String, Vec<SourceCheck>) {
    let Ok(readiness) = tokio::time::timeout(CHECK_LIMIT, state.crm.readiness()).await else {
        return ("error: timed out".to_owned(), Vec::new());
    };
    let checks: Vec<SourceCheck> = readiness
        .into_iter()
        .map(|r| SourceCheck {
            name: r.source,
            adapter: match r.ready {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            circuit: r.circuit.as_str(),
        })
        .collect();
    let troubled: Vec<String> = checks
        .iter()
        .filter_map(|c| {
            if c.adapter != "ok" {
                Some(format!("{} {}", c.name, c.adapter))
            } else if c.circuit == "open" {
                Some(format!("{} circuit open", c.name))
            } else {
                None
            }
        })
        .collect();
    let summary = if troubled.is_empty() {
        "ok".to_owned()
    } else if checks.iter().all(|c| c.adapter != "ok") {
        format!("error: {}", troubled.join("; "))
    } else {
        format!("degraded: {}", troubled.join("; "))
    };
    (summary, checks)
}

/// Readiness: configuration loaded, a Genesys token obtainable, the CRM sources ready, the
/// queue open, Genesys's ranges read when a group follows them. Each check is reported.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready, or degraded (a CRM source down or its circuit open)", body = Readiness),
    (status = 503, description = "Not ready; the body says which check failed", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let slots = match tokio::time::timeout(CHECK_LIMIT, state.genesys.check_slots()).await {
        Ok(slots) => slots
            .into_iter()
            .map(|r| match r {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("error: {e}"),
            })
            .collect(),
        Err(_) => vec!["error: timed out".to_owned()],
    };
    let token = if slots.iter().any(|s| s == "ok") {
        "ok".to_owned()
    } else {
        slots
            .first()
            .cloned()
            .unwrap_or_else(|| "error: no token slot".to_owned())
    };
    let genesys_tokens = slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| (i.to_string(), s))
        .collect();
    let (crm, crm_sources) = crm_checks(&state).await;
    let queue = if state.queue.is_closed() {
        "error: shutting down".to_owned()
    } else {
        check(state.queue.ping()).await
    };
    let (genesys_ip_ranges, ranges_ready) = ranges_check(&state);
    let ready = token == "ok" && queue == "ok" && !crm.starts_with("error") && ranges_ready;
    let (code, status) = match (ready, crm == "ok") {
        (true, true) => (StatusCode::OK, "ready"),
        (true, false) => (StatusCode::OK, "degraded"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
    };
    let body = Readiness {
        status,
        checks: Checks {
            config: "ok",
            genesys_token: token,
            genesys_tokens,
            crm,
            crm_sources,
            queue,
            queue_backend: state.queue.backend(),
            queue_depth: state.queue.depth(),
            genesys_ip_ranges,
        },
    };
    (code, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses(
    (status = 200, description = "Prometheus text", content_type = "text/plain"), Refused))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
