//! Dataverse and Entra ID answers that are not rows: the Web API error body
//! `{"error": {"code", "message"}}`, service protection's 429 with `Retry-After`, and the Entra
//! token endpoint's success and error bodies.
//!
//! Sources: MicrosoftDocs/powerapps-docs@05cfff53 `webapi/compose-http-requests-handle-errors.md`
//! (error format; 401 codes such as `ExpiredAuthTicket`; 429 for API limits) and
//! `api-limits.md` (429 + `Retry-After` in seconds; hex codes 0x80072322 requests,
//! 0x80072321 execution time, 0x80072326 concurrency); MicrosoftDocs/entra-docs
//! `identity-platform/v2-oauth2-client-creds-grant-flow.md` (token response `token_type`,
//! `expires_in`, `access_token`; error `error`, `error_description`, `error_codes`, …) and
//! `reference-error-codes.md` (AADSTS codes).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Service protection's three error codes as the Web API returns them.
pub const SERVICE_PROTECTION_CODES: [&str; 3] = ["0x80072322", "0x80072321", "0x80072326"];

/// What a failed Web API call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401: the token expired or is not accepted; get a new one and retry once.
    Unauthorized,
    /// 429 service protection: wait `Retry-After`; sending on extends the wait.
    Throttled,
    /// 400/404: a query or configuration error; never retry.
    BadRequest,
    /// 403: the application user lacks a privilege; never retry.
    Forbidden,
    /// 5xx: retrying can help.
    Unavailable,
    Other,
}

/// A Web API error answer. `Display` leaves `message` out: Dataverse echoes the filter (and so
/// the caller's number) in syntax errors, and the message must be redacted before logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl WebApiError {
    /// `retry_after` is the `Retry-After` header value, if any (delay-seconds; the docs say "a
    /// Retry-After with number of seconds"). An unparseable body keeps the status.
    pub fn parse(status: u16, retry_after: Option<&str>, body: &[u8]) -> Self {
        let body = serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .map(|e| e.error);
        Self {
            status,
            code: body.as_ref().map(|b| b.code.clone()).unwrap_or_default(),
            message: body.map(|b| b.message).unwrap_or_default(),
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.status {
            401 => ErrorKind::Unauthorized,
            429 => ErrorKind::Throttled,
            400 | 404 => ErrorKind::BadRequest,
            403 => ErrorKind::Forbidden,
            500..=599 => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Throttled | ErrorKind::Unavailable)
    }

    /// Which service protection limit was hit, when it is one of the documented three.
    pub fn service_protection_limit(&self) -> Option<&'static str> {
        match self.code.as_str() {
            "0x80072322" => Some("requests"),
            "0x80072321" => Some("execution_time"),
            "0x80072326" => Some("concurrency"),
            _ => None,
        }
    }
}

impl fmt::Display for WebApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dataverse answered {}", self.status)?;
        if !self.code.is_empty() {
            write!(f, " (code {})", self.code)?;
        }
        Ok(())
    }
}

impl std::error::Error for WebApiError {}

/// A successful Entra ID token answer (`token_type`, `expires_in`, `access_token`; v1-style
/// string numbers are accepted too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraToken {
    pub access_token: String,
    pub expires_in: Duration,
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    expires_in: serde_json::Value,
}

impl EntraToken {
    pub fn parse(body: &[u8]) -> Result<Self, EntraError> {
        let malformed = || EntraError {
            status: 200,
            error: String::new(),
            aadsts: None,
            description: "token response is not the documented JSON".to_owned(),
        };
        let body: TokenBody = serde_json::from_slice(body).map_err(|_| malformed())?;
        let seconds = match &body.expires_in {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(malformed)?;
        if body.access_token.is_empty() {
            return Err(malformed());
        }
        Ok(Self {
            access_token: body.access_token,
            expires_in: Duration::from_secs(seconds),
        })
    }
}

/// An Entra ID token error: `{"error": "invalid_client", "error_description": "AADSTS7000215: …",
/// "error_codes": [7000215], …}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraError {
    pub status: u16,
    pub error: String,
    /// The AADSTS number, from `error_codes` or the description.
    pub aadsts: Option<u32>,
    pub description: String,
}

#[derive(Deserialize)]
struct EntraErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u32>,
}

impl EntraError {
    pub fn parse(status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<EntraErrorBody>(body).ok();
        let (error, description, codes) = match parsed {
            Some(b) => (b.error, b.error_description, b.error_codes),
            None => (String::new(), String::new(), Vec::new()),
        };
        let aadsts = codes.first().copied().or_else(|| {
            let rest = description.split("AADSTS").nth(1)?;
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .ok()
        });
        Self {
            status,
            error,
            aadsts,
            description,
        }
    }

    /// Entra's transient codes (AADSTS50033 RetryableError, 90006 ExternalServerRetryableError,
    /// 90024 RequestBudgetExceededError) and 5xx; credentials and configuration errors are not.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || matches!(self.aadsts, Some(50033 | 90006 | 90024))
    }
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entra ID answered {} {}", self.status, self.error)?;
        if let Some(code) = self.aadsts {
            write!(f, " (AADSTS{code})")?;
        }
        Ok(())
    }
}

impl std::error::Error for EntraError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_protection_429_says_how_long_to_wait_and_which_limit() {
        let body = br#"{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}"#;
        let error = WebApiError::parse(429, Some("37"), body);
        assert_eq!(error.kind(), ErrorKind::Throttled);
        assert!(error.is_retryable());
        assert_eq!(error.retry_after, Some(Duration::from_secs(37)));
        assert_eq!(error.service_protection_limit(), Some("requests"));
        assert_eq!(
            error.to_string(),
            "Dataverse answered 429 (code 0x80072322)"
        );
    }

    #[test]
    fn a_401_means_a_new_token_and_a_400_a_bug() {
        assert_eq!(
            WebApiError::parse(401, None, b"").kind(),
            ErrorKind::Unauthorized
        );
        let bad = WebApiError::parse(400, None, br#"{"error":{"code":"0x80060888","message":"There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''."}}"#);
        assert_eq!(bad.kind(), ErrorKind::BadRequest);
        assert!(!bad.is_retryable());
        assert!(!bad.to_string().contains("Bryan"));
        assert_eq!(
            WebApiError::parse(503, Some("soon"), b"<html/>").retry_after,
            None
        );
        assert!(WebApiError::parse(503, None, b"").is_retryable());
        assert_eq!(
            WebApiError::parse(403, None, b"").kind(),
            ErrorKind::Forbidden
        );
    }

    #[test]
    fn an_entra_token_has_an_expiry_even_as_a_string() {
        let token = EntraToken::parse(
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#,
        )
        .unwrap();
        assert_eq!(token.expires_in, Duration::from_secs(3599));
        assert_eq!(
            EntraToken::parse(br#"{"expires_in":"3599","access_token":"x"}"#)
                .unwrap()
                .expires_in,
            Duration::from_secs(3599)
        );
        assert!(EntraToken::parse(br#"{"access_token":"x"}"#).is_err());
        assert!(EntraToken::parse(br#"{"expires_in":1,"access_token":""}"#).is_err());
        assert!(EntraToken::parse(b"garbage").is_err());
    }

    #[test]
    fn entra_errors_carry_their_aadsts_code() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x","error_codes":[7000215]}"#;
        let error = EntraError::parse(401, body);
        assert_eq!(error.aadsts, Some(7000215));
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "Entra ID answered 401 invalid_client (AADSTS7000215)"
        );
        let no_codes = EntraError::parse(400, br#"{"error":"invalid_scope","error_description":"AADSTS70011: The provided value..."}"#);
        assert_eq!(no_codes.aadsts, Some(70011));
        assert!(EntraError::parse(
            400,
            br#"{"error":"temporarily_unavailable","error_codes":[90024]}"#
        )
        .is_retryable());
        assert_eq!(EntraError::parse(502, b"").aadsts, None);
    }
}
