//! Zendesk answers as data: search results into [`VendorRecord`]s, error answers into a small
//! [`ZendeskError`] that knows whether a retry helps, and the rate-limit headers into
//! [`RateLimitInfo`] (the adapter exports `remaining` as a gauge).
//!
//! Shapes: unified search answers `{"results":[{"result_type":"user","id":…,"updated_at":…}]}`
//! (api-reference/ticketing/ticket-management/search/), Search Users answers `{"users":[…]}`
//! (api-reference/ticketing/users/users/). Error bodies are `{"error","description"}` for search,
//! `{"error":"Couldn't authenticate you"}` for a bad API token, the OAuth form
//! `{"error":"invalid_token","error_description"}` for a bad bearer token, and plain text for a
//! 429 (developer.zendesk.com/api-reference/introduction/rate-limits; the OAuth error shape is
//! RFC 6750's).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::crm::vendor::VendorRecord;

/// Result fields that describe the search hit, not the user.
const METADATA: [&str; 2] = ["result_type", "url"];

/// The answer did not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected Zendesk answer: {0}")]
pub struct ShapeError(pub String);

/// Users from a unified-search (`results`) or Search Users (`users`) answer, in answer order.
/// Unified-search hits of another `result_type` (a ticket mentioning the number, say) are
/// skipped: only users are customers. A user without an integer or string `id` makes the whole
/// answer suspect and is an error, not a silent skip.
pub fn parse_users(body: &[u8]) -> Result<Vec<VendorRecord>, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError(format!("not JSON ({e})")))?;
    let object = value
        .as_object()
        .ok_or_else(|| ShapeError("not a JSON object".to_owned()))?;
    let (items, unified) = match (object.get("results"), object.get("users")) {
        (Some(Value::Array(items)), _) => (items, true),
        (None, Some(Value::Array(items))) => (items, false),
        _ => {
            return Err(ShapeError(
                "neither a `results` nor a `users` array".to_owned(),
            ))
        }
    };
    let mut records = Vec::with_capacity(items.len());
    for item in items {
        let user = item
            .as_object()
            .ok_or_else(|| ShapeError("a result is not an object".to_owned()))?;
        if unified && user.get("result_type").and_then(Value::as_str) != Some("user") {
            continue;
        }
        records.push(record(user)?);
    }
    Ok(records)
}

/// One user from `GET /api/v2/users/{id}.json` (`{"user":{…}}`).
pub fn parse_user(body: &[u8]) -> Result<VendorRecord, ShapeError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ShapeError(format!("not JSON ({e})")))?;
    let user = value
        .get("user")
        .and_then(Value::as_object)
        .ok_or_else(|| ShapeError("no `user` object".to_owned()))?;
    record(user)
}

fn record(user: &Map<String, Value>) -> Result<VendorRecord, ShapeError> {
    let record_id = match user.get("id") {
        Some(Value::Number(id)) => id.to_string(),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(ShapeError("a user has no id".to_owned())),
    };
    let fields: Map<String, Value> = user
        .iter()
        .filter(|(key, _)| !METADATA.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    Ok(VendorRecord {
        record_type: "user".to_owned(),
        record_id,
        last_modified: user
            .get("updated_at")
            .and_then(Value::as_str)
            .map(str::to_owned),
        fields,
    })
}

/// What an error answer means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401: wrong email/token, revoked or expired OAuth token, or the method is disabled in
    /// Admin Center. Retrying with the same credentials does not help; a fresh OAuth token may.
    Unauthorized,
    /// 403: authenticated but not allowed (e.g. an end user's token, a missing OAuth scope).
    Forbidden,
    /// 404.
    NotFound,
    /// 400/422 with `"error":"invalid"`: the query itself is wrong; never retried.
    InvalidQuery,
    /// 429: wait `retry_after` (Zendesk always sends `Retry-After` in seconds).
    RateLimited,
    /// 503, or a search answering `"error":"unavailable"` ("Please try again in a moment").
    Unavailable,
    /// Any other 5xx.
    Server,
    /// Anything else (other 4xx).
    Other,
}

/// A Zendesk error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZendeskError {
    pub status: u16,
    pub kind: ErrorKind,
    /// `error`, e.g. `invalid`, `unavailable`, `invalid_token`, `Couldn't authenticate you`.
    pub code: Option<String>,
    /// `description` / `error_description`, or the plain-text body of a 429.
    pub description: Option<String>,
    pub retry_after: Option<Duration>,
}

impl ZendeskError {
    /// Whether the same request can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited | ErrorKind::Unavailable | ErrorKind::Server
        )
    }

    /// Whether the credentials (not the request) are the problem.
    pub fn is_auth_failure(&self) -> bool {
        self.kind == ErrorKind::Unauthorized
    }
}

/// Interprets an error answer. `retry_after` is the raw `Retry-After` header value; Zendesk
/// sends delay-seconds ("tells you how many seconds to wait", api-reference/introduction/
/// rate-limits). An HTTP-date or garbage is ignored rather than guessed at.
pub fn parse_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> ZendeskError {
    let json: Option<Map<String, Value>> = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().cloned());
    let text = |key: &str| {
        json.as_ref()
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = text("error");
    let description = text("description")
        .or_else(|| text("error_description"))
        .or_else(|| {
            // The 429 body is plain text, e.g. "Number of allowed API requests per minute exceeded".
            json.is_none()
                .then(|| {
                    String::from_utf8_lossy(body)
                        .trim()
                        .chars()
                        .take(200)
                        .collect::<String>()
                })
                .filter(|s| !s.is_empty())
        });
    let kind = match (status, code.as_deref()) {
        (429, _) => ErrorKind::RateLimited,
        (401, _) => ErrorKind::Unauthorized,
        (403, _) => ErrorKind::Forbidden,
        (404, _) => ErrorKind::NotFound,
        (_, Some("unavailable")) => ErrorKind::Unavailable,
        (400 | 422, _) => ErrorKind::InvalidQuery,
        (503, _) => ErrorKind::Unavailable,
        (500..=599, _) => ErrorKind::Server,
        _ => ErrorKind::Other,
    };
    ZendeskError {
        status,
        kind,
        code,
        description,
        retry_after: retry_after.and_then(parse_delay_seconds),
    }
}

fn parse_delay_seconds(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The rate-limit headers of one answer (every answer has the account-wide pair; list
/// endpoints add the `ratelimit-*` trio; search adds its own endpoint header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitInfo {
    /// `X-Rate-Limit`: the account's requests per minute.
    pub limit: Option<u64>,
    /// `X-Rate-Limit-Remaining` (or `ratelimit-remaining`): left in the current minute.
    pub remaining: Option<u64>,
    /// `ratelimit-reset`: seconds until the minute resets.
    pub reset: Option<Duration>,
    /// `Zendesk-RateLimit-search-index: total=…; remaining=…; resets=…`.
    pub search_remaining: Option<u64>,
    pub search_resets: Option<Duration>,
}

/// Reads the headers through `header(name)` (case-insensitive lookup is the caller's: HTTP
/// header maps already are), so this stays free of any HTTP client type.
pub fn rate_limit_info<'a>(header: impl Fn(&str) -> Option<&'a str>) -> RateLimitInfo {
    let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
    let mut info = RateLimitInfo {
        limit: number("x-rate-limit").or_else(|| number("ratelimit-limit")),
        remaining: number("x-rate-limit-remaining").or_else(|| number("ratelimit-remaining")),
        reset: number("ratelimit-reset").map(Duration::from_secs),
        ..RateLimitInfo::default()
    };
    if let Some(search) = header("zendesk-ratelimit-search-index") {
        for part in search.split(';') {
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<u64>() else {
                continue;
            };
            match key.trim() {
                "remaining" => info.search_remaining = Some(value),
                "resets" => info.search_resets = Some(Duration::from_secs(value)),
                _ => {}
            }
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unified_search_users_become_records_and_other_result_types_are_skipped() {
        let body = json!({
            "count": 2, "facets": null, "next_page": null, "previous_page": null,
            "results": [
                {"result_type": "ticket", "id": 9, "subject": "call from 5135557611"},
                {"result_type": "user", "id": 35436, "url": "https://acme.zendesk.com/api/v2/users/35436.json",
                 "name": "Ada", "phone": "+15135557611", "updated_at": "2024-05-05T10:38:52Z",
                 "user_fields": {"tier": "gold"}}
            ]
        });
        let records = parse_users(body.to_string().as_bytes()).expect("records");
        assert_eq!(records.len(), 1);
        let ada = &records[0];
        assert_eq!(ada.record_type, "user");
        assert_eq!(ada.record_id, "35436");
        assert_eq!(ada.last_modified.as_deref(), Some("2024-05-05T10:38:52Z"));
        assert_eq!(ada.fields.get("name"), Some(&json!("Ada")));
        assert_eq!(
            ada.fields.get("user_fields"),
            Some(&json!({"tier": "gold"}))
        );
        assert!(!ada.fields.contains_key("result_type"));
        assert!(!ada.fields.contains_key("url"));
    }

    #[test]
    fn search_users_answers_and_single_users_parse_too() {
        let body = json!({"users": [{"id": 1, "updated_at": null}, {"id": "2"}]});
        let records = parse_users(body.to_string().as_bytes()).expect("records");
        assert_eq!(
            records
                .iter()
                .map(|r| r.record_id.as_str())
                .collect::<Vec<_>>(),
            ["1", "2"]
        );
        assert_eq!(records[0].last_modified, None);
        let one = parse_user(
            json!({"user": {"id": 7, "updated_at": "t"}})
                .to_string()
                .as_bytes(),
        )
        .expect("user");
        assert_eq!(
            (one.record_id.as_str(), one.last_modified.as_deref()),
            ("7", Some("t"))
        );
    }

    #[test]
    fn wrong_shapes_are_errors_not_empty_results() {
        for body in [
            "<html>oops</html>",
            "[]",
            "{}",
            r#"{"results": "none"}"#,
            r#"{"results": [1]}"#,
            r#"{"users": [{"name": "no id"}]}"#,
            r#"{"results": [{"result_type": "user", "id": null}]}"#,
        ] {
            assert!(
                parse_users(body.as_bytes()).is_err(),
                "{body} must be refused"
            );
        }
        assert!(parse_user(br#"{"users": []}"#).is_err());
        assert_eq!(parse_users(br#"{"results": []}"#).map(|r| r.len()), Ok(0));
    }

    #[test]
    fn a_429_is_rate_limited_with_the_retry_after_seconds_and_the_text_body() {
        let error = parse_error(
            429,
            Some("37"),
            b"Number of allowed API requests per minute exceeded",
        );
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert_eq!(error.retry_after, Some(Duration::from_secs(37)));
        assert_eq!(
            error.description.as_deref(),
            Some("Number of allowed API requests per minute exceeded")
        );
        assert!(error.is_retryable());
        assert_eq!(
            parse_error(429, Some("Wed, 21 Oct 2015 07:28:00 GMT"), b"").retry_after,
            None
        );
    }

    #[test]
    fn auth_failures_are_not_retryable_and_say_so() {
        let basic = parse_error(401, None, br#"{"error":"Couldn't authenticate you"}"#);
        assert_eq!(basic.kind, ErrorKind::Unauthorized);
        assert_eq!(basic.code.as_deref(), Some("Couldn't authenticate you"));
        assert!(basic.is_auth_failure() && !basic.is_retryable());
        let oauth = parse_error(
            401,
            None,
            br#"{"error":"invalid_token","error_description":"The access token provided is expired, revoked, malformed or invalid for other reasons."}"#,
        );
        assert_eq!(oauth.code.as_deref(), Some("invalid_token"));
        assert!(oauth.description.is_some_and(|d| d.contains("expired")));
    }

    #[test]
    fn invalid_queries_and_unavailable_search_are_told_apart() {
        let invalid = parse_error(
            422,
            None,
            br#"{"error":"invalid","description":"Invalid search: x"}"#,
        );
        assert_eq!(invalid.kind, ErrorKind::InvalidQuery);
        assert!(!invalid.is_retryable());
        let unavailable = parse_error(
            400,
            None,
            br#"{"error":"unavailable","description":"Sorry, we could not complete your search query. Please try again in a moment."}"#,
        );
        assert_eq!(unavailable.kind, ErrorKind::Unavailable);
        assert!(unavailable.is_retryable());
        assert_eq!(parse_error(503, None, b"").kind, ErrorKind::Unavailable);
        assert_eq!(parse_error(502, None, b"<html>").kind, ErrorKind::Server);
        assert_eq!(parse_error(409, None, b"").kind, ErrorKind::Other);
        assert_eq!(parse_error(404, None, b"").kind, ErrorKind::NotFound);
    }

    #[test]
    fn rate_limit_headers_are_read_including_the_search_endpoint_header() {
        let headers = [
            ("x-rate-limit", "700"),
            ("x-rate-limit-remaining", "699"),
            ("ratelimit-reset", "41"),
            (
                "zendesk-ratelimit-search-index",
                "total=2500; remaining=2499; resets=41",
            ),
        ];
        let info = rate_limit_info(|name| {
            headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| *value)
        });
        assert_eq!(info.limit, Some(700));
        assert_eq!(info.remaining, Some(699));
        assert_eq!(info.reset, Some(Duration::from_secs(41)));
        assert_eq!(info.search_remaining, Some(2499));
        assert_eq!(info.search_resets, Some(Duration::from_secs(41)));
        assert_eq!(rate_limit_info(|_| None), RateLimitInfo::default());
        let garbled = rate_limit_info(|name| {
            (name == "zendesk-ratelimit-search-index").then_some("x; remaining=;=")
        });
        assert_eq!(garbled.search_remaining, None);
    }
}
