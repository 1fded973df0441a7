//! The `zendesk` CRM adapter: Zendesk Support end users found by phone, email, user id,
//! external id or a custom user field, through the documented search endpoints, with an API
//! token (`{email}/token:{api_token}` as Basic) or an OAuth access token (Bearer), both from
//! support.zendesk.com/hc/en-us/articles/4408831452954.
//!
//! Phone numbers: Zendesk "searches phone numbers for the exact number" as stored, and "to
//! specify a phone number in different formats, add a leading * (asterisk) to the number"
//! (developer.zendesk.com/documentation/voice/talk-partner-edition/retrieving-the-zendesk-user-
//! id-of-a-caller/). By default attrsync searches `phone:*{national significant number}`, which
//! finds every stored formatting; because the wildcard can also find a number that merely ends
//! the same way, every user returned is graded ([`grade_records`]) on `phone` (and the custom
//! phone fields searched) and dropped unless it really holds the caller's number.
//!
//! Values reach the search language only through `crm::zendesk::query`, which writes them bare,
//! quoted, or refuses them; a refused value is "not searchable": the key finds nobody and no
//! request is sent. Rate limits: each answer's `X-Rate-Limit-Remaining` (and the search
//! endpoint's `Zendesk-RateLimit-search-index`) is exported as
//! `attrsync_crm_rate_limit_remaining`; a 429 is `RateLimited` with its `Retry-After`
//! (developer.zendesk.com/api-reference/introduction/rate-limits).

use phonenumber::country;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use url::Url;

use super::query::{
    email_lookup, external_id_lookup, phone_lookup, user_field_lookup, FieldValue, Lookup,
    PhoneForm, QueryError, RoleFilter,
};
use super::response::{parse_error, parse_user, parse_users, rate_limit_info, ErrorKind};
use crate::config::{ZendeskAuth, ZendeskCrmSettings, ZendeskPhoneForm};
use crate::crm::grade::grade_records;
use crate::crm::hubspot::national_significant_number;
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::vendor::VendorRecord;
use crate::crm::{Candidate, CrmAdapter, CrmError, CustomerKey, KeyKind};
use crate::metrics;

const SOURCE: &str = "zendesk";

/// What an id-like key (customer id, external contact id) is looked up as.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IdMapping {
    /// `GET /api/v2/users/{id}.json`.
    UserId,
    /// `GET /api/v2/users/search.json?external_id=`.
    ExternalId,
    /// A custom user field, `type:user {key}:{value}`.
    UserField(String),
}

impl IdMapping {
    fn from_setting(value: &str) -> Option<Self> {
        match value.trim() {
            "" => None,
            "id" => Some(IdMapping::UserId),
            "external_id" => Some(IdMapping::ExternalId),
            key => Some(IdMapping::UserField(key.to_owned())),
        }
    }

    /// The field a returned user is graded on.
    fn graded_on(&self) -> String {
        match self {
            IdMapping::UserId => "id".to_owned(),
            IdMapping::ExternalId => "external_id".to_owned(),
            IdMapping::UserField(key) => format!("/user_fields/{key}"),
        }
    }
}

/// One request to make for a key, and what its answers are graded on.
struct Probe {
    request: Request,
    graded_on: Vec<String>,
}

enum Request {
    Search(Lookup),
    ShowUser(String),
}

pub struct ZendeskCrm {
    http: reqwest::Client,
    base: Url,
    roles: RoleFilter,
    phone_form: ZendeskPhoneForm,
    phone_user_fields: Vec<String>,
    customer_id: Option<IdMapping>,
    external_contact_id: Option<IdMapping>,
    key_kinds: Vec<KeyKind>,
    fields: Vec<String>,
    user_fields: Vec<(String, String)>,
    region: country::Id,
    upstream: Upstream,
}

impl ZendeskCrm {
    /// The adapter `[crm.zendesk]` describes (validated at load); `region` is
    /// `phone.default_region`, for grading stored numbers without a country code.
    pub fn from_settings(
        settings: &ZendeskCrmSettings,
        region: country::Id,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(&settings.base_url())
            .map_err(|_| anyhow::anyhow!("crm.zendesk.base_url: not a URL"))?;
        let http = http_client(&settings.common)
            .default_headers(headers(settings)?)
            .build()?;
        let customer_id = IdMapping::from_setting(&settings.customer_id);
        let external_contact_id = IdMapping::from_setting(&settings.external_contact_id);
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
            roles: if settings.end_users_only {
                RoleFilter::EndUsers
            } else {
                RoleFilter::AnyRole
            },
            phone_form: settings.phone_form,
            phone_user_fields: settings.phone_user_fields.clone(),
            customer_id,
            external_contact_id,
            key_kinds,
            fields: settings.fields.clone(),
            user_fields: settings
                .user_fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The requests for `key`; empty when the key cannot be searched (a refused value).
    fn probes(&self, key: &CustomerKey) -> Result<Vec<Probe>, QueryError> {
        match key {
            CustomerKey::Phone(number) => {
                let Some(e164) = number.e164() else {
                    return Ok(Vec::new());
                };
                let international = e164.trim_start_matches('+').to_owned();
                let national = national_significant_number(&e164).unwrap_or(international.clone());
                let (digits, form) = match self.phone_form {
                    ZendeskPhoneForm::AnyFormat => (national.as_str(), PhoneForm::AnyFormat),
                    ZendeskPhoneForm::Digits => (international.as_str(), PhoneForm::Digits),
                    ZendeskPhoneForm::PlusDigits => (international.as_str(), PhoneForm::PlusDigits),
                };
                let mut graded_on = vec!["phone".to_owned()];
                graded_on.extend(
                    self.phone_user_fields
                        .iter()
                        .map(|k| format!("/user_fields/{k}")),
                );
                let mut probes = vec![Probe {
                    request: Request::Search(phone_lookup(digits, form, self.roles)?),
                    graded_on: graded_on.clone(),
                }];
                for field in &self.phone_user_fields {
                    probes.push(Probe {
                        request: Request::Search(user_field_lookup(
                            field,
                            FieldValue::PhoneAnyFormat(&national),
                            self.roles,
                        )?),
                        graded_on: graded_on.clone(),
                    });
                }
                Ok(probes)
            }
            CustomerKey::Email(email) => Ok(vec![Probe {
                request: Request::Search(email_lookup(email, self.roles)?),
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

    fn id_probe(&self, mapping: Option<&IdMapping>, id: &str) -> Result<Vec<Probe>, QueryError> {
        let Some(mapping) = mapping else {
            return Ok(Vec::new());
        };
        let request = match mapping {
            IdMapping::UserId => {
                let id = id.trim();
                // User ids are integers; anything else would reshape the path, so it finds no one.
                if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(Vec::new());
                }
                Request::ShowUser(id.to_owned())
            }
            IdMapping::ExternalId => Request::Search(external_id_lookup(id)?),
            IdMapping::UserField(key) => {
                Request::Search(user_field_lookup(key, FieldValue::Text(id), self.roles)?)
            }
        };
        Ok(vec![Probe {
            request,
            graded_on: vec![mapping.graded_on()],
        }])
    }

    fn url(&self, request: &Request) -> Url {
        match request {
            Request::Search(lookup) => lookup.url(&self.base),
            Request::ShowUser(id) => {
                let mut url = self.base.clone();
                url.set_path(&format!("/api/v2/users/{id}.json"));
                url.set_query(None);
                url
            }
        }
    }

    /// One request: the users it answered (none for a 404), or the error it means.
    async fn fetch(&self, request: &Request, url: &Url) -> Result<Vec<VendorRecord>, CrmError> {
        let operation = match request {
            Request::Search(_) => "search",
            Request::ShowUser(_) => "show_user",
        };
        let response = self
            .upstream
            .send(operation, self.http.get(url.clone()))
            .await?;
        let status = response.status().as_u16();
        export_rate_limits(response.headers());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| {
            CrmError::InvalidResponse(format!("Zendesk body unreadable: {}", e.without_url()))
        })?;
        if (200..300).contains(&status) {
            let parsed = match request {
                Request::Search(_) => parse_users(&body),
                Request::ShowUser(_) => parse_user(&body).map(|user| vec![user]),
            };
            return parsed.map_err(|e| CrmError::InvalidResponse(e.to_string()));
        }
        let error = parse_error(status, retry_after.as_deref(), &body);
        Err(match error.kind {
            // Show User's 404 is "no such user"; a search endpoint's is a wrong base URL.
            ErrorKind::NotFound if matches!(request, Request::ShowUser(_)) => return Ok(Vec::new()),
            ErrorKind::RateLimited => {
                // The 429's text ("Number of allowed API requests per minute exceeded") holds
                // no key or value, so it goes in the log line.
                tracing::warn!(
                    source = SOURCE,
                    retry_after_secs = error.retry_after.map(|d| d.as_secs()),
                    detail = error.description.as_deref().unwrap_or(""),
                    "Zendesk rate limit reached"
                );
                CrmError::RateLimited {
                    retry_after: error.retry_after,
                }
            }
            // The 401 bodies are fixed texts ("Couldn't authenticate you", "invalid_token").
            ErrorKind::Unauthorized => CrmError::Auth(format!(
                "Zendesk answered 401 ({}): check crm.zendesk.email and the token, and that its access method is on in Admin Center",
                error.code.as_deref().unwrap_or("no detail")
            )),
            ErrorKind::Forbidden => CrmError::Auth(
                "Zendesk answered 403: the user or token may not read users".to_owned(),
            ),
            // Search's "unavailable" ("Please try again in a moment") may come as a 400: it is
            // retried as the 503 it means. The description may echo the query: never logged.
            ErrorKind::Unavailable => CrmError::Status {
                status: 503,
                retry_after: error.retry_after,
            },
            ErrorKind::NotFound
            | ErrorKind::InvalidQuery
            | ErrorKind::Server
            | ErrorKind::Other => CrmError::Status {
                status,
                retry_after: error.retry_after,
            },
        })
    }

    /// A user's fields as the candidate carries them (after grading, which reads the
    /// originals): `fields` picked, custom fields lifted.
    fn shape(&self, original: Map<String, Value>) -> Map<String, Value> {
        let mut fields: Map<String, Value> = if self.fields.is_empty() {
            original.clone()
        } else {
            self.fields
                .iter()
                .filter_map(|name| original.get(name).map(|v| (name.clone(), v.clone())))
                .collect()
        };
        if !self.user_fields.is_empty() {
            fields.remove("user_fields");
            let custom = original.get("user_fields").and_then(Value::as_object);
            for (key, name) in &self.user_fields {
                if let Some(value) = custom.and_then(|c| c.get(key)) {
                    fields.insert(name.clone(), value.clone());
                }
            }
        }
        fields
    }
}

/// `attrsync_crm_rate_limit_remaining{source="zendesk"}`: the account's requests left this
/// minute (`window="minute"`) and the search endpoint's (`window="search_minute"`).
fn export_rate_limits(headers: &HeaderMap) {
    let info = rate_limit_info(|name| headers.get(name).and_then(|v| v.to_str().ok()));
    if let Some(remaining) = info.remaining {
        ::metrics::gauge!(metrics::CRM_RATE_REMAINING, "source" => SOURCE, "window" => "minute")
            .set(remaining as f64);
    }
    if let Some(remaining) = info.search_remaining {
        ::metrics::gauge!(metrics::CRM_RATE_REMAINING, "source" => SOURCE, "window" => "search_minute")
            .set(remaining as f64);
    }
}

/// `Accept` and the credentials, marked sensitive so they never show in a debug print.
fn headers(settings: &ZendeskCrmSettings) -> anyhow::Result<HeaderMap> {
    use base64::Engine as _;
    let mut headers = HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let (value, key) = match settings.auth {
        ZendeskAuth::ApiToken => (
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}/token:{}",
                    settings.email.trim(),
                    settings.api_token.expose_secret().trim()
                ))
            ),
            "crm.zendesk.api_token",
        ),
        ZendeskAuth::OauthToken => (
            format!("Bearer {}", settings.oauth_token.expose_secret().trim()),
            "crm.zendesk.oauth_token",
        ),
    };
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| anyhow::anyhow!("{key}: not a valid header value"))?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok(headers)
}

impl ZendeskCrm {
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
impl CrmAdapter for ZendeskCrm {
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
                tracing::debug!(source = SOURCE, reason = %refused, "key not searchable in Zendesk");
                return Ok(Vec::new());
            }
        };
        let mut found: Vec<Candidate> = Vec::new();
        for probe in probes {
            let url = self.url(&probe.request);
            let records = self
                .upstream
                .call("lookup", || self.fetch(&probe.request, &url))
                .await?;
            for mut candidate in grade_records(SOURCE, key, records, &probe.graded_on, self.region)
            {
                if !found.iter().any(|c| c.same_record(&candidate)) {
                    candidate.fields = self.shape(std::mem::take(&mut candidate.fields));
                    found.push(candidate);
                }
            }
        }
        Ok(found)
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // A probe would spend the account's per-minute limit; lookup failures show in the
        // upstream metrics and the breaker.
        Ok(())
    }
}

#[cfg(test)]
#[path = "adapter_tests.rs"]
mod tests;
