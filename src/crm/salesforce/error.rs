//! Salesforce's answers that are not records: REST errors (a JSON array of
//! `{"message", "errorCode", "fields"}`), the OAuth token endpoint's success and error bodies,
//! and the `Sforce-Limit-Info` header. Each error knows what the adapter should do about it.
//!
//! Sources: REST API Developer Guide, *Status Codes and Error Responses* (errorcodes.md: 401 =
//! session ID or OAuth token expired or invalid, body has message and errorCode) and *Limit Info
//! Header* (headers_api_usage.htm: `Sforce-Limit-Info: api-usage=18/5000`, other fields such as
//! `api-bursts=1/750` or `per-app-api-usage=17/250(appName=…)` may follow after `;`); SOQL and
//! SOSL limits (salesforce-app-limits-platform-api.html: exceeding the concurrent long-running
//! request limit answers REQUEST_LIMIT_EXCEEDED). The messages quoted in tests were seen in
//! real answers in public issue threads (restforce#688, SalesforceLabs/OrgCheck#181).

use std::fmt;

use serde::Deserialize;

/// What a failed REST call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 401 `INVALID_SESSION_ID`: the token expired or was revoked; get a new one and retry once.
    InvalidSession,
    /// `REQUEST_LIMIT_EXCEEDED` because the org's 24-hour allocation is spent: back off for a
    /// long time and open the breaker; retrying soon only burns what the org has left.
    DailyLimitExceeded,
    /// `REQUEST_LIMIT_EXCEEDED` for too many concurrent long-running requests: retry later.
    ConcurrentLimitExceeded,
    /// `MALFORMED_QUERY` / `MALFORMED_SEARCH` / `INVALID_FIELD` / `INVALID_TYPE`: a bug or a
    /// configuration error (wrong object or field name); never retry.
    BadQuery,
    /// 5xx or `SERVER_UNAVAILABLE`: the org is having trouble; retrying can help.
    Unavailable,
    /// Anything else (permissions, not found, ...): not retryable.
    Other,
}

/// A REST error answer. `Display` shows the status and code only: Salesforce echoes the query
/// (and so the caller's phone number or email) in `message`, which must go through redaction
/// before it reaches a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub error_code: String,
    pub message: String,
    pub fields: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorItem {
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl ApiError {
    /// Reads the first entry of the error array. A body of another shape (an HTML error page
    /// from a proxy, nothing at all) still gives an error for `status`, with an empty code.
    pub fn parse(status: u16, body: &[u8]) -> Self {
        let first = serde_json::from_slice::<Vec<ErrorItem>>(body)
            .ok()
            .and_then(|items| items.into_iter().next())
            // Some endpoints answer a single object rather than an array.
            .or_else(|| serde_json::from_slice::<ErrorItem>(body).ok());
        match first {
            Some(item) => Self {
                status,
                error_code: item.error_code,
                message: item.message,
                fields: item.fields,
            },
            None => Self {
                status,
                error_code: String::new(),
                message: String::new(),
                fields: Vec::new(),
            },
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self.error_code.as_str() {
            "INVALID_SESSION_ID" => ErrorKind::InvalidSession,
            "REQUEST_LIMIT_EXCEEDED" if self.message.contains("ConcurrentRequests") => {
                ErrorKind::ConcurrentLimitExceeded
            }
            "REQUEST_LIMIT_EXCEEDED" => ErrorKind::DailyLimitExceeded,
            "MALFORMED_QUERY"
            | "MALFORMED_SEARCH"
            | "INVALID_FIELD"
            | "INVALID_TYPE"
            | "INVALID_QUERY_FILTER_OPERATOR" => ErrorKind::BadQuery,
            "SERVER_UNAVAILABLE" => ErrorKind::Unavailable,
            _ if self.status == 401 => ErrorKind::InvalidSession,
            _ if self.status >= 500 => ErrorKind::Unavailable,
            _ => ErrorKind::Other,
        }
    }

    /// Whether the same request could succeed later without anything changing on our side
    /// (a new token is a change: see [`ErrorKind::InvalidSession`]).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind(),
            ErrorKind::ConcurrentLimitExceeded | ErrorKind::Unavailable
        )
    }

    pub fn is_invalid_session(&self) -> bool {
        self.kind() == ErrorKind::InvalidSession
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.error_code.is_empty() {
            write!(f, "Salesforce answered {}", self.status)
        } else {
            write!(f, "Salesforce answered {} {}", self.status, self.error_code)
        }
    }
}

impl std::error::Error for ApiError {}

/// A successful token answer. Salesforce sends no `expires_in`: the token lives as long as the
/// org's session timeout allows (*Tokens*, Connect REST API guide), so the adapter renews it on
/// `INVALID_SESSION_ID`. API calls go to `instance_url`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub instance_url: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub signature: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl TokenResponse {
    pub fn parse(body: &[u8]) -> Result<Self, TokenError> {
        let parsed: Self = serde_json::from_slice(body).map_err(|_| TokenError {
            status: 200,
            error: String::new(),
            description: "token response is not the documented JSON".to_owned(),
        })?;
        if parsed.access_token.is_empty() || parsed.instance_url.is_empty() {
            return Err(TokenError {
                status: 200,
                error: String::new(),
                description: "token response lacks access_token or instance_url".to_owned(),
            });
        }
        Ok(parsed)
    }
}

/// A token endpoint failure: `{"error": "invalid_grant", "error_description": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub status: u16,
    pub error: String,
    pub description: String,
}

#[derive(Deserialize)]
struct TokenErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenError {
    pub fn parse(status: u16, body: &[u8]) -> Self {
        let parsed = serde_json::from_slice::<TokenErrorBody>(body).ok();
        Self {
            status,
            error: parsed.as_ref().map(|b| b.error.clone()).unwrap_or_default(),
            description: parsed.map(|b| b.error_description).unwrap_or_default(),
        }
    }

    /// Wrong credentials, an unapproved user or a disabled flow do not fix themselves; only 5xx
    /// (and the `rate_limit_exceeded` some answers carry) may.
    pub fn is_retryable(&self) -> bool {
        self.status >= 500 || self.error == "rate_limit_exceeded"
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Salesforce token endpoint answered {} {}: {}",
            self.status, self.error, self.description
        )
    }
}

impl std::error::Error for TokenError {}

/// The org's 24-hour API usage from `Sforce-Limit-Info: api-usage=N/M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub limit: u64,
}

impl ApiUsage {
    /// Reads the `api-usage` field and ignores the rest (`api-bursts`, `per-app-api-usage`).
    pub fn from_header(value: &str) -> Option<Self> {
        value.split(';').find_map(|part| {
            let (key, usage) = part.split_once('=')?;
            if key.trim() != "api-usage" {
                return None;
            }
            let (used, limit) = usage.trim().split_once('/')?;
            Some(Self {
                used: used.trim().parse().ok()?,
                limit: limit.trim().parse().ok()?,
            })
        })
    }

    /// The share of the allocation spent, 0.0–1.0 (more when the org is bursting over it).
    pub fn share_used(&self) -> f64 {
        if self.limit == 0 {
            1.0
        } else {
            self.used as f64 / self.limit as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expired_session_means_renew_the_token() {
        let error = ApiError::parse(
            401,
            br#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        );
        assert_eq!(error.kind(), ErrorKind::InvalidSession);
        assert!(error.is_invalid_session());
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            "Salesforce answered 401 INVALID_SESSION_ID"
        );
    }

    #[test]
    fn the_daily_and_the_concurrent_limit_are_told_apart() {
        let daily = ApiError::parse(403, br#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#);
        assert_eq!(daily.kind(), ErrorKind::DailyLimitExceeded);
        assert!(!daily.is_retryable());
        let concurrent = ApiError::parse(403, br#"[{"message":"ConcurrentRequests (Concurrent API Requests) Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#);
        assert_eq!(concurrent.kind(), ErrorKind::ConcurrentLimitExceeded);
        assert!(concurrent.is_retryable());
    }

    #[test]
    fn malformed_queries_are_bugs_and_their_echo_stays_out_of_display() {
        let body = br#"[{"message":"\nFIND {John|jane@uoa.edu} RETURNING Contact\n ^\nERROR at Row:1:Column:10","errorCode":"MALFORMED_SEARCH"}]"#;
        let error = ApiError::parse(400, body);
        assert_eq!(error.kind(), ErrorKind::BadQuery);
        assert!(!error.to_string().contains("jane"));
        assert!(error.message.contains("ERROR at Row:1"));
    }

    #[test]
    fn a_body_that_is_not_an_error_array_still_gives_an_error_for_its_status() {
        let error = ApiError::parse(503, b"<html>Service Unavailable</html>");
        assert_eq!(error.error_code, "");
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(error.is_retryable());
        assert_eq!(ApiError::parse(404, b"").kind(), ErrorKind::Other);
        assert_eq!(ApiError::parse(401, b"").kind(), ErrorKind::InvalidSession);
        let single = ApiError::parse(
            400,
            br#"{"message":"x","errorCode":"INVALID_FIELD","fields":["Foo"]}"#,
        );
        assert_eq!(single.fields, ["Foo"]);
        assert_eq!(single.kind(), ErrorKind::BadQuery);
    }

    #[test]
    fn a_token_response_needs_an_access_token_and_an_instance_url_but_no_expiry() {
        let body = br#"{"access_token":"00Dx!AR8","signature":"nUF=","token_format":"opaque","instance_url":"https://acme.my.salesforce.com","id":"https://login.salesforce.com/id/00D/005","token_type":"Bearer","issued_at":"1708058728442"}"#;
        let token = TokenResponse::parse(body).unwrap();
        assert_eq!(token.instance_url, "https://acme.my.salesforce.com");
        assert_eq!(token.issued_at.as_deref(), Some("1708058728442"));
        assert!(TokenResponse::parse(br#"{"access_token":"x"}"#).is_err());
        assert!(
            TokenResponse::parse(br#"{"access_token":"","instance_url":"https://x"}"#).is_err()
        );
        assert!(TokenResponse::parse(b"nope").is_err());
    }

    #[test]
    fn token_errors_carry_the_oauth_error_and_are_not_retried() {
        let error = TokenError::parse(
            400,
            br#"{"error":"invalid_grant","error_description":"audience is invalid"}"#,
        );
        assert_eq!(error.error, "invalid_grant");
        assert_eq!(error.description, "audience is invalid");
        assert!(!error.is_retryable());
        assert!(TokenError::parse(503, b"").is_retryable());
    }

    #[test]
    fn the_limit_info_header_gives_the_daily_usage_whatever_follows_it() {
        assert_eq!(
            ApiUsage::from_header("api-usage=18/5000"),
            Some(ApiUsage {
                used: 18,
                limit: 5000
            })
        );
        let usage = ApiUsage::from_header("api-usage=110018/100000; api-bursts=1/750").unwrap();
        assert!(usage.share_used() > 1.0);
        assert_eq!(
            ApiUsage::from_header("per-app-api-usage=17/250(appName=x); api-usage=25/5000"),
            Some(ApiUsage {
                used: 25,
                limit: 5000
            })
        );
        assert_eq!(ApiUsage::from_header("api-usage=x/5000"), None);
        assert_eq!(ApiUsage::from_header(""), None);
        assert_eq!(ApiUsage { used: 1, limit: 0 }.share_used(), 1.0);
    }
}
