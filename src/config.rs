//! Settings: loading, layering, validation and the redacted view printed by `check-config`.
//!
//! Layers, later wins: the embedded `config/default.toml`, an optional file (`--config` or
//! `ATTRSYNC_CONFIG`), `ATTRSYNC_<SECTION>__<KEY>` variables, then the plain `GENESYS_*`
//! variables Genesys users already have in their environments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::auth::AuthSettings;
use crate::merge::{MergePolicy, Overwrite};
use crate::phone::Notation;
use crate::redact::RedactMode;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// A problem with the configuration, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid setting `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub genesys: GenesysSettings,
    pub crm: CrmSettings,
    pub cache: CacheSettings,
    pub phone: PhoneSettings,
    pub merge: MergeSettings,
    pub queue: QueueSettings,
    pub lookup: LookupSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub body_limit_bytes: usize,
    pub request_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    pub max_concurrent_requests: usize,
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
    pub participant_purposes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmAdapterKind {
    File,
    Http,
}

/// The kinds of customer key an event can carry, in lookup order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    CustomerId,
    ExternalContactId,
    Phone,
    Email,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CrmSettings {
    pub adapter: CrmAdapterKind,
    pub key_order: Vec<KeyKind>,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    pub file: FileCrmSettings,
    pub http: HttpCrmSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FileCrmSettings {
    pub path: PathBuf,
    pub id_field: String,
    pub phone_fields: Vec<String>,
    pub email_fields: Vec<String>,
    pub external_contact_id_field: String,
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
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub timeout_ms: u64,
    pub max_retries: usize,
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CacheSettings {
    pub ttl_secs: u64,
    pub not_found_ttl_secs: u64,
    pub max_entries: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PhoneSettings {
    pub default_region: String,
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

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LookupSettings {
    pub deadline_ms: u64,
    pub write_attributes: bool,
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
}

fn redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("[redacted]")
    }
}

/// Keys whose environment variables hold comma-separated lists.
const LIST_KEYS: &[&str] = &[
    "genesys.participant_purposes",
    "crm.key_order",
    "crm.file.phone_fields",
    "crm.file.email_fields",
    "crm.http.phone_notations",
    "crm.http.allowed_hosts",
    "merge.exclude",
    "auth.genesys.secrets",
    "auth.cti.secrets",
    "auth.lookup.secrets",
    "auth.ops.secrets",
];

/// Resolves `X_FILE=/path` variables (how Docker and Kubernetes mount secrets) into `X=<file
/// content>`; a file with several lines gives a comma-separated list. `X` itself wins if set.
fn with_file_secrets(env: &[(String, String)]) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = env.to_vec();
    for (name, path) in env {
        let Some(target) = name.strip_suffix("_FILE") else {
            continue;
        };
        if !(target.starts_with("ATTRSYNC_") || target.starts_with("GENESYS_")) || path.is_empty() {
            continue;
        }
        if env.iter().any(|(k, v)| k == target && !v.is_empty()) {
            continue;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(name, format!("cannot read {path}: {e}")))?;
        let value = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        out.retain(|(k, _)| k != target);
        out.push((target.to_owned(), value));
    }
    Ok(out)
}

/// SDK region names (as in the Genesys SDKs' region tables) mapped to their domains.
const SDK_REGIONS: &[(&str, &str)] = &[
    ("us_east_1", "mypurecloud.com"),
    ("eu_west_1", "mypurecloud.ie"),
    ("ap_southeast_2", "mypurecloud.com.au"),
    ("ap_northeast_1", "mypurecloud.jp"),
    ("eu_central_1", "mypurecloud.de"),
    ("us_west_2", "usw2.pure.cloud"),
    ("ca_central_1", "cac1.pure.cloud"),
    ("ap_northeast_2", "apne2.pure.cloud"),
    ("eu_west_2", "euw2.pure.cloud"),
    ("ap_south_1", "aps1.pure.cloud"),
    ("us_east_2", "use2.us-gov-pure.cloud"),
    ("sa_east_1", "sae1.pure.cloud"),
    ("me_central_1", "mec1.pure.cloud"),
    ("ap_northeast_3", "apne3.pure.cloud"),
    ("eu_central_2", "euc2.pure.cloud"),
    ("mx_central_1", "mxc1.pure.cloud"),
    ("ap_southeast_1", "apse1.pure.cloud"),
    ("eusc_de_east_1", "edee1.eusc-pure.cloud"),
];

/// Accepts a domain (`usw2.pure.cloud`, also with a stray `api.`/`login.` or scheme) or an SDK
/// region name (`us_west_2`, `US-WEST-2`) and returns the domain.
pub fn region_domain(region: &str) -> Result<String, String> {
    let r = region.trim().to_ascii_lowercase();
    let sdk = r.replace('-', "_");
    if let Some((_, domain)) = SDK_REGIONS.iter().find(|(name, _)| *name == sdk) {
        return Ok((*domain).to_owned());
    }
    let r = r
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let r = r
        .strip_prefix("api.")
        .or_else(|| r.strip_prefix("login."))
        .unwrap_or(r);
    let valid = r.contains('.')
        && r.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(r.to_owned())
    } else {
        Err(format!(
            "`{region}` is neither a Genesys domain (e.g. mypurecloud.com, usw2.pure.cloud) nor an SDK region name (e.g. us_west_2)"
        ))
    }
}

impl Settings {
    /// Loads the layers described in the module docs and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let env = with_file_secrets(env)?;
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| get("ATTRSYNC_CONFIG").map(PathBuf::from));
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(path) = &file {
            if !path.exists() {
                return Err(invalid(
                    "--config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path.as_path()));
        }
        let vars: config::Map<String, String> = env
            .iter()
            .filter(|(k, _)| {
                k.starts_with("ATTRSYNC_") && k != "ATTRSYNC_CONFIG" && !k.ends_with("_FILE")
            })
            .cloned()
            .collect();
        let mut environment = config::Environment::with_prefix("ATTRSYNC")
            .prefix_separator("_")
            .separator("__")
            .list_separator(",")
            .try_parsing(true);
        for key in LIST_KEYS {
            environment = environment.with_list_parse_key(key);
        }
        builder = builder.add_source(environment.source(Some(vars)));
        for (var, key) in [
            ("GENESYS_CLIENT_ID", "genesys.client_id"),
            ("GENESYS_CLIENT_SECRET", "genesys.client_secret"),
            ("GENESYS_REGION", "genesys.region"),
            ("GENESYS_API_URL", "genesys.api_url"),
            ("GENESYS_LOGIN_URL", "genesys.login_url"),
        ] {
            if let Some(value) = get(var) {
                builder = builder.set_override(key, value)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: required values, ranges, URLs, regions. Names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (group, auth) in self.auth.groups() {
            auth.validate(group)
                .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        }
        if self.genesys.client_id.trim().is_empty() {
            return Err(invalid(
                "genesys.client_id",
                "required: set GENESYS_CLIENT_ID (or ATTRSYNC_GENESYS__CLIENT_ID) to your OAuth client's id",
            ));
        }
        if self.genesys.client_secret.expose_secret().trim().is_empty() {
            return Err(invalid(
                "genesys.client_secret",
                "required: set GENESYS_CLIENT_SECRET (or ATTRSYNC_GENESYS__CLIENT_SECRET)",
            ));
        }
        region_domain(&self.genesys.region).map_err(|e| invalid("genesys.region", e))?;
        self.genesys_api_url()?;
        self.genesys_login_url()?;
        for (key, value) in [
            ("genesys.timeout_ms", self.genesys.timeout_ms),
            (
                "genesys.connect_timeout_ms",
                self.genesys.connect_timeout_ms,
            ),
            ("crm.http.timeout_ms", self.crm.http.timeout_ms),
            ("lookup.deadline_ms", self.lookup.deadline_ms),
            ("server.request_timeout_ms", self.server.request_timeout_ms),
            ("cache.max_entries", self.cache.max_entries),
            ("queue.capacity", self.queue.capacity as u64),
            ("queue.workers", self.queue.workers as u64),
            (
                "server.body_limit_bytes",
                self.server.body_limit_bytes as u64,
            ),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        match self.queue.backend {
            QueueBackend::Postgres if self.queue.postgres_url.expose_secret().trim().is_empty() => {
                return Err(invalid(
                    "queue.postgres_url",
                    "required when queue.backend = \"postgres\" (set ATTRSYNC_QUEUE__POSTGRES_URL)",
                ));
            }
            QueueBackend::Sqlite if self.queue.sqlite_path.as_os_str().is_empty() => {
                return Err(invalid(
                    "queue.sqlite_path",
                    "required when queue.backend = \"sqlite\"",
                ));
            }
            _ => {}
        }
        if !self
            .queue
            .postgres_schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(
                "queue.postgres_schema",
                "letters, digits and '_' only",
            ));
        }
        if self.genesys.participant_purposes.is_empty() {
            return Err(invalid(
                "genesys.participant_purposes",
                "must name at least one purpose, e.g. [\"customer\"]",
            ));
        }
        if self.crm.key_order.is_empty() {
            return Err(invalid("crm.key_order", "must name at least one key kind"));
        }
        crate::phone::parse_region(&self.phone.default_region)
            .map_err(|e| invalid("phone.default_region", e))?;
        if self.merge.max_value_chars < 24 {
            return Err(invalid(
                "merge.max_value_chars",
                "must be at least 24 (the sync timestamp attrsync writes is 24 characters)",
            ));
        }
        match self.crm.adapter {
            CrmAdapterKind::File => {
                if !self.crm.file.path.is_file() {
                    return Err(invalid(
                        "crm.file.path",
                        format!("{} is not a readable file", self.crm.file.path.display()),
                    ));
                }
            }
            CrmAdapterKind::Http => self.validate_http_crm()?,
        }
        Ok(())
    }

    fn validate_http_crm(&self) -> Result<(), ConfigError> {
        let http = &self.crm.http;
        if http.templates.is_empty() {
            return Err(invalid(
                "crm.http.templates",
                "the http adapter needs at least one URL template, e.g. phone = \"https://crm.example.com/customers?phone={phone}\"",
            ));
        }
        for (kind, template) in &http.templates {
            let key = format!("crm.http.templates.{}", kind.as_str());
            let probe = template
                .replace("{customer_id}", "x")
                .replace("{external_contact_id}", "x")
                .replace("{phone}", "x")
                .replace("{email}", "x");
            if probe.contains('{') || probe.contains('}') {
                return Err(invalid(
                    &key,
                    "unknown placeholder; use {customer_id}, {external_contact_id}, {phone} or {email}",
                ));
            }
            let url = url::Url::parse(&probe).map_err(|e| invalid(&key, e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&key, "must be an http or https URL"));
            }
            let Some(host) = url.host_str().filter(|h| !h.contains('{')) else {
                return Err(invalid(&key, "the host must be fixed, not a placeholder"));
            };
            if !http
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host))
            {
                return Err(invalid(
                    &key,
                    format!("host {host} is not in crm.http.allowed_hosts"),
                ));
            }
        }
        reqwest::Method::from_bytes(http.method.as_bytes())
            .map_err(|_| invalid("crm.http.method", "not an HTTP method"))?;
        for name in http.headers.keys() {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&format!("crm.http.headers.{name}"), "not a header name"))?;
        }
        let missing = |key: &str| invalid(key, "required by the chosen crm.http.auth");
        match http.auth {
            HttpAuthKind::None => {}
            HttpAuthKind::Bearer if http.token.expose_secret().is_empty() => {
                return Err(missing("crm.http.token"))
            }
            HttpAuthKind::Basic if http.username.is_empty() => {
                return Err(missing("crm.http.username"))
            }
            HttpAuthKind::ApiKey if http.api_key.expose_secret().is_empty() => {
                return Err(missing("crm.http.api_key"))
            }
            _ => {}
        }
        if !http.results_pointer.is_empty() && !http.results_pointer.starts_with('/') {
            return Err(invalid(
                "crm.http.results_pointer",
                "a JSON pointer starts with '/' (or is empty for the whole body)",
            ));
        }
        for (name, pointer) in &http.fields {
            if !pointer.starts_with('/') {
                return Err(invalid(
                    &format!("crm.http.fields.{name}"),
                    "a JSON pointer starts with '/'",
                ));
            }
        }
        if http.phone_notations.is_empty() {
            return Err(invalid(
                "crm.http.phone_notations",
                "must list at least one notation, e.g. [\"e164\"]",
            ));
        }
        Ok(())
    }

    pub fn genesys_api_url(&self) -> Result<url::Url, ConfigError> {
        self.genesys_url(&self.genesys.api_url, "api", "genesys.api_url")
    }

    pub fn genesys_login_url(&self) -> Result<url::Url, ConfigError> {
        self.genesys_url(&self.genesys.login_url, "login", "genesys.login_url")
    }

    fn genesys_url(&self, explicit: &str, host: &str, key: &str) -> Result<url::Url, ConfigError> {
        let raw = if explicit.trim().is_empty() {
            let domain =
                region_domain(&self.genesys.region).map_err(|e| invalid("genesys.region", e))?;
            format!("https://{host}.{domain}")
        } else {
            explicit.trim().trim_end_matches('/').to_owned()
        };
        let url = url::Url::parse(&raw).map_err(|e| invalid(key, format!("`{raw}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(key, "must be an http or https URL"));
        }
        Ok(url)
    }

    /// The merge policy the pipeline applies, from `[merge]`.
    pub fn merge_policy(&self) -> MergePolicy {
        let optional = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        MergePolicy {
            prefix: self.merge.prefix.clone(),
            fields: self.merge.fields.clone(),
            exclude: self.merge.exclude.clone(),
            overwrite: self.merge.overwrite,
            max_value_chars: self.merge.max_value_chars,
            flatten_separator: self.merge.flatten_separator.clone(),
            timestamp_attribute: optional(&self.merge.timestamp_attribute),
            found_attribute: optional(&self.merge.found_attribute),
        }
    }

    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render the configuration: {e}\n"))
    }
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::CustomerId => "customer_id",
            KeyKind::ExternalContactId => "external_contact_id",
            KeyKind::Phone => "phone",
            KeyKind::Email => "email",
        }
    }
}

impl GenesysSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = vec![
            ("GENESYS_CLIENT_ID".into(), "id".into()),
            ("GENESYS_CLIENT_SECRET".into(), "s3cr3t-value".into()),
            ("ATTRSYNC_AUTH__GENESYS__SECRETS".into(), "k1,k2".into()),
            (
                "ATTRSYNC_AUTH__CTI__SECRETS".into(),
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            ),
            (
                "ATTRSYNC_AUTH__LOOKUP__SECRETS".into(),
                "lookup-password".into(),
            ),
        ];
        v.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        v
    }

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        // The embedded file CRM path is relative to the crate root, where tests run.
        Settings::load_from(None, &env(pairs))
    }

    #[test]
    fn embedded_defaults_load_once_credentials_are_given() {
        let s = load(&[]).expect("defaults load");
        assert_eq!(s.server.port, 8080);
        assert_eq!(
            s.genesys_api_url().unwrap().as_str(),
            "https://api.mypurecloud.com/"
        );
        assert_eq!(
            s.genesys_login_url().unwrap().as_str(),
            "https://login.mypurecloud.com/"
        );
    }

    #[test]
    fn the_default_configuration_requires_ingest_credentials() {
        let env: Vec<(String, String)> = env(&[])
            .into_iter()
            .filter(|(k, _)| k != "ATTRSYNC_AUTH__GENESYS__SECRETS")
            .collect();
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("auth.genesys.secrets"), "{err}");
        let s = load(&[("ATTRSYNC_AUTH__GENESYS__MODE", "none")]);
        assert!(s.is_ok(), "an explicit none is allowed");
    }

    #[test]
    fn several_secrets_can_be_given_for_rotation() {
        let s = load(&[]).unwrap();
        assert_eq!(s.auth.genesys.secrets.len(), 2);
    }

    #[test]
    fn file_variables_read_secrets_from_mounted_files() {
        let dir = tempfile::tempdir().unwrap();
        let client = dir.path().join("client_secret");
        std::fs::write(&client, "from-a-file\n").unwrap();
        let keys = dir.path().join("keys");
        std::fs::write(&keys, "key-one\nkey-two\n").unwrap();
        let mut env: Vec<(String, String)> = env(&[])
            .into_iter()
            .filter(|(k, _)| k != "GENESYS_CLIENT_SECRET" && k != "ATTRSYNC_AUTH__GENESYS__SECRETS")
            .collect();
        env.push((
            "GENESYS_CLIENT_SECRET_FILE".into(),
            client.display().to_string(),
        ));
        env.push((
            "ATTRSYNC_AUTH__GENESYS__SECRETS_FILE".into(),
            keys.display().to_string(),
        ));
        let s = Settings::load_from(None, &env).unwrap();
        assert_eq!(s.genesys.client_secret.expose_secret(), "from-a-file");
        let keys: Vec<&str> = s
            .auth
            .genesys
            .secrets
            .iter()
            .map(|k| k.expose_secret())
            .collect();
        assert_eq!(keys, ["key-one", "key-two"]);

        env.push((
            "ATTRSYNC_AUTH__LOOKUP__SECRETS_FILE".into(),
            "/nonexistent/secret".into(),
        ));
        env.retain(|(k, _)| k != "ATTRSYNC_AUTH__LOOKUP__SECRETS");
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("ATTRSYNC_AUTH__LOOKUP__SECRETS_FILE"), "{err}");
    }

    #[test]
    fn http_templates_may_only_name_allowed_hosts() {
        let err = load(&[
            ("ATTRSYNC_CRM__ADAPTER", "http"),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                "https://evil.example/x?p={phone}",
            ),
            ("ATTRSYNC_CRM__HTTP__ALLOWED_HOSTS", "crm.example.com"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("allowed_hosts"), "{err}");
        assert!(load(&[
            ("ATTRSYNC_CRM__ADAPTER", "http"),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                "https://crm.example.com/x?p={phone}"
            ),
            ("ATTRSYNC_CRM__HTTP__ALLOWED_HOSTS", "crm.example.com"),
        ])
        .is_ok());
    }

    #[test]
    fn missing_client_id_names_the_key() {
        let env: Vec<(String, String)> = env(&[])
            .into_iter()
            .filter(|(k, _)| k != "GENESYS_CLIENT_ID")
            .collect();
        let err = Settings::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("genesys.client_id"), "{err}");
    }

    #[test]
    fn prefixed_environment_variables_override_nested_keys() {
        let s = load(&[
            ("ATTRSYNC_SERVER__PORT", "9123"),
            ("ATTRSYNC_CRM__HTTP__TIMEOUT_MS", "777"),
            (
                "ATTRSYNC_GENESYS__PARTICIPANT_PURPOSES",
                "customer,external",
            ),
        ])
        .unwrap();
        assert_eq!(s.server.port, 9123);
        assert_eq!(s.crm.http.timeout_ms, 777);
        assert_eq!(s.genesys.participant_purposes, ["customer", "external"]);
    }

    #[test]
    fn sdk_region_names_and_domains_both_resolve() {
        assert_eq!(region_domain("us_west_2").unwrap(), "usw2.pure.cloud");
        assert_eq!(region_domain("eu-west-1").unwrap(), "mypurecloud.ie");
        assert_eq!(region_domain("usw2.pure.cloud").unwrap(), "usw2.pure.cloud");
        assert_eq!(
            region_domain("api.mypurecloud.de").unwrap(),
            "mypurecloud.de"
        );
        assert!(region_domain("not a region").is_err());
    }

    #[test]
    fn genesys_region_variable_sets_both_hosts() {
        let s = load(&[("GENESYS_REGION", "us_west_2")]).unwrap();
        assert_eq!(
            s.genesys_api_url().unwrap().host_str(),
            Some("api.usw2.pure.cloud")
        );
        assert_eq!(
            s.genesys_login_url().unwrap().host_str(),
            Some("login.usw2.pure.cloud")
        );
    }

    #[test]
    fn explicit_base_urls_win_over_the_region() {
        let s = load(&[
            ("GENESYS_API_URL", "http://127.0.0.1:9999/"),
            ("GENESYS_LOGIN_URL", "http://127.0.0.1:9998"),
        ])
        .unwrap();
        assert_eq!(
            s.genesys_api_url().unwrap().as_str(),
            "http://127.0.0.1:9999/"
        );
        assert_eq!(s.genesys_login_url().unwrap().port(), Some(9998));
    }

    #[test]
    fn an_invalid_value_fails_naming_its_key() {
        let err = load(&[("ATTRSYNC_QUEUE__WORKERS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("queue.workers"), "{err}");
        let err = load(&[("ATTRSYNC_PHONE__DEFAULT_REGION", "XX")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("phone.default_region"), "{err}");
        let err = load(&[("GENESYS_REGION", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("genesys.region"), "{err}");
    }

    #[test]
    fn http_adapter_needs_a_template_with_known_placeholders() {
        let err = load(&[("ATTRSYNC_CRM__ADAPTER", "http")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.http.templates"), "{err}");
        let err = load(&[
            ("ATTRSYNC_CRM__ADAPTER", "http"),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                "https://crm/x?p={fone}",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("crm.http.templates.phone"), "{err}");
    }

    #[test]
    fn redacted_view_never_contains_secrets() {
        let s = load(&[
            ("ATTRSYNC_CRM__HTTP__TOKEN", "crm-token-value"),
            ("ATTRSYNC_CRM__HTTP__PASSWORD", "crm-password-value"),
        ])
        .unwrap();
        let text = s.redacted_toml();
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("lookup-password"), "{text}");
        assert!(!text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{text}");
        assert!(!text.contains("crm-token-value"));
        assert!(!text.contains("crm-password-value"));
        assert!(text.contains("client_secret = \"[redacted]\""), "{text}");
        assert!(text.contains("[genesys]"));
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cr3t-value"));
    }
}
