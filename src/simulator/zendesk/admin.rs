//! The Zendesk simulator's `/sim/...` admin API: insert records, switch settings, script faults,
//! expire tokens, read the stats. Not part of the vendor's API, so no auth, faults or accounting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::answers::zendesk_error;
use super::search::PhoneExactMode;
use super::state::Shared;
use super::Fault;
use crate::simulator::lock;

pub(super) async fn admin_insert_user(
    State(sim): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return zendesk_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the body must be a JSON user",
        );
    };
    let user = match value {
        Value::Object(mut o) if o.contains_key("user") => o.remove("user").unwrap_or(Value::Null),
        other => other,
    };
    let indexed = params.get("indexed").is_some_and(|v| v == "true");
    match sim.insert_user(user, indexed).and_then(|id| sim.user(id)) {
        Some(user) => (StatusCode::CREATED, Json(json!({"user": user}))).into_response(),
        None => zendesk_error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "a user is a JSON object whose id, if given, is a positive integer",
        ),
    }
}

pub(super) async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "requests": sim.traffic.total(),
        "byOperation": sim.traffic.by_op(),
        "stats": *lock(&sim.stats),
        "queries": lock(&sim.queries).clone(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigPatch {
    api_token_access: Option<bool>,
    oauth_access: Option<bool>,
    rate_limit_per_minute: Option<u32>,
    search_rate_limit_per_minute: Option<u32>,
    phone_exact: Option<PhoneExactMode>,
    index_lag_ms: Option<u64>,
    latency_ms: Option<u64>,
    down: Option<bool>,
}

pub(super) async fn admin_patch_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(error) => return zendesk_error(StatusCode::BAD_REQUEST, "invalid", &error.to_string()),
    };
    let mut s = lock(&sim.settings);
    if let Some(v) = patch.api_token_access {
        s.api_token_access = v;
    }
    if let Some(v) = patch.oauth_access {
        s.oauth_access = v;
    }
    if let Some(v) = patch.rate_limit_per_minute {
        s.rate_limit_per_minute = v;
    }
    if let Some(v) = patch.search_rate_limit_per_minute {
        s.search_rate_limit_per_minute = v;
    }
    if let Some(v) = patch.phone_exact {
        s.phone_exact = v;
    }
    if let Some(ms) = patch.index_lag_ms {
        s.index_lag = Duration::from_millis(ms);
    }
    if let Some(ms) = patch.latency_ms {
        s.latency = Duration::from_millis(ms);
    }
    if let Some(v) = patch.down {
        s.down = v;
    }
    Json(json!({
        "apiTokenAccess": s.api_token_access, "oauthAccess": s.oauth_access,
        "rateLimitPerMinute": s.rate_limit_per_minute,
        "searchRateLimitPerMinute": s.search_rate_limit_per_minute,
        "phoneExact": s.phone_exact, "down": s.down,
        "indexLagMs": u64::try_from(s.index_lag.as_millis()).unwrap_or(u64::MAX),
        "latencyMs": u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX),
        "pendingFaults": s.faults.len(),
    }))
    .into_response()
}

pub(super) async fn admin_push_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            lock(&sim.settings).faults.push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => zendesk_error(StatusCode::BAD_REQUEST, "invalid", &error.to_string()),
    }
}

pub(super) async fn admin_expire_tokens(State(sim): State<Arc<Shared>>) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}
