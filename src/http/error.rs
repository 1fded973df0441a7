//! `ApiError`, the one error type at the HTTP edge, and `ErrorBody`, the one error body on the
//! wire: client errors name the problem (and the field, or why credentials were refused);
//! server errors are opaque and logged here, once. The `code` and `reason` values are enums, so
//! the OpenAPI document lists exactly what is sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::ingest::InvalidField;
use crate::queue::QueueError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON (or is nested deeper than serde_json allows).
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    /// 415: the body was not declared as JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 413: larger than `server.body_limit_bytes`.
    #[error("the body is larger than the {0} bytes accepted")]
    PayloadTooLarge(usize),
    /// 422: JSON, but not what this endpoint takes.
    #[error("{0}")]
    InvalidField(#[from] InvalidField),
    /// 401: the credentials are missing or wrong (logged and counted by the auth middleware).
    #[error("{}", .refusal.message())]
    Unauthorized {
        refusal: Refusal,
        /// The `WWW-Authenticate` challenge of the group's mode, if it has one.
        challenge: Option<&'static str>,
    },
    /// 403: the source address or the client certificate is not allowed for the endpoint group
    /// (logged and counted by the source guard).
    #[error("{}", .0.message())]
    Forbidden(SourceRefusal),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, not with this method.
    #[error("this endpoint does not take {0}")]
    MethodNotAllowed(String),
    /// 408: the request took longer than `server.request_timeout_ms`.
    #[error("the request took longer than the {0} ms allowed")]
    Timeout(u64),
    /// 503 + Retry-After: more than `server.max_concurrent_requests` in flight (load shedding).
    #[error("attrsync is overloaded; retry later")]
    Overloaded,
    /// 503 + Retry-After: the queue is full or unavailable, or attrsync is shutting down.
    #[error("{0}; retry later")]
    Unavailable(#[from] QueueError),
    /// 500: logged; the client learns nothing of the cause.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// Machine-readable error codes: the `code` of every error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidField,
    Unauthorized,
    ForbiddenSource,
    ClientCertificateRequired,
    ClientCertificateNotAllowed,
    NotFound,
    MethodNotAllowed,
    Timeout,
    Overloaded,
    ShuttingDown,
    QueueUnavailable,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::InvalidJson,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::InvalidField,
        ErrorCode::Unauthorized,
        ErrorCode::ForbiddenSource,
        ErrorCode::ClientCertificateRequired,
        ErrorCode::ClientCertificateNotAllowed,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Timeout,
        ErrorCode::Overloaded,
        ErrorCode::ShuttingDown,
        ErrorCode::QueueUnavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::ForbiddenSource => "forbidden_source",
            ErrorCode::ClientCertificateRequired => "client_certificate_required",
            ErrorCode::ClientCertificateNotAllowed => "client_certificate_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::QueueUnavailable => "queue_unavailable",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Why a request was refused with 401: the `reason` of its error body and the `reason` label
/// of `attrsync_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    MissingCredentials,
    InvalidCredentials,
    TimestampOutOfTolerance,
    Replayed,
}

impl Refusal {
    pub const ALL: [Refusal; 4] = [
        Refusal::MissingCredentials,
        Refusal::InvalidCredentials,
        Refusal::TimestampOutOfTolerance,
        Refusal::Replayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::MissingCredentials => "missing_credentials",
            Refusal::InvalidCredentials => "invalid_credentials",
            Refusal::TimestampOutOfTolerance => "timestamp_out_of_tolerance",
            Refusal::Replayed => "replayed",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::MissingCredentials => "credentials are required",
            Refusal::InvalidCredentials => "the credentials are not valid",
            Refusal::TimestampOutOfTolerance => {
                "the webhook-timestamp is outside the 5-minute tolerance"
            }
            Refusal::Replayed => "this webhook-id was already accepted",
        }
    }
}

/// Why a request was refused with 403 before its credentials were looked at: the `reason`
/// label of `attrsync_http_refusals_total`. The body's `code` says the same, except that
/// `ranges_unavailable` is answered as `forbidden_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRefusal {
    /// The client address is not in the group's allow-list (or is unknown).
    ForbiddenSource,
    /// The group follows Genesys's published ranges, none have been read yet, and the client
    /// address is not in the group's own `allow_from`.
    RangesUnavailable,
    /// No verified client certificate on the connection.
    ClientCertificateRequired,
    /// A verified certificate, but with none of the group's `client_cert_subjects`.
    ClientCertificateNotAllowed,
}

impl SourceRefusal {
    pub const ALL: [SourceRefusal; 4] = [
        SourceRefusal::ForbiddenSource,
        SourceRefusal::RangesUnavailable,
        SourceRefusal::ClientCertificateRequired,
        SourceRefusal::ClientCertificateNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceRefusal::ForbiddenSource => "forbidden_source",
            SourceRefusal::RangesUnavailable => "ranges_unavailable",
            SourceRefusal::ClientCertificateRequired => "client_certificate_required",
            SourceRefusal::ClientCertificateNotAllowed => "client_certificate_not_allowed",
        }
    }

    fn code(self) -> ErrorCode {
        match self {
            SourceRefusal::ForbiddenSource | SourceRefusal::RangesUnavailable => {
                ErrorCode::ForbiddenSource
            }
            SourceRefusal::ClientCertificateRequired => ErrorCode::ClientCertificateRequired,
            SourceRefusal::ClientCertificateNotAllowed => ErrorCode::ClientCertificateNotAllowed,
        }
    }

    fn message(self) -> &'static str {
        match self {
            SourceRefusal::ForbiddenSource => "requests from this address are not allowed here",
            SourceRefusal::RangesUnavailable => {
                "requests from this address are not allowed here (Genesys's published address ranges are not loaded yet)"
            }
            SourceRefusal::ClientCertificateRequired => {
                "a client certificate is required (mutual TLS)"
            }
            SourceRefusal::ClientCertificateNotAllowed => {
                "the client certificate does not name a subject allowed here"
            }
        }
    }
}

/// The body of every 4xx/5xx answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    #[schema(example = "invalid_field")]
    pub code: ErrorCode,
    #[schema(example = "conversationId: is required")]
    pub message: String,
    /// The JSON path of the offending field, for invalid_field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "conversationId")]
    pub field: Option<String>,
    /// Why the credentials were refused, for unauthorized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
}

impl ErrorBody {
    /// The opaque body of a 500, also answered when a handler panics.
    pub fn internal() -> Self {
        ErrorBody {
            code: ErrorCode::Internal,
            message: "internal error".to_owned(),
            field: None,
            reason: None,
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Overloaded | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::InvalidJson(_) => ErrorCode::InvalidJson,
            ApiError::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            ApiError::PayloadTooLarge(_) => ErrorCode::PayloadTooLarge,
            ApiError::InvalidField(_) => ErrorCode::InvalidField,
            ApiError::Unauthorized { .. } => ErrorCode::Unauthorized,
            ApiError::Forbidden(refusal) => refusal.code(),
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::Timeout(_) => ErrorCode::Timeout,
            ApiError::Overloaded | ApiError::Unavailable(QueueError::Full) => ErrorCode::Overloaded,
            ApiError::Unavailable(QueueError::Closed) => ErrorCode::ShuttingDown,
            ApiError::Unavailable(QueueError::Unavailable) => ErrorCode::QueueUnavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn log(&self) {
        let status = self.status().as_u16();
        let code = self.code().as_str();
        match self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            ApiError::Unavailable(e) => tracing::warn!(error = %e, "request refused"),
            ApiError::Overloaded => tracing::warn!(code, "request shed"),
            ApiError::Timeout(_) => tracing::warn!(status, code, "request timed out"),
            // The auth middleware and the source guard log and count refusals themselves.
            ApiError::Unauthorized { .. } | ApiError::Forbidden(_) => {}
            // Not the message: serde's text can quote the offending value (a phone number, an
            // email). The code and the field are enough to find the problem.
            ApiError::InvalidField(f) => {
                tracing::info!(status, code, field = %f.field, "bad request");
            }
            _ => tracing::info!(status, code, "bad request"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            field: match &self {
                ApiError::InvalidField(f) => Some(f.field.clone()),
                _ => None,
            },
            reason: match &self {
                ApiError::Unauthorized { refusal, .. } => Some(*refusal),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            ApiError::Overloaded | ApiError::Unavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Unauthorized {
                challenge: Some(challenge),
                ..
            } => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            _ => {}
        }
        response
    }
}

/// The answers of a route that takes a JSON body, given before its handler runs (OpenAPI).
#[derive(utoipa::IntoResponses)]
pub enum BadInput {
    /// Not JSON.
    #[response(status = 400)]
    InvalidJson(ErrorBody),
    /// Body too large.
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// Not declared as JSON.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// JSON, but not usable here; `field` names the problem.
    #[response(status = 422)]
    InvalidField(ErrorBody),
}

/// Refused before the handler ran (OpenAPI, every guarded route).
#[derive(utoipa::IntoResponses)]
pub enum Refused {
    /// Credentials missing or wrong; `reason` says which.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The source address is not allowed (`forbidden_source`), or the client certificate is
    /// missing (`client_certificate_required`) or names no allowed subject
    /// (`client_certificate_not_allowed`).
    #[response(status = 403)]
    Forbidden(ErrorBody),
}

/// The queue is full, unavailable or shutting down, or too many requests are in flight: retry
/// after `Retry-After` (OpenAPI).
#[derive(utoipa::IntoResponses)]
#[response(status = 503)]
pub struct Unavailable(pub ErrorBody);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons_go_on_the_wire_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        for refusal in Refusal::ALL {
            assert_eq!(serde_json::to_value(refusal).unwrap(), refusal.as_str());
        }
    }

    #[test]
    fn a_source_refusal_is_a_403_whose_code_names_it() {
        for refusal in SourceRefusal::ALL {
            let error = ApiError::Forbidden(refusal);
            assert_eq!(error.status(), StatusCode::FORBIDDEN);
            let expected = match refusal {
                SourceRefusal::RangesUnavailable => "forbidden_source",
                other => other.as_str(),
            };
            assert_eq!(error.code().as_str(), expected);
        }
    }

    #[test]
    fn load_shedding_does_not_claim_the_queue_is_full() {
        let shed = ApiError::Overloaded;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.code(), ErrorCode::Overloaded);
        assert!(!shed.to_string().contains("queue"), "{shed}");
    }
}
