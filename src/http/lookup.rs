//! `POST /v1/lookup`: the synchronous lookup for Architect data actions, translated to and from
//! HTTP. The use case is `Pipeline::answer_lookup`.
//!
//! Flat JSON of strings in and out, so a data action's contracts can describe it. With
//! `lookup.write_attributes`, a request that names the conversation also queues the write.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use super::error::{ApiError, BadInput, Refused};
use super::extract::{RequestIdText, StrictJson};
use super::state::AppState;
use crate::domain::{ConversationEvent, EnrichmentJob, KeyKind, Source};
use crate::ingest::LookupRequest;
use crate::pipeline::{LookupAnswer as Answer, LookupReason};
use crate::queue::QueueError;

/// `/v1/lookup` answer: flat, every value a string, so a data action's output contract can
/// describe it. Besides the fixed fields it holds the CRM fields as mapped by `[merge]`
/// (without the attribute prefix).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"found": "true", "reason": "", "matchedBy": "phone", "id": "C-1001", "firstName": "Ada", "tier": "gold"}))]
pub struct LookupAnswer {
    /// "true" or "false".
    pub found: String,
    /// Empty when found.
    pub reason: WireReason,
    /// The key kind that found the customer (empty when not found).
    pub matched_by: WireKeyKind,
    #[serde(flatten)]
    pub fields: BTreeMap<String, String>,
}

/// The answer's `reason`: the [`LookupReason`]'s name, empty when the customer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireReason(pub Option<LookupReason>);

/// The answer's `matchedBy`: the [`KeyKind`]'s name, empty when not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireKeyKind(pub Option<KeyKind>);

impl Serialize for WireReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.map_or("", LookupReason::as_str))
    }
}

impl Serialize for WireKeyKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.map_or("", KeyKind::as_str))
    }
}

/// A string schema whose values are "" and `names`: generated from the enum, so the document
/// cannot list other values than the code sends.
fn names_or_empty(names: impl Iterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(std::iter::once("").chain(names)))
        .into()
}

impl PartialSchema for WireReason {
    fn schema() -> RefOr<Schema> {
        names_or_empty(
            LookupReason::ALL.into_iter().map(LookupReason::as_str),
            "Why no customer was found; empty when found",
        )
    }
}

impl ToSchema for WireReason {}

impl PartialSchema for WireKeyKind {
    fn schema() -> RefOr<Schema> {
        names_or_empty(
            KeyKind::ALL.into_iter().map(KeyKind::as_str),
            "The kind of key that found the customer; empty when not found",
        )
    }
}

impl ToSchema for WireKeyKind {}

impl From<Answer> for LookupAnswer {
    fn from(answer: Answer) -> Self {
        LookupAnswer {
            found: answer.found().to_string(),
            reason: WireReason(answer.reason),
            matched_by: WireKeyKind(answer.matched_by),
            // The fixed fields win over CRM fields of the same name.
            fields: answer
                .fields
                .into_iter()
                .filter(|(name, _)| !matches!(name.as_str(), "found" | "reason" | "matchedBy"))
                .collect(),
        }
    }
}

/// Looks the caller up and answers flat JSON strings within `lookup.deadline_ms`; with a
/// conversation id (and `lookup.write_attributes`) also writes the participant attributes.
#[utoipa::path(post, path = "/v1/lookup", tag = "lookup",
    request_body = LookupRequest,
    responses(
        (status = 200, description = "The answer, found or not", body = LookupAnswer),
        BadInput, Refused,
    ))]
pub async fn lookup(
    State(state): State<AppState>,
    RequestIdText(request_id): RequestIdText,
    StrictJson(body): StrictJson<LookupRequest>,
) -> Result<Json<LookupAnswer>, ApiError> {
    let valid = body.validate(state.settings.phone.default_region)?;
    if let Some(id) = &valid.conversation_id {
        tracing::Span::current().record("conversation_id", id.as_str());
    }
    let answer = state
        .pipeline
        .answer_lookup(&valid.keys, state.settings.lookup.deadline())
        .await;

    if let (true, Some(conversation_id)) = (
        state.settings.lookup.write_attributes,
        valid.conversation_id,
    ) {
        let event = ConversationEvent {
            // Each lookup is its own event; the queue's dedup window still recognises a repeat
            // of the same conversation, participant and keys.
            event_id: format!("lookup:{}", uuid::Uuid::new_v4().simple()),
            conversation_id,
            participant_id: valid.participant_id,
            keys: valid.keys,
            media_type: None,
        };
        let job = EnrichmentJob::new(Source::Lookup, event, BTreeMap::new(), request_id);
        // The caller is waiting for the answer, not the write: a full queue costs the write only.
        match state.queue.submit(job).await {
            Ok(_) => {}
            Err(QueueError::Closed) => {
                tracing::info!("shutting down; lookup answered without writing attributes");
            }
            Err(e) => tracing::warn!(error = %e, "lookup answered without writing attributes"),
        }
    }
    Ok(Json(answer.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_reason_is_the_lookup_reason_by_name_and_empty_when_found() {
        assert_eq!(serde_json::to_value(WireReason(None)).unwrap(), "");
        for reason in LookupReason::ALL {
            assert_eq!(
                serde_json::to_value(WireReason(Some(reason))).unwrap(),
                reason.as_str()
            );
        }
        assert_eq!(serde_json::to_value(WireKeyKind(None)).unwrap(), "");
    }
}
