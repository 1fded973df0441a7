//! Genesys' error answers: the `ErrorBody` shape (`message`, `code`, `status`, `contextId`,
//! `details`, `errors`), the normalized 429, and the `inin-correlation-id` header.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::CORRELATION_ID;

/// A Genesys `ErrorBody` response; `contextId` and `ININ-Correlation-Id` are generated together
/// when it is rendered.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) details: Vec<ErrorDetail>,
    pub(super) retry_after: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorDetail {
    pub(super) error_code: &'static str,
    pub(super) field_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorBody<'a> {
    pub(super) message: &'a str,
    pub(super) code: &'a str,
    pub(super) status: u16,
    pub(super) context_id: &'a str,
    pub(super) details: &'a [ErrorDetail],
    pub(super) errors: Vec<Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    pub(super) fn authentication_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
        )
    }

    /// Genesys does not document a distinct code for expired tokens; `bad.credentials` is the
    /// documented 401 for a token it does not accept.
    pub(super) fn bad_credentials() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "bad.credentials",
            "Invalid login credentials.",
        )
    }

    /// The 429 normalized in 2021: fixed message and code, no details ([F429]).
    pub(super) fn too_many_requests(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too.many.requests.retry.after",
                format!(
                    "Rate limit exceeded the maximum. Retry the request in [{retry_after_secs}] seconds"
                ),
            )
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad.request", message)
    }

    pub(super) fn not_found() -> Self {
        Self::for_status(StatusCode::NOT_FOUND)
    }

    /// The error Genesys documents for `status` on these endpoints, with its standard message.
    pub(super) fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::BAD_REQUEST => (
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            ),
            StatusCode::UNAUTHORIZED => return Self::bad_credentials(),
            // The 403 codes of these operations are `missing.permissions`, `not.authorized` and
            // `missing.any.permissions` (SW18 `x-inin-error-codes`); this message is
            // `not.authorized`'s (`missing.permissions` reads "Unable to perform the requested action. You
            // are missing the following permission(s): %s", and needs the permission named).
            StatusCode::FORBIDDEN => (
                "not.authorized",
                "You are not authorized to perform the requested action.",
            ),
            StatusCode::NOT_FOUND => ("not.found", "The requested resource was not found."),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported.media.type",
                "Unsupported Media Type - Unsupported or incorrect media type, such as an incorrect Content-Type value in the header.",
            ),
            StatusCode::TOO_MANY_REQUESTS => return Self::too_many_requests(1),
            StatusCode::SERVICE_UNAVAILABLE => (
                "service.unavailable",
                "Service Unavailable - The server is currently unavailable (because it is overloaded or down for maintenance).",
            ),
            StatusCode::GATEWAY_TIMEOUT => (
                "request.timeout",
                "The request timed out.",
            ),
            s if s.is_client_error() => (
                "bad.request",
                "The request could not be understood by the server due to malformed syntax.",
            ),
            _ => (
                "internal.server.error",
                "The server encountered an unexpected condition which prevented it from fulfilling the request.",
            ),
        };
        Self::new(status, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let context_id = Uuid::new_v4().to_string();
        let body = ErrorBody {
            message: &self.message,
            code: self.code,
            status: self.status.as_u16(),
            context_id: &context_id,
            details: &self.details,
            errors: Vec::new(),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&context_id) {
            headers.insert(CORRELATION_ID.clone(), value);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Accepts `expected` with or without parameters such as `; charset=utf-8`.
pub(super) fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let matches = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected));
    if matches {
        Ok(())
    } else {
        Err(ApiError::for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
    }
}
