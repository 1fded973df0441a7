//! The `dynamics` CRM adapter: the pure requests and parsers of this module sent to a Dataverse
//! environment.
//!
//! - Tokens from Entra ID's v2.0 token endpoint with the client credentials grant, a client
//!   secret or a certificate's client assertion, scope `<org_url>/.default` (Microsoft identity
//!   platform, *OAuth 2.0 client credentials flow*, learn.microsoft.com/entra/identity-platform/
//!   v2-oauth2-client-creds-grant-flow); renewed before `expires_in`, and once on a 401.
//! - One `GET <org>/api/data/v9.2/<entity set>?$select=…&$filter=…&$top=…` per entity set with
//!   the OData headers the Web API documents (`OData-MaxVersion`, `OData-Version`, `Accept`),
//!   every notation of the caller number OR-ed over the phone columns: Dataverse compares the
//!   stored text exactly (Dataverse Web API, *Filter rows*, *Compose HTTP requests and handle
//!   errors*). Each row is graded on its entity set's columns ([`crate::crm::grade`]).
//! - Service protection (Dataverse, *Service protection API limits*): a 429 carries
//!   `Retry-After` in seconds and "sending on extends the wait": after one, no call is sent
//!   until it has passed (lookups fail as `RateLimited` with the remaining wait). The error body
//!   `{"error":{"code","message"}}` is kept in the log line, its quoted literals, long digit runs
//!   and email addresses masked (Dataverse echoes the filter in syntax errors).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use phonenumber::country;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use tokio::time::Instant;

use super::entity::EntitySpec;
use super::error::{ErrorKind, WebApiError};
use super::odata::{is_guid, ODataError, WebApiRequest, REQUEST_HEADERS};
use super::response::parse_collection;
use crate::config::{split_object_field, DynamicsSettings};
use crate::crm::candidate::Candidate;
use crate::crm::grade::grade_records;
use crate::crm::oauth::{AccessToken, Defaults, OAuthClient, TokenManager};
use crate::crm::upstream::{http_client, Upstream};
use crate::crm::{CrmAdapter, CrmError, CustomerKey, KeyKind};
use crate::phone::Notation;

const SOURCE: &str = "dynamics";

/// An entity set as searched: the pure module's spec, plus its external id columns.
#[derive(Debug, Clone)]
struct Table {
    spec: EntitySpec,
    external_id_columns: Vec<String>,
}

pub struct DynamicsCrm {
    http: reqwest::Client,
    tokens: TokenManager,
    org_url: String,
    version: String,
    tables: Vec<Table>,
    key_kinds: Vec<KeyKind>,
    phone_notations: Vec<Notation>,
    max_records: u32,
    /// No call before this instant: a 429's `Retry-After`.
    throttled_until: Mutex<Option<Instant>>,
    region: country::Id,
    upstream: Upstream,
}

impl DynamicsCrm {
    /// The adapter `[crm.dynamics]` describes (validated at load); errors name the key.
    pub fn from_settings(settings: &DynamicsSettings, region: country::Id) -> anyhow::Result<Self> {
        let org_url = settings.org_url.trim().trim_end_matches('/').to_owned();
        let token_url = url::Url::parse(&format!(
            "{}/{}/oauth2/v2.0/token",
            settings.authority_url.trim().trim_end_matches('/'),
            settings.tenant_id.trim()
        ))
        .map_err(|e| anyhow::anyhow!("crm.dynamics.authority_url / tenant_id: {e}"))?;
        let client = OAuthClient::from_settings(
            &settings.oauth,
            "crm.dynamics.oauth",
            Defaults {
                token_url: Some(token_url),
                audience: None,
                scope: Some(format!("{org_url}/.default")),
            },
        )?;
        let tables = tables(settings)?;
        let mut key_kinds = vec![KeyKind::CustomerId, KeyKind::Phone];
        if tables.iter().any(|t| !t.spec.email_columns.is_empty()) {
            key_kinds.push(KeyKind::Email);
        }
        if tables.iter().any(|t| !t.external_id_columns.is_empty()) {
            key_kinds.push(KeyKind::ExternalContactId);
        }
        let http = http_client(&settings.common).build()?;
        Ok(Self {
            tokens: TokenManager::new(http.clone(), client, SOURCE),
            http,
            org_url,
            version: settings.api_version.trim().to_owned(),
            tables,
            key_kinds,
            phone_notations: settings.phone_notations.clone(),
            max_records: settings.max_records,
            throttled_until: Mutex::new(None),
            region,
            upstream: Upstream::from_settings(SOURCE, &settings.common),
        })
    }

    fn throttle_state(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.throttled_until
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `RateLimited` with the wait left while a 429's `Retry-After` runs.
    fn check_throttle(&self) -> Result<(), CrmError> {
        let mut until = self.throttle_state();
        match *until {
            Some(t) if t > Instant::now() => Err(CrmError::RateLimited {
                retry_after: Some(t - Instant::now()),
            }),
            Some(_) => {
                *until = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The rows `request` finds, under the source's retries and budget, with a token renewed
    /// once on a 401.
    async fn rows(
        &self,
        table: &Table,
        request: &WebApiRequest,
    ) -> Result<Vec<crate::crm::vendor::VendorRecord>, CrmError> {
        let body = self
            .upstream
            .call("query", || {
                self.tokens.with_token(|token| self.send(token, request))
            })
            .await?;
        let page = parse_collection(&table.spec, &body)
            .map_err(|e| CrmError::InvalidResponse(e.to_string()))?;
        Ok(page.records)
    }

    async fn send(
        &self,
        token: Arc<AccessToken>,
        request: &WebApiRequest,
    ) -> Result<Vec<u8>, CrmError> {
        self.check_throttle()?;
        let mut authorization = HeaderValue::from_str(&token.authorization()).map_err(|_| {
            CrmError::InvalidResponse("the access token is not a header value".to_owned())
        })?;
        authorization.set_sensitive(true);
        let mut builder = self
            .http
            .get(request.url(&self.org_url))
            .header(AUTHORIZATION, authorization);
        for (name, value) in REQUEST_HEADERS {
            builder = builder.header(HeaderName::from_static(lower(name)), value);
        }
        let response = self.upstream.send("query", builder).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| CrmError::Connect(e.without_url().to_string()))?;
        if (200..300).contains(&status) {
            return Ok(body.to_vec());
        }
        let retry_after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let error = WebApiError::parse(status, retry_after, &body);
        tracing::warn!(
            source = SOURCE,
            status,
            code = %error.code,
            message = %mask(&error.message),
            limit = error.service_protection_limit().unwrap_or(""),
            retry_after_secs = error.retry_after.map(|d| d.as_secs()),
            "Dataverse refused the call"
        );
        Err(match error.kind() {
            ErrorKind::Unauthorized => CrmError::InvalidSession,
            ErrorKind::Throttled => {
                // Honour the wait: a request sent during it extends the block.
                let wait = error.retry_after.unwrap_or(Duration::from_secs(1));
                *self.throttle_state() = Some(Instant::now() + wait);
                CrmError::RateLimited {
                    retry_after: Some(wait),
                }
            }
            ErrorKind::Forbidden => {
                CrmError::Auth(format!("Dataverse answered 403 {}", error.code))
            }
            ErrorKind::BadRequest => CrmError::Unavailable(format!(
                "Dataverse rejected the query ({} {}): check crm.dynamics' entity sets and columns",
                status, error.code
            )),
            ErrorKind::Unavailable | ErrorKind::Other => CrmError::from_status(status, &headers),
        })
    }

    /// One query per table that has `columns_of` for this key, each row graded on them.
    async fn each_table(
        &self,
        key: &CustomerKey,
        columns_of: impl Fn(&Table) -> &[String],
        request_for: impl Fn(&Table) -> Result<WebApiRequest, ODataError>,
    ) -> Result<Vec<Candidate>, CrmError> {
        // The entity sets are asked at once (each query under the source's budget): a lookup
        // takes one round trip, not one per entity set. Candidates keep the configured order.
        let mut queries = Vec::new();
        for table in &self.tables {
            let columns = columns_of(table);
            if columns.is_empty() {
                continue;
            }
            let request = request_for(table).map_err(|e| CrmError::Unavailable(e.to_string()))?;
            queries.push(async move {
                let rows = self.rows(table, &request).await?;
                Ok::<_, CrmError>(grade_records(SOURCE, key, rows, columns, self.region))
            });
        }
        let found = futures_util::future::try_join_all(queries).await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn find_id(&self, id: &str) -> Result<Vec<Candidate>, CrmError> {
        let id = id.trim();
        if !is_guid(id) {
            return Ok(Vec::new());
        }
        // GUIDs are case-insensitive; Dataverse answers them in lower case.
        let key = &CustomerKey::CustomerId(id.to_ascii_lowercase());
        for table in &self.tables {
            let request = table
                .spec
                .id_lookup(&self.version, id)
                .map_err(|e| CrmError::Unavailable(e.to_string()))?;
            let rows = self.rows(table, &request).await?;
            let primary = [table.spec.primary_id.clone()];
            let found = grade_records(SOURCE, key, rows, &primary, self.region);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }
}

/// Header names as `HeaderName::from_static` wants them.
fn lower(name: &'static str) -> &'static str {
    match name {
        "Accept" => "accept",
        "OData-MaxVersion" => "odata-maxversion",
        "OData-Version" => "odata-version",
        "If-None-Match" => "if-none-match",
        "Prefer" => "prefer",
        _ => "x-unknown",
    }
}

/// A Dataverse error message fit for a log line: quoted literals, runs of 5+ digits and email
/// addresses (what a caller's number or email looks like in an echoed filter) masked, cut.
pub fn mask(message: &str) -> String {
    let mut out = String::new();
    let mut quoted = false;
    let mut digits = 0usize;
    for c in message.chars().take(400) {
        if c == '\'' {
            quoted = !quoted;
            out.push_str(if quoted { "'…" } else { "'" });
            continue;
        }
        if quoted {
            continue;
        }
        digits = if c.is_ascii_digit() { digits + 1 } else { 0 };
        out.push(c);
        if digits == 5 {
            out.truncate(out.len() - 5);
            out.push('#');
        } else if digits > 5 {
            out.pop();
        }
    }
    out.split(' ')
        .map(|w| if w.contains('@') { "[email]" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn tables(settings: &DynamicsSettings) -> anyhow::Result<Vec<Table>> {
    let of = |list: &[String], set: &str| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in list {
            if let Some((s, column)) = split_object_field(name) {
                if s == set && !out.iter().any(|c| c == column) {
                    out.push(column.to_owned());
                }
            }
        }
        out
    };
    let mut tables = Vec::new();
    for set in &settings.entity_sets {
        let set = set.trim();
        let mut spec = match set {
            "contacts" => EntitySpec::contacts(),
            "accounts" => EntitySpec::accounts(),
            "leads" => EntitySpec::leads(),
            _ => {
                let primary = of(&settings.primary_ids, set)
                    .into_iter()
                    .next()
                    .ok_or_else(|| {
                        anyhow::anyhow!("crm.dynamics.primary_ids: none for the entity set {set}")
                    })?;
                EntitySpec {
                    entity_set: set.to_owned(),
                    logical_name: primary.strip_suffix("id").unwrap_or(&primary).to_owned(),
                    primary_id: primary,
                    phone_columns: Vec::new(),
                    email_columns: Vec::new(),
                    select: Vec::new(),
                }
            }
        };
        if let Some(primary) = of(&settings.primary_ids, set).into_iter().next() {
            spec.primary_id = primary;
        }
        spec.phone_columns = of(&settings.phone_columns, set);
        spec.email_columns = of(&settings.email_columns, set);
        let external_id_columns = of(&settings.external_id_columns, set);
        let mut select = of(&settings.select, set);
        for c in spec
            .phone_columns
            .iter()
            .chain(&spec.email_columns)
            .chain(&external_id_columns)
        {
            if !select.contains(c) {
                select.push(c.clone());
            }
        }
        spec.select = select;
        // Built once, so a bad name fails at start naming the key.
        spec.id_lookup(
            &settings.api_version,
            "00000000-0000-0000-0000-000000000000",
        )
        .map_err(|e| anyhow::anyhow!("crm.dynamics ({set}): {e}"))?;
        tables.push(Table {
            spec,
            external_id_columns,
        });
    }
    Ok(tables)
}

impl DynamicsCrm {
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
impl CrmAdapter for DynamicsCrm {
    fn kind(&self) -> &'static str {
        SOURCE
    }

    fn key_kinds(&self) -> &[KeyKind] {
        &self.key_kinds
    }

    async fn find(&self, key: &CustomerKey) -> Result<Vec<Candidate>, CrmError> {
        let top = Some(self.max_records);
        match key {
            CustomerKey::Phone(number) => {
                let mut notations: Vec<String> = Vec::new();
                for n in &self.phone_notations {
                    let text = number.notation(*n);
                    if !text.trim().is_empty() && !notations.contains(&text) {
                        notations.push(text);
                    }
                }
                let notations: Vec<&str> = notations.iter().map(String::as_str).collect();
                self.each_table(
                    key,
                    |t| &t.spec.phone_columns,
                    |t| t.spec.phone_lookup(&self.version, &notations, top),
                )
                .await
            }
            CustomerKey::Email(email) => {
                self.each_table(
                    key,
                    |t| &t.spec.email_columns,
                    |t| t.spec.email_lookup(&self.version, email, top),
                )
                .await
            }
            CustomerKey::ExternalContactId(id) => {
                self.each_table(
                    key,
                    |t| &t.external_id_columns,
                    |t| {
                        let spec = EntitySpec {
                            email_columns: t.external_id_columns.clone(),
                            ..t.spec.clone()
                        };
                        spec.email_lookup(&self.version, id, top)
                    },
                )
                .await
            }
            CustomerKey::CustomerId(id) => self.find_id(id).await,
            // Not in `key_kinds`: a source is never asked about a kind it does not serve.
            CustomerKey::MessagingId(_) => Ok(Vec::new()),
        }
    }

    async fn ready(&self) -> Result<(), CrmError> {
        // A cached token costs no Web API call.
        self.tokens.token().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn an_echoed_filter_is_masked_in_the_log_line() {
        let m = mask("Syntax error at position 27 in 'telephone1 eq '+13175550125''. ada@example.com 3175550125");
        assert!(!m.contains("3175550125"), "{m}");
        assert!(!m.contains("ada@"), "{m}");
        assert!(m.starts_with("Syntax error at position 27 in '"), "{m}");
    }
}
