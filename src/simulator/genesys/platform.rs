//! The Platform API and login host: `POST /oauth/token`, `GET /api/v2/conversations/{id}`,
//! `PATCH .../participants/{pid}/attributes`, behind the gate described in the parent module,
//! and `GET /api/v2/ipranges` (`ipranges`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{middleware, Json, Router};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::admin::admin_routes;
use super::errors::{require_content_type, ApiError, ErrorDetail};
use super::ipranges;
use super::state::{bump, Shared};
use super::unsettled::{EmptyPatch, EndedPatch, TokenErrors};
use super::views::ConversationView;
use super::{Op, CORRELATION_ID, FORM_CONTENT_TYPE, JSON_CONTENT_TYPE};
use crate::simulator::lock;

pub(super) fn app(shared: Arc<Shared>) -> Router {
    let genesys = Router::new()
        .route("/oauth/token", post(issue_token))
        .route(
            "/api/v2/conversations/{conversation_id}",
            get(get_conversation),
        )
        .route(
            "/api/v2/conversations/{conversation_id}/participants/{participant_id}/attributes",
            patch(patch_attributes),
        )
        .route("/api/v2/ipranges", get(ipranges::get_ip_ranges))
        .fallback(|| async { ApiError::not_found() })
        // Genesys puts a correlation id on every response, not just on errors.
        .layer(middleware::map_response(ensure_correlation_id));
    Router::new()
        .nest("/sim", admin_routes().merge(ipranges::admin_routes()))
        .merge(genesys)
        .with_state(shared)
}

pub(super) async fn ensure_correlation_id(mut response: Response) -> Response {
    if !response.headers().contains_key(&CORRELATION_ID) {
        if let Ok(value) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
            response.headers_mut().insert(CORRELATION_ID.clone(), value);
        }
    }
    response
}

#[derive(Serialize)]
pub(super) struct TokenResponse {
    pub(super) access_token: String,
    pub(super) token_type: &'static str,
    pub(super) expires_in: u64,
}

pub(super) async fn issue_token(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TokenResponse>, Response> {
    bump(sim.counters.calls(Op::Token));
    sim.apply_scripted_fault(Op::Token)
        .await
        .map_err(IntoResponse::into_response)?;
    let style = lock(&sim.unsettled).token_errors;
    let refuse = |error: ApiError, oauth_code: &str| match style {
        TokenErrors::Platform => error.into_response(),
        // RFC 6749 section 5.2's error response.
        TokenErrors::Oauth => (
            error.status,
            Json(serde_json::json!({"error": oauth_code, "error_description": error.message})),
        )
            .into_response(),
    };
    sim.check_client_credentials(&headers)
        .map_err(|e| refuse(e, "invalid_client"))?;
    require_content_type(&headers, FORM_CONTENT_TYPE).map_err(|e| refuse(e, "invalid_request"))?;
    let grant_type = url::form_urlencoded::parse(&body)
        .find(|(key, _)| key == "grant_type")
        .map(|(_, value)| value);
    if grant_type.as_deref() != Some("client_credentials") {
        return Err(refuse(
            ApiError::bad_request("Invalid grant_type; this client supports client_credentials."),
            "unsupported_grant_type",
        ));
    }
    Ok(Json(TokenResponse {
        access_token: sim.issue_token(),
        token_type: "bearer",
        expires_in: sim.token_lifetime.as_secs(),
    }))
}

pub(super) async fn get_conversation(
    State(sim): State<Arc<Shared>>,
    Path(conversation_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    sim.admit_api_call(Op::GetConversation, &headers).await?;
    let conversations = lock(&sim.conversations);
    let conversation = conversations
        .get(&conversation_id)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(ConversationView::from(conversation)).into_response())
}

pub(super) async fn patch_attributes(
    State(sim): State<Arc<Shared>>,
    Path((conversation_id, participant_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    sim.admit_api_call(Op::PatchAttributes, &headers).await?;
    require_content_type(&headers, JSON_CONTENT_TYPE)?;
    // The body is validated before the conversation is looked up, as a framework that
    // deserializes the request before calling the service would.
    let unsettled = *lock(&sim.unsettled);
    let attributes = match parse_attributes_body(&body) {
        Err(_) if unsettled.empty_patch == EmptyPatch::Accepted && is_empty_object(&body) => {
            return Ok(StatusCode::ACCEPTED);
        }
        other => other?,
    };
    let mut conversations = lock(&sim.conversations);
    let conversation = conversations
        .get_mut(&conversation_id)
        .ok_or_else(ApiError::not_found)?;
    if conversation.end_time.is_some() {
        return match unsettled.ended_patch {
            EndedPatch::NotFound => Err(ApiError::not_found()),
            // Accepted, and not kept: analytics "does not save" it.
            EndedPatch::AcceptedNotKept => Ok(StatusCode::ACCEPTED),
        };
    }
    let participant = conversation
        .participant_mut(&participant_id)
        .ok_or_else(ApiError::not_found)?;
    // Upsert: merge semantics are undocumented; this is the working assumption of the
    // reference (official samples send only the keys they set).
    participant.attributes.extend(attributes.clone());
    participant.patches.push(attributes);
    bump(&sim.counters.patches_accepted);
    Ok(StatusCode::ACCEPTED)
}

/// `{}`: a body with no `attributes` map at all.
fn is_empty_object(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()))
}

/// `ParticipantAttributes`: `{"attributes": {string: string}}`. All non-string values are
/// reported together so a client sees every offending key at once.
pub(super) fn parse_attributes_body(body: &[u8]) -> Result<BTreeMap<String, String>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            "The request could not be understood by the server due to malformed syntax.",
        )
    })?;
    let Some(Value::Object(attributes)) = value.get("attributes") else {
        return Err(ApiError::bad_request(
            "The request body must be an object with an \"attributes\" map of strings.",
        ));
    };
    let mut accepted = BTreeMap::new();
    let mut invalid = Vec::new();
    for (key, value) in attributes {
        match value {
            Value::String(text) => {
                accepted.insert(key.clone(), text.clone());
            }
            _ => invalid.push(ErrorDetail {
                error_code: "invalid.value",
                field_name: format!("attributes.{key}"),
            }),
        }
    }
    if invalid.is_empty() {
        Ok(accepted)
    } else {
        Err(ApiError {
            details: invalid,
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid.value",
                "Attribute values must be strings.",
            )
        })
    }
}
