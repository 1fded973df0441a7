//! The `servicenow` CRM adapter: Table API lookups (`GET /api/now/table/<table>`) built by
//! [`query`](super::query) over the configured tables and fields, sent with Basic credentials
//! or an OAuth token (`crm::oauth`, renewed once on a 401), read by
//! [`response`](super::response), and graded with `crm::grade`.
//!
//! ServiceNow compares stored text exactly and case-sensitively ("Column names, operators, and
//! values are case-sensitive", Table API reference, ServiceNow/ServiceNowDocs
//! `markdown/api-reference/rest-apis/c_TableAPI.md`), and numbers are stored as typed, so one
//! request ORs every configured notation over every phone field, and an email is sent as given
//! and lower-cased. An invalid query part is dropped by the instance rather than refused (same
//! page), so every returned record is graded against the key and dropped unless a searched
//! field holds it.
//!
//! Rate limits are rules an administrator sets per hour, per user or role (*Inbound REST API
//! rate limiting*, `markdown/api-reference/rest-api-explorer/inbound-REST-API-rate-limiting.md`):
//! a 429 carries `Retry-After` and `X-RateLimit-Limit`/`-Reset`/`-Rule`. A wait up to
//! `max_retry_after_secs` is retried; a longer one is [`CrmError::Quota`], which opens the
//! source's circuit until the reset instead of spending calls on a spent hourly limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use phonenumber::country;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::query::{self, CaretPolicy, QueryError, TableLookup, TableRequest};
use super::response::{self, ErrorKind, RateLimitHeaders, ServiceNowError};
use crate::config::{ServiceNowAuth, ServiceNowSettings, StoredNotation};
use crate::crm::grade::grade_records;
use crate::crm::oauth::{Defaults, OAuthClient, TokenManager};
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::vendor::VendorRecord;
use crate::crm::{Candidate, CrmAdapter, CrmError, CustomerKey, KeyKind};

const SOURCE: &str = "servicenow";

enum Credentials {
    /// `Authorization: Basic …`, marked sensitive.
    Basic(HeaderValue),
    OAuth(TokenManager),
}

pub struct ServiceNowCrm {
    http: reqwest::Client,
    /// `https://<instance>.service-now.com`, no trailing slash.
    instance: String,
    credentials: Credentials,
    /// One lookup per configured table, in order.
    tables: Vec<TableLookup>,
    customer_id_field: String,
    external_contact_id_field: String,
    notations: Vec<StoredNotation>,
    key_kinds: Vec<KeyKind>,
    /// A 429 asking for a longer wait than this opens the circuit ([`CrmError::Quota`]).
    max_retry_after: Duration,
    region: country::Id,
    upstream: Upstream,
}

/// One lookup of a key in one table: the request and what grades its records.
struct Probe {
    request: TableRequest,
    table: String,
    searched: Vec<String>,
}

impl ServiceNowCrm {
    /// The adapter `[crm.servicenow]` describes (validated at load); `region` is
    /// `phone.default_region`, for grading stored numbers.
    pub fn from_settings(
        settings: &ServiceNowSettings,
        region: country::Id,
    ) -> anyhow::Result<Self> {
        let instance = settings.instance()?;
        let instance = instance.as_str().trim_end_matches('/').to_owned();
        let http = http_client(&settings.common).build()?;
        let credentials = match settings.auth {
            ServiceNowAuth::Basic => {
                use base64::Engine as _;
                let pair = format!(
                    "{}:{}",
                    settings.username.trim(),
                    settings.password.expose_secret()
                );
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| anyhow::anyhow!("crm.servicenow.password: not a header value"))?;
                value.set_sensitive(true);
                Credentials::Basic(value)
            }
            ServiceNowAuth::Oauth => {
                let defaults = Defaults {
                    token_url: Some(url::Url::parse(&format!("{instance}/oauth_token.do"))?),
                    ..Defaults::default()
                };
                let client =
                    OAuthClient::from_settings(&settings.oauth, "crm.servicenow.oauth", defaults)?;
                Credentials::OAuth(TokenManager::new(http.clone(), client, SOURCE))
            }
        };
        let caret = if settings.escape_carets {
            CaretPolicy::Escape
        } else {
            CaretPolicy::Refuse
        };
        let tables = settings
            .tables
            .iter()
            .map(|table| TableLookup {
                table: table.clone(),
                phone_fields: settings.phone_fields.clone(),
                email_fields: settings.email_fields.clone(),
                return_fields: settings.return_fields.clone(),
                limit: settings.limit,
                newest_first: settings.newest_first,
                caret,
            })
            .collect();
        let mut key_kinds = vec![KeyKind::CustomerId];
        if !settings.external_contact_id_field.is_empty() {
            key_kinds.push(KeyKind::ExternalContactId);
        }
        if !settings.phone_fields.is_empty() {
            key_kinds.push(KeyKind::Phone);
        }
        if !settings.email_fields.is_empty() {
            key_kinds.push(KeyKind::Email);
        }
        Ok(Self {
            http,
            instance,
            credentials,
            tables,
            customer_id_field: settings.customer_id_field.clone(),
            external_contact_id_field: settings.external_contact_id_field.clone(),
            notations: settings.phone_notations.clone(),
            key_kinds,
            max_retry_after: Duration::from_secs(settings.common.max_retry_after_secs),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The request for `key` in `lookup`'s table, or `None` when no value of the key can be
    /// sent safely (refused values are left out; a key with none left is not looked up).
    fn probe(&self, lookup: &TableLookup, key: &CustomerKey) -> Option<Probe> {
        let sendable = |v: &String| query::escape_value(v, lookup.caret).is_ok();
        let (built, searched): (Result<TableRequest, QueryError>, Vec<String>) = match key {
            CustomerKey::Phone(number) => {
                let values: Vec<String> = StoredNotation::write_all(&self.notations, number)
                    .into_iter()
                    .filter(sendable)
                    .collect();
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                if values.is_empty() {
                    return None;
                }
                (
                    query::phone_lookup(lookup, &values),
                    lookup.phone_fields.clone(),
                )
            }
            CustomerKey::Email(email) => {
                let email = email.trim();
                let mut values = vec![email.to_owned()];
                let lower = email.to_lowercase();
                if lower != email {
                    values.push(lower);
                }
                let values: Vec<String> = values.into_iter().filter(sendable).collect();
                let values: Vec<&str> = values.iter().map(String::as_str).collect();
                if values.is_empty() {
                    return None;
                }
                (
                    query::emails_lookup(lookup, &values),
                    lookup.email_fields.clone(),
                )
            }
            CustomerKey::CustomerId(id) if self.customer_id_field == "sys_id" => (
                query::sys_id_lookup(lookup, id.trim()),
                vec!["sys_id".to_owned()],
            ),
            CustomerKey::CustomerId(id) => (
                query::field_lookup(lookup, &self.customer_id_field, id.trim()),
                vec![self.customer_id_field.clone()],
            ),
            CustomerKey::ExternalContactId(id) if !self.external_contact_id_field.is_empty() => (
                query::field_lookup(lookup, &self.external_contact_id_field, id.trim()),
                vec![self.external_contact_id_field.clone()],
            ),
            CustomerKey::ExternalContactId(_) => return None,
            // Not in `key_kinds`: a source is never asked about a kind it does not serve.
            CustomerKey::MessagingId(_) => return None,
        };
        match built {
            Ok(request) => Some(Probe {
                request,
                table: lookup.table.clone(),
                searched,
            }),
            Err(e) => {
                // The rule broken, never the value (`InvalidSysId` quotes it).
                let reason = match e {
                    QueryError::InvalidSysId(_) => "not a sys_id",
                    _ => "refused by the encoded query's rules",
                };
                tracing::debug!(
                    source = SOURCE,
                    key_kind = key.kind().as_str(),
                    reason,
                    "key not looked up: its value cannot be sent in an encoded query"
                );
                None
            }
        }
    }

    /// One Table API GET with the current credentials; an OAuth token refused with 401 is
    /// renewed once.
    async fn fetch(&self, probe: &Probe) -> Result<Vec<VendorRecord>, CrmError> {
        match &self.credentials {
            Credentials::Basic(value) => self.get(probe, value.clone(), false).await,
            Credentials::OAuth(tokens) => {
                tokens
                    .with_token(|token| async move {
                        let mut value =
                            HeaderValue::from_str(&token.authorization()).map_err(|_| {
                                CrmError::InvalidResponse(
                                    "the access token is not a header value".to_owned(),
                                )
                            })?;
                        value.set_sensitive(true);
                        self.get(probe, value, true).await
                    })
                    .await
            }
        }
    }

    async fn get(
        &self,
        probe: &Probe,
        authorization: HeaderValue,
        oauth: bool,
    ) -> Result<Vec<VendorRecord>, CrmError> {
        let url = format!("{}{}", self.instance, probe.request.path_and_query());
        let request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, authorization);
        let response = self.upstream.send("lookup", request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| CrmError::Connect(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            let mut records = response::parse_records(&probe.table, &body).map_err(|e| {
                // A hibernating developer instance answers 200 with an HTML page.
                CrmError::InvalidResponse(format!("ServiceNow answered {status}: {e}"))
            })?;
            for record in &mut records {
                // Back among the fields: graded for a sys_id lookup, offered to the merge.
                record
                    .fields
                    .insert("sys_id".to_owned(), Value::from(record.record_id.clone()));
            }
            return Ok(records);
        }
        let error = response::parse_error(status, rate_limit_headers(&headers), &body);
        self.error(error, oauth).map(|()| Vec::new())
    }

    /// What an error answer means: `Ok(())` for v1's 404 "No Record found" (no records).
    fn error(&self, error: ServiceNowError, oauth: bool) -> Result<(), CrmError> {
        // The envelope's message is fixed text ("User Not Authenticated", "Invalid table x");
        // `detail` may quote the query, so it is never kept.
        let message = error
            .message
            .as_deref()
            .unwrap_or("no error message")
            .chars()
            .take(120)
            .collect::<String>();
        let status = error.status;
        Err(match error.kind {
            ErrorKind::NoRecords => return Ok(()),
            ErrorKind::InvalidSession if oauth => CrmError::InvalidSession,
            ErrorKind::InvalidSession => CrmError::Auth(format!(
                "ServiceNow refused the integration user's credentials ({status} {message})"
            )),
            ErrorKind::Forbidden => CrmError::Auth(format!(
                "the integration user may not read the table ({status} {message}): grant it a role that can"
            )),
            ErrorKind::BadRequest => CrmError::Unavailable(format!(
                "ServiceNow refused the query ({status} {message}): check crm.servicenow.tables and fields"
            )),
            ErrorKind::RateLimited => {
                let wait = error.rate_limit.wait(now_unix());
                tracing::warn!(
                    source = SOURCE,
                    limit_per_hour = error.rate_limit.limit_per_hour,
                    rule = error.rate_limit.rule.as_deref().unwrap_or(""),
                    wait_secs = wait.map(|w| w.as_secs()),
                    "ServiceNow rate limit rule reached"
                );
                match wait {
                    Some(wait) if wait > self.max_retry_after => CrmError::Quota { retry_after: wait },
                    retry_after => CrmError::RateLimited { retry_after },
                }
            }
            ErrorKind::NotFound | ErrorKind::Unavailable | ErrorKind::Other => CrmError::Status {
                status,
                retry_after: None,
            },
        })
    }
}

fn rate_limit_headers(headers: &HeaderMap) -> RateLimitHeaders {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    RateLimitHeaders::parse(
        text("x-ratelimit-limit"),
        text("x-ratelimit-reset"),
        text("x-ratelimit-rule"),
        text("retry-after"),
    )
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ServiceNowCrm {
    /// The same adapter, its calls waiting on `budget` (`upstream::Budgets` chose it: this
    /// process's, or the deployment's shared one).
    pub fn with_budget(
        mut self,
        budget: std::sync::Arc<dyn crate::crm::budget::CallBudget>,
    ) -> Self {
        self.upstream = self.upstream.with_budget(budget);
        self
    }
}

#[async_trait::async_trait]
impl CrmAdapter for ServiceNowCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        for lookup in &self.tables {
            let Some(probe) = self.probe(lookup, key) else {
                continue;
            };
            let records = self.upstream.call("lookup", || self.fetch(&probe)).await?;
            let candidates = grade_records(SOURCE, key, records, &probe.searched, self.region);
            if !candidates.is_empty() {
                return Ok(candidates);
            }
        }
        Ok(Vec::new())
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // A Table API probe would spend the hourly limit; the token endpoint does not, and an
        // OAuth token that cannot be had means no lookup can succeed.
        match &self.credentials {
            Credentials::Basic(_) => Ok(()),
            Credentials::OAuth(tokens) => tokens.token().await.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spaced_international_notation_is_the_one_of_servicenows_sample() {
        let number = crate::phone::CallerNumber::parse("+18582877834", country::Id::US)
            .expect("a valid number");
        assert_eq!(
            StoredNotation::write_all(
                &[
                    StoredNotation::Local(crate::config::LocalNotation::InternationalSpaces),
                    StoredNotation::Shared(crate::phone::Notation::E164),
                    StoredNotation::Shared(crate::phone::Notation::E164),
                ],
                &number
            ),
            ["+1 858 287 7834", "+18582877834"]
        );
    }
}
