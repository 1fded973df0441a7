//! `[crm.zendesk]`: the Zendesk Support adapter's settings (the account, its credentials, how a
//! phone number is written into a search, which key kinds map to which user property, the user
//! fields returned) and their validation. Plain data; `crm::zendesk::adapter` builds from it.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::crm::SourceSettings;
use super::{invalid, redacted, ConfigError};

/// `auth`: the two ways Zendesk authenticates an API client
/// (support.zendesk.com/hc/en-us/articles/4408831452954).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZendeskAuth {
    /// `Authorization: Basic base64({email}/token:{api_token})`.
    ApiToken,
    /// `Authorization: Bearer {oauth_token}` (an OAuth access token issued to the account).
    OauthToken,
}

/// `phone_form`: how the caller's number is written into `phone:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ZendeskPhoneForm {
    /// `phone:*{national significant number}`: any stored formatting (the documented wildcard).
    AnyFormat,
    /// `phone:{country code and number, digits only}`: the exact stored text `15135557611`.
    Digits,
    /// `phone:+{country code and number}`: the exact stored text `+15135557611`.
    PlusDigits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ZendeskCrmSettings {
    /// `acme` for `https://acme.zendesk.com`.
    pub subdomain: String,
    /// Overrides `subdomain` (a host-mapped domain, the simulator): `https://support.acme.com`.
    pub base_url: String,
    pub auth: ZendeskAuth,
    /// The agent or admin whose API token `api_token` is.
    pub email: String,
    #[serde(serialize_with = "redacted")]
    pub api_token: SecretString,
    #[serde(serialize_with = "redacted")]
    pub oauth_token: SecretString,
    /// Search end users only (`role:end-user`), so an agent's own number never matches.
    pub end_users_only: bool,
    pub phone_form: ZendeskPhoneForm,
    /// Custom user field keys that hold phone numbers, searched too (one search each).
    pub phone_user_fields: Vec<String>,
    /// What a `customer_id` / `external_contact_id` key is: `id` (the Zendesk user id),
    /// `external_id`, a custom user field key, or empty (not looked up).
    pub customer_id: String,
    pub external_contact_id: String,
    /// The user properties a candidate carries (`name`, `email`, ...); empty = all of them.
    pub fields: Vec<String>,
    /// Custom user field key -> field name on the candidate: `{ tier = "tier" }` lifts
    /// `user_fields.tier` to `tier`. Empty = `user_fields` kept as the object it is.
    pub user_fields: BTreeMap<String, String>,
    #[serde(flatten)]
    pub common: SourceSettings,
}

impl ZendeskCrmSettings {
    /// `base_url`, or `https://{subdomain}.zendesk.com`.
    pub fn base_url(&self) -> String {
        if self.base_url.trim().is_empty() {
            format!("https://{}.zendesk.com", self.subdomain.trim())
        } else {
            self.base_url.trim().trim_end_matches('/').to_owned()
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.base_url.trim().is_empty() {
            let sub = self.subdomain.trim();
            let ok = !sub.is_empty()
                && sub
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(invalid(
                    "crm.zendesk.subdomain",
                    "required (lowercase letters, digits, '-'): `acme` for https://acme.zendesk.com, or set crm.zendesk.base_url",
                ));
            }
        } else {
            let parsed = url::Url::parse(self.base_url.trim())
                .map_err(|_| invalid("crm.zendesk.base_url", "not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(invalid(
                    "crm.zendesk.base_url",
                    "must be an http or https URL with a host",
                ));
            }
        }
        match self.auth {
            ZendeskAuth::ApiToken => {
                if !self.email.contains('@') || self.email.contains(':') {
                    return Err(invalid(
                        "crm.zendesk.email",
                        "required with auth = \"api_token\": the email of the agent whose token it is",
                    ));
                }
                if self.api_token.expose_secret().trim().is_empty() {
                    return Err(invalid(
                        "crm.zendesk.api_token",
                        "required with auth = \"api_token\" (give it as ATTRSYNC_CRM__ZENDESK__API_TOKEN)",
                    ));
                }
            }
            ZendeskAuth::OauthToken => {
                if self.oauth_token.expose_secret().trim().is_empty() {
                    return Err(invalid(
                        "crm.zendesk.oauth_token",
                        "required with auth = \"oauth_token\" (give it as ATTRSYNC_CRM__ZENDESK__OAUTH_TOKEN)",
                    ));
                }
            }
        }
        let field_key = |key: &str| {
            !key.is_empty()
                && key.len() <= 64
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        for (name, value) in [
            ("crm.zendesk.customer_id", &self.customer_id),
            ("crm.zendesk.external_contact_id", &self.external_contact_id),
        ] {
            if !value.is_empty() && !field_key(value) {
                return Err(invalid(
                    name,
                    "\"id\", \"external_id\", a custom user field key (lowercase letters, digits, '_') or empty",
                ));
            }
        }
        for (name, keys) in [
            (
                "crm.zendesk.phone_user_fields",
                self.phone_user_fields.iter().collect::<Vec<_>>(),
            ),
            ("crm.zendesk.user_fields", self.user_fields.keys().collect()),
        ] {
            if let Some(key) = keys
                .into_iter()
                .find(|k| !field_key(k) || matches!(k.as_str(), "id" | "external_id" | "phone"))
            {
                return Err(invalid(
                    name,
                    format!(
                        "{key:?} is not a custom user field key (lowercase letters, digits, '_')"
                    ),
                ));
            }
        }
        if self.user_fields.values().any(|v| v.trim().is_empty()) {
            return Err(invalid(
                "crm.zendesk.user_fields",
                "every custom field needs a field name to be returned as",
            ));
        }
        // The common keys are checked by `Settings::validate_crm` for every source.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::load;

    fn error(pairs: &[(&str, &str)]) -> String {
        let mut all = vec![("ATTRSYNC_CRM__ADAPTER", "zendesk")];
        all.extend_from_slice(pairs);
        match load(&all) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_zendesk_section_loads_with_a_subdomain_an_email_and_a_token() {
        let ok = [
            ("ATTRSYNC_CRM__ZENDESK__SUBDOMAIN", "acme"),
            ("ATTRSYNC_CRM__ZENDESK__EMAIL", "agent@acme.com"),
            ("ATTRSYNC_CRM__ZENDESK__API_TOKEN", "t0ken"),
        ];
        assert_eq!(error(&ok), "");
        let s =
            load(&[&[("ATTRSYNC_CRM__ADAPTER", "zendesk")][..], &ok[..]].concat()).expect("loads");
        assert_eq!(s.crm.zendesk.base_url(), "https://acme.zendesk.com");
        assert_eq!(s.crm.zendesk.common.rate_limit_per_minute, 200);
    }

    #[test]
    fn zendesk_errors_name_the_key_at_fault() {
        assert!(error(&[]).contains("crm.zendesk.subdomain"));
        let base = [("ATTRSYNC_CRM__ZENDESK__SUBDOMAIN", "acme")];
        assert!(error(&base).contains("crm.zendesk.email"));
        let with_email = [base[0], ("ATTRSYNC_CRM__ZENDESK__EMAIL", "agent@acme.com")];
        assert!(error(&with_email).contains("crm.zendesk.api_token"));
        let oauth = [base[0], ("ATTRSYNC_CRM__ZENDESK__AUTH", "oauth_token")];
        assert!(error(&oauth).contains("crm.zendesk.oauth_token"));
        let bad_field = [
            with_email[0],
            with_email[1],
            ("ATTRSYNC_CRM__ZENDESK__API_TOKEN", "t"),
            ("ATTRSYNC_CRM__ZENDESK__CUSTOMER_ID", "Account No"),
        ];
        assert!(error(&bad_field).contains("crm.zendesk.customer_id"));
    }
}
