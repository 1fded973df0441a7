//! `[crm.servicenow]`: the ServiceNow adapter's instance, credentials (Basic, or OAuth through
//! `[crm.servicenow.oauth]`), the tables and fields it looks customers up in, and the phone
//! notations it sends; plus [`StoredNotation`], the notations a CRM that compares stored text
//! exactly may hold (shared with `[crm.freshdesk]`). Plain data and its validation; the adapter
//! is `crm::servicenow::adapter`.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{invalid, redacted, ConfigError, OAuthSettings, SourceSettings};
use crate::phone::{CallerNumber, Notation};

/// A notation a phone number may be stored in: attrsync's shared ones, or
/// `international_spaces` (`+1 858 287 7834`, the form of ServiceNow's own Contact API sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum StoredNotation {
    Shared(Notation),
    Local(LocalNotation),
}

/// The notations only the vendor adapters send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalNotation {
    /// The international notation with spaces for its dashes: `+1 317 555 0125`.
    InternationalSpaces,
}

impl StoredNotation {
    /// `number` written in this notation.
    pub fn write(self, number: &CallerNumber) -> String {
        match self {
            StoredNotation::Shared(n) => number.notation(n),
            StoredNotation::Local(LocalNotation::InternationalSpaces) => {
                number.notation(Notation::International).replace('-', " ")
            }
        }
    }

    /// The distinct texts of `number` in `notations`, in order.
    pub fn write_all(notations: &[StoredNotation], number: &CallerNumber) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(notations.len());
        for n in notations {
            let text = n.write(number);
            if !text.is_empty() && !out.contains(&text) {
                out.push(text);
            }
        }
        out
    }
}

/// `crm.servicenow.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowAuth {
    /// `username` and `password` of the integration user, as HTTP Basic.
    Basic,
    /// A token from `[crm.servicenow.oauth]` (client credentials; the token endpoint defaults to
    /// `<instance_url>/oauth_token.do`).
    Oauth,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServiceNowSettings {
    /// `https://<instance>.service-now.com`.
    pub instance_url: String,
    pub auth: ServiceNowAuth,
    pub username: String,
    #[serde(serialize_with = "redacted")]
    pub password: SecretString,
    pub oauth: OAuthSettings,
    /// Tables searched in order; the first one in which a record matches decides.
    pub tables: Vec<String>,
    pub phone_fields: Vec<String>,
    pub email_fields: Vec<String>,
    /// The field a customer id is compared with (`sys_id`, or e.g. `u_customer_number`).
    pub customer_id_field: String,
    /// The field an external contact id is compared with; empty = not looked up.
    pub external_contact_id_field: String,
    /// Fields returned besides the searched ones and the record's id, class and update time.
    pub return_fields: Vec<String>,
    pub phone_notations: Vec<StoredNotation>,
    /// `sysparm_limit`: records returned per lookup.
    pub limit: u32,
    /// Newest record first (`ORDERBYDESCsys_updated_on`).
    pub newest_first: bool,
    /// Double a `^` in a value (ServiceNow's escape) instead of refusing the value.
    pub escape_carets: bool,
    #[serde(flatten)]
    pub common: SourceSettings,
}

/// The section's name, for the keys named in errors.
const SECTION: &str = "crm.servicenow";
/// `sysparm_limit` ceiling (the query module's `MAX_LIMIT`): attrsync needs a handful.
const MAX_LIMIT: u32 = 1_000;

impl ServiceNowSettings {
    /// The instance URL without a trailing slash.
    pub fn instance(&self) -> Result<url::Url, ConfigError> {
        let key = format!("{SECTION}.instance_url");
        let raw = self.instance_url.trim().trim_end_matches('/');
        if raw.is_empty() {
            return Err(invalid(
                &key,
                "required: the instance URL, e.g. https://example.service-now.com",
            ));
        }
        let url = url::Url::parse(raw).map_err(|e| invalid(&key, e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(&key, "must be an http or https URL with a host"));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(invalid(
                &key,
                "the instance's address only, without a path or query",
            ));
        }
        Ok(url)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{SECTION}.{name}");
        self.instance()?;
        match self.auth {
            ServiceNowAuth::Basic => {
                if self.username.trim().is_empty() {
                    return Err(invalid(&key("username"), "required when auth = \"basic\""));
                }
                if self.password.expose_secret().is_empty() {
                    return Err(invalid(
                        &key("password"),
                        "required when auth = \"basic\" (give it as ATTRSYNC_CRM__SERVICENOW__PASSWORD)",
                    ));
                }
            }
            ServiceNowAuth::Oauth => self.oauth.validate(&key("oauth"))?,
        }
        if self.tables.is_empty() {
            return Err(invalid(
                &key("tables"),
                "must name at least one table, e.g. [\"customer_contact\", \"sys_user\"]",
            ));
        }
        for table in &self.tables {
            if !identifier(table, false) {
                return Err(invalid(
                    &key("tables"),
                    format!("{table:?} is not a table name (lowercase letters, digits, _)"),
                ));
            }
        }
        let lists = [
            ("phone_fields", &self.phone_fields),
            ("email_fields", &self.email_fields),
            ("return_fields", &self.return_fields),
        ];
        for (name, fields) in lists {
            if let Some(bad) = fields.iter().find(|f| !identifier(f, true)) {
                return Err(invalid(
                    &key(name),
                    format!("{bad:?} is not a field name (lowercase letters, digits, _, dots)"),
                ));
            }
        }
        for (name, field) in [
            ("customer_id_field", &self.customer_id_field),
            ("external_contact_id_field", &self.external_contact_id_field),
        ] {
            if !field.is_empty() && !identifier(field, true) {
                return Err(invalid(
                    &key(name),
                    format!("{field:?} is not a field name"),
                ));
            }
        }
        if self.phone_fields.is_empty() && self.email_fields.is_empty() {
            return Err(invalid(
                &key("phone_fields"),
                "phone_fields or email_fields must name a field",
            ));
        }
        if !self.phone_fields.is_empty() && self.phone_notations.is_empty() {
            return Err(invalid(
                &key("phone_notations"),
                "must list at least one notation, e.g. [\"e164\", \"national\"]",
            ));
        }
        if !(1..=MAX_LIMIT).contains(&self.limit) {
            return Err(invalid(&key("limit"), "must be 1..=1000"));
        }
        Ok(())
    }
}

/// A ServiceNow table or column name: lowercase letters, digits and `_`, starting with a
/// letter; a field may be dot-walked (`company.name`).
fn identifier(name: &str, dots: bool) -> bool {
    let segment = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    name.len() <= 80
        && if dots {
            name.split('.').all(segment)
        } else {
            segment(name)
        }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::load;
    use super::*;

    const INSTANCE: (&str, &str) = (
        "ATTRSYNC_CRM__SERVICENOW__INSTANCE_URL",
        "https://example.service-now.com",
    );
    const USER: (&str, &str) = ("ATTRSYNC_CRM__SERVICENOW__USERNAME", "attrsync");
    const PASSWORD: (&str, &str) = ("ATTRSYNC_CRM__SERVICENOW__PASSWORD", "pw");
    const ADAPTER: (&str, &str) = ("ATTRSYNC_CRM__ADAPTER", "servicenow");

    fn error(pairs: &[(&str, &str)]) -> String {
        load(pairs).map_or_else(|e| e.to_string(), |_| "no error".to_owned())
    }

    #[test]
    fn the_defaults_with_an_instance_and_credentials_validate() {
        let s = load(&[ADAPTER, INSTANCE, USER, PASSWORD]).expect("valid");
        assert_eq!(s.crm.servicenow.tables, ["sys_user"]);
        assert!(s
            .crm
            .servicenow
            .phone_notations
            .contains(&StoredNotation::Local(LocalNotation::InternationalSpaces)));
        assert_eq!(
            s.crm.servicenow.instance().map(|u| u.to_string()).ok(),
            Some("https://example.service-now.com/".to_owned())
        );
    }

    #[test]
    fn each_missing_or_malformed_setting_is_named() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (&[ADAPTER, USER, PASSWORD], "crm.servicenow.instance_url"),
            (
                &[
                    ADAPTER,
                    (
                        "ATTRSYNC_CRM__SERVICENOW__INSTANCE_URL",
                        "https://x.service-now.com/api",
                    ),
                    USER,
                    PASSWORD,
                ],
                "crm.servicenow.instance_url",
            ),
            (&[ADAPTER, INSTANCE, USER], "crm.servicenow.password"),
            (&[ADAPTER, INSTANCE, PASSWORD], "crm.servicenow.username"),
            (
                &[
                    ADAPTER,
                    INSTANCE,
                    ("ATTRSYNC_CRM__SERVICENOW__AUTH", "oauth"),
                ],
                "crm.servicenow.oauth.client_id",
            ),
            (
                &[
                    ADAPTER,
                    INSTANCE,
                    USER,
                    PASSWORD,
                    ("ATTRSYNC_CRM__SERVICENOW__TABLES", "sys_user,Bad^Table"),
                ],
                "crm.servicenow.tables",
            ),
            (
                &[
                    ADAPTER,
                    INSTANCE,
                    USER,
                    PASSWORD,
                    ("ATTRSYNC_CRM__SERVICENOW__PHONE_FIELDS", "phone=x"),
                ],
                "crm.servicenow.phone_fields",
            ),
            (
                &[
                    ADAPTER,
                    INSTANCE,
                    USER,
                    PASSWORD,
                    ("ATTRSYNC_CRM__SERVICENOW__LIMIT", "0"),
                ],
                "crm.servicenow.limit",
            ),
        ];
        for (pairs, key) in cases {
            let err = error(pairs);
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn an_unused_servicenow_section_is_not_validated() {
        assert!(load(&[]).is_ok());
    }
}
