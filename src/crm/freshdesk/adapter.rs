//! The `freshdesk` CRM adapter: contacts by phone, mobile and email through the filter
//! ("search") API, one call for every notation and field, or through the contact list's
//! filters, one call per field and notation (`[crm.freshdesk] lookup`); a contact by id; the
//! API key as the Basic user name. Requests are built by [`query`](super::query), answers read
//! by [`response`](super::response), records graded with `crm::grade`.
//!
//! Limits are per account and per minute by plan (support.freshdesk.com article 225439: Growth
//! 200, Pro 400, Enterprise 700, trials 50; Contacts List 20 / 100 / 200), and a throttled call
//! is a 429 with `Retry-After`. A wait up to `max_retry_after_secs` is retried; a longer one is
//! [`CrmError::Quota`], which opens the source's circuit until the minute is over instead of
//! spending more of the account's calls on 429s.

use std::time::Duration;

use phonenumber::country;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::ExposeSecret as _;
use serde_json::Value;

use super::query::{self, ContactField, FreshdeskRequest, QueryError};
use super::response::{self, ErrorKind, FreshdeskError, RateLimitHeaders};
use crate::config::{FreshdeskLookup, FreshdeskSettings, StoredNotation};
use crate::crm::grade::grade_records;
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::vendor::VendorRecord;
use crate::crm::{Candidate, CrmAdapter, CrmError, CustomerKey, KeyKind};

const SOURCE: &str = "freshdesk";

pub struct FreshdeskCrm {
    http: reqwest::Client,
    /// `https://<domain>.freshdesk.com`, no trailing slash.
    domain: String,
    /// `Authorization: Basic base64(<api key>:X)`, marked sensitive.
    authorization: HeaderValue,
    lookup: FreshdeskLookup,
    phone_fields: Vec<ContactField>,
    notations: Vec<StoredNotation>,
    limit: u32,
    key_kinds: Vec<KeyKind>,
    max_retry_after: Duration,
    region: country::Id,
    upstream: Upstream,
}

/// What an answer is: a list, a search page or one contact.
#[derive(Clone, Copy)]
enum Shape {
    List,
    Search,
    One,
}

/// One request for a key, and the fields its records are graded on.
struct Probe {
    request: FreshdeskRequest,
    shape: Shape,
    graded_on: Vec<&'static str>,
}

impl FreshdeskCrm {
    /// The adapter `[crm.freshdesk]` describes (validated at load); `region` is
    /// `phone.default_region`, for grading stored numbers.
    pub fn from_settings(
        settings: &FreshdeskSettings,
        region: country::Id,
    ) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let domain = settings.domain()?;
        let domain = domain.as_str().trim_end_matches('/').to_owned();
        // Any password goes with the key; `X` is the customary one.
        let pair = format!("{}:X", settings.api_key.expose_secret().trim());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| anyhow::anyhow!("crm.freshdesk.api_key: not a header value"))?;
        authorization.set_sensitive(true);
        let phone_fields: Vec<ContactField> = settings
            .phone_fields
            .iter()
            .filter_map(|f| match f.as_str() {
                "phone" => Some(ContactField::Phone),
                "mobile" => Some(ContactField::Mobile),
                _ => None,
            })
            .collect();
        let mut key_kinds = vec![KeyKind::CustomerId, KeyKind::Email];
        if settings.external_id_lookup {
            key_kinds.push(KeyKind::ExternalContactId);
        }
        if !phone_fields.is_empty() {
            key_kinds.push(KeyKind::Phone);
        }
        Ok(Self {
            http: http_client(&settings.common).build()?,
            domain,
            authorization,
            lookup: settings.lookup,
            phone_fields,
            notations: settings.phone_notations.clone(),
            limit: settings.limit,
            key_kinds,
            max_retry_after: Duration::from_secs(settings.common.max_retry_after_secs),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The requests for `key`, in order; values that cannot be sent are left out (the rule
    /// broken is logged, never the value).
    fn probes(&self, key: &CustomerKey) -> Vec<Probe> {
        let skipped = |e: QueryError| {
            // The rule broken, never the value (`InvalidId` quotes it).
            let reason = match e {
                QueryError::InvalidId(_) => "not a contact id".to_owned(),
                other => other.to_string(),
            };
            tracing::debug!(
                source = SOURCE,
                key_kind = key.kind().as_str(),
                reason,
                "a value of the key cannot be sent to Freshdesk"
            );
        };
        let search = |terms: &[(ContactField, &str)], graded_on: Vec<&'static str>| {
            // Terms whose value cannot be quoted are left out of the OR.
            let terms: Vec<(ContactField, &str)> = terms
                .iter()
                .filter(|(_, v)| query::quote(v).map_err(skipped).is_ok())
                .copied()
                .collect();
            if terms.is_empty() {
                return Vec::new();
            }
            match query::search_lookup(&terms, 1) {
                Ok(request) => vec![Probe {
                    request,
                    shape: Shape::Search,
                    graded_on,
                }],
                Err(e) => {
                    skipped(e);
                    Vec::new()
                }
            }
        };
        let list = |field: ContactField, value: &str, graded_on: Vec<&'static str>| {
            match query::list_lookup(field, value, self.limit) {
                Ok(request) => Some(Probe {
                    request,
                    shape: Shape::List,
                    graded_on,
                }),
                Err(e) => {
                    skipped(e);
                    None
                }
            }
        };
        match key {
            CustomerKey::Phone(number) => {
                let values = StoredNotation::write_all(&self.notations, number);
                let graded_on: Vec<&'static str> =
                    self.phone_fields.iter().map(|f| f.name()).collect();
                match self.lookup {
                    FreshdeskLookup::Search => {
                        let terms: Vec<(ContactField, &str)> = self
                            .phone_fields
                            .iter()
                            .flat_map(|f| values.iter().map(move |v| (*f, v.as_str())))
                            .collect();
                        search(&terms, graded_on)
                    }
                    FreshdeskLookup::List => values
                        .iter()
                        .flat_map(|v| {
                            self.phone_fields
                                .iter()
                                .filter_map(|f| list(*f, v, graded_on.clone()))
                                .collect::<Vec<_>>()
                        })
                        .collect(),
                }
            }
            CustomerKey::Email(email) => {
                let email = email.trim();
                let graded_on = vec!["email", "other_emails"];
                match self.lookup {
                    FreshdeskLookup::Search => search(&[(ContactField::Email, email)], graded_on),
                    FreshdeskLookup::List => list(ContactField::Email, email, graded_on)
                        .into_iter()
                        .collect(),
                }
            }
            CustomerKey::CustomerId(id) => match query::contact_by_id(id.trim()) {
                Ok(request) => vec![Probe {
                    request,
                    shape: Shape::One,
                    graded_on: vec!["id"],
                }],
                Err(e) => {
                    skipped(e);
                    Vec::new()
                }
            },
            CustomerKey::ExternalContactId(id)
                if self.key_kinds.contains(&KeyKind::ExternalContactId) =>
            {
                search(
                    &[(ContactField::UniqueExternalId, id.trim())],
                    vec!["unique_external_id"],
                )
            }
            CustomerKey::ExternalContactId(_) => Vec::new(),
            // Not in `key_kinds`: Freshdesk contacts hold no messaging platform id.
            CustomerKey::MessagingId(_) => Vec::new(),
        }
    }

    async fn fetch(&self, probe: &Probe) -> Result<Vec<VendorRecord>, CrmError> {
        let url = format!("{}{}", self.domain, probe.request.path_and_query());
        let request = self
            .http
            .get(url)
            .header(ACCEPT, "application/json")
            .header(AUTHORIZATION, self.authorization.clone());
        let response = self.upstream.send("lookup", request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| CrmError::Connect(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            let parsed = match probe.shape {
                Shape::List => response::parse_list(&body),
                Shape::Search => response::parse_search(&body).map(|(_, records)| records),
                Shape::One => response::parse_contact(&body).map(|r| vec![r]),
            };
            let mut records = parsed.map_err(|e| {
                CrmError::InvalidResponse(format!("Freshdesk answered {status}: {e}"))
            })?;
            for record in &mut records {
                // Back among the fields: graded for a lookup by id, offered to the merge.
                record
                    .fields
                    .insert("id".to_owned(), Value::from(record.record_id.clone()));
            }
            return Ok(records);
        }
        let error = response::parse_error(status, rate_limit_headers(&headers), &body);
        self.error(error, probe.shape).map(|()| Vec::new())
    }

    /// What an error answer means: `Ok(())` for a 404 of a contact by id (no such contact).
    fn error(&self, error: FreshdeskError, shape: Shape) -> Result<(), CrmError> {
        let status = error.status;
        // Codes and field names only: Freshdesk's messages may quote the query.
        let code = error.code.as_deref().unwrap_or("");
        Err(match error.kind {
            ErrorKind::NotFound if matches!(shape, Shape::One) => return Ok(()),
            ErrorKind::InvalidCredentials | ErrorKind::AccessDenied => CrmError::Auth(format!(
                "Freshdesk refused the API key ({status} {code}): check crm.freshdesk.api_key and the agent's role"
            )),
            ErrorKind::Validation => {
                let fields: Vec<String> = error
                    .errors
                    .iter()
                    .map(|e| {
                        format!(
                            "{}:{}",
                            e.field.as_deref().unwrap_or("?"),
                            e.code.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                CrmError::Unavailable(format!(
                    "Freshdesk refused the request ({status} {})",
                    fields.join(", ")
                ))
            }
            ErrorKind::RateLimited => {
                let wait = error.rate_limit.retry_after;
                tracing::warn!(
                    source = SOURCE,
                    limit_per_minute = error.rate_limit.total,
                    remaining = error.rate_limit.remaining,
                    wait_secs = wait.map(|w| w.as_secs()),
                    "Freshdesk rate limit reached"
                );
                match wait {
                    Some(wait) if wait > self.max_retry_after => {
                        CrmError::Quota { retry_after: wait }
                    }
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
        text("x-ratelimit-total"),
        text("x-ratelimit-remaining"),
        text("x-ratelimit-used-currentrequest"),
        text("retry-after"),
    )
}

impl FreshdeskCrm {
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
impl CrmAdapter for FreshdeskCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        for probe in self.probes(key) {
            let records = self.upstream.call("lookup", || self.fetch(&probe)).await?;
            let candidates = grade_records(SOURCE, key, records, &probe.graded_on, self.region);
            if !candidates.is_empty() {
                return Ok(candidates);
            }
        }
        Ok(Vec::new())
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // Every Freshdesk call counts against the account's per-minute limit.
        Ok(())
    }
}
