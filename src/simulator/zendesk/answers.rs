//! The Zendesk simulator's answers that are not successes, rendered the way Zendesk renders
//! them (error bodies, the plain-text 429 with `Retry-After`, scripted faults), and the
//! rate-limit headers every answer past authentication carries.

use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::state::Charge;

const RATE_LIMITED_TEXT: &str = "Number of allowed API requests per minute exceeded";

/// Every answer that is not a success, rendered the way Zendesk renders it. Kept as data (not a
/// `Response`) until the edge so the gate's results stay small and testable.
pub(super) enum Reject {
    CouldntAuthenticate,
    InvalidToken,
    InvalidSearch(String),
    BadRequest(String),
    NotFound,
    Unavailable,
    TooManyRequests {
        limit: u32,
        search: Option<u32>,
        wait: Duration,
    },
    Scripted(u16),
    Garbage,
    WrongShape,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        match self {
            Reject::CouldntAuthenticate => couldnt_authenticate(),
            Reject::InvalidToken => invalid_token(),
            Reject::InvalidSearch(reason) => invalid_search(&reason),
            Reject::BadRequest(reason) => {
                zendesk_error(StatusCode::BAD_REQUEST, "invalid", &reason)
            }
            Reject::NotFound => zendesk_error(StatusCode::NOT_FOUND, "RecordNotFound", "Not found"),
            Reject::Unavailable => unavailable(),
            Reject::TooManyRequests {
                limit,
                search,
                wait,
            } => too_many_requests(limit, search, wait),
            Reject::Scripted(status) => scripted(status),
            Reject::Garbage => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>Zendesk is briefly unavailable</body></html>",
            )
                .into_response(),
            Reject::WrongShape => Json(
                json!({"results": "unavailable", "users": "unavailable", "user": "unavailable"}),
            )
            .into_response(),
        }
    }
}

pub(super) fn zendesk_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "description": description})),
    )
        .into_response()
}

fn couldnt_authenticate() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "Couldn't authenticate you"})),
    )
        .into_response()
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "error": "invalid_token",
            "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."
        })),
    )
        .into_response()
}

fn invalid_search(description: &str) -> Response {
    zendesk_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        &format!("Invalid search: {description}"),
    )
}

fn unavailable() -> Response {
    zendesk_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Sorry, we could not complete your search query. Please try again in a moment.",
    )
}

/// The 429: plain text, `Retry-After` in seconds (rounded up so waiting exactly that long is
/// enough), and the account headers showing nothing left.
fn too_many_requests(limit: u32, search: Option<u32>, wait: Duration) -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain")],
        RATE_LIMITED_TEXT,
    )
        .into_response();
    let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    let exhausted = Charge {
        limit,
        remaining: 0,
        resets_in: wait,
        search: search.map(|total| (total, 0)),
        rejected: Some(wait),
    };
    put_rate_headers(headers, &exhausted);
    response
}

fn scripted(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        StatusCode::UNAUTHORIZED => couldnt_authenticate(),
        StatusCode::TOO_MANY_REQUESTS => {
            let mut response = (
                status,
                [(header::CONTENT_TYPE, "text/plain")],
                RATE_LIMITED_TEXT,
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            response
        }
        StatusCode::SERVICE_UNAVAILABLE => unavailable(),
        StatusCode::NOT_FOUND => zendesk_error(status, "RecordNotFound", "Not found"),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            zendesk_error(status, "invalid", "Invalid search: scripted fault")
        }
        // The 403 and 5xx wording is unverified; clients must not depend on it.
        StatusCode::FORBIDDEN => {
            zendesk_error(status, "Forbidden", "You do not have access to this page.")
        }
        other => zendesk_error(other, "InternalError", "Something went wrong"),
    }
}

pub(super) fn put_rate_headers(headers: &mut HeaderMap, charge: &Charge) {
    let mut put = |name: &'static str, value: u64| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    };
    put("x-rate-limit", charge.limit.into());
    put("x-rate-limit-remaining", charge.remaining.into());
    put("ratelimit-limit", charge.limit.into());
    put("ratelimit-remaining", charge.remaining.into());
    put("ratelimit-reset", charge.resets_in.as_secs());
    if let Some((total, remaining)) = charge.search {
        let value = format!(
            "total={total}; remaining={remaining}; resets={}",
            charge.resets_in.as_secs()
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(
                HeaderName::from_static("zendesk-ratelimit-search-index"),
                value,
            );
        }
    }
}
