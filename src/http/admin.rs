//! Admin endpoints (protected by `[auth.ops]`): inspect and replay dead letters, through the
//! queue's interface.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody, Refused};
use super::state::AppState;
use crate::queue::{DeadLetter, StoreError};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// At most this many, newest first (default 50, at most 1000).
    pub limit: Option<i64>,
}

/// `GET /admin/dead-letters` answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
}

/// `POST /admin/dead-letters/{id}/replay` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    #[schema(example = "queued")]
    pub status: &'static str,
    /// The dead letter (job) id, queued again.
    pub id: i64,
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e))
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no dead letter {id}"))
}

/// Events that gave up, with their last error.
#[utoipa::path(get, path = "/admin/dead-letters", tag = "ops", params(ListParams),
    responses((status = 200, description = "Dead letters, newest first: `{\"deadLetters\": [...]}`, each with its id, event key, attempts, last error, times and the job as stored (`payload`)"), Refused))]
pub async fn list(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<DeadLetters>, ApiError> {
    let limit = params.limit.unwrap_or(50).clamp(1, 1000);
    let dead_letters = state.queue.dead_letters(limit).await.map_err(store_error)?;
    Ok(Json(DeadLetters { dead_letters }))
}

/// One dead letter.
#[utoipa::path(get, path = "/admin/dead-letters/{id}", tag = "ops",
    params(("id" = i64, Path, description = "Dead letter (job) id")),
    responses((status = 200, description = "The dead letter"),
        (status = 404, description = "No such dead letter", body = ErrorBody), Refused))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<DeadLetter>, ApiError> {
    match state.queue.dead_letter(id).await.map_err(store_error)? {
        Some(item) => Ok(Json(item)),
        None => Err(not_found(id)),
    }
}

/// Queues a dead letter again as a fresh job.
#[utoipa::path(post, path = "/admin/dead-letters/{id}/replay", tag = "ops",
    params(("id" = i64, Path, description = "Dead letter (job) id")),
    responses((status = 202, description = "Queued again", body = Replayed),
        (status = 404, description = "No such dead letter", body = ErrorBody), Refused))]
pub async fn replay(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    if state.queue.replay(id).await.map_err(store_error)? {
        tracing::info!(job_id = id, "dead letter replayed");
        Ok((
            StatusCode::ACCEPTED,
            Json(Replayed {
                status: "queued",
                id,
            }),
        ))
    } else {
        Err(not_found(id))
    }
}
