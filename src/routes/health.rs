//! Operations endpoints: `/healthz` (alive; touches nothing upstream, so a Genesys outage never
//! restarts the pod), `/readyz` (configuration loaded, a token obtainable, the CRM adapter
//! ready, the queue open) and `/metrics` (Prometheus text).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::app::AppState;

/// Liveness: the process answers. Calls nothing upstream.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Readiness: configuration loaded, a Genesys token obtainable, the CRM adapter ready, the queue
/// open. Each check is reported.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready; the body says which check failed")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Bounded: a probe that hangs is as bad as one that fails.
    let limit = Duration::from_secs(3);
    let token = match tokio::time::timeout(limit, state.pipeline.genesys().check_token()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let crm = match tokio::time::timeout(limit, state.pipeline.crm().ready()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => format!("error: {e}"),
        Err(_) => "error: timed out".to_owned(),
    };
    let queue = if state.queue.is_closed() {
        "error: shutting down".to_owned()
    } else {
        match tokio::time::timeout(limit, state.queue.store().ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "error: timed out".to_owned(),
        }
    };
    let ready = [&token, &crm, &queue].iter().all(|s| *s == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
            "checks": {
                "config": "ok",
                "genesys_token": token,
                "crm": crm,
                "crm_adapter": state.pipeline.crm().adapter_name(),
                "queue": queue,
                "queue_backend": state.queue.store().backend(),
                "queue_depth": state.queue.depth(),
            }
        })),
    )
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
