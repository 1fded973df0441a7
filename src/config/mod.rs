//! Settings as plain data: the schema of every section with its typed accessors (`schema`,
//! `auth`; the TLS settings and address lists in `network`; what every CRM source shares in
//! `crm`, the OAuth client of a CRM adapter in `oauth`, the SQL adapter's section and query
//! placeholders in `sql`), loading and layering (`load`),
//! validation (`validate`), and the redacted view
//! printed by `check-config`. Every component builds itself from its own section; nothing here
//! knows the components.
//!
//! Layers, later wins: the embedded `config/default.toml`, an optional file (`--config` or
//! `ATTRSYNC_CONFIG`), `ATTRSYNC_<SECTION>__<KEY>` variables, then the plain `GENESYS_*`
//! variables Genesys users already have in their environments.

mod auth;
mod crm;
mod dynamics;
mod freshdesk;
mod hubspot;
mod load;
mod network;
mod oauth;
mod salesforce;
mod schema;
mod servicenow;
pub mod sql;
mod validate;
mod zendesk;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

pub use crate::merge::Overwrite;
pub use auth::{AuthGroup, AuthMode, AuthSettings, EndpointAuth};
pub use crm::{
    ChainMode, MatchPolicy, MatchSettings, SharedCrmSettings, SharedScope, SourceSettings,
    MIN_CACHE_KEY_SECRET,
};
pub use dynamics::DynamicsSettings;
pub use freshdesk::{FreshdeskLookup, FreshdeskSettings};
pub use hubspot::HubSpotCrmSettings;
pub use network::{contains, parse_cidr, TlsSettings};
pub use oauth::{AssertionAlgorithm, ClientAuth, OAuthGrant, OAuthSettings};
pub use salesforce::{split_object_field, SalesforceSettings};
pub use schema::{
    CacheSettings, CrmAdapterKind, CrmSettings, FileCrmSettings, GenesysSettings, HttpAuthKind,
    HttpCrmSettings, JournalSettings, LogFormat, LookupSettings, MergeSettings, PhoneSettings,
    QueueBackend, QueueSettings, ServerSettings, TelemetrySettings, DEFAULT_CUSTOMER_FILE,
    SAMPLE_CUSTOMERS,
};
pub use servicenow::{LocalNotation, ServiceNowAuth, ServiceNowSettings, StoredNotation};
pub use sql::{SqlBackend, SqlCrmSettings};
pub use zendesk::{ZendeskAuth, ZendeskCrmSettings, ZendeskPhoneForm};

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
    pub journal: JournalSettings,
    pub lookup: LookupSettings,
    pub telemetry: TelemetrySettings,
}

fn redacted_list<S: Serializer>(secrets: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(secrets.iter().map(|_| "[redacted]"))
}

fn redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("[redacted]")
    }
}

impl Settings {
    /// The effective configuration as TOML, secrets redacted (for `check-config`).
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# could not render the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::load::tests::load;

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

    #[test]
    fn the_redacted_view_loads_back_as_the_same_settings() {
        // What check-config prints is a configuration file: the region reads back as a region.
        let s = load(&[("ATTRSYNC_PHONE__DEFAULT_REGION", "gb")]).unwrap();
        assert!(s.redacted_toml().contains("default_region = \"GB\""));
    }
}
