//! Admin endpoints (protected by `[auth.ops]`): inspect and replay dead letters.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::error::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<i64>,
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e))
}

fn not_found(id: i64) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"code": "not_found", "message": format!("no dead letter {id}")})),
    )
        .into_response()
}

/// Events that gave up, with their last error.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "ops", params(ListParams),
    responses((status = 200, description = "Dead letters, newest first"), (status = 401, description = "Credentials required")))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let items = state
        .queue
        .store()
        .dead_letters(limit)
        .await
        .map_err(store_error)?;
    Ok(Json(json!({"deadLetters": items})).into_response())
}

/// One dead letter.
#[utoipa::path(get, path = "/admin/dead-letters/{id}", tag = "ops",
    params(("id" = i64, Path, description = "Dead letter (job) id")),
    responses((status = 200, description = "The dead letter"), (status = 404, description = "No such dead letter")))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    match state
        .queue
        .store()
        .dead_letter_by_id(id)
        .await
        .map_err(store_error)?
    {
        Some(item) => Ok(Json(item).into_response()),
        None => Ok(not_found(id)),
    }
}

/// Queues a dead letter again as a fresh job.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/replay", tag = "ops",
    params(("id" = i64, Path, description = "Dead letter (job) id")),
    responses((status = 202, description = "Queued again"), (status = 404, description = "No such dead letter")))]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    if state.queue.store().replay(id).await.map_err(store_error)? {
        tracing::info!(job_id = id, "dead letter replayed");
        state.queue.wake_workers();
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"status": "queued", "id": id})),
        )
            .into_response())
    } else {
        Ok(not_found(id))
    }
}
