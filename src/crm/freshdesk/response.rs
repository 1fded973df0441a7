//! Freshdesk answers: a list (JSON array), a search (`{"total","results"}`) or one contact into
//! [`VendorRecord`]s; error bodies (`{"code","message"}`, validation `{"description","errors":
//! [{field,message,code}]}`) and the `X-RateLimit-*`/`Retry-After` headers into
//! [`FreshdeskError`]. Sources: the parent module (`crm::freshdesk`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::crm::vendor::VendorRecord;

pub const RECORD_TYPE: &str = "contact";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body does not have the expected shape: {0}")]
    WrongShape(&'static str),
    #[error("a contact has no id")]
    MissingId,
}

/// The answer of `GET /api/v2/contacts?…`: a JSON array of contacts.
pub fn parse_list(body: &[u8]) -> Result<Vec<VendorRecord>, ResponseError> {
    match json(body)? {
        Value::Array(rows) => rows.iter().map(parse_contact_value).collect(),
        _ => Err(ResponseError::WrongShape("expected an array of contacts")),
    }
}

/// The answer of `GET /api/v2/search/contacts`: the total and this page's contacts.
pub fn parse_search(body: &[u8]) -> Result<(u64, Vec<VendorRecord>), ResponseError> {
    let value = json(body)?;
    let total = value
        .get("total")
        .and_then(Value::as_u64)
        .ok_or(ResponseError::WrongShape("no \"total\""))?;
    let Some(Value::Array(rows)) = value.get("results") else {
        return Err(ResponseError::WrongShape("no \"results\" array"));
    };
    let records = rows
        .iter()
        .map(parse_contact_value)
        .collect::<Result<_, _>>()?;
    Ok((total, records))
}

/// The answer of `GET /api/v2/contacts/{id}`.
pub fn parse_contact(body: &[u8]) -> Result<VendorRecord, ResponseError> {
    parse_contact_value(&json(body)?)
}

fn json(body: &[u8]) -> Result<Value, ResponseError> {
    serde_json::from_slice(body).map_err(|_| ResponseError::NotJson)
}

fn parse_contact_value(value: &Value) -> Result<VendorRecord, ResponseError> {
    let Value::Object(contact) = value else {
        return Err(ResponseError::WrongShape("a contact is not an object"));
    };
    let mut fields: Map<String, Value> = contact.clone();
    let record_id = match fields.remove("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(ResponseError::MissingId),
    };
    let last_modified = match fields.remove("updated_at") {
        Some(Value::String(t)) if !t.is_empty() => Some(t),
        _ => None,
    };
    Ok(VendorRecord {
        record_type: RECORD_TYPE.to_owned(),
        record_id,
        last_modified,
        fields,
    })
}

/// The shortest digit run taken as the same phone number in the re-check.
const MIN_PHONE_DIGITS: usize = 7;

/// Whether `field` of `record` holds `value`: for `phone`/`mobile` the same number (the digits
/// of one end with the digits of the other, at least 7), for `email` the same address but for
/// ASCII case, otherwise identical text. Freshdesk's matching is undocumented (it may compare
/// digits only), so this re-check only proves the contact relates to the key; grading the match
/// stays the adapter's call.
pub fn record_matches(record: &VendorRecord, field: &str, value: &str) -> bool {
    let Some(stored) = record.fields.get(field).and_then(Value::as_str) else {
        return false;
    };
    if stored.is_empty() || value.is_empty() {
        return false;
    }
    match field {
        "phone" | "mobile" => {
            let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
            let (a, b) = (digits(stored), digits(value));
            let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
            short.len() >= MIN_PHONE_DIGITS && long.ends_with(&short)
        }
        "email" => stored.eq_ignore_ascii_case(value),
        _ => stored == value,
    }
}

/// The rate-limit headers Freshdesk puts on its answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Total`: calls allowed in the window.
    pub total: Option<u64>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u64>,
    /// `X-RateLimit-Used-CurrentRequest`: credits this request cost.
    pub used_current_request: Option<u64>,
    /// `Retry-After` in seconds (429 only).
    pub retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    /// From raw header values; unparsable numbers count as absent.
    pub fn parse(
        total: Option<&str>,
        remaining: Option<&str>,
        used: Option<&str>,
        retry_after: Option<&str>,
    ) -> Self {
        // Read leniently (`100.0` as 100): only the integer part matters to a budget.
        let number = |v: Option<&str>| {
            v.map(str::trim)
                .map(|v| v.split_once('.').map_or(v, |(int, _)| int))
                .and_then(|v| v.parse::<u64>().ok())
        };
        Self {
            total: number(total),
            remaining: number(remaining),
            used_current_request: number(used),
            retry_after: number(retry_after).map(Duration::from_secs),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401: the API key is wrong or revoked.
    InvalidCredentials,
    /// 403: the agent lacks the permission, or the plan lacks the feature.
    AccessDenied,
    /// 400: a filter or query Freshdesk did not accept.
    Validation,
    /// 404: no such contact (by id) or path.
    NotFound,
    /// 429.
    RateLimited,
    /// 5xx, 408.
    Unavailable,
    Other,
}

/// One entry of a validation error's `errors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: Option<String>,
    pub message: Option<String>,
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Freshdesk answered {status}: {}", message.as_deref().or(description.as_deref()).unwrap_or("no error message"))]
pub struct FreshdeskError {
    pub status: u16,
    pub kind: ErrorKind,
    /// `code`, e.g. `invalid_credentials`, `access_denied`.
    pub code: Option<String>,
    pub message: Option<String>,
    /// `description` of a validation error, e.g. `Validation failed`.
    pub description: Option<String>,
    pub errors: Vec<FieldError>,
    pub rate_limit: RateLimitHeaders,
}

impl FreshdeskError {
    /// Same contract as `crate::retry::Retryable`, which the adapter implements by delegation.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited => self.rate_limit.retry_after,
            _ => None,
        }
    }

    pub fn invalid_credentials(&self) -> bool {
        self.kind == ErrorKind::InvalidCredentials
    }
}

/// Reads an error answer; any body (empty, HTML) is accepted and the status decides then.
pub fn parse_error(status: u16, rate_limit: RateLimitHeaders, body: &[u8]) -> FreshdeskError {
    let value = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let errors = value
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| FieldError {
                    field: text(e, "field"),
                    message: text(e, "message"),
                    code: text(e, "code"),
                })
                .collect()
        })
        .unwrap_or_default();
    let kind = match status {
        400 => ErrorKind::Validation,
        401 => ErrorKind::InvalidCredentials,
        403 => ErrorKind::AccessDenied,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        408 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    FreshdeskError {
        status,
        kind,
        code: text(&value, "code"),
        message: text(&value, "message"),
        description: text(&value, "description"),
        errors,
        rate_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    fn contact(id: u64, phone: &str) -> Value {
        json!({"id": id, "name": "Rachel", "email": "Rachel@Freshdesk.com", "phone": phone, "mobile": null,
               "created_at": "2015-08-18T16:18:14Z", "updated_at": "2015-08-24T09:25:19Z", "custom_fields": {"tier": "gold"}})
    }

    #[test]
    fn a_list_answer_becomes_contacts_with_id_and_last_modified() -> Result<(), ResponseError> {
        let records = parse_list(&bytes(json!([
            contact(432, "+13175550125"),
            contact(5004272350, "")
        ])))?;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].record_type, "contact");
        assert_eq!(records[0].record_id, "432");
        assert_eq!(
            records[0].last_modified.as_deref(),
            Some("2015-08-24T09:25:19Z")
        );
        assert_eq!(records[0].fields["custom_fields"]["tier"], "gold");
        assert!(!records[0].fields.contains_key("id"));
        assert_eq!(records[1].record_id, "5004272350");
        assert_eq!(parse_list(b"[]"), Ok(Vec::new()));
        Ok(())
    }

    #[test]
    fn a_search_answer_carries_the_total_and_the_page() -> Result<(), ResponseError> {
        let (total, records) =
            parse_search(&bytes(json!({"total": 31, "results": [contact(1, "1")]})))?;
        assert_eq!((total, records.len()), (31, 1));
        assert_eq!(
            parse_search(br#"{"total":0,"results":[]}"#),
            Ok((0, Vec::new()))
        );
        Ok(())
    }

    #[test]
    fn wrong_shapes_are_errors_not_empty_answers() {
        assert_eq!(parse_list(b"<html></html>"), Err(ResponseError::NotJson));
        assert!(matches!(
            parse_list(br#"{"results":[]}"#),
            Err(ResponseError::WrongShape(_))
        ));
        assert!(matches!(
            parse_search(b"[]"),
            Err(ResponseError::WrongShape(_))
        ));
        assert!(matches!(
            parse_search(br#"{"total":1}"#),
            Err(ResponseError::WrongShape(_))
        ));
        assert_eq!(
            parse_list(br#"[{"name":"x"}]"#),
            Err(ResponseError::MissingId)
        );
        assert!(matches!(
            parse_list(b"[1]"),
            Err(ResponseError::WrongShape(_))
        ));
        assert!(parse_contact(&bytes(contact(7, "1"))).is_ok_and(|r| r.record_id == "7"));
    }

    #[test]
    fn a_match_is_the_same_number_for_phones_and_case_blind_for_emails() -> Result<(), ResponseError>
    {
        let record = parse_contact(&bytes(contact(1, "+13175550125")))?;
        assert!(record_matches(&record, "phone", "+13175550125"));
        assert!(record_matches(&record, "phone", "(317) 555-0125"));
        assert!(!record_matches(&record, "phone", "+13175550126"));
        assert!(!record_matches(&record, "phone", "0125"));
        assert!(!record_matches(&record, "name", "rachel"));
        assert!(record_matches(&record, "email", "rachel@freshdesk.com"));
        assert!(!record_matches(&record, "mobile", ""));
        Ok(())
    }

    #[test]
    fn validation_errors_keep_every_field_error() {
        let body = br#"{"description":"Validation failed","errors":[{"field":"phone","message":"Unexpected/invalid field in request","code":"invalid_field"}]}"#;
        let error = parse_error(400, RateLimitHeaders::default(), body);
        assert_eq!(error.kind, ErrorKind::Validation);
        assert_eq!(error.description.as_deref(), Some("Validation failed"));
        assert_eq!(
            error.errors,
            [FieldError {
                field: Some("phone".to_owned()),
                message: Some("Unexpected/invalid field in request".to_owned()),
                code: Some("invalid_field".to_owned()),
            }]
        );
        assert!(!error.is_retryable());
    }

    #[test]
    fn a_401_is_invalid_credentials_and_a_429_waits_for_retry_after() {
        let error = parse_error(
            401,
            RateLimitHeaders::default(),
            br#"{"code":"invalid_credentials","message":"You have to be logged in to perform this action."}"#,
        );
        assert!(error.invalid_credentials());
        assert_eq!(error.code.as_deref(), Some("invalid_credentials"));

        let headers = RateLimitHeaders::parse(Some("200"), Some("0"), Some("1"), Some("37"));
        let error = parse_error(429, headers, b"");
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(37)));
        assert_eq!(error.rate_limit.remaining, Some(0));
    }

    #[test]
    fn rate_limit_headers_tolerate_decimals_and_garbage() {
        let headers = RateLimitHeaders::parse(Some("100.0"), Some(" 90 "), Some("x"), None);
        assert_eq!(headers.total, Some(100));
        assert_eq!(headers.remaining, Some(90));
        assert_eq!(headers.used_current_request, None);
        assert_eq!(headers.retry_after, None);
    }

    #[test]
    fn statuses_without_a_json_body_are_still_classified() {
        let kind = |s| parse_error(s, RateLimitHeaders::default(), b"<html>").kind;
        assert_eq!(kind(403), ErrorKind::AccessDenied);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(405), ErrorKind::Other);
        assert!(parse_error(503, RateLimitHeaders::default(), b"").is_retryable());
        assert_eq!(
            parse_error(503, RateLimitHeaders::default(), b"").retry_after(),
            None
        );
    }
}
