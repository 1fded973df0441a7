//! `ApiError`, the one error type at the HTTP edge, and `StrictJson`, the body extractor that
//! turns bad input into it. Client errors get a JSON body naming the problem; server errors get
//! an opaque body and are logged here, once.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
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
    /// 503 + Retry-After: the queue is full or unavailable, or attrsync is shutting down.
    #[error("{0}; retry later")]
    Unavailable(#[from] QueueError),
    /// 500: logged; the client learns nothing of the cause.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

/// The body of every 4xx/5xx answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// Machine-readable: invalid_json, unsupported_media_type, payload_too_large, invalid_field,
    /// overloaded, shutting_down, internal.
    #[schema(example = "invalid_field")]
    code: &'a str,
    #[schema(example = "conversationId: is required")]
    message: String,
    /// The JSON path of the offending field, for invalid_field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "conversationId")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidField(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::InvalidField(_) => "invalid_field",
            ApiError::Unavailable(QueueError::Full) => "overloaded",
            ApiError::Unavailable(QueueError::Closed) => "shutting_down",
            ApiError::Unavailable(QueueError::Unavailable) => "queue_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(e) => tracing::error!(error = ?e, "request failed"),
            ApiError::Unavailable(e) => tracing::warn!(error = %e, "request refused"),
            // Not the message: serde's text can quote the offending value (a phone number, an
            // email). The code and the field are enough to find the problem.
            ApiError::InvalidField(f) => {
                tracing::info!(status = status.as_u16(), code = self.code(), field = %f.field, "bad request")
            }
            _ => tracing::info!(status = status.as_u16(), code = self.code(), "bad request"),
        }
        let body = ErrorBody {
            code: self.code(),
            message: self.to_string(),
            field: match &self {
                ApiError::InvalidField(f) => Some(f.field.as_str()),
                _ => None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if matches!(self, ApiError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON body parsed strictly: JSON content type required, size limited, syntax errors are 400,
/// shape errors are 422 naming the JSON path of the bad field.
pub struct StrictJson<T>(pub T);

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime_like::Essence>().ok())
            .is_some_and(|m| m.is_json());
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map(|l| l.0)
            .unwrap_or(usize::MAX);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(limit)
            } else {
                ApiError::InvalidJson("the body could not be read".to_owned())
            }
        })?;
        // Every endpoint takes an object. serde would also read a struct from a positional
        // array (`["e1","c1"]`), which no sender means and strict parsing must refuse.
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{')
            && serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok()
        {
            return Err(ApiError::InvalidField(InvalidField {
                field: "$".to_owned(),
                reason: "expected a JSON object".to_owned(),
            }));
        }
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => ApiError::InvalidField(InvalidField {
                    field: if path == "." { "$".to_owned() } else { path },
                    reason: inner.to_string(),
                }),
                _ => ApiError::InvalidJson(inner.to_string()),
            }
        })?;
        de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        Ok(StrictJson(value))
    }
}

/// The configured body limit, put in request extensions so the extractor can say it in errors.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

mod mime_like {
    //! Just enough media-type parsing to accept `application/json`, `application/json;
    //! charset=utf-8` and `application/*+json`.
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s.split(';').next().ok_or(())?.trim().to_ascii_lowercase();
            Ok(Essence(essence))
        }
    }

    impl Essence {
        pub fn is_json(&self) -> bool {
            self.0 == "application/json"
                || (self.0.starts_with("application/") && self.0.ends_with("+json"))
        }
    }
}
