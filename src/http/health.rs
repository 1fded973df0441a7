//! Operations endpoints: `/healthz` (alive; touches nothing upstream, so a Genesys outage never
//! restarts the pod), `/readyz` (configuration loaded, a token obtainable, the CRM adapter
//! ready, the queue open) and `/metrics` (Prometheus text).

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
    /// "ready" or "not_ready".
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: Checks,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Checks {
    pub config: &'static str,
    /// "ok" when at least one token pool slot has a token.
    pub genesys_token: String,
    /// Each slot of the token pool by number ("0", "1", ...): "ok" or "error: ...".
    pub genesys_tokens: std::collections::BTreeMap<String, String>,
    pub crm: String,
    /// The configured CRM adapter (`file`, `http`).
    pub crm_adapter: &'static str,
    pub queue: String,
    /// `sqlite` or `postgres`.
    pub queue_backend: &'static str,
    /// Events queued or running, as last counted.
    pub queue_depth: u64,
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

/// Readiness: configuration loaded, a Genesys token obtainable, the CRM adapter ready, the queue
/// open. Each check is reported.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready", body = Readiness),
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
    let crm = check(state.crm.ready()).await;
    let queue = if state.queue.is_closed() {
        "error: shutting down".to_owned()
    } else {
        check(state.queue.ping()).await
    };
    let ready = [&token, &crm, &queue].iter().all(|s| *s == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        checks: Checks {
            config: "ok",
            genesys_token: token,
            genesys_tokens,
            crm,
            crm_adapter: state.crm.adapter_name(),
            queue,
            queue_backend: state.queue.backend(),
            queue_depth: state.queue.depth(),
        },
    };
    (status, Json(body))
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
