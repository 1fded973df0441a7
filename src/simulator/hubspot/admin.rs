//! The HubSpot simulator's `/sim/...` admin API: insert records, switch settings, script faults,
//! expire tokens, read the stats. Not part of the vendor's API, so no auth, faults or accounting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::filter::{self, PhoneFilterMode, UnknownProperty};
use super::state::{Shared, TokenState};
use super::{Fault, LimitScope};
use crate::simulator::lock;

fn admin_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct ContactInput {
    properties: Value,
    #[serde(default)]
    indexed: bool,
}

pub(super) async fn admin_insert_contact(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let input: ContactInput = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => return admin_error(e.to_string()),
    };
    let Value::Object(properties) = input.properties else {
        return admin_error("properties must be an object");
    };
    let id = sim.insert(properties, input.indexed);
    (StatusCode::CREATED, Json(json!({"id": id.to_string()}))).into_response()
}

pub(super) async fn admin_update_contact(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<u64>,
    body: Bytes,
) -> Response {
    let input: ContactInput = match serde_json::from_slice(&body) {
        Ok(input) => input,
        Err(e) => return admin_error(e.to_string()),
    };
    let Value::Object(properties) = input.properties else {
        return admin_error("properties must be an object");
    };
    if sim.update(id, properties, input.indexed) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such contact"})),
        )
            .into_response()
    }
}

pub(super) async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "requests": sim.traffic.total(),
        "byOperation": sim.traffic.by_op(),
        "stats": *lock(&sim.stats),
        "searchBodies": lock(&sim.bodies).clone(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigPatch {
    search_per_second: Option<u32>,
    search_scope: Option<LimitScope>,
    search_retry_after: Option<Option<u64>>,
    ten_secondly_limit: Option<u32>,
    phone_filter: Option<PhoneFilterMode>,
    unknown_property: Option<UnknownProperty>,
    filter_limits: Option<filter::FilterLimits>,
    index_lag_ms: Option<u64>,
    latency_ms: Option<u64>,
    down: Option<bool>,
}

pub(super) async fn admin_patch_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return admin_error(e.to_string()),
    };
    let mut s = lock(&sim.settings);
    if let Some(v) = patch.search_per_second {
        s.search_per_second = v;
    }
    if let Some(v) = patch.search_scope {
        s.search_scope = v;
    }
    if let Some(v) = patch.search_retry_after {
        s.search_retry_after = v;
    }
    if let Some(v) = patch.ten_secondly_limit {
        s.ten_secondly_limit = v;
    }
    if let Some(v) = patch.phone_filter {
        s.phone_filter = v;
    }
    if let Some(v) = patch.unknown_property {
        s.unknown_property = v;
    }
    if let Some(v) = patch.filter_limits {
        s.filter_limits = v;
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
        "searchPerSecond": s.search_per_second, "searchScope": s.search_scope,
        "searchRetryAfter": s.search_retry_after, "tenSecondlyLimit": s.ten_secondly_limit,
        "phoneFilter": s.phone_filter, "unknownProperty": s.unknown_property,
        "filterLimits": s.filter_limits, "down": s.down,
        "indexLagMs": u64::try_from(s.index_lag.as_millis()).unwrap_or(u64::MAX),
        "latencyMs": u64::try_from(s.latency.as_millis()).unwrap_or(u64::MAX),
    }))
    .into_response()
}

pub(super) async fn admin_push_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<Fault>(&body) {
        Ok(fault) => {
            lock(&sim.settings).faults.push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(e.to_string()),
    }
}

pub(super) async fn admin_expire_tokens(State(sim): State<Arc<Shared>>) -> StatusCode {
    sim.expire_tokens();
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_revoke_token(
    State(sim): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(token) = params.get("token") else {
        return admin_error("?token= is required");
    };
    match lock(&sim.tokens).get_mut(token) {
        Some(state) => {
            *state = TokenState::Revoked;
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such token"})),
        )
            .into_response(),
    }
}
