//! The journal and the explain, for operators (protected by `[auth.ops]`): every run of a
//! conversation's events with its journey, one event's runs, recent runs filtered by outcome
//! and source, and the dry run (`POST /admin/explain`) that writes nothing.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, BadInput, ErrorBody, Refused};
use super::extract::StrictJson;
use super::state::AppState;
use crate::domain::ConversationId;
use crate::ingest::LookupRequest;
use crate::pipeline::explain::Explanation;
use crate::queue::{JournalEntry, JournalFilter, StoreError};

/// How many runs an answer holds at most.
const MAX_ENTRIES: i64 = 1000;

/// `GET /admin/conversations/{id}`, `GET /admin/events/{eventId}` and `GET /admin/journal`
/// answer: runs, newest first, each with its journey.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Journeys {
    pub entries: Vec<JournalEntry>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct RecentParams {
    /// Only runs with this outcome (an `attrsync_events_total` outcome label).
    pub outcome: Option<String>,
    /// Only events from this source: `genesys`, `cti` or `lookup`.
    pub source: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<i64>,
}

fn store_error(e: StoreError) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e))
}

fn bounded(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 256 {
        return Err(ApiError::NotFound(format!("no such {field}")));
    }
    Ok(value.to_owned())
}

/// Reads the journal as `filter` says.
pub async fn entries(
    state: &AppState,
    filter: JournalFilter,
) -> Result<Vec<JournalEntry>, ApiError> {
    state.queue.journal(&filter).await.map_err(store_error)
}

/// Every run of every event of one conversation, with its journey.
#[utoipa::path(get, path = "/admin/conversations/{id}", tag = "ops",
    params(("id" = String, Path, description = "Genesys conversation id")),
    responses((status = 200, description = "`{\"entries\": [...]}`, newest first: one per run of an event (a retried event has several), each with `eventId`, `source`, `attempt`, `outcome`, `acceptedAtMs`, `recordedAtMs` and `steps` (the journey: `arrived`, `key`, `crm`, `decision`, `upstream`, `written` or `nothing_written`, `retry`, `dead_lettered`, `outcome`, each at `atMs` from the run's start). Key values are redacted per `telemetry.redact`; attribute values are never kept"),
        (status = 404, description = "Not a conversation id, or nothing journaled for it", body = ErrorBody), Refused))]
pub async fn conversation(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Journeys>, ApiError> {
    let id = ConversationId::parse(id.trim())
        .map_err(|_| ApiError::NotFound("no such conversation".to_owned()))?;
    let entries = entries(
        &state,
        JournalFilter {
            conversation_id: Some(id.to_string()),
            limit: MAX_ENTRIES,
            ..JournalFilter::default()
        },
    )
    .await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "nothing journaled for conversation {id}"
        )));
    }
    Ok(Json(Journeys { entries }))
}

/// Every run of one event (by the sender's event id), with its journey.
#[utoipa::path(get, path = "/admin/events/{eventId}", tag = "ops",
    params(("eventId" = String, Path, description = "The sender's event id (EventBridge id, CTI event id, `lookup:...`)")),
    responses((status = 200, description = "`{\"entries\": [...]}`, as for `/admin/conversations/{id}`"),
        (status = 404, description = "Nothing journaled for this event id", body = ErrorBody), Refused))]
pub async fn event(
    State(state): State<AppState>,
    Path(event_id): Path<String>,
) -> Result<Json<Journeys>, ApiError> {
    let event_id = bounded("event", &event_id)?;
    let entries = entries(
        &state,
        JournalFilter {
            event_id: Some(event_id),
            limit: MAX_ENTRIES,
            ..JournalFilter::default()
        },
    )
    .await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(
            "nothing journaled for this event".to_owned(),
        ));
    }
    Ok(Json(Journeys { entries }))
}

/// Recent runs, newest first, optionally of one outcome and one source.
#[utoipa::path(get, path = "/admin/journal", tag = "ops", params(RecentParams),
    responses((status = 200, description = "`{\"entries\": [...]}`, as for `/admin/conversations/{id}`"), Refused))]
pub async fn recent(
    State(state): State<AppState>,
    Query(params): Query<RecentParams>,
) -> Result<Json<Journeys>, ApiError> {
    let entries = entries(&state, recent_filter(&params)).await?;
    Ok(Json(Journeys { entries }))
}

/// The filter for `params`: blank fields match everything.
pub fn recent_filter(params: &RecentParams) -> JournalFilter {
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(64).collect())
    };
    JournalFilter {
        outcome: given(&params.outcome),
        source: given(&params.source),
        limit: params.limit.unwrap_or(100).clamp(1, MAX_ENTRIES),
        ..JournalFilter::default()
    }
}

/// A dry run: what a lookup with these keys would do, writing nothing.
#[utoipa::path(post, path = "/admin/explain", tag = "ops", request_body = LookupRequest,
    responses((status = 200, description = "`keys` (kind and notations tried, values redacted per `telemetry.redact`), `sources` (per source and key: `cache` `hit` or `miss`, `answer`, `candidates`, `ms`; the cache is read, never filled), `decision` (`verdict`, `matchCount`, `matchedBy`, `recordType`, `recordId`, `candidateIds`), `patch` (the exact attributes the PATCH would carry onto a participant without attributes, with their values: answer for operators only) and `written: false`. Nothing is written to Genesys; `conversationId` and `participantId` are ignored"),
        BadInput, Refused))]
pub async fn explain(
    State(state): State<AppState>,
    StrictJson(body): StrictJson<LookupRequest>,
) -> Result<Json<Explanation>, ApiError> {
    Ok(Json(explain_keys(&state, body).await?))
}

/// The dry run for `request`'s keys (the console's explain form too).
pub async fn explain_keys(
    state: &AppState,
    request: LookupRequest,
) -> Result<Explanation, ApiError> {
    let valid = LookupRequest {
        conversation_id: None,
        participant_id: None,
        ..request
    }
    .validate(state.settings.phone.default_region)?;
    // A lookup without a key answers `no_key` (a withheld caller); a dry run of nothing has
    // nothing to explain, so it says which field to fill instead.
    if valid.keys.is_empty() {
        return Err(crate::ingest::InvalidField {
            field: "ani".to_owned(),
            reason: "give an ani, email, customerId or externalContactId (with digits, for an ani) to explain".to_owned(),
        }
        .into());
    }
    let settings = &state.settings;
    Ok(state
        .pipeline
        .explain(
            &valid.keys,
            &settings.crm.http.phone_notations,
            settings.telemetry.redact,
        )
        .await)
}
