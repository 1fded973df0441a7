//! `[crm.freshdesk]`: the Freshdesk adapter's account URL, API key, how contacts are looked up
//! (the filter "search" API or the contact list's filters), the phone fields and notations.
//! Plain data and its validation; the adapter is `crm::freshdesk::adapter`.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{invalid, redacted, ConfigError, SourceSettings, StoredNotation};

/// `crm.freshdesk.lookup`: which endpoint finds contacts by phone and email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FreshdeskLookup {
    /// `GET /api/v2/search/contacts?query="phone:'…' OR mobile:'…'"`: every notation and field
    /// in one call; reads an index that may lag behind new contacts.
    Search,
    /// `GET /api/v2/contacts?phone=…`: one call per field and notation, under the plan's
    /// Contacts List cap (20 a minute on Growth).
    List,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FreshdeskSettings {
    /// `https://<domain>.freshdesk.com`.
    pub domain_url: String,
    /// An agent's API key, sent as the Basic user name.
    #[serde(serialize_with = "redacted")]
    pub api_key: SecretString,
    pub lookup: FreshdeskLookup,
    /// `phone` (work phone) and/or `mobile`.
    pub phone_fields: Vec<String>,
    pub phone_notations: Vec<StoredNotation>,
    /// External contact ids compared with the contact's `unique_external_id` (search only).
    pub external_id_lookup: bool,
    /// `per_page` of a list lookup.
    pub limit: u32,
    #[serde(flatten)]
    pub common: SourceSettings,
}

const SECTION: &str = "crm.freshdesk";

impl FreshdeskSettings {
    /// The account URL without a trailing slash.
    pub fn domain(&self) -> Result<url::Url, ConfigError> {
        let key = format!("{SECTION}.domain_url");
        let raw = self.domain_url.trim().trim_end_matches('/');
        if raw.is_empty() {
            return Err(invalid(
                &key,
                "required: the account URL, e.g. https://example.freshdesk.com",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&key, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(&key, "must be an http or https URL with a host"));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(invalid(
                &key,
                "the account's address only, without a path or query",
            ));
        }
        Ok(url)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{SECTION}.{name}");
        self.domain()?;
        if self.api_key.expose_secret().trim().is_empty() {
            return Err(invalid(
                &key("api_key"),
                "required (give it as ATTRSYNC_CRM__FRESHDESK__API_KEY)",
            ));
        }
        if let Some(bad) = self
            .phone_fields
            .iter()
            .find(|f| !matches!(f.as_str(), "phone" | "mobile"))
        {
            return Err(invalid(
                &key("phone_fields"),
                format!("{bad:?} is not a contact phone field: use \"phone\" and/or \"mobile\""),
            ));
        }
        if !self.phone_fields.is_empty() && self.phone_notations.is_empty() {
            return Err(invalid(
                &key("phone_notations"),
                "must list at least one notation, e.g. [\"e164\", \"national\"]",
            ));
        }
        if self.external_id_lookup && self.lookup == FreshdeskLookup::List {
            return Err(invalid(
                &key("external_id_lookup"),
                "needs lookup = \"search\": unique_external_id is not a contact list filter",
            ));
        }
        if !(1..=100).contains(&self.limit) {
            return Err(invalid(&key("limit"), "must be 1..=100"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::load;
    use super::*;

    const ADAPTER: (&str, &str) = ("ATTRSYNC_CRM__ADAPTER", "freshdesk");
    const DOMAIN: (&str, &str) = (
        "ATTRSYNC_CRM__FRESHDESK__DOMAIN_URL",
        "https://example.freshdesk.com",
    );
    const KEY: (&str, &str) = ("ATTRSYNC_CRM__FRESHDESK__API_KEY", "key");

    fn error(pairs: &[(&str, &str)]) -> String {
        load(pairs).map_or_else(|e| e.to_string(), |_| "no error".to_owned())
    }

    #[test]
    fn the_defaults_with_a_domain_and_a_key_validate_with_the_growth_budget() {
        let s = load(&[ADAPTER, DOMAIN, KEY]).expect("valid");
        assert_eq!(s.crm.freshdesk.common.rate_limit_per_minute, 200);
        assert_eq!(s.crm.freshdesk.lookup, FreshdeskLookup::Search);
        assert_eq!(s.crm.freshdesk.phone_fields, ["phone", "mobile"]);
    }

    #[test]
    fn each_missing_or_malformed_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[ADAPTER, KEY], "crm.freshdesk.domain_url"),
            (
                &[
                    ADAPTER,
                    KEY,
                    (
                        "ATTRSYNC_CRM__FRESHDESK__DOMAIN_URL",
                        "https://x.freshdesk.com/api/v2",
                    ),
                ],
                "crm.freshdesk.domain_url",
            ),
            (&[ADAPTER, DOMAIN], "crm.freshdesk.api_key"),
            (
                &[
                    ADAPTER,
                    DOMAIN,
                    KEY,
                    ("ATTRSYNC_CRM__FRESHDESK__PHONE_FIELDS", "phone,fax"),
                ],
                "crm.freshdesk.phone_fields",
            ),
            (
                &[
                    ADAPTER,
                    DOMAIN,
                    KEY,
                    ("ATTRSYNC_CRM__FRESHDESK__LOOKUP", "list"),
                    ("ATTRSYNC_CRM__FRESHDESK__EXTERNAL_ID_LOOKUP", "true"),
                ],
                "crm.freshdesk.external_id_lookup",
            ),
            (
                &[
                    ADAPTER,
                    DOMAIN,
                    KEY,
                    ("ATTRSYNC_CRM__FRESHDESK__LIMIT", "101"),
                ],
                "crm.freshdesk.limit",
            ),
        ];
        for (pairs, key) in cases {
            let err = error(pairs);
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
