//! `POST /v1/events/genesys` and `POST /v1/events/cti`: validate, queue, answer 202. The work
//! happens in the background; a 4xx here means the sender should not retry, a 503 that it should.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::{json, Value};
use tower_http::request_id::RequestId;

use crate::app::AppState;
use crate::domain::{EnrichmentJob, Source};
use crate::error::{ApiError, ErrorBody, StrictJson};
use crate::ingest::{self, ConversationEvent, CtiEvent, GenesysEvent};
use crate::metrics;
use crate::store::Enqueued;

/// A Genesys conversation event: an AWS EventBridge event (payload in `detail.eventBody`), a
/// notification (`topicName` + `eventBody`) or a bare event body. Only
/// `v2.detail.events.conversation.{id}.customer.start` is processed; other topics are
/// acknowledged and counted.
#[utoipa::path(post, path = "/v1/events/genesys", tag = "ingest",
    request_body(content = Object, content_type = "application/json",
        description = "EventBridge event, notification, or bare customer.start event body"),
    responses(
        (status = 202, description = "Validated and queued", body = crate::openapi::Accepted),
        (status = 200, description = "A topic attrsync does not process (`ignored`), or an event already accepted (`duplicate`)", body = crate::openapi::Ignored),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not declared as JSON", body = ErrorBody),
        (status = 422, description = "JSON, but not a usable event; `field` names the problem", body = ErrorBody),
        (status = 503, description = "Queue full or shutting down; retry after Retry-After", body = ErrorBody),
    ))]
pub async fn genesys(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    StrictJson(body): StrictJson<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let event = ingest::parse_genesys_event(&body, state.region)
        .inspect_err(|_| count(Source::Genesys, "rejected"))?;
    match event {
        GenesysEvent::Ignored { topic } => {
            count(Source::Genesys, "ignored");
            tracing::debug!(topic = %topic, "event topic not processed");
            Ok((StatusCode::OK, Json(json!({"status": "ignored"}))))
        }
        GenesysEvent::CustomerStart(event) => {
            let job = job(Source::Genesys, *event, Default::default(), request_id);
            queue(&state, job).await
        }
    }
}

/// An event from CTI middleware: the conversation, optionally the participant, whatever identifies
/// the caller, and optional attributes to write as they are.
#[utoipa::path(post, path = "/v1/events/cti", tag = "ingest",
    request_body = CtiEvent,
    responses(
        (status = 202, description = "Validated and queued", body = crate::openapi::Accepted),
        (status = 200, description = "An event already accepted (`duplicate`)", body = crate::openapi::Ignored),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not declared as JSON", body = ErrorBody),
        (status = 422, description = "Invalid field; `field` names it", body = ErrorBody),
        (status = 503, description = "Queue full or shutting down; retry after Retry-After", body = ErrorBody),
    ))]
pub async fn cti(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    StrictJson(body): StrictJson<CtiEvent>,
) -> Result<impl IntoResponse, ApiError> {
    let valid = body
        .validate(state.region)
        .inspect_err(|_| count(Source::Cti, "rejected"))?;
    let job = job(Source::Cti, valid.event, valid.attributes, request_id);
    queue(&state, job).await
}

pub(crate) fn request_id_of(request_id: Option<Extension<RequestId>>) -> String {
    request_id
        .and_then(|Extension(id)| id.header_value().to_str().ok().map(str::to_owned))
        .unwrap_or_default()
}

fn job(
    source: Source,
    event: ConversationEvent,
    extra_attributes: std::collections::BTreeMap<String, String>,
    request_id: Option<Extension<RequestId>>,
) -> EnrichmentJob {
    tracing::Span::current().record("conversation_id", event.conversation_id.as_str());
    EnrichmentJob {
        source,
        event_id: event.event_id,
        request_id: request_id_of(request_id),
        conversation_id: event.conversation_id,
        participant_id: event.participant_id,
        keys: event.keys,
        extra_attributes,
        received_at_ms: crate::store::now_ms(),
        attempt: 1,
    }
}

async fn queue(
    state: &AppState,
    job: EnrichmentJob,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let source = job.source;
    let event_id = job.event_id.clone();
    let outcome = state.queue.submit(job).await.map_err(|e| {
        count(source, "refused");
        ApiError::from(e)
    })?;
    match outcome {
        Enqueued::Accepted => {
            tracing::info!(event_id = %event_id, "event queued");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({"status": "queued", "eventId": event_id})),
            ))
        }
        Enqueued::Duplicate => {
            count(source, "duplicate");
            tracing::info!(event_id = %event_id, "duplicate event; already accepted");
            Ok((
                StatusCode::OK,
                Json(json!({"status": "duplicate", "eventId": event_id})),
            ))
        }
    }
}

/// Ingest-side outcomes (rejected, ignored, refused); the pipeline counts the rest.
fn count(source: Source, outcome: &'static str) {
    ::metrics::counter!(metrics::EVENTS, "source" => source.as_str(), "outcome" => outcome)
        .increment(1);
}
