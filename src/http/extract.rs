//! Extractors: `StrictJson`, the body extractor that turns bad input into an [`ApiError`]
//! naming the problem, and `RequestIdText`, the request's id for the worker's log lines.

use std::convert::Infallible;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use tower_http::request_id::RequestId;

use super::error::ApiError;
use crate::ingest::InvalidField;

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

/// The request's `x-request-id` (set by the middleware stack) as text; empty if it has none.
pub struct RequestIdText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestIdText {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestIdText(
            parts
                .extensions
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        ))
    }
}

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
