//! The simulator's admin API under `/sim/...`: not part of the simulated org, so it has no
//! auth, faults or accounting. Used by the CLI, the demo and tests that drive the simulator from
//! outside the process.

use super::*;

fn admin_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct NewRecord {
    #[serde(rename = "type")]
    object: String,
    fields: Value,
}

pub(super) async fn admin_insert(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let new: NewRecord = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(e) => return admin_error(e.to_string()),
    };
    match shared.insert(&new.object, new.fields) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => admin_error(e),
    }
}

#[derive(Deserialize)]
struct NewFault {
    op: Op,
    fault: Fault,
}

pub(super) async fn admin_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewFault>(&body) {
        Ok(f) => {
            lock(&shared.state)
                .scripted
                .entry(f.op)
                .or_default()
                .push_back(f.fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPatch {
    latency_ms: Option<u64>,
    down: Option<bool>,
    daily_api_limit: Option<u64>,
    api_usage: Option<u64>,
    phone_match: Option<String>,
}

pub(super) async fn admin_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return admin_error(e.to_string()),
    };
    let phone_match = match patch.phone_match.as_deref() {
        None => None,
        Some("digits") => Some(PhoneMatch::Digits),
        Some("digitsIgnoringCountryCode") => Some(PhoneMatch::DigitsIgnoringCountryCode),
        Some(other) => {
            return admin_error(format!(
                "phoneMatch {other:?} is not digits or digitsIgnoringCountryCode"
            ))
        }
    };
    let mut state = lock(&shared.state);
    if let Some(ms) = patch.latency_ms {
        state.latency = Duration::from_millis(ms);
    }
    if let Some(down) = patch.down {
        state.down = down;
    }
    if let Some(limit) = patch.daily_api_limit {
        state.daily_api_limit = limit;
    }
    if let Some(used) = patch.api_usage {
        let now = Instant::now();
        state.usage = std::iter::repeat_n(now, used as usize).collect();
    }
    if let Some(mode) = phone_match {
        state.phone_match = mode;
    }
    Json(json!({
        "latencyMs": u64::try_from(state.latency.as_millis()).unwrap_or(u64::MAX),
        "down": state.down,
        "dailyApiLimit": state.daily_api_limit,
    }))
    .into_response()
}

pub(super) async fn admin_expire(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.state).sessions.expire_all();
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut state = lock(&shared.state);
    prune_usage(&mut state, shared.config.allocation_window);
    Json(json!({
        "byOp": shared.traffic.by_op(),
        "total": shared.traffic.total(),
        "apiUsage": {"used": state.usage.len(), "limit": state.daily_api_limit},
        "sessions": state.sessions.count(),
        "records": state.records.len(),
        "queries": state.queries,
    }))
}
