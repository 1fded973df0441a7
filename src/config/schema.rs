//! The sections of the configuration, as plain data, each with the typed accessors its component
//! builds itself from (`timeout()`, `retry()`, `budget()`, ...): the raw `_ms`/`_secs` numbers
//! become `Duration`s here and nowhere else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use phonenumber::country;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::crm::{ChainMode, MatchPolicy, MatchSettings, SharedCrmSettings, SourceSettings};
use super::freshdesk::FreshdeskSettings;
use super::network::TlsSettings;
use super::servicenow::ServiceNowSettings;
use super::sql::SqlCrmSettings;
use super::{invalid, redacted, ConfigError};
use crate::domain::{KeyKind, MatchQuality};
use crate::genesys::region::region_domain;
use crate::merge::{MergePolicy, Overwrite};
use crate::phone::Notation;
use crate::redact::RedactMode;
use crate::retry::RetryPolicy;

/// The sample customer file the embedded defaults name (`crm.file.path`).
pub const DEFAULT_CUSTOMER_FILE: &str = "config/customers.json";

/// The sample customers, embedded, so `attrsync demo` runs wherever the binary is.
pub const SAMPLE_CUSTOMERS: &str = include_str!("../../config/customers.json");

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    pub max_concurrent_requests: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-For` headers are believed (load balancers).
    #[serde(deserialize_with = "super::network::cidr_list")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub tls: TlsSettings,
}

impl ServerSettings {
    /// `host:port`, for binding; an IPv6 host is bracketed (`[::1]:8080`).
    pub fn address(&self) -> String {
        let host = self.host.trim();
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GenesysSettings {
    pub region: String,
    pub api_url: String,
    pub login_url: String,
    pub client_id: String,
    #[serde(serialize_with = "redacted")]
    pub client_secret: SecretString,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub token_refresh_margin_secs: u64,
    pub max_retries: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_retry_after_secs: u64,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// Tokens held for each OAuth client (the token pool's slots per client).
    pub tokens: u32,
    /// More OAuth clients for the pool, each `client_id:client_secret`.
    #[serde(serialize_with = "super::redacted_list")]
    pub extra_clients: Vec<SecretString>,
    pub participant_purposes: Vec<String>,
    /// Purposes tried, after `participant_purposes`, for a participant whose media is outbound:
    /// the remote party of an agent-dialed call (whose purpose is unverified).
    pub outbound_participant_purposes: Vec<String>,
    /// How often Genesys's published address ranges are read again, when a group follows them.
    pub ip_ranges_refresh_secs: u64,
    /// The `service` values of `GET /api/v2/ipranges` rows that are data-action sources.
    pub ip_ranges_services: Vec<String>,
    /// The `region` values kept; empty = every row the org's regional API returns.
    pub ip_ranges_regions: Vec<String>,
}

/// One OAuth client of the token pool.
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: SecretString,
}

impl GenesysSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn token_refresh_margin(&self) -> Duration {
        Duration::from_secs(self.token_refresh_margin_secs)
    }
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            base_delay: Duration::from_millis(self.retry_base_ms),
            max_delay: Duration::from_millis(self.retry_max_ms),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }
    /// Every OAuth client of the token pool, the main one first; `None` for an entry of
    /// `extra_clients` that is not `client_id:client_secret` (validation names it).
    pub fn clients(&self) -> Vec<Option<OAuthClient>> {
        use secrecy::ExposeSecret;
        let main = OAuthClient {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
        };
        std::iter::once(Some(main))
            .chain(self.extra_clients.iter().map(|entry| {
                // Client ids are UUIDs, so the first colon ends the id; a secret may hold one.
                let (id, secret) = entry.expose_secret().split_once(':')?;
                let (id, secret) = (id.trim(), secret.trim());
                (!id.is_empty() && !secret.is_empty()).then(|| OAuthClient {
                    client_id: id.to_owned(),
                    client_secret: SecretString::from(secret.to_owned()),
                })
            }))
            .collect()
    }

    /// The token pool's size: `tokens` for each client.
    pub fn slots(&self) -> usize {
        (1 + self.extra_clients.len()) * self.tokens as usize
    }

    pub fn ip_ranges_refresh(&self) -> Duration {
        Duration::from_secs(self.ip_ranges_refresh_secs)
    }

    /// The Platform API base: `api_url`, or `https://api.<region's domain>`.
    pub fn api_url(&self) -> Result<url::Url, ConfigError> {
        self.url(&self.api_url, "api", "genesys.api_url")
    }

    /// The login host (token endpoint): `login_url`, or `https://login.<region's domain>`.
    pub fn login_url(&self) -> Result<url::Url, ConfigError> {
        self.url(&self.login_url, "login", "genesys.login_url")
    }

    fn url(&self, explicit: &str, host: &str, key: &str) -> Result<url::Url, ConfigError> {
        let raw = if explicit.trim().is_empty() {
            let domain = region_domain(&self.region)
                .map_err(|e| invalid("genesys.region", e.to_string()))?;
            format!("https://{host}.{domain}")
        } else {
            explicit.trim().to_owned()
        };
        // One trailing slash: a gateway's path prefix survives `join`.
        let raw = crate::genesys::region::base_url(&raw);
        let url = url::Url::parse(&raw).map_err(|e| invalid(key, format!("`{raw}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(key, "must be an http or https URL"));
        }
        Ok(url)
    }
}

/// The CRM adapters, a closed set: `crm.adapter`, the entries of `crm.sources`, and the `source`
/// label of the CRM metrics. An adapter registers here, in `CrmSettings::common` and in
/// `crm::adapter`; its settings are `[crm.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmAdapterKind {
    File,
    Http,
    Sql,
    Salesforce,
    Dynamics,
    #[serde(rename = "servicenow")]
    ServiceNow,
    Freshdesk,
    Zendesk,
    Hubspot,
}

impl CrmAdapterKind {
    pub const ALL: [CrmAdapterKind; 9] = [
        CrmAdapterKind::File,
        CrmAdapterKind::Http,
        CrmAdapterKind::Sql,
        CrmAdapterKind::Salesforce,
        CrmAdapterKind::Dynamics,
        CrmAdapterKind::ServiceNow,
        CrmAdapterKind::Freshdesk,
        CrmAdapterKind::Zendesk,
        CrmAdapterKind::Hubspot,
    ];

    /// The name in configuration, in `[crm.<name>]` and in the `source` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            CrmAdapterKind::File => "file",
            CrmAdapterKind::Http => "http",
            CrmAdapterKind::Sql => "sql",
            CrmAdapterKind::Salesforce => "salesforce",
            CrmAdapterKind::Dynamics => "dynamics",
            CrmAdapterKind::ServiceNow => "servicenow",
            CrmAdapterKind::Freshdesk => "freshdesk",
            CrmAdapterKind::Zendesk => "zendesk",
            CrmAdapterKind::Hubspot => "hubspot",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CrmSettings {
    /// The one source when `sources` is empty.
    pub adapter: CrmAdapterKind,
    /// Several sources, in order (each adapter at most once); overrides `adapter` when set.
    pub sources: Vec<CrmAdapterKind>,
    pub chain_mode: ChainMode,
    pub key_order: Vec<KeyKind>,
    pub match_policy: MatchPolicy,
    pub match_priority: Vec<String>,
    pub min_match_quality: MatchQuality,
    /// At most this many `type/id`s in `crm.candidateIds`.
    pub max_candidate_ids: usize,
    pub file: FileCrmSettings,
    pub http: HttpCrmSettings,
    pub sql: SqlCrmSettings,
    pub salesforce: super::salesforce::SalesforceSettings,
    pub dynamics: super::dynamics::DynamicsSettings,
    /// What replicas share about the CRM (`[crm.shared]`).
    pub shared: SharedCrmSettings,
    pub servicenow: ServiceNowSettings,
    pub freshdesk: FreshdeskSettings,
    pub zendesk: super::ZendeskCrmSettings,
    pub hubspot: super::HubSpotCrmSettings,
}

impl CrmSettings {
    /// The sources in chain order: `sources`, or the one `adapter`.
    pub fn source_kinds(&self) -> Vec<CrmAdapterKind> {
        if self.sources.is_empty() {
            vec![self.adapter]
        } else {
            self.sources.clone()
        }
    }

    /// The per-source settings in `[crm.<kind>]`.
    pub fn common(&self, kind: CrmAdapterKind) -> &SourceSettings {
        match kind {
            CrmAdapterKind::File => &self.file.common,
            CrmAdapterKind::Http => &self.http.common,
            CrmAdapterKind::Sql => &self.sql.common,
            CrmAdapterKind::Salesforce => &self.salesforce.common,
            CrmAdapterKind::Dynamics => &self.dynamics.common,
            CrmAdapterKind::ServiceNow => &self.servicenow.common,
            CrmAdapterKind::Freshdesk => &self.freshdesk.common,
            CrmAdapterKind::Zendesk => &self.zendesk.common,
            CrmAdapterKind::Hubspot => &self.hubspot.common,
        }
    }

    pub fn matching(&self) -> MatchSettings {
        MatchSettings {
            policy: self.match_policy,
            priority: self.match_priority.clone(),
            min_quality: self.min_match_quality,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FileCrmSettings {
    pub path: PathBuf,
    pub id_field: String,
    pub phone_fields: Vec<String>,
    pub email_fields: Vec<String>,
    pub external_contact_id_field: String,
    /// Field holding a messaging platform's user id (`messaging_id` keys); empty = none.
    #[serde(default)]
    pub messaging_id_field: String,
    #[serde(flatten)]
    pub common: SourceSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuthKind {
    None,
    Bearer,
    Basic,
    ApiKey,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HttpCrmSettings {
    pub templates: BTreeMap<KeyKind, String>,
    pub allowed_hosts: Vec<String>,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    pub auth: HttpAuthKind,
    #[serde(serialize_with = "redacted")]
    pub token: SecretString,
    pub username: String,
    #[serde(serialize_with = "redacted")]
    pub password: SecretString,
    pub api_key_header: String,
    #[serde(serialize_with = "redacted")]
    pub api_key: SecretString,
    pub results_pointer: String,
    pub fields: BTreeMap<String, String>,
    pub phone_notations: Vec<Notation>,
    /// JSON pointers into each result: its id, its type (or a fixed `record_type`), its
    /// last-modified time, and the fields graded against a phone or email key.
    pub record_id_pointer: String,
    pub record_type: String,
    pub record_type_pointer: String,
    pub last_modified_pointer: String,
    pub phone_pointers: Vec<String>,
    pub email_pointers: Vec<String>,
    #[serde(flatten)]
    pub common: SourceSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CacheSettings {
    pub max_entries: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PhoneSettings {
    /// Parsed once, at load: a bad region fails start-up naming `phone.default_region`.
    #[serde(deserialize_with = "region", serialize_with = "region_code")]
    pub default_region: country::Id,
}

fn region<'de, D: Deserializer<'de>>(deserializer: D) -> Result<country::Id, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::phone::parse_region(&text).map_err(serde::de::Error::custom)
}

fn region_code<S: Serializer>(region: &country::Id, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(region.as_ref())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MergeSettings {
    pub prefix: String,
    pub overwrite: Overwrite,
    pub max_value_chars: usize,
    pub flatten_separator: String,
    pub timestamp_attribute: String,
    pub found_attribute: String,
    pub exclude: Vec<String>,
    pub fields: BTreeMap<String, String>,
    pub max_attributes: usize,
    pub max_patch_bytes: usize,
    pub details_fields: BTreeMap<String, String>,
    pub details_types: BTreeMap<String, String>,
    /// Write `matchCount`, `matchQuality`, `recordType`, `recordId` and `candidateIds` (under
    /// the prefix) beside the chosen record.
    pub match_details: bool,
}

impl MergeSettings {
    /// The merge policy the pipeline applies; an empty attribute name means "none".
    pub fn policy(&self) -> MergePolicy {
        let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        MergePolicy {
            prefix: self.prefix.clone(),
            fields: self.fields.clone(),
            exclude: self.exclude.clone(),
            overwrite: self.overwrite,
            max_value_chars: self.max_value_chars,
            flatten_separator: self.flatten_separator.clone(),
            timestamp_attribute: optional(&self.timestamp_attribute),
            found_attribute: optional(&self.found_attribute),
            max_attributes: self.max_attributes,
            max_patch_bytes: self.max_patch_bytes,
            details_fields: self.details_fields.clone(),
            details_types: self.details_types.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QueueSettings {
    pub backend: QueueBackend,
    pub sqlite_path: PathBuf,
    #[serde(serialize_with = "redacted")]
    pub postgres_url: SecretString,
    pub postgres_schema: String,
    pub postgres_max_connections: u32,
    pub capacity: usize,
    pub workers: usize,
    pub lease_secs: u64,
    pub poll_interval_ms: u64,
    pub dedup_window_secs: u64,
    pub dedup_retention_secs: u64,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_attempts: u32,
    pub retry_horizon_secs: u64,
}

impl QueueSettings {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
    pub fn dedup_window(&self) -> Duration {
        Duration::from_secs(self.dedup_window_secs)
    }
    pub fn dedup_retention(&self) -> Duration {
        Duration::from_secs(self.dedup_retention_secs)
    }
    pub fn retry_base(&self) -> Duration {
        Duration::from_millis(self.retry_base_ms)
    }
    pub fn retry_max(&self) -> Duration {
        Duration::from_millis(self.retry_max_ms)
    }
    pub fn retry_horizon(&self) -> Duration {
        Duration::from_secs(self.retry_horizon_secs)
    }
}

/// `[journal]`: the journey of every event, kept in the queue's database.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct JournalSettings {
    pub enabled: bool,
    pub retention_hours: u64,
    pub max_events: u64,
}

impl JournalSettings {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_hours.saturating_mul(3600))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LookupSettings {
    pub deadline_ms: u64,
    pub write_attributes: bool,
}

impl LookupSettings {
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    pub log_level: String,
    pub redact: RedactMode,
    /// OTLP/HTTP (protobuf) traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`; empty = no
    /// traces exported.
    #[serde(default)]
    pub otlp_endpoint: String,
}
