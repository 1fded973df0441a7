//! The `hubspot` CRM adapter: HubSpot contacts found by phone through CRM search, by email and
//! record id through direct reads, and by a custom property through search, with a private
//! app's access token as `Authorization: Bearer`.
//!
//! Phone numbers: one `POST /crm/v3/objects/contacts/search` whose filter groups (ORed) compare
//! `phone`/`mobilephone` with the caller's number in the configured notations, and the
//! `hs_searchable_calculated_*` properties with its national number, because "HubSpot only uses
//! the area code and local number" in them and asks to "refrain from including the country
//! code" (search guide, developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm,
//! Limits). A national number is shared by every country's version of it, so each contact
//! returned is graded on the properties searched and dropped unless it really holds the
//! caller's number. Values reach HubSpot as JSON strings (serde_json escapes them) or as one
//! percent-encoded path segment: never as syntax.
//!
//! Limits: the search endpoint is limited "to five requests per second per account" (same
//! guide), stricter than the account's ten-secondly limit, and answers 429 with a `policyName`;
//! `search_per_second` enforces it client-side (a rolling second, [`SearchLimiter`]) so attrsync
//! does not cause those 429s. A 429 is logged with its `policyName`; the daily limit
//! (`DAILY`) is `Quota`. Direct reads report `X-HubSpot-RateLimit-Remaining` and
//! `-Daily-Remaining`, exported as `attrsync_crm_rate_limit_remaining`.

use std::time::Duration;

use phonenumber::country;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::ExposeSecret;
use url::Url;

use super::limiter::SearchLimiter;
use super::request::{
    contact_by_email, contact_by_id, national_significant_number, phone_search, property_search,
    FilterLimits, GetRequest, PhoneProperties, RequestError, SearchRequest, SEARCH_PATH,
};
use super::response::{parse_contact, parse_error, parse_search, ErrorKind};
use crate::config::HubSpotCrmSettings;
use crate::crm::grade::grade_records;
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::vendor::VendorRecord;
use crate::crm::{Candidate, CrmAdapter, CrmError, CustomerKey, KeyKind};
use crate::metrics;
use crate::phone::Notation;

const SOURCE: &str = "hubspot";

/// How long the circuit stays open when the daily limit is spent: it resets at midnight in
/// the account's time zone, which attrsync does not know; an hour's pause, then one trial.
const DAILY_PAUSE: Duration = Duration::from_secs(3600);

enum IdMapping {
    RecordId,
    Property(String),
}

enum Request {
    Search(SearchRequest),
    Get(GetRequest),
}

struct Probe {
    request: Request,
    graded_on: Vec<String>,
}

pub struct HubSpotCrm {
    http: reqwest::Client,
    base: Url,
    phone: PhoneProperties,
    notations: Vec<Notation>,
    /// What every request asks for: `keep` plus what grading reads.
    requested: Vec<String>,
    /// What a candidate carries.
    keep: Vec<String>,
    customer_id: Option<IdMapping>,
    external_contact_id: Option<IdMapping>,
    key_kinds: Vec<KeyKind>,
    search_limit: u32,
    limiter: SearchLimiter,
    region: country::Id,
    upstream: Upstream,
}

fn mapping(value: &str) -> Option<IdMapping> {
    match value.trim() {
        "" => None,
        "id" => Some(IdMapping::RecordId),
        property => Some(IdMapping::Property(property.to_owned())),
    }
}

impl HubSpotCrm {
    /// The adapter `[crm.hubspot]` describes (validated at load); `region` is
    /// `phone.default_region`, for grading stored numbers without a country code.
    pub fn from_settings(
        settings: &HubSpotCrmSettings,
        region: country::Id,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(settings.base_url.trim())
            .map_err(|_| anyhow::anyhow!("crm.hubspot.base_url: not a URL"))?;
        let mut token = HeaderValue::from_str(&format!(
            "Bearer {}",
            settings.access_token.expose_secret().trim()
        ))
        .map_err(|_| anyhow::anyhow!("crm.hubspot.access_token: not a valid header value"))?;
        token.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, token);
        headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let http = http_client(&settings.common)
            .default_headers(headers)
            .build()?;
        let customer_id = mapping(&settings.customer_id);
        let external_contact_id = mapping(&settings.external_contact_id);
        let mut requested: Vec<String> = Vec::new();
        let mut want = |name: &str| {
            if !requested.iter().any(|r| r == name) {
                requested.push(name.to_owned());
            }
        };
        for name in settings
            .properties
            .iter()
            .chain(&settings.phone_properties)
            .chain(&settings.calculated_phone_properties)
        {
            want(name);
        }
        for name in ["email", "hs_object_id", "lastmodifieddate"] {
            want(name);
        }
        for id in [&customer_id, &external_contact_id] {
            if let Some(IdMapping::Property(p)) = id {
                want(p);
            }
        }
        let mut key_kinds = Vec::new();
        if customer_id.is_some() {
            key_kinds.push(KeyKind::CustomerId);
        }
        if external_contact_id.is_some() {
            key_kinds.push(KeyKind::ExternalContactId);
        }
        key_kinds.extend([KeyKind::Phone, KeyKind::Email]);
        Ok(Self {
            http,
            base,
            phone: PhoneProperties {
                stored: settings.phone_properties.clone(),
                calculated: settings.calculated_phone_properties.clone(),
            },
            notations: settings.phone_notations.clone(),
            requested,
            keep: settings.properties.clone(),
            customer_id,
            external_contact_id,
            key_kinds,
            search_limit: settings.search_limit,
            limiter: SearchLimiter::new(settings.search_per_second),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The requests for `key`; an error when the key cannot be sent (a refused value).
    fn probes(&self, key: &CustomerKey) -> Result<Vec<Probe>, RequestError> {
        let requested = &self.requested;
        match key {
            CustomerKey::Phone(number) => {
                let notations = if self.phone.stored.is_empty() {
                    Vec::new()
                } else {
                    number.notations(&self.notations)
                };
                let national = number.e164().and_then(|e| national_significant_number(&e));
                let national = national.filter(|_| !self.phone.calculated.is_empty());
                if notations.is_empty() && national.is_none() {
                    return Ok(Vec::new());
                }
                let graded_on: Vec<String> = self
                    .phone
                    .stored
                    .iter()
                    .chain(&self.phone.calculated)
                    .cloned()
                    .collect();
                let searches = phone_search(
                    &notations,
                    national.as_deref(),
                    &self.phone,
                    requested,
                    self.search_limit,
                    FilterLimits::default(),
                )?;
                Ok(searches
                    .into_iter()
                    .map(|s| Probe {
                        request: Request::Search(s),
                        graded_on: graded_on.clone(),
                    })
                    .collect())
            }
            CustomerKey::Email(email) => Ok(vec![Probe {
                request: Request::Get(contact_by_email(email, requested)?),
                graded_on: vec!["email".to_owned()],
            }]),
            CustomerKey::CustomerId(id) => self.id_probe(self.customer_id.as_ref(), id),
            CustomerKey::ExternalContactId(id) => {
                self.id_probe(self.external_contact_id.as_ref(), id)
            }
            // Not in `key_kinds`: a source is never asked about a kind it does not serve.
            CustomerKey::MessagingId(_) => Ok(Vec::new()),
        }
    }

    fn id_probe(&self, mapping: Option<&IdMapping>, id: &str) -> Result<Vec<Probe>, RequestError> {
        Ok(match mapping {
            None => Vec::new(),
            Some(IdMapping::RecordId) => vec![Probe {
                request: Request::Get(contact_by_id(id, &self.requested)?),
                graded_on: vec!["hs_object_id".to_owned()],
            }],
            Some(IdMapping::Property(property)) => vec![Probe {
                request: Request::Search(property_search(
                    property,
                    id,
                    &self.requested,
                    self.search_limit,
                )?),
                graded_on: vec![property.clone()],
            }],
        })
    }

    fn request(&self, request: &Request) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        match request {
            Request::Search(search) => {
                url.set_path(SEARCH_PATH);
                self.http.post(url).json(&search.body)
            }
            Request::Get(get) => {
                // `get.path` is already percent-encoded; `set_path` keeps its escapes.
                url.set_path(&get.path);
                url.set_query(None);
                if !get.params.is_empty() {
                    url.query_pairs_mut().extend_pairs(get.params.iter());
                }
                self.http.get(url)
            }
        }
    }

    /// One attempt: the contacts it answered (none for a 404), or the error it means.
    async fn fetch(&self, request: &Request) -> Result<Vec<VendorRecord>, CrmError> {
        let (operation, permit) = match request {
            Request::Search(_) => {
                let asked = tokio::time::Instant::now();
                let permit = self.limiter.acquire().await;
                let waited = asked.elapsed();
                if waited >= Duration::from_millis(1) {
                    tracing::debug!(
                        source = SOURCE,
                        wait_ms = waited.as_millis() as u64,
                        "waited for HubSpot's search limit"
                    );
                }
                ("search", Some(permit))
            }
            Request::Get(_) => ("read", None),
        };
        let response = self.upstream.send(operation, self.request(request)).await?;
        let status = response.status().as_u16();
        export_rate_limits(response.headers());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| {
            CrmError::InvalidResponse(format!("HubSpot body unreadable: {}", e.without_url()))
        });
        // The search's slot counts from its answer (see `limiter`).
        drop(permit);
        let body = body?;
        if (200..300).contains(&status) {
            let parsed = match request {
                Request::Search(_) => parse_search(&body).map(|page| {
                    if page.next_after.is_some() {
                        // Paging is not followed: a caller's number matching more contacts
                        // than one page holds is ambiguous anyway.
                        tracing::debug!(
                            source = SOURCE,
                            total = page.total,
                            returned = page.records.len(),
                            "more HubSpot contacts matched than crm.hubspot.search_limit"
                        );
                    }
                    page.records
                }),
                Request::Get(_) => parse_contact(&body).map(|record| vec![record]),
            };
            return parsed.map_err(|e| CrmError::InvalidResponse(e.to_string()));
        }
        let error = parse_error(status, retry_after.as_deref(), &body);
        Err(match error.kind {
            // A read's 404 (OBJECT_NOT_FOUND) is "no such contact"; the search endpoint's is a
            // wrong base URL.
            ErrorKind::NotFound if matches!(request, Request::Get(_)) => return Ok(Vec::new()),
            ErrorKind::RateLimited => {
                // policyName (SECONDLY, TEN_SECONDLY_ROLLING, DAILY) says which limit it was;
                // the message is HubSpot's fixed text and holds no key.
                tracing::warn!(
                    source = SOURCE,
                    operation,
                    policy_name = error.policy_name.as_deref().unwrap_or("none"),
                    correlation_id = error.correlation_id.as_deref().unwrap_or(""),
                    retry_after_ms = error.retry_after.map(|d| d.as_millis() as u64),
                    "HubSpot rate limit reached"
                );
                if error.policy_name.as_deref() == Some("DAILY") {
                    CrmError::Quota {
                        retry_after: DAILY_PAUSE,
                    }
                } else {
                    CrmError::RateLimited {
                        retry_after: error.retry_after,
                    }
                }
            }
            // A private app's token is static: a 401 means it was rotated or the app removed.
            ErrorKind::InvalidSession => CrmError::Auth(format!(
                "HubSpot refused the access token ({}): check crm.hubspot.access_token against the private app",
                error.category.as_deref().unwrap_or("401")
            )),
            ErrorKind::Forbidden => CrmError::Auth(format!(
                "HubSpot answered 403 ({}): the app needs the crm.objects.contacts.read scope",
                error.category.as_deref().unwrap_or("forbidden")
            )),
            ErrorKind::NotFound | ErrorKind::Invalid | ErrorKind::Server | ErrorKind::Other => {
                CrmError::Status {
                    status,
                    retry_after: error.retry_after,
                }
            }
        })
    }
}

/// `attrsync_crm_rate_limit_remaining{source="hubspot"}`: `window="ten_secondly"` and
/// `window="daily"`, from the headers HubSpot puts on answers other than search.
fn export_rate_limits(headers: &HeaderMap) {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    for (header, window) in [
        ("x-hubspot-ratelimit-remaining", "ten_secondly"),
        ("x-hubspot-ratelimit-daily-remaining", "daily"),
    ] {
        if let Some(remaining) = number(header) {
            ::metrics::gauge!(metrics::CRM_RATE_REMAINING, "source" => SOURCE, "window" => window)
                .set(remaining as f64);
        }
    }
}

impl HubSpotCrm {
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
impl CrmAdapter for HubSpotCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let probes = match self.probes(key) {
            Ok(probes) => probes,
            Err(refused) => {
                // The reason names the field and the rule, never the value.
                tracing::debug!(source = SOURCE, reason = %refused, "key not searchable in HubSpot");
                return Ok(Vec::new());
            }
        };
        let mut found: Vec<Candidate> = Vec::new();
        for probe in probes {
            let records = self
                .upstream
                .call("lookup", || self.fetch(&probe.request))
                .await?;
            for mut candidate in grade_records(SOURCE, key, records, &probe.graded_on, self.region)
            {
                if !found.iter().any(|c| c.same_record(&candidate)) {
                    if !self.keep.is_empty() {
                        candidate.fields.retain(|name, _| self.keep.contains(name));
                    }
                    found.push(candidate);
                }
            }
        }
        Ok(found)
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // A probe would spend the account's limits; failures show in the metrics and breaker.
        Ok(())
    }
}
