//! `[crm.dynamics]`: the Dataverse environment (its URL, the Web API version), the Entra ID
//! tenant the token comes from, the entity sets and columns a lookup searches and returns, the
//! notations numbers are stored in, the OAuth client (`[crm.dynamics.oauth]`) and the source
//! settings every adapter has. Plain data; `crm::dynamics::adapter` builds the adapter from it.
//!
//! Columns are named `entityset.column` (`contacts.mobilephone`) in flat lists, so a
//! configuration file replaces a list whole.

use serde::{Deserialize, Serialize};

use super::crm::SourceSettings;
use super::oauth::OAuthSettings;
use super::salesforce::split_object_field;
use super::{invalid, ConfigError};
use crate::phone::Notation;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DynamicsSettings {
    /// The environment URL, `https://<org>.crm.dynamics.com`: the Web API's base and the token's
    /// resource (`scope` = `<org_url>/.default` unless `oauth.scope` says otherwise).
    pub org_url: String,
    /// The Entra ID tenant (directory) id or a verified domain.
    pub tenant_id: String,
    /// The Entra ID authority: the token endpoint is `<authority_url>/<tenant_id>/oauth2/v2.0/token`.
    pub authority_url: String,
    /// Web API version in the path, `v9.2`.
    pub api_version: String,
    /// The entity sets searched, in this order (one query each).
    pub entity_sets: Vec<String>,
    /// `entityset.primaryid` for entity sets other than contacts, accounts and leads.
    pub primary_ids: Vec<String>,
    /// `entityset.column`s returned (`$select`). In this and the lists below, entries of entity
    /// sets not in `entity_sets` are ignored.
    pub select: Vec<String>,
    /// `entityset.column`s a phone lookup compares with each notation.
    pub phone_columns: Vec<String>,
    /// `entityset.column`s an email lookup compares.
    pub email_columns: Vec<String>,
    /// `entityset.column`s holding the Genesys external contact id; empty = not looked up.
    pub external_id_columns: Vec<String>,
    /// The notations a phone lookup asks for (Dataverse compares stored text exactly).
    pub phone_notations: Vec<Notation>,
    /// `$top` of each query.
    pub max_records: u32,
    pub oauth: OAuthSettings,
    #[serde(flatten)]
    pub common: SourceSettings,
}

fn logical(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl DynamicsSettings {
    /// The section's own rules (`crm.dynamics.*`); names are checked again by OData's rules
    /// when the adapter is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        const S: &str = "crm.dynamics";
        for (key, value, hint) in [
            ("org_url", &self.org_url, "https://<org>.crm.dynamics.com"),
            (
                "authority_url",
                &self.authority_url,
                "https://login.microsoftonline.com",
            ),
        ] {
            let url = url::Url::parse(value.trim())
                .map_err(|e| invalid(&format!("{S}.{key}"), format!("{hint} ({e})")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&format!("{S}.{key}"), "must be an https URL"));
            }
        }
        if !logical(&self.tenant_id.replace(['-', '.'], "_")) {
            return Err(invalid(
                &format!("{S}.tenant_id"),
                "the Entra ID tenant id (a GUID) or a verified domain",
            ));
        }
        let version = self.api_version.trim();
        if !(version.starts_with('v') && version.len() <= 6) {
            return Err(invalid(
                &format!("{S}.api_version"),
                "a Web API version such as \"v9.2\"",
            ));
        }
        if self.entity_sets.is_empty() || self.entity_sets.iter().any(|e| !logical(e)) {
            return Err(invalid(
                &format!("{S}.entity_sets"),
                "entity set names, e.g. [\"contacts\", \"accounts\", \"leads\"]",
            ));
        }
        for (key, list) in [
            ("primary_ids", &self.primary_ids),
            ("select", &self.select),
            ("phone_columns", &self.phone_columns),
            ("email_columns", &self.email_columns),
            ("external_id_columns", &self.external_id_columns),
        ] {
            for name in list {
                // Columns of entity sets not in `entity_sets` are ignored (the defaults name
                // all three).
                let valid = split_object_field(name)
                    .is_some_and(|(set, column)| logical(set) && logical(column));
                if !valid {
                    return Err(invalid(
                        &format!("{S}.{key}"),
                        format!("{name:?}: entityset.column, both logical names"),
                    ));
                }
            }
        }
        for set in &self.entity_sets {
            let standard = matches!(set.as_str(), "contacts" | "accounts" | "leads");
            let named = self
                .primary_ids
                .iter()
                .any(|p| split_object_field(p).is_some_and(|(s, _)| s == set));
            if !standard && !named {
                return Err(invalid(
                    &format!("{S}.primary_ids"),
                    format!("needs \"{set}.<primary id column>\" for the entity set {set}"),
                ));
            }
        }
        if self.phone_notations.is_empty() {
            return Err(invalid(
                &format!("{S}.phone_notations"),
                "at least one notation, e.g. [\"e164\", \"national\"]",
            ));
        }
        if !(1..=5000).contains(&self.max_records) {
            return Err(invalid(
                &format!("{S}.max_records"),
                "between 1 and 5000 (a Web API page)",
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
            ("ATTRSYNC_CRM__ADAPTER", "dynamics"),
            (
                "ATTRSYNC_CRM__DYNAMICS__ORG_URL",
                "https://contoso.crm.dynamics.com",
            ),
            (
                "ATTRSYNC_CRM__DYNAMICS__TENANT_ID",
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
            ),
            ("ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_ID", "app"),
            ("ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_SECRET", "s"),
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
    fn the_dynamics_section_loads_from_the_environment_and_errors_name_the_key() {
        assert_eq!(
            error(&[]),
            "",
            "the defaults with an environment and a client"
        );
        for (pairs, key) in [
            (
                vec![("ATTRSYNC_CRM__DYNAMICS__ORG_URL", "contoso")],
                "crm.dynamics.org_url",
            ),
            (
                vec![("ATTRSYNC_CRM__DYNAMICS__TENANT_ID", "")],
                "crm.dynamics.tenant_id",
            ),
            (
                vec![(
                    "ATTRSYNC_CRM__DYNAMICS__ENTITY_SETS",
                    "contacts,new_customers",
                )],
                "crm.dynamics.primary_ids",
            ),
            (
                vec![("ATTRSYNC_CRM__DYNAMICS__PHONE_COLUMNS", "telephone1")],
                "crm.dynamics.phone_columns",
            ),
            (
                vec![("ATTRSYNC_CRM__DYNAMICS__OAUTH__CLIENT_ID", "")],
                "crm.dynamics.oauth.client_id",
            ),
        ] {
            let e = error(&pairs);
            assert!(e.contains(key), "{pairs:?}: {e}");
        }
    }
}
