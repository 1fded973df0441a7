//! HubSpot answers as data: search pages and single reads into [`VendorRecord`]s, and error
//! bodies into a [`HubSpotError`] that says whether a retry helps and how long to wait.
//!
//! Shapes from HubSpot's OpenAPI (HubSpot-public-api-spec-collection, CRM/Contacts v3):
//! `CollectionResponseWithTotalSimplePublicObject {total, results, paging.next.after}`,
//! `SimplePublicObject {id, properties, createdAt, updatedAt, archived}`, and `Error {category,
//! correlationId, message, subCategory, context, errors}`; the 429 body adds `policyName` and
//! `errorType: "RATE_LIMIT"` (developers.hubspot.com/docs/api/usage-details).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::crm::vendor::VendorRecord;

/// The answer did not have the documented shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected HubSpot answer: {0}")]
pub struct ShapeError(pub String);

/// One page of search results.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// `total`: all matches, not just this page.
    pub total: u64,
    pub records: Vec<VendorRecord>,
    /// `paging.next.after`, to pass as `after` for the next page.
    pub next_after: Option<String>,
}

/// A search answer. Archived contacts never appear in search, but one that does is skipped.
pub fn parse_search(body: &[u8]) -> Result<SearchPage, ShapeError> {
    let value = json_object(body)?;
    let results = value
        .get("results")
        .and_then(Value::as_array)
        .ok_or_else(|| ShapeError("no `results` array".to_owned()))?;
    let total = value
        .get("total")
        .and_then(Value::as_u64)
        .ok_or_else(|| ShapeError("no `total`".to_owned()))?;
    let mut records = Vec::with_capacity(results.len());
    for result in results {
        let object = result
            .as_object()
            .ok_or_else(|| ShapeError("a result is not an object".to_owned()))?;
        if object.get("archived").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        records.push(record(object)?);
    }
    let next_after = value
        .get("paging")
        .and_then(|p| p.get("next"))
        .and_then(|n| n.get("after"))
        .and_then(|a| match a {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Ok(SearchPage {
        total,
        records,
        next_after,
    })
}

/// A direct read (`GET /crm/v3/objects/contacts/{id}`).
pub fn parse_contact(body: &[u8]) -> Result<VendorRecord, ShapeError> {
    record(&json_object(body)?)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, ShapeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ShapeError("not a JSON object".to_owned())),
        Err(e) => Err(ShapeError(format!("not JSON ({e})"))),
    }
}

fn record(object: &Map<String, Value>) -> Result<VendorRecord, ShapeError> {
    let record_id = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Err(ShapeError("a record has no id".to_owned())),
    };
    let fields = match object.get("properties") {
        Some(Value::Object(properties)) => properties.clone(),
        _ => return Err(ShapeError("a record has no `properties` object".to_owned())),
    };
    let last_modified = object
        .get("updatedAt")
        .and_then(Value::as_str)
        .or_else(|| fields.get("lastmodifieddate").and_then(Value::as_str))
        .map(str::to_owned);
    Ok(VendorRecord {
        record_type: "contact".to_owned(),
        record_id,
        last_modified,
        fields,
    })
}

/// What an error answer means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401 `INVALID_AUTHENTICATION` / `EXPIRED_AUTHENTICATION`: the token is unknown, rotated,
    /// deactivated or expired. "401 is not a valid indicator that a new access token must be
    /// retrieved" for OAuth; for a static private-app token nothing but a new token helps.
    InvalidSession,
    /// 403 `MISSING_SCOPES` (the app lacks `crm.objects.contacts.read`) or another refusal.
    Forbidden,
    /// 404 `OBJECT_NOT_FOUND`: for a direct read this is "no such contact", not a failure.
    NotFound,
    /// 400 `VALIDATION_ERROR`, invalid JSON, too many filters: the request is wrong.
    Invalid,
    /// 429: wait [`HubSpotError::retry_after`].
    RateLimited,
    /// 5xx.
    Server,
    Other,
}

/// A HubSpot error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotError {
    pub status: u16,
    pub kind: ErrorKind,
    pub category: Option<String>,
    pub message: Option<String>,
    pub correlation_id: Option<String>,
    /// 429 only: `DAILY`, `TEN_SECONDLY_ROLLING`, `SECONDLY` (the search limit, as observed).
    pub policy_name: Option<String>,
    /// How long to wait before the same call can succeed; `None` when a wait will not help
    /// within a call's lifetime (the daily limit) or nothing is known.
    pub retry_after: Option<Duration>,
}

impl HubSpotError {
    /// Whether the same request can succeed later, soon enough to be worth a retry.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::RateLimited => self.policy_name.as_deref() != Some("DAILY"),
            ErrorKind::Server => true,
            _ => false,
        }
    }

    pub fn is_invalid_session(&self) -> bool {
        self.kind == ErrorKind::InvalidSession
    }
}

/// Interprets an error answer. HubSpot does not document a `Retry-After` on its 429s; one that
/// is present (delay-seconds) is honoured, otherwise the wait follows the policy: a secondly
/// limit clears within a second, the ten-secondly one within ten; the daily limit resets at the
/// account's midnight, far beyond any request, so no wait is offered.
pub fn parse_error(status: u16, retry_after: Option<&str>, body: &[u8]) -> HubSpotError {
    let json = json_object(body).ok();
    let text = |key: &str| {
        json.as_ref()
            .and_then(|o| o.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let category = text("category");
    let policy_name = text("policyName");
    let kind = match (status, category.as_deref()) {
        (429, _) => ErrorKind::RateLimited,
        (401, _) | (_, Some("INVALID_AUTHENTICATION" | "EXPIRED_AUTHENTICATION")) => {
            ErrorKind::InvalidSession
        }
        (403, _) => ErrorKind::Forbidden,
        (404, _) => ErrorKind::NotFound,
        (400 | 422, _) => ErrorKind::Invalid,
        (500..=599, _) => ErrorKind::Server,
        _ => ErrorKind::Other,
    };
    let header_wait = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let retry_after = match (kind, header_wait, policy_name.as_deref()) {
        (ErrorKind::RateLimited, Some(wait), _) => Some(wait),
        (ErrorKind::RateLimited, None, Some("DAILY")) => None,
        (ErrorKind::RateLimited, None, Some("TEN_SECONDLY_ROLLING")) => {
            Some(Duration::from_secs(10))
        }
        (ErrorKind::RateLimited, None, _) => Some(Duration::from_secs(1)),
        (_, wait, _) => wait,
    };
    HubSpotError {
        status,
        kind,
        category,
        message: text("message"),
        correlation_id: text("correlationId"),
        policy_name,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_search_page_becomes_contact_records_with_paging() {
        let body = json!({
            "total": 3,
            "results": [
                {"id": "100451", "properties": {"email": "a@hubspot.com", "hs_object_id": "100451",
                  "lastmodifieddate": "2024-09-11T13:27:39.356Z", "phone": null},
                 "createdAt": "2024-01-17T19:55:04.281Z", "updatedAt": "2024-09-11T13:27:39.356Z", "archived": false},
                {"id": "9", "properties": {}, "createdAt": "x", "updatedAt": "y", "archived": true}
            ],
            "paging": {"next": {"after": "10", "link": "?after=10"}}
        });
        let page = parse_search(body.to_string().as_bytes()).expect("page");
        assert_eq!(page.total, 3);
        assert_eq!(page.next_after.as_deref(), Some("10"));
        assert_eq!(page.records.len(), 1, "archived records are skipped");
        let record = &page.records[0];
        assert_eq!(record.record_type, "contact");
        assert_eq!(record.record_id, "100451");
        assert_eq!(
            record.last_modified.as_deref(),
            Some("2024-09-11T13:27:39.356Z")
        );
        assert_eq!(record.fields.get("email"), Some(&json!("a@hubspot.com")));
        assert_eq!(record.fields.get("phone"), Some(&Value::Null));
    }

    #[test]
    fn a_direct_read_parses_and_falls_back_to_lastmodifieddate() {
        let body =
            json!({"id": "512", "properties": {"lastmodifieddate": "2019-12-07T16:50:06.678Z"}});
        let record = parse_contact(body.to_string().as_bytes()).expect("record");
        assert_eq!(record.record_id, "512");
        assert_eq!(
            record.last_modified.as_deref(),
            Some("2019-12-07T16:50:06.678Z")
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for body in [
            "<html>",
            "[]",
            r#"{"results": []}"#,
            r#"{"total": 1, "results": {}}"#,
            r#"{"total": 1, "results": [{"properties": {}}]}"#,
            r#"{"total": 1, "results": [{"id": "1"}]}"#,
            r#"{"total": 1, "results": [7]}"#,
        ] {
            assert!(parse_search(body.as_bytes()).is_err(), "{body}");
        }
        assert!(parse_contact(br#"{"id": "1", "properties": []}"#).is_err());
    }

    #[test]
    fn a_search_429_keeps_its_policy_name_and_waits_a_second() {
        let error = parse_error(
            429,
            None,
            br#"{"status":"error","message":"You have reached your secondly limit.","errorType":"RATE_LIMIT","correlationId":"c0","policyName":"SECONDLY","requestId":"r"}"#,
        );
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert_eq!(error.policy_name.as_deref(), Some("SECONDLY"));
        assert_eq!(error.correlation_id.as_deref(), Some("c0"));
        assert_eq!(error.retry_after, Some(Duration::from_secs(1)));
        assert!(error.is_retryable());
        let ten = parse_error(429, None, br#"{"policyName":"TEN_SECONDLY_ROLLING"}"#);
        assert_eq!(ten.retry_after, Some(Duration::from_secs(10)));
        let header = parse_error(429, Some("3"), br#"{"policyName":"SECONDLY"}"#);
        assert_eq!(header.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_daily_limit_is_not_worth_retrying() {
        let daily = parse_error(
            429,
            None,
            br#"{"message":"You have reached your daily limit.","policyName":"DAILY"}"#,
        );
        assert_eq!(daily.retry_after, None);
        assert!(!daily.is_retryable());
    }

    #[test]
    fn expired_and_unknown_tokens_are_invalid_sessions() {
        for body in [
            r#"{"status":"error","message":"Authentication credentials not found.","correlationId":"c","category":"INVALID_AUTHENTICATION"}"#,
            r#"{"status":"error","message":"The OAuth token used to make this call expired 2 second(s) ago.","category":"EXPIRED_AUTHENTICATION","context":{"expire time":["x"]}}"#,
            "",
        ] {
            let error = parse_error(401, None, body.as_bytes());
            assert!(
                error.is_invalid_session() && !error.is_retryable(),
                "{body}"
            );
        }
        assert_eq!(parse_error(401, None, b"").category, None);
    }

    #[test]
    fn scopes_validation_not_found_and_server_errors_are_told_apart() {
        assert_eq!(
            parse_error(403, None, br#"{"category":"MISSING_SCOPES"}"#).kind,
            ErrorKind::Forbidden
        );
        let invalid = parse_error(
            400,
            None,
            br#"{"category":"VALIDATION_ERROR","message":"too many filters"}"#,
        );
        assert_eq!(
            (invalid.kind, invalid.message.as_deref()),
            (ErrorKind::Invalid, Some("too many filters"))
        );
        assert_eq!(
            parse_error(404, None, br#"{"category":"OBJECT_NOT_FOUND"}"#).kind,
            ErrorKind::NotFound
        );
        let server = parse_error(502, None, b"<html>bad gateway</html>");
        assert!(server.kind == ErrorKind::Server && server.is_retryable());
        assert_eq!(parse_error(409, None, b"{}").kind, ErrorKind::Other);
    }
}
