//! Table API answers: `{"result":[…]}` into [`VendorRecord`]s, the `{"error":{…},"status":
//! "failure"}` envelope and the rate-limit headers into [`ServiceNowError`], and the re-check that
//! a returned record really carries the value looked up (an instance drops invalid query parts
//! instead of failing: `c_TableAPI.md`, `sysparm_query`).
//!
//! Pure functions over status codes, header values and body bytes; sources are listed in the
//! module's parent (`crm::servicenow`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::crm::vendor::VendorRecord;

/// The body did not have the Table API's shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body has no \"result\" array")]
    NoResultArray,
    #[error("a record has no sys_id")]
    MissingSysId,
}

/// The records of a Table API answer. A record's type is its `sys_class_name` when returned
/// (a `sys_user` query also returns `customer_contact` rows), else `table`.
pub fn parse_records(table: &str, body: &[u8]) -> Result<Vec<VendorRecord>, ResponseError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| ResponseError::NotJson)?;
    let Some(Value::Array(rows)) = value.get("result") else {
        return Err(ResponseError::NoResultArray);
    };
    rows.iter().map(|row| parse_record(table, row)).collect()
}

fn parse_record(table: &str, row: &Value) -> Result<VendorRecord, ResponseError> {
    let Value::Object(row) = row else {
        return Err(ResponseError::NoResultArray);
    };
    let mut fields: Map<String, Value> = row.iter().map(|(k, v)| (k.clone(), plain(v))).collect();
    let record_id = match fields.remove("sys_id") {
        Some(Value::String(id)) if !id.is_empty() => id,
        _ => return Err(ResponseError::MissingSysId),
    };
    let last_modified = match fields.remove("sys_updated_on") {
        Some(Value::String(t)) if !t.is_empty() => Some(t),
        _ => None,
    };
    let record_type = match fields.remove("sys_class_name") {
        Some(Value::String(c)) if !c.is_empty() => c,
        _ => table.to_owned(),
    };
    Ok(VendorRecord {
        record_type,
        record_id,
        last_modified,
        fields,
    })
}

/// A reference field (`{"link","value"}`) or a `sysparm_display_value=all` pair
/// (`{"display_value","value"}`) becomes its database value; anything else stays as it is.
fn plain(value: &Value) -> Value {
    match value {
        Value::Object(o) if o.get("value").is_some_and(Value::is_string) => o["value"].clone(),
        other => other.clone(),
    }
}

/// How the re-check compares a returned value with a looked-up one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Identical text (ids).
    Exact,
    /// Identical but for ASCII case: `=` is documented case-sensitive, but an instance's
    /// collation may not be (emails).
    IgnoreCase,
    /// The same number: the digits of one end with the digits of the other, at least 7 of them.
    /// An E.164 phone field may normalise what it is compared with (undocumented), so a stored
    /// `+13175550125` can come back for `(317) 555-0125`. How good the match is stays the
    /// adapter's call.
    PhoneDigits,
}

/// The shortest digit run [`Compare::PhoneDigits`] accepts as the same number.
const MIN_PHONE_DIGITS: usize = 7;

impl Compare {
    pub fn same(self, stored: &str, wanted: &str) -> bool {
        if stored.is_empty() || wanted.is_empty() {
            return false;
        }
        match self {
            Compare::Exact => stored == wanted,
            Compare::IgnoreCase => stored.eq_ignore_ascii_case(wanted),
            Compare::PhoneDigits => {
                let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
                let (a, b) = (digits(stored), digits(wanted));
                let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
                short.len() >= MIN_PHONE_DIGITS && long.ends_with(&short)
            }
        }
    }
}

/// Whether any of `fields` of `record` holds one of `values` (an empty value never does). A
/// record that does not is one the instance returned because part of the query was dropped
/// (misspelt field, missing plugin), and must not be taken for a match.
pub fn record_matches(
    record: &VendorRecord,
    fields: &[String],
    values: &[&str],
    compare: Compare,
) -> bool {
    fields.iter().any(|field| {
        let stored = if field == "sys_id" {
            Some(record.record_id.as_str())
        } else {
            record.fields.get(field).and_then(Value::as_str)
        };
        stored.is_some_and(|s| values.iter().any(|v| compare.same(s, v)))
    })
}

/// What the rate-limit headers of an answer said (`inbound-REST-API-rate-limiting.md`); all
/// absent when no rule applies to the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests allowed per hour by the rule.
    pub limit_per_hour: Option<u64>,
    /// `X-RateLimit-Reset`: UNIX time of the next reset.
    pub reset_at_unix: Option<u64>,
    /// `X-RateLimit-Rule`: sys_id of the enforced rule.
    pub rule: Option<String>,
    /// `Retry-After` in seconds (denied requests only).
    pub retry_after: Option<Duration>,
}

impl RateLimitHeaders {
    /// From the raw header values; unparsable numbers count as absent.
    pub fn parse(
        limit: Option<&str>,
        reset: Option<&str>,
        rule: Option<&str>,
        retry_after: Option<&str>,
    ) -> Self {
        let number = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u64>().ok());
        Self {
            limit_per_hour: number(limit),
            reset_at_unix: number(reset),
            rule: rule
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned),
            retry_after: number(retry_after).map(Duration::from_secs),
        }
    }

    /// The wait before the next request may pass: `Retry-After`, else the time to the reset.
    pub fn wait(&self, now_unix: u64) -> Option<Duration> {
        self.retry_after.or_else(|| {
            self.reset_at_unix
                .map(|reset| Duration::from_secs(reset.saturating_sub(now_unix)))
        })
    }
}

/// What an error answer means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401: credentials or token not accepted; fetch a new token (OAuth) or fix the password.
    InvalidSession,
    /// 403: an ACL or policy refuses the integration user; retrying cannot help.
    Forbidden,
    /// 429 from a rate-limit rule.
    RateLimited,
    /// v1's 404 "No Record found" for a query without rows: an empty answer, not a failure.
    NoRecords,
    /// Other 404s: unknown path, or a record hidden by ACLs.
    NotFound,
    /// 400: invalid table, bad headers; a configuration problem.
    BadRequest,
    /// 5xx or another status worth retrying later.
    Unavailable,
    /// Anything else.
    Other,
}

/// An error answer of the instance, with the envelope's texts when it had them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ServiceNow answered {status}: {}", message.as_deref().unwrap_or("no error message"))]
pub struct ServiceNowError {
    pub status: u16,
    pub kind: ErrorKind,
    /// `error.message`, e.g. `User Not Authenticated`, `Rate limit exceeded`.
    pub message: Option<String>,
    /// `error.detail`; may be null on the wire.
    pub detail: Option<String>,
    pub rate_limit: RateLimitHeaders,
}

impl ServiceNowError {
    /// Whether the same request may succeed later. Same contract as `crate::retry::Retryable`,
    /// which the adapter implements by delegating here.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::RateLimited | ErrorKind::Unavailable)
    }

    /// The wait the instance asked for (429 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited => self.rate_limit.retry_after,
            _ => None,
        }
    }

    pub fn invalid_session(&self) -> bool {
        self.kind == ErrorKind::InvalidSession
    }
}

/// Reads an error answer. `body` may be anything (HTML from a proxy, empty): the status decides
/// then.
pub fn parse_error(status: u16, rate_limit: RateLimitHeaders, body: &[u8]) -> ServiceNowError {
    let envelope = serde_json::from_slice::<Value>(body).ok();
    let error = envelope.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (message, detail) = (text("message"), text("detail"));
    let kind = match status {
        401 => ErrorKind::InvalidSession,
        403 => ErrorKind::Forbidden,
        429 => ErrorKind::RateLimited,
        404 if message
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("No Record found")) =>
        {
            ErrorKind::NoRecords
        }
        404 => ErrorKind::NotFound,
        400 => ErrorKind::BadRequest,
        408 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    ServiceNowError {
        status,
        kind,
        message,
        detail,
        rate_limit,
    }
}

/// The token endpoint's error (`{"error":"server_error","error_description":"access_denied"}`
/// for every refusal, as instances are seen to answer): the `error_description`, if any.
pub fn token_error_description(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get("error_description")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bytes(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn records_are_parsed_with_id_class_and_last_modified() -> Result<(), ResponseError> {
        let body = bytes(json!({"result": [
            {"sys_id": "ddce70866f9331003b3c498f5d3ee417", "sys_updated_on": "2019-01-03 05:49:34",
             "sys_class_name": "customer_contact", "phone": "+1 858 287 7834",
             "company": {"link": "https://i.service-now.com/api/now/table/core_company/8683", "value": "8683"}},
            {"sys_id": "a1", "phone": "+16692627777"}
        ]}));
        let records = parse_records("sys_user", &body)?;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].record_type, "customer_contact");
        assert_eq!(records[0].record_id, "ddce70866f9331003b3c498f5d3ee417");
        assert_eq!(
            records[0].last_modified.as_deref(),
            Some("2019-01-03 05:49:34")
        );
        assert_eq!(records[0].fields["company"], "8683");
        assert_eq!(records[0].fields["phone"], "+1 858 287 7834");
        assert!(!records[0].fields.contains_key("sys_id"));
        assert_eq!(records[1].record_type, "sys_user");
        assert_eq!(records[1].last_modified, None);
        Ok(())
    }

    #[test]
    fn display_value_pairs_become_their_database_value() -> Result<(), ResponseError> {
        let body = bytes(json!({"result": [{
            "sys_id": {"display_value": "x", "value": "abc"},
            "sys_updated_on": {"display_value": "03/01/2019 06:49:34", "value": "2019-01-03 05:49:34"}
        }]}));
        let records = parse_records("sys_user", &body)?;
        assert_eq!(records[0].record_id, "abc");
        assert_eq!(
            records[0].last_modified.as_deref(),
            Some("2019-01-03 05:49:34")
        );
        Ok(())
    }

    #[test]
    fn an_empty_result_is_no_records_and_wrong_shapes_are_errors() {
        assert_eq!(parse_records("t", br#"{"result":[]}"#), Ok(Vec::new()));
        let cases: [(&[u8], ResponseError); 6] = [
            (
                b"<html>Instance Hibernating page</html>",
                ResponseError::NotJson,
            ),
            (b"", ResponseError::NotJson),
            (br#"{"records":[]}"#, ResponseError::NoResultArray),
            (
                br#"{"result":{"sys_id":"a"}}"#,
                ResponseError::NoResultArray,
            ),
            (br#"{"result":["a"]}"#, ResponseError::NoResultArray),
            (
                br#"{"result":[{"phone":"1"}]}"#,
                ResponseError::MissingSysId,
            ),
        ];
        for (body, error) in cases {
            assert_eq!(parse_records("t", body), Err(error));
        }
    }

    #[test]
    fn a_record_matches_only_when_a_searched_field_holds_a_searched_value(
    ) -> Result<(), ResponseError> {
        let body = bytes(json!({"result": [{"sys_id": "s1", "phone": "+13175550125",
                                           "mobile_phone": "", "email": "Ada@Example.com"}]}));
        let record = &parse_records("sys_user", &body)?[0];
        let phones = vec!["phone".to_owned(), "mobile_phone".to_owned()];
        let exact = Compare::Exact;
        assert!(record_matches(
            record,
            &phones,
            &["x", "+13175550125"],
            exact
        ));
        assert!(!record_matches(record, &phones, &["3175550125"], exact));
        // An empty stored value is never a match, whatever was asked.
        assert!(!record_matches(record, &phones, &[""], exact));
        assert!(record_matches(
            record,
            &["sys_id".to_owned()],
            &["s1"],
            exact
        ));
        let email = ["email".to_owned()];
        assert!(!record_matches(record, &email, &["ada@example.com"], exact));
        assert!(record_matches(
            record,
            &email,
            &["ada@example.com"],
            Compare::IgnoreCase
        ));
        Ok(())
    }

    #[test]
    fn phone_digits_accept_another_notation_of_the_number_but_not_a_fragment() {
        let same = |a, b| Compare::PhoneDigits.same(a, b);
        assert!(same("+13175550125", "(317) 555-0125"));
        assert!(same("+1 317 555 0125", "+13175550125"));
        assert!(!same("+13175550125", "+13175550126"));
        assert!(!same("+13175550125", "0125"));
        assert!(!same("+13175550125", "555012"));
        assert!(!same("", "+13175550125"));
        assert!(!same("ext", "ext"));
    }

    #[test]
    fn a_401_is_an_invalid_session_with_the_envelope_texts() {
        let body = br#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
        let error = parse_error(401, RateLimitHeaders::default(), body);
        assert!(error.invalid_session());
        assert!(!error.is_retryable());
        assert_eq!(error.message.as_deref(), Some("User Not Authenticated"));
        assert_eq!(
            error.detail.as_deref(),
            Some("Required to provide Auth information")
        );
    }

    #[test]
    fn a_429_is_retryable_after_the_wait_the_instance_gave() {
        let headers =
            RateLimitHeaders::parse(Some("100"), Some("1700003600"), Some("0e4a"), Some("1200"));
        let body = br#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;
        let error = parse_error(429, headers, body);
        assert_eq!(error.kind, ErrorKind::RateLimited);
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(1200)));
        assert_eq!(error.rate_limit.limit_per_hour, Some(100));
        assert_eq!(error.rate_limit.rule.as_deref(), Some("0e4a"));
    }

    #[test]
    fn without_retry_after_the_wait_runs_to_the_reset_time() {
        let headers = RateLimitHeaders::parse(Some("x"), Some(" 1000 "), Some(" "), None);
        assert_eq!(headers.limit_per_hour, None);
        assert_eq!(headers.rule, None);
        assert_eq!(headers.wait(400), Some(Duration::from_secs(600)));
        assert_eq!(headers.wait(2000), Some(Duration::ZERO));
        assert_eq!(RateLimitHeaders::default().wait(0), None);
    }

    #[test]
    fn statuses_are_classified_even_without_an_envelope() {
        let kind =
            |status, body: &[u8]| parse_error(status, RateLimitHeaders::default(), body).kind;
        assert_eq!(kind(403, br#"{"error":{"message":"Insufficient rights to query records","detail":null},"status":"failure"}"#), ErrorKind::Forbidden);
        assert_eq!(kind(404, br#"{"error":{"message":"No Record found","detail":"Records matching query not found. Check query parameter or offset parameter"},"status":"failure"}"#), ErrorKind::NoRecords);
        assert_eq!(kind(404, b""), ErrorKind::NotFound);
        assert_eq!(kind(400, br#"{"error":{"message":"Invalid table sys_nonexistent","detail":"Table sys_nonexistent does not exist"},"status":"failure"}"#), ErrorKind::BadRequest);
        assert_eq!(
            kind(503, b"<html>Service Unavailable</html>"),
            ErrorKind::Unavailable
        );
        assert_eq!(kind(502, b"not json"), ErrorKind::Unavailable);
        assert_eq!(kind(409, b"{}"), ErrorKind::Other);
        let null_detail = parse_error(
            403,
            RateLimitHeaders::default(),
            br#"{"error":{"message":"m","detail":null}}"#,
        );
        assert_eq!(null_detail.detail, None);
        assert_eq!(null_detail.retry_after(), None);
    }

    #[test]
    fn the_token_endpoint_error_description_is_read_when_present() {
        assert_eq!(
            token_error_description(
                br#"{"error_description":"access_denied","error":"server_error"}"#
            )
            .as_deref(),
            Some("access_denied")
        );
        assert_eq!(token_error_description(b"<html/>"), None);
    }
}
