//! `[crm.salesforce]`: the org (its My Domain URL, the REST API version), the objects and fields
//! a lookup searches and returns, the share of the org's daily API allocation attrsync may
//! spend, the OAuth client (`[crm.salesforce.oauth]`) and the source settings every adapter has.
//! Plain data; `crm::salesforce::adapter` builds the adapter from it.
//!
//! Fields are named `Object.Field` (`Contact.MobilePhone`, `Contact.Account.Name`) in flat
//! lists, so a configuration file replaces a list whole and names keep their case.

use serde::{Deserialize, Serialize};

use super::crm::SourceSettings;
use super::oauth::OAuthSettings;
use super::{invalid, ConfigError};
use crate::phone::Notation;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SalesforceSettings {
    /// `https://<domain>.my.salesforce.com`: the token endpoint is
    /// `<domain_url>/services/oauth2/token` unless `oauth.token_url` says otherwise.
    pub domain_url: String,
    /// REST API version, `66.0`.
    pub api_version: String,
    /// The objects searched, in this order (SOSL `RETURNING`, SOQL one query each).
    pub objects: Vec<String>,
    /// `Object.Field`s returned with each record (written as attributes by the merge policy).
    /// In this and the lists below, entries of objects not in `objects` are ignored.
    pub fields: Vec<String>,
    /// `Object.Field`s a phone lookup grades each record on (SOSL searches every phone field).
    pub phone_fields: Vec<String>,
    /// `Object.Field`s an email lookup matches exactly (SOQL).
    pub email_fields: Vec<String>,
    /// `Object.Field`s holding the Genesys external contact id (SOQL); empty = not looked up.
    pub external_id_fields: Vec<String>,
    /// Notations of the caller number SOSL searches for (their digits, OR-ed).
    pub phone_notations: Vec<Notation>,
    /// At most this many records per lookup (SOSL and SOQL `LIMIT`).
    pub max_records: u32,
    /// Stop calling once `Sforce-Limit-Info` reports this share of the daily allocation used
    /// (0 < share <= 1; the org's other integrations need the rest).
    pub max_api_usage_share: f64,
    /// How long lookups stop (the source's circuit open) once the share is reached or
    /// Salesforce answers REQUEST_LIMIT_EXCEEDED for the daily allocation.
    pub quota_cooldown_secs: u64,
    pub oauth: OAuthSettings,
    #[serde(flatten)]
    pub common: SourceSettings,
}

/// The object and the field of `Object.Field` (the field may itself be a path).
pub fn split_object_field(name: &str) -> Option<(&str, &str)> {
    let (object, field) = name.trim().split_once('.')?;
    (!object.is_empty() && !field.is_empty()).then_some((object, field))
}

fn api_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl SalesforceSettings {
    /// The section's own rules (`crm.salesforce.*`); names are checked again, by SOQL's rules,
    /// when the adapter is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const S: &str = "crm.salesforce";
        let url = url::Url::parse(self.domain_url.trim()).map_err(|e| {
            invalid(
                &format!("{S}.domain_url"),
                format!("the org's My Domain URL, https://<domain>.my.salesforce.com ({e})"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(&format!("{S}.domain_url"), "must be an https URL"));
        }
        let version = self.api_version.trim().trim_start_matches('v');
        if !version
            .split_once('.')
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok())
        {
            return Err(invalid(
                &format!("{S}.api_version"),
                "a REST API version such as \"66.0\"",
            ));
        }
        if self.objects.is_empty() || self.objects.iter().any(|o| !api_name(o) || o.contains('.')) {
            return Err(invalid(
                &format!("{S}.objects"),
                "object API names, e.g. [\"Contact\", \"Account\", \"Lead\"]",
            ));
        }
        for (key, list) in [
            ("fields", &self.fields),
            ("phone_fields", &self.phone_fields),
            ("email_fields", &self.email_fields),
            ("external_id_fields", &self.external_id_fields),
        ] {
            for name in list {
                let Some((object, field)) = split_object_field(name) else {
                    return Err(invalid(
                        &format!("{S}.{key}"),
                        format!("{name:?} is not Object.Field"),
                    ));
                };
                // Fields of objects not in `objects` are ignored (the defaults name all three).
                if !api_name(object) || !api_name(field) {
                    return Err(invalid(
                        &format!("{S}.{key}"),
                        format!("{name:?}: Object.Field, both API names"),
                    ));
                }
            }
        }
        if self.phone_notations.is_empty() {
            return Err(invalid(
                &format!("{S}.phone_notations"),
                "at least one notation, e.g. [\"e164\", \"national\"]",
            ));
        }
        if !(1..=2000).contains(&self.max_records) {
            return Err(invalid(
                &format!("{S}.max_records"),
                "between 1 and 2000 (SOSL's maximum LIMIT)",
            ));
        }
        if !(self.max_api_usage_share > 0.0 && self.max_api_usage_share <= 1.0) {
            return Err(invalid(
                &format!("{S}.max_api_usage_share"),
                "a share of the daily allocation, greater than 0 and at most 1",
            ));
        }
        if self.quota_cooldown_secs == 0 {
            return Err(invalid(
                &format!("{S}.quota_cooldown_secs"),
                "must be greater than 0",
            ));
        }
        self.oauth.validate(&format!("{S}.oauth"))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::load::tests::load;

    fn error(pairs: &[(&str, &str)]) -> String {
        let base = [
            ("ATTRSYNC_CRM__ADAPTER", "salesforce"),
            (
                "ATTRSYNC_CRM__SALESFORCE__DOMAIN_URL",
                "https://acme.my.salesforce.com",
            ),
            ("ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_ID", "3MVG9x"),
            ("ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_SECRET", "s"),
        ];
        let mut all: Vec<(&str, &str)> = base.to_vec();
        all.retain(|(k, _)| !pairs.iter().any(|(p, _)| p == k));
        all.extend_from_slice(pairs);
        match load(&all) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_salesforce_section_loads_from_the_environment_and_errors_name_the_key() {
        assert_eq!(error(&[]), "", "the defaults with an org and a client");
        for (pairs, key) in [
            (
                vec![("ATTRSYNC_CRM__SALESFORCE__DOMAIN_URL", "acme")],
                "crm.salesforce.domain_url",
            ),
            (
                vec![("ATTRSYNC_CRM__SALESFORCE__API_VERSION", "latest")],
                "crm.salesforce.api_version",
            ),
            (
                vec![("ATTRSYNC_CRM__SALESFORCE__PHONE_FIELDS", "Phone")],
                "crm.salesforce.phone_fields",
            ),
            (
                vec![(
                    "ATTRSYNC_CRM__SALESFORCE__EMAIL_FIELDS",
                    "Contact.Email OR Id",
                )],
                "crm.salesforce.email_fields",
            ),
            (
                vec![("ATTRSYNC_CRM__SALESFORCE__MAX_API_USAGE_SHARE", "1.5")],
                "crm.salesforce.max_api_usage_share",
            ),
            (
                vec![("ATTRSYNC_CRM__SALESFORCE__OAUTH__CLIENT_SECRET", "")],
                "crm.salesforce.oauth.client_secret",
            ),
        ] {
            let e = error(&pairs);
            assert!(e.contains(key), "{pairs:?}: {e}");
        }
    }
}
