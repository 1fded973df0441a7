//! `[crm.hubspot]`: the HubSpot adapter's settings (the API host, the private app's access
//! token, the phone properties searched, the properties returned, what id-like keys are, the
//! search endpoint's client-side limit) and their validation. Plain data; `crm::hubspot::adapter`
//! builds from it.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::crm::SourceSettings;
use super::{invalid, redacted, ConfigError};
use crate::phone::Notation;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HubSpotCrmSettings {
    /// `https://api.hubapi.com` (the simulator's address in tests).
    pub base_url: String,
    /// The private (or single-account) app's access token, sent as `Authorization: Bearer`.
    #[serde(serialize_with = "redacted")]
    pub access_token: SecretString,
    /// Contact properties compared with the caller's number as stored text, in
    /// `phone_notations`.
    pub phone_properties: Vec<String>,
    pub phone_notations: Vec<Notation>,
    /// Calculated properties compared with the national number ("area code and local number").
    pub calculated_phone_properties: Vec<String>,
    /// Properties a found contact carries (also those searched, for grading, then dropped if
    /// not listed here).
    pub properties: Vec<String>,
    /// What a `customer_id` / `external_contact_id` key is: `id` (the record id), a contact
    /// property holding it, or empty (not looked up).
    pub customer_id: String,
    pub external_contact_id: String,
    /// Searches at most this many per rolling second (0 = no limit).
    pub search_per_second: u32,
    /// Results asked for per search (`limit`, at most 200).
    pub search_limit: u32,
    #[serde(flatten)]
    pub common: SourceSettings,
}

fn property_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl HubSpotCrmSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let parsed = url::Url::parse(self.base_url.trim())
            .map_err(|_| invalid("crm.hubspot.base_url", "not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(
                "crm.hubspot.base_url",
                "must be an http or https URL with a host, e.g. https://api.hubapi.com",
            ));
        }
        if self.access_token.expose_secret().trim().is_empty() {
            return Err(invalid(
                "crm.hubspot.access_token",
                "required: the private app's access token (give it as ATTRSYNC_CRM__HUBSPOT__ACCESS_TOKEN)",
            ));
        }
        for (key, names) in [
            ("crm.hubspot.phone_properties", &self.phone_properties),
            (
                "crm.hubspot.calculated_phone_properties",
                &self.calculated_phone_properties,
            ),
            ("crm.hubspot.properties", &self.properties),
        ] {
            if let Some(bad) = names.iter().find(|n| !property_ok(n)) {
                return Err(invalid(
                    key,
                    format!("{bad:?} is not a HubSpot property name (lowercase letters, digits, '_', starting with a letter)"),
                ));
            }
        }
        if !self.phone_properties.is_empty() && self.phone_notations.is_empty() {
            return Err(invalid(
                "crm.hubspot.phone_notations",
                "at least one notation when crm.hubspot.phone_properties is set",
            ));
        }
        for (key, value) in [
            ("crm.hubspot.customer_id", &self.customer_id),
            ("crm.hubspot.external_contact_id", &self.external_contact_id),
        ] {
            if !value.is_empty() && !property_ok(value) {
                return Err(invalid(key, "\"id\", a contact property name or empty"));
            }
        }
        if !(1..=200).contains(&self.search_limit) {
            return Err(invalid(
                "crm.hubspot.search_limit",
                "between 1 and 200 (HubSpot's page size limit)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::load;

    fn error(pairs: &[(&str, &str)]) -> String {
        let mut all = vec![("ATTRSYNC_CRM__ADAPTER", "hubspot")];
        all.extend_from_slice(pairs);
        match load(&all) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_hubspot_section_loads_with_a_token_and_keeps_not_found_briefly() {
        let s = load(&[
            ("ATTRSYNC_CRM__ADAPTER", "hubspot"),
            ("ATTRSYNC_CRM__HUBSPOT__ACCESS_TOKEN", "pat-na1-x"),
        ])
        .expect("loads");
        assert_eq!(s.crm.hubspot.search_per_second, 5);
        assert_eq!(s.crm.hubspot.common.not_found_ttl_secs, 5);
    }

    #[test]
    fn hubspot_errors_name_the_key_at_fault() {
        assert!(error(&[]).contains("crm.hubspot.access_token"));
        let token = ("ATTRSYNC_CRM__HUBSPOT__ACCESS_TOKEN", "pat-na1-x");
        assert!(error(&[
            token,
            ("ATTRSYNC_CRM__HUBSPOT__PROPERTIES", "firstname,Last Name")
        ])
        .contains("crm.hubspot.properties"));
        assert!(
            error(&[token, ("ATTRSYNC_CRM__HUBSPOT__SEARCH_LIMIT", "500")])
                .contains("crm.hubspot.search_limit")
        );
        assert!(
            error(&[token, ("ATTRSYNC_CRM__HUBSPOT__BASE_URL", "ftp://x")])
                .contains("crm.hubspot.base_url")
        );
    }
}
