//! The `salesforce` CRM adapter: the pure requests and parsers of this module sent to an org.
//!
//! - Tokens from the org's My Domain token endpoint (`crm::oauth`: client credentials with the
//!   consumer secret, or the JWT bearer flow); calls go to the token answer's `instance_url`.
//!   The answer has no `expires_in`, so a 401 `INVALID_SESSION_ID` renews the token once
//!   (*OAuth 2.0 Client Credentials Flow for Server-to-Server Integration* and *OAuth 2.0 JWT
//!   Bearer Flow*, help.salesforce.com `remoteaccess_oauth_client_credentials_flow.htm`,
//!   `remoteaccess_oauth_jwt_flow.htm`; REST API Developer Guide, *Status Codes and Error
//!   Responses*).
//! - Phone: one SOSL search over every configured object; email, record id and external id: one
//!   SOQL query per object with a field for it. Every record is graded on the configured fields
//!   ([`crate::crm::grade`]): SOSL matches any phone field, tokenised.
//! - Limits: `Sforce-Limit-Info: api-usage=N/M` (REST API Developer Guide, *Limit Info Header*:
//!   "returned in each request to REST API") is the `attrsync_crm_api_usage_ratio` gauge; at
//!   `max_api_usage_share` lookups stop for `quota_cooldown_secs` (`CrmError::Quota`, which
//!   opens the source's circuit for that long), as they do on `REQUEST_LIMIT_EXCEEDED` for the
//!   daily allocation. The concurrent long-running limit answers the same code with
//!   "ConcurrentRequests" in the message: that one is retried after a backoff.
//!
//! Salesforce echoes the query (the caller's number or email) in error messages: only the
//! status and `errorCode` reach the log and the error.

use std::sync::Mutex;
use std::time::Duration;

use phonenumber::country;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use tokio::time::Instant;

use super::error::{ApiError, ApiUsage, ErrorKind};
use super::escape::ApiVersion;
use super::query::{
    id_lookup, is_record_id, phone_search, soql_equals, QueryError, RestRequest, Target,
};
use super::response::{parse_query, parse_search};
use crate::config::{split_object_field, SalesforceSettings};
use crate::crm::candidate::{parse_last_modified, Candidate, MatchQuality};
use crate::crm::grade::grade_records;
use crate::crm::oauth::{AccessToken, Defaults, OAuthClient, TokenManager};
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::vendor::VendorRecord;
use crate::crm::{CrmAdapter, CrmError, CustomerKey, KeyKind};
use crate::metrics;
use crate::phone::Notation;

const SOURCE: &str = "salesforce";
const LIMIT_INFO: &str = "sforce-limit-info";
/// `aud` of a JWT bearer assertion for a production org (the flow's documented audience;
/// sandboxes use `https://test.salesforce.com`).
const PRODUCTION_AUDIENCE: &str = "https://login.salesforce.com";

/// One configured object: what it returns and which of its fields each key kind is matched on.
#[derive(Debug, Clone)]
struct ObjectSpec {
    target: Target,
    phone_fields: Vec<String>,
    email_fields: Vec<String>,
    external_id_fields: Vec<String>,
}

/// Standard objects' record id prefixes (the first three characters of every id), so an id
/// lookup queries only the object the id can belong to.
const KEY_PREFIXES: [(&str, &str); 3] = [("Contact", "003"), ("Account", "001"), ("Lead", "00Q")];

pub struct SalesforceCrm {
    http: reqwest::Client,
    tokens: TokenManager,
    version: ApiVersion,
    objects: Vec<ObjectSpec>,
    key_kinds: Vec<KeyKind>,
    phone_notations: Vec<Notation>,
    max_records: u32,
    max_share: f64,
    quota_cooldown: Duration,
    /// Until when lookups stay stopped after the allocation share was reached.
    stopped_until: Mutex<Option<Instant>>,
    region: country::Id,
    upstream: Upstream,
}

impl SalesforceCrm {
    /// The adapter `[crm.salesforce]` describes (validated at load); errors name the key.
    pub fn from_settings(
        settings: &SalesforceSettings,
        region: country::Id,
    ) -> anyhow::Result<Self> {
        let version = ApiVersion::parse(&settings.api_version)
            .map_err(|e| anyhow::anyhow!("crm.salesforce.api_version: {e}"))?;
        let objects = object_specs(settings)?;
        let domain = url::Url::parse(settings.domain_url.trim())
            .map_err(|e| anyhow::anyhow!("crm.salesforce.domain_url: {e}"))?;
        let token_url = domain
            .join("/services/oauth2/token")
            .map_err(|e| anyhow::anyhow!("crm.salesforce.domain_url: {e}"))?;
        let client = OAuthClient::from_settings(
            &settings.oauth,
            "crm.salesforce.oauth",
            Defaults {
                token_url: Some(token_url),
                audience: Some(PRODUCTION_AUDIENCE.to_owned()),
                scope: None,
            },
        )?;
        let http = http_client(&settings.common).build()?;
        let mut key_kinds = vec![KeyKind::CustomerId, KeyKind::Phone];
        if objects.iter().any(|o| !o.email_fields.is_empty()) {
            key_kinds.push(KeyKind::Email);
        }
        if objects.iter().any(|o| !o.external_id_fields.is_empty()) {
            key_kinds.push(KeyKind::ExternalContactId);
        }
        Ok(Self {
            tokens: TokenManager::new(http.clone(), client, SOURCE),
            http,
            version,
            objects,
            key_kinds,
            phone_notations: settings.phone_notations.clone(),
            max_records: settings.max_records,
            max_share: settings.max_api_usage_share,
            quota_cooldown: Duration::from_secs(settings.quota_cooldown_secs),
            stopped_until: Mutex::new(None),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    /// The lookups stop while the allocation share is spent.
    fn check_allocation(&self) -> Result<(), CrmError> {
        let mut stopped = self
            .stopped_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match *stopped {
            Some(until) if until > Instant::now() => Err(CrmError::Quota {
                retry_after: until - Instant::now(),
            }),
            Some(_) => {
                *stopped = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Reads `Sforce-Limit-Info` into the gauge, and stops lookups once the share is reached.
    fn record_usage(&self, headers: &reqwest::header::HeaderMap) {
        let Some(usage) = headers
            .get(LIMIT_INFO)
            .and_then(|v| v.to_str().ok())
            .and_then(ApiUsage::from_header)
        else {
            return;
        };
        let share = usage.share_used();
        ::metrics::gauge!(metrics::CRM_API_USAGE, "source" => SOURCE).set(share);
        if share >= self.max_share {
            let mut stopped = self
                .stopped_until
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if stopped.is_none() {
                tracing::warn!(
                    source = SOURCE,
                    used = usage.used,
                    limit = usage.limit,
                    max_share = self.max_share,
                    cooldown_secs = self.quota_cooldown.as_secs(),
                    "Salesforce API allocation share reached; lookups stop for the cooldown"
                );
            }
            *stopped = Some(Instant::now() + self.quota_cooldown);
        }
    }

    /// Sends `request` under the source's retries and budget, with a token renewed once on
    /// `INVALID_SESSION_ID`; the body of a 2xx answer.
    async fn get(
        &self,
        operation: &'static str,
        request: &RestRequest,
    ) -> Result<Vec<u8>, CrmError> {
        self.check_allocation()?;
        self.upstream
            .call(operation, || {
                self.tokens
                    .with_token(|token| self.send(operation, token, request))
            })
            .await
    }

    async fn send(
        &self,
        operation: &'static str,
        token: std::sync::Arc<AccessToken>,
        request: &RestRequest,
    ) -> Result<Vec<u8>, CrmError> {
        let instance = token
            .instance_url()
            .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http")))
            .ok_or_else(|| {
                CrmError::InvalidResponse("the token answer has no usable instance_url".to_owned())
            })?;
        let mut authorization = HeaderValue::from_str(&token.authorization()).map_err(|_| {
            CrmError::InvalidResponse("the access token is not a header value".to_owned())
        })?;
        authorization.set_sensitive(true);
        let response = self
            .upstream
            .send(
                operation,
                self.http
                    .get(request.url(instance))
                    .header(AUTHORIZATION, authorization)
                    .header(ACCEPT, "application/json"),
            )
            .await?;
        self.record_usage(response.headers());
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| CrmError::Connect(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        Err(self.refusal(operation, status, &headers, &body))
    }

    /// What a Salesforce error answer means for the lookup, logged with its code only.
    fn refusal(
        &self,
        operation: &'static str,
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> CrmError {
        let error = ApiError::parse(status, body);
        let kind = error.kind();
        tracing::warn!(
            source = SOURCE,
            operation,
            status,
            error_code = %error.error_code,
            "Salesforce refused the call"
        );
        match kind {
            ErrorKind::InvalidSession => CrmError::InvalidSession,
            ErrorKind::DailyLimitExceeded => {
                *self
                    .stopped_until
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                    Some(Instant::now() + self.quota_cooldown);
                CrmError::Quota {
                    retry_after: self.quota_cooldown,
                }
            }
            ErrorKind::ConcurrentLimitExceeded => CrmError::RateLimited {
                retry_after: crate::retry::retry_after_header(headers),
            },
            ErrorKind::BadQuery => CrmError::Unavailable(format!(
                "Salesforce rejected the query ({}): check crm.salesforce's objects and fields",
                error.error_code
            )),
            ErrorKind::Unavailable => CrmError::from_status(status, headers),
            ErrorKind::Other if status == 403 => {
                CrmError::Auth(format!("Salesforce answered 403 {}", error.error_code))
            }
            ErrorKind::Other => CrmError::from_status(status, headers),
        }
    }

    async fn search_phone(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let CustomerKey::Phone(number) = key else {
            return Ok(Vec::new());
        };
        let numbers: Vec<String> = self
            .phone_notations
            .iter()
            .map(|n| number.notation(*n))
            .collect();
        let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
        let targets: Vec<Target> = self.objects.iter().map(|o| o.target.clone()).collect();
        let request = match phone_search(&self.version, &numbers, &targets, Some(self.max_records))
        {
            Ok(r) => r,
            Err(QueryError::NoTerms) => return Ok(Vec::new()),
            Err(e) => return Err(CrmError::Unavailable(e.to_string())),
        };
        let body = self.get("search", &request).await?;
        let records = parse_search(&body).map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
        Ok(self.grade(key, records, |o| &o.phone_fields))
    }

    /// One SOQL query per object with fields for this key kind, the records graded on them.
    async fn query_each(
        &self,
        key: &CustomerKey,
        value: &str,
        fields_of: impl Fn(&ObjectSpec) -> &[String],
    ) -> Result<Vec<Candidate>, CrmError> {
        // SOQL has no multi-object form: the objects are queried at once, in configured order.
        let mut queries = Vec::new();
        for object in &self.objects {
            let fields = fields_of(object);
            if fields.is_empty() {
                continue;
            }
            let names: Vec<&str> = fields.iter().map(String::as_str).collect();
            let request = soql_equals(
                &self.version,
                &object.target,
                &names,
                value,
                Some(self.max_records),
            )
            .map_err(|e| CrmError::Unavailable(e.to_string()))?;
            queries.push(async move { self.query(&request).await });
        }
        let records = futures_util::future::try_join_all(queries).await?;
        Ok(self.grade(key, records.into_iter().flatten().collect(), fields_of))
    }

    async fn query(&self, request: &RestRequest) -> Result<Vec<VendorRecord>, CrmError> {
        let body = self.get("query", request).await?;
        let page = parse_query(&body).map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
        Ok(page.records)
    }

    /// A record id: only the objects the id's prefix allows (any for a custom prefix); the
    /// 15-character form matches the 18-character one Salesforce returns.
    async fn find_id(&self, id: &str) -> Result<Vec<Candidate>, CrmError> {
        let id = id.trim();
        if !is_record_id(id) {
            return Ok(Vec::new());
        }
        let prefix = &id[..3];
        for object in &self.objects {
            let fixed = KEY_PREFIXES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(&object.target.object));
            if fixed.is_some_and(|(_, p)| *p != prefix) {
                continue;
            }
            let request = id_lookup(&self.version, &object.target, id)
                .map_err(|e| CrmError::Unavailable(e.to_string()))?;
            let found: Vec<Candidate> = self
                .query(&request)
                .await?
                .into_iter()
                .filter(|r| r.record_id.get(..15) == id.get(..15))
                .map(|r| Candidate {
                    source: SOURCE,
                    record_type: r.record_type,
                    record_id: r.record_id,
                    matched_field: "Id".to_owned(),
                    quality: MatchQuality::Exact,
                    last_modified: r.last_modified.as_deref().and_then(parse_last_modified),
                    fields: r.fields,
                })
                .collect();
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    fn spec(&self, object: &str) -> Option<&ObjectSpec> {
        self.objects
            .iter()
            .find(|o| o.target.object.eq_ignore_ascii_case(object))
    }

    /// Grades each record on its own object's fields (`fields_of`), so a field of one object
    /// never vouches for another's record.
    fn grade(
        &self,
        key: &CustomerKey,
        records: Vec<VendorRecord>,
        fields_of: impl Fn(&ObjectSpec) -> &[String],
    ) -> Vec<Candidate> {
        let mut out = Vec::new();
        for record in records {
            let fields = self.spec(&record.record_type).map_or(&[][..], &fields_of);
            out.extend(grade_records(
                SOURCE,
                key,
                vec![record],
                fields,
                self.region,
            ));
        }
        out
    }
}

/// The configured objects with their fields, names checked by SOQL's rules.
fn object_specs(settings: &SalesforceSettings) -> anyhow::Result<Vec<ObjectSpec>> {
    let of = |key: &str, list: &[String], object: &str| -> anyhow::Result<Vec<String>> {
        let mut out = Vec::new();
        for name in list {
            let (o, field) = split_object_field(name).ok_or_else(|| {
                anyhow::anyhow!("crm.salesforce.{key}: {name:?} is not Object.Field")
            })?;
            if o.eq_ignore_ascii_case(object) && !out.iter().any(|f: &String| f == field) {
                out.push(field.to_owned());
            }
        }
        Ok(out)
    };
    let mut specs = Vec::new();
    for object in &settings.objects {
        let object = object.trim();
        let phone_fields = of("phone_fields", &settings.phone_fields, object)?;
        let email_fields = of("email_fields", &settings.email_fields, object)?;
        let external_id_fields = of("external_id_fields", &settings.external_id_fields, object)?;
        let mut fields = of("fields", &settings.fields, object)?;
        for f in phone_fields
            .iter()
            .chain(&email_fields)
            .chain(&external_id_fields)
        {
            if !fields.contains(f) {
                fields.push(f.clone());
            }
        }
        let target = Target {
            object: object.to_owned(),
            fields,
        };
        // Builds a query once, so a bad name fails at start naming the key, not at the first call.
        soql_equals(
            &ApiVersion::parse("66.0").map_err(|e| anyhow::anyhow!("{e}"))?,
            &target,
            &["Id"],
            "x",
            None,
        )
        .map_err(|e| anyhow::anyhow!("crm.salesforce.objects / fields ({object}): {e}"))?;
        specs.push(ObjectSpec {
            target,
            phone_fields,
            email_fields,
            external_id_fields,
        });
    }
    Ok(specs)
}

impl SalesforceCrm {
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
impl CrmAdapter for SalesforceCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        match key {
            CustomerKey::Phone(_) => self.search_phone(key).await,
            CustomerKey::Email(email) => {
                self.query_each(key, email.trim(), |o| &o.email_fields)
                    .await
            }
            CustomerKey::ExternalContactId(id) => {
                self.query_each(key, id.trim(), |o| &o.external_id_fields)
                    .await
            }
            CustomerKey::CustomerId(id) => self.find_id(id).await,
            // Not in `key_kinds`: a source is never asked about a kind it does not serve.
            CustomerKey::MessagingId(_) => Ok(Vec::new()),
        }
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // A token is cached for its lifetime: this costs no API call. A spent allocation share
        // shows as not ready.
        self.check_allocation()?;
        self.tokens.token().await.map(|_| ())
    }
}
