//! The admin API (`/sim/...`, no auth, plain `{"error": ...}` errors: it is not Genesys): create
//! and end conversations, read attributes and patches, stats, faults, config, token revocation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use super::state::{FaultSettings, Shared};
use super::unsettled::{Unsettled, UnsettledPatch};
use super::{sanitize_rate, Fault, NewConversation, Op, SimStats};
use crate::simulator::lock;

pub(super) fn admin_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/conversations", post(admin_create_conversation))
        .route(
            "/conversations/{conversation_id}/end",
            post(admin_end_conversation),
        )
        .route(
            "/conversations/{conversation_id}/participants/{participant_id}/attributes",
            get(admin_get_attributes).patch(admin_set_attributes),
        )
        .route(
            "/conversations/{conversation_id}/participants/{participant_id}/patches",
            get(admin_get_patches),
        )
        .route("/stats", get(admin_stats))
        .route("/faults", post(admin_push_fault))
        .route("/config", get(admin_get_config).patch(admin_patch_config))
        .route("/tokens/revoke", post(admin_revoke_tokens))
        .route(
            "/unsettled",
            get(admin_get_unsettled).patch(admin_patch_unsettled),
        )
}

pub(super) fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(super) fn admin_not_found() -> Response {
    admin_error(StatusCode::NOT_FOUND, "not found")
}

/// An empty body means "all defaults", which keeps `curl -X POST .../sim/conversations` short.
pub(super) fn parse_admin_body<T: Default + DeserializeOwned>(
    body: &[u8],
) -> serde_json::Result<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
}

pub(super) fn admin_bad_request(error: serde_json::Error) -> Response {
    admin_error(StatusCode::BAD_REQUEST, error.to_string())
}

pub(super) async fn admin_create_conversation(
    State(sim): State<Arc<Shared>>,
    body: Bytes,
) -> Response {
    match parse_admin_body::<NewConversation>(&body) {
        Ok(spec) => (StatusCode::CREATED, Json(sim.create_conversation(spec))).into_response(),
        Err(error) => admin_bad_request(error),
    }
}

pub(super) async fn admin_end_conversation(
    State(sim): State<Arc<Shared>>,
    Path(conversation_id): Path<String>,
) -> Response {
    if sim.end_conversation(&conversation_id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_not_found()
    }
}

pub(super) async fn admin_get_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
) -> Response {
    sim.with_participant(&conversation_id, &participant_id, |p| {
        Json(&p.attributes).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

pub(super) async fn admin_set_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let attributes = match parse_admin_body::<BTreeMap<String, String>>(&body) {
        Ok(attributes) => attributes,
        Err(error) => return admin_bad_request(error),
    };
    sim.with_participant(&conversation_id, &participant_id, |p| {
        p.attributes.extend(attributes);
        Json(&p.attributes).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

pub(super) async fn admin_get_patches(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
) -> Response {
    sim.with_participant(&conversation_id, &participant_id, |p| {
        Json(&p.patches).into_response()
    })
    .unwrap_or_else(admin_not_found)
}

pub(super) async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<SimStats> {
    Json(sim.counters.snapshot())
}

#[derive(Deserialize)]
pub(super) struct PushFault {
    pub(super) op: Op,
    pub(super) fault: Fault,
}

pub(super) async fn admin_push_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PushFault>(&body) {
        Ok(PushFault { op, fault }) => {
            lock(&sim.faults).scripted[op.index()].push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => admin_bad_request(error),
    }
}

/// Runtime-adjustable settings; on PATCH every field is optional and `rateLimitPerMinute:
/// null` removes the limit (absent leaves it alone).
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct ConfigPatch {
    pub(super) latency_ms: Option<u64>,
    pub(super) error_rate: Option<f64>,
    #[serde(deserialize_with = "present_or_null")]
    pub(super) rate_limit_per_minute: Option<Option<u32>>,
    #[serde(deserialize_with = "present_or_null")]
    pub(super) org_rate_limit_per_minute: Option<Option<u32>>,
}

pub(super) fn present_or_null<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

pub(super) fn config_view(faults: &FaultSettings) -> Value {
    json!({
        "latencyMs": u64::try_from(faults.latency.as_millis()).unwrap_or(u64::MAX),
        "errorRate": faults.error_rate,
        "rateLimitPerMinute": faults.rate_limit_per_minute,
        "orgRateLimitPerMinute": faults.org_rate_limit_per_minute,
        "scriptedFaults": {
            "token": faults.scripted[Op::Token.index()].len(),
            "getConversation": faults.scripted[Op::GetConversation.index()].len(),
            "patchAttributes": faults.scripted[Op::PatchAttributes.index()].len(),
        },
    })
}

pub(super) async fn admin_get_config(State(sim): State<Arc<Shared>>) -> Json<Value> {
    Json(config_view(&lock(&sim.faults)))
}

pub(super) async fn admin_patch_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch = match parse_admin_body::<ConfigPatch>(&body) {
        Ok(patch) => patch,
        Err(error) => return admin_bad_request(error),
    };
    let mut faults = lock(&sim.faults);
    if let Some(ms) = patch.latency_ms {
        faults.latency = Duration::from_millis(ms);
    }
    if let Some(rate) = patch.error_rate {
        faults.error_rate = sanitize_rate(rate);
    }
    if let Some(limit) = patch.rate_limit_per_minute {
        faults.rate_limit_per_minute = limit;
    }
    if let Some(limit) = patch.org_rate_limit_per_minute {
        faults.org_rate_limit_per_minute = limit;
    }
    Json(config_view(&faults)).into_response()
}

pub(super) async fn admin_revoke_tokens(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.tokens).clear();
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_get_unsettled(State(sim): State<Arc<Shared>>) -> Json<Unsettled> {
    Json(*lock(&sim.unsettled))
}

/// Only the switches named change.
pub(super) async fn admin_patch_unsettled(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse_admin_body::<UnsettledPatch>(&body) {
        Ok(patch) => {
            let mut unsettled = lock(&sim.unsettled);
            unsettled.apply(patch);
            Json(*unsettled).into_response()
        }
        Err(error) => admin_bad_request(error),
    }
}
