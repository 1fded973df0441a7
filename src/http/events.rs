//! `POST /v1/events/genesys` and `POST /v1/events/cti`: validate, queue, answer 202. The work
//! happens in the background; a 4xx here means the sender should not retry, a 503 that it should.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::error::{ApiError, BadInput, Refused, Unavailable};
use super::extract::{RequestIdText, StrictJson};
use super::state::AppState;
use crate::domain::{ConversationEvent, EnrichmentJob, Source};
use crate::ingest::{self, CtiEvent, GenesysEvent};
use crate::metrics;
use crate::queue::Enqueued;

/// 202 answer of the event endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    #[schema(example = "queued")]
    pub status: String,
    /// The sender's event id (or one derived from the conversation and participant).
    pub event_id: String,
}

/// 200 answer for an event attrsync will not process: a topic it ignores, or a duplicate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ignored {
    /// "ignored" (a topic attrsync does not process) or "duplicate" (already accepted).
    #[schema(example = "duplicate")]
    pub status: String,
    /// For a duplicate: the event id it duplicates (the sender's, or the derived one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// What an event endpoint answers when the event is not refused.
pub enum IngestAnswer {
    Accepted(Accepted),
    Ignored(Ignored),
}

impl IntoResponse for IngestAnswer {
    fn into_response(self) -> Response {
        match self {
            IngestAnswer::Accepted(body) => (StatusCode::ACCEPTED, Json(body)).into_response(),
            IngestAnswer::Ignored(body) => (StatusCode::OK, Json(body)).into_response(),
        }
    }
}

/// How an event ended at the edge, before any worker saw it: the ingest side of the `outcome`
/// label of `attrsync_events_total` (the pipeline and the queue count the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Bad input: answered 4xx.
    Rejected,
    /// A topic attrsync does not process.
    Ignored,
    /// Accepted before.
    Duplicate,
    /// Not queued: the queue is full, unavailable or shutting down.
    Refused,
}

impl IngestOutcome {
    pub const ALL: [IngestOutcome; 4] = [
        IngestOutcome::Rejected,
        IngestOutcome::Ignored,
        IngestOutcome::Duplicate,
        IngestOutcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Rejected => "rejected",
            IngestOutcome::Ignored => "ignored",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Refused => "refused",
        }
    }
}

/// A Genesys conversation event: an AWS EventBridge event (payload in `detail.eventBody`), a
/// notification (`topicName` + `eventBody`) or a bare event body. Only
/// `v2.detail.events.conversation.{id}.customer.start` is processed; other topics are
/// acknowledged and counted.
#[utoipa::path(post, path = "/v1/events/genesys", tag = "ingest",
    request_body(content = Object, content_type = "application/json",
        description = "EventBridge event, notification, or bare customer.start event body"),
    responses(
        (status = 202, description = "Validated and queued", body = Accepted),
        (status = 200, description = "A topic attrsync does not process (`ignored`), or an event already accepted (`duplicate`, with its `eventId`)", body = Ignored),
        BadInput, Refused, Unavailable,
    ))]
pub async fn genesys(
    State(state): State<AppState>,
    RequestIdText(request_id): RequestIdText,
    StrictJson(body): StrictJson<Value>,
) -> Result<IngestAnswer, ApiError> {
    let event = ingest::parse_genesys_event(&body, state.settings.phone.default_region)
        .inspect_err(|_| count(Source::Genesys, IngestOutcome::Rejected))?;
    match event {
        GenesysEvent::Ignored { topic } => {
            count(Source::Genesys, IngestOutcome::Ignored);
            tracing::debug!(topic = %topic, "event topic not processed");
            Ok(IngestAnswer::Ignored(Ignored {
                status: "ignored".to_owned(),
                event_id: None,
            }))
        }
        GenesysEvent::CustomerStart(event) => {
            let job = job(Source::Genesys, *event, BTreeMap::new(), request_id);
            queue(&state, job).await
        }
    }
}

/// An event from CTI middleware: the conversation, optionally the participant, whatever identifies
/// the caller, and optional attributes to write as they are.
#[utoipa::path(post, path = "/v1/events/cti", tag = "ingest",
    request_body = CtiEvent,
    responses(
        (status = 202, description = "Validated and queued", body = Accepted),
        (status = 200, description = "An event already accepted (`duplicate`, with its `eventId`)", body = Ignored),
        BadInput, Refused, Unavailable,
    ))]
pub async fn cti(
    State(state): State<AppState>,
    RequestIdText(request_id): RequestIdText,
    StrictJson(body): StrictJson<CtiEvent>,
) -> Result<IngestAnswer, ApiError> {
    let valid = body
        .validate(state.settings.phone.default_region)
        .inspect_err(|_| count(Source::Cti, IngestOutcome::Rejected))?;
    let job = job(Source::Cti, valid.event, valid.attributes, request_id);
    queue(&state, job).await
}

fn job(
    source: Source,
    event: ConversationEvent,
    extra_attributes: BTreeMap<String, String>,
    request_id: String,
) -> EnrichmentJob {
    tracing::Span::current().record("conversation_id", event.conversation_id.as_str());
    EnrichmentJob::new(source, event, extra_attributes, request_id)
}

async fn queue(state: &AppState, job: EnrichmentJob) -> Result<IngestAnswer, ApiError> {
    let source = job.source;
    let event_id = job.event_id.clone();
    let outcome = state.queue.submit(job).await.map_err(|e| {
        count(source, IngestOutcome::Refused);
        ApiError::from(e)
    })?;
    match outcome {
        Enqueued::Accepted => {
            tracing::info!(event_id = %event_id, "event queued");
            Ok(IngestAnswer::Accepted(Accepted {
                status: "queued".to_owned(),
                event_id,
            }))
        }
        Enqueued::Duplicate => {
            count(source, IngestOutcome::Duplicate);
            tracing::info!(event_id = %event_id, "duplicate event; already accepted");
            Ok(IngestAnswer::Ignored(Ignored {
                status: "duplicate".to_owned(),
                event_id: Some(event_id),
            }))
        }
    }
}

fn count(source: Source, outcome: IngestOutcome) {
    ::metrics::counter!(metrics::EVENTS, "source" => source.as_str(), "outcome" => outcome.as_str())
        .increment(1);
}
