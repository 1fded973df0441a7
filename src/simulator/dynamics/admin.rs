//! The simulator's admin API under `/sim/...`: not part of the simulated service, so it has no
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
#[serde(rename_all = "camelCase")]
struct NewRow {
    entity_set: String,
    row: Value,
}

pub(super) async fn admin_insert(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewRow>(&body) {
        Ok(new) => match shared.insert(&new.entity_set, new.row) {
            Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
            Err(e) => admin_error(e),
        },
        Err(e) => admin_error(e.to_string()),
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
    max_requests: Option<usize>,
    window_secs: Option<u64>,
    max_concurrent: Option<usize>,
}

pub(super) async fn admin_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return admin_error(e.to_string()),
    };
    let mut state = lock(&shared.state);
    if let Some(ms) = patch.latency_ms {
        state.latency = Duration::from_millis(ms);
    }
    if let Some(down) = patch.down {
        state.down = down;
    }
    if let Some(n) = patch.max_requests {
        state.limits.max_requests = n;
    }
    if let Some(s) = patch.window_secs {
        state.limits.window = Duration::from_secs(s);
    }
    if let Some(n) = patch.max_concurrent {
        state.limits.max_concurrent = n;
    }
    if patch.max_requests.is_some() || patch.window_secs.is_some() || patch.max_concurrent.is_some()
    {
        state.protection.reset();
    }
    Json(json!({
        "latencyMs": u64::try_from(state.latency.as_millis()).unwrap_or(u64::MAX),
        "down": state.down,
        "maxRequests": state.limits.max_requests,
        "windowSecs": state.limits.window.as_secs(),
        "maxConcurrent": state.limits.max_concurrent,
    }))
    .into_response()
}

pub(super) async fn admin_expire(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.state).tokens.expire_all();
    StatusCode::NO_CONTENT
}

pub(super) async fn admin_stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = lock(&shared.state);
    Json(json!({
        "byOp": shared.traffic.by_op(),
        "total": shared.traffic.total(),
        "tokens": state.tokens.count(),
        "rows": state.rows.len(),
        "filters": state.requests.iter().filter_map(|r| r.filter.clone()).collect::<Vec<_>>(),
    }))
}
