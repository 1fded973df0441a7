//! The `/sim/...` admin API: insert records, switch behaviour, script faults, expire tokens, set
//! and reset rate-limit rules, read the stats. Not part of the instance, so no auth, faults or
//! accounting, and plain `{"error": ...}` errors.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{lock, Fault, Op, RateLimitRule, ServiceNowStats, Shared};

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/tables/{table}/records", post(admin_insert))
        .route("/stats", get(admin_stats))
        .route("/config", patch(admin_config))
        .route("/faults", post(admin_fault))
        .route("/tokens/expire", post(admin_expire_tokens))
        .route("/rate-limit-rules", put(admin_rules).get(admin_get_rules))
        .route("/rate-limits/reset", post(admin_reset_rate_limits))
}

fn admin_error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

async fn admin_insert(
    State(sim): State<Arc<Shared>>,
    Path(table): Path<String>,
    body: Bytes,
) -> Response {
    let record: Value = match serde_json::from_slice(&body) {
        Ok(record) => record,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    match sim.insert(&table, record) {
        Ok(sys_id) => (StatusCode::CREATED, Json(json!({"sys_id": sys_id}))).into_response(),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<ServiceNowStats> {
    Json(sim.stats())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigPatch {
    down: Option<bool>,
    latency_ms: Option<u64>,
    invalid_query_returns_no_rows: Option<bool>,
    case_sensitive_values: Option<bool>,
    basic_auth: Option<bool>,
    client_credentials: Option<bool>,
    require_accept: Option<bool>,
}

async fn admin_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    {
        let mut auth = lock(&sim.auth);
        if let Some(on) = patch.basic_auth {
            auth.basic_enabled = on;
        }
        if let Some(on) = patch.client_credentials {
            auth.client_credentials_enabled = on;
        }
    }
    let mut settings = lock(&sim.settings);
    if let Some(down) = patch.down {
        settings.down = down;
    }
    if let Some(ms) = patch.latency_ms {
        settings.latency = Duration::from_millis(ms);
    }
    if let Some(on) = patch.invalid_query_returns_no_rows {
        settings.invalid_query_returns_no_rows = on;
    }
    if let Some(on) = patch.case_sensitive_values {
        settings.case_sensitive_values = on;
    }
    if let Some(on) = patch.require_accept {
        settings.require_accept = on;
    }
    Json(json!({
        "down": settings.down,
        "latencyMs": u64::try_from(settings.latency.as_millis()).unwrap_or(u64::MAX),
        "invalidQueryReturnsNoRows": settings.invalid_query_returns_no_rows,
        "caseSensitiveValues": settings.case_sensitive_values,
        "requireAccept": settings.require_accept,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct PushFault {
    op: Op,
    fault: Fault,
}

async fn admin_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PushFault>(&body) {
        Ok(PushFault { op, fault }) => {
            lock(&sim.faults)[op as usize].push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_expire_tokens(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.auth).expire_tokens();
    StatusCode::NO_CONTENT
}

async fn admin_rules(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Vec<RateLimitRule>>(&body) {
        Ok(rules) => {
            lock(&sim.limiter).set_rules(rules);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_get_rules(State(sim): State<Arc<Shared>>) -> Json<Vec<RateLimitRule>> {
    Json(lock(&sim.limiter).rules().to_vec())
}

async fn admin_reset_rate_limits(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.limiter).reset();
    StatusCode::NO_CONTENT
}
