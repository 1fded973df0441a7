//! `POST /v1/lookup`: the synchronous lookup for Architect data actions.
//!
//! Flat JSON of strings in and out, so a data action's contracts can describe it. It always
//! answers within `lookup.deadline_ms`: a slow CRM yields `found: "false"`, `reason: "timeout"`
//! while the lookup finishes in the background and warms the cache for the next caller. With
//! `lookup.write_attributes`, a request that names the conversation also queues the write.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use tower_http::request_id::RequestId;

use crate::app::AppState;
use crate::config::KeyKind;
use crate::domain::{EnrichmentJob, Source};
use crate::error::{ApiError, ErrorBody, StrictJson};
use crate::ingest::LookupRequest;
use crate::metrics;
use crate::queue::QueueError;

/// Answer fields that are always present, whatever the CRM returns.
pub const FOUND: &str = "found";
pub const REASON: &str = "reason";
pub const MATCHED_BY: &str = "matchedBy";

/// Looks the caller up and answers flat JSON strings within `lookup.deadline_ms`; with a
/// conversation id (and `lookup.write_attributes`) also writes the participant attributes.
#[utoipa::path(post, path = "/v1/lookup", tag = "lookup",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The answer, found or not", body = crate::openapi::LookupAnswer),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 415, description = "Not declared as JSON", body = ErrorBody),
        (status = 422, description = "Invalid field; `field` names it", body = ErrorBody),
    ))]
pub async fn lookup(
    State(state): State<AppState>,
    request_id: Option<Extension<RequestId>>,
    StrictJson(body): StrictJson<LookupRequest>,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    let valid = body.validate(state.region)?;
    if let Some(id) = &valid.conversation_id {
        tracing::Span::current().record("conversation_id", id.as_str());
    }

    let mut answer = BTreeMap::new();
    let reason = if valid.keys.is_empty() {
        "no_key"
    } else {
        let pipeline = state.pipeline.clone();
        let keys = valid.keys.clone();
        // Spawned, so that a lookup outliving the deadline still completes and fills the cache.
        let lookup = tokio::spawn(async move { pipeline.lookup(&keys).await });
        let deadline = Duration::from_millis(state.settings.lookup.deadline_ms);
        match tokio::time::timeout(deadline, lookup).await {
            Ok(Ok(Ok(result))) => match result.record {
                Some(record) => {
                    answer = state.pipeline.policy().mapped_fields(&record);
                    answer.insert(
                        MATCHED_BY.to_owned(),
                        result
                            .matched
                            .map(KeyKind::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    );
                    ""
                }
                None => "not_found",
            },
            Ok(Ok(Err(crate::crm::CrmError::CircuitOpen { .. }))) => "circuit_open",
            Ok(Ok(Err(e))) => {
                tracing::warn!(error = %e, "CRM lookup failed");
                "crm_error"
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "CRM lookup task failed");
                "crm_error"
            }
            Err(_) => {
                tracing::warn!(
                    deadline_ms = deadline.as_millis() as u64,
                    "CRM lookup exceeded the deadline"
                );
                "timeout"
            }
        }
    };
    let found = reason.is_empty();
    ::metrics::counter!(metrics::LOOKUP_RESULTS, "result" => if found { "found" } else { reason })
        .increment(1);
    answer.insert(FOUND.to_owned(), found.to_string());
    answer.insert(REASON.to_owned(), reason.to_owned());
    answer.entry(MATCHED_BY.to_owned()).or_default();

    if let (true, Some(conversation_id)) = (
        state.settings.lookup.write_attributes,
        valid.conversation_id,
    ) {
        let job = EnrichmentJob {
            source: Source::Lookup,
            // Each lookup is its own event; the queue's dedup window still recognises a repeat
            // of the same conversation, participant and keys.
            event_id: format!("lookup:{}", uuid::Uuid::new_v4().simple()),
            request_id: super::events::request_id_of(request_id),
            conversation_id,
            participant_id: valid.participant_id,
            keys: valid.keys,
            extra_attributes: BTreeMap::new(),
            received_at_ms: crate::store::now_ms(),
            attempt: 1,
        };
        // The caller is waiting for the answer, not the write: a full queue costs the write only.
        match state.queue.submit(job).await {
            Ok(_) => {}
            Err(QueueError::Closed) => {
                tracing::info!("shutting down; lookup answered without writing attributes")
            }
            Err(e) => tracing::warn!(error = %e, "lookup answered without writing attributes"),
        }
    }
    Ok(Json(answer))
}
