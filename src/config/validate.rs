//! Validation: what serde cannot check — required values, ranges, URLs, regions, the CRM URL
//! templates — run once at load. Every error names the key at fault.

use secrecy::ExposeSecret as _;

use super::{
    invalid, AuthGroup, ConfigError, CrmAdapterKind, HttpAuthKind, MatchPolicy, QueueBackend,
    Settings,
};
use crate::domain::KeyKind;
use crate::genesys::region::region_domain;

/// Tokens one OAuth client holds at most, and slots in all: the slot number is a metric label,
/// so the set must stay small.
const MAX_TOKENS_PER_CLIENT: u32 = 16;
const MAX_SLOTS: usize = 32;

/// The placeholders a CRM URL template may use: one per key kind.
fn placeholder(kind: KeyKind) -> String {
    format!("{{{}}}", kind.as_str())
}

impl Settings {
    /// Checks what serde cannot: required values, ranges, URLs, regions. Names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for group in AuthGroup::ALL {
            self.auth.group(group).validate(group)?;
        }
        self.validate_edge()?;
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
        region_domain(&self.genesys.region)
            .map_err(|e| invalid("genesys.region", e.to_string()))?;
        self.genesys.api_url()?;
        self.genesys.login_url()?;
        for (key, value) in [
            ("genesys.timeout_ms", self.genesys.timeout_ms),
            (
                "genesys.connect_timeout_ms",
                self.genesys.connect_timeout_ms,
            ),
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
        if !(1..=MAX_TOKENS_PER_CLIENT).contains(&self.genesys.tokens) {
            return Err(invalid(
                "genesys.tokens",
                format!("must be 1 to {MAX_TOKENS_PER_CLIENT}"),
            ));
        }
        if let Some(position) = self.genesys.clients().iter().position(Option::is_none) {
            return Err(invalid(
                "genesys.extra_clients",
                format!("entry {position} is not client_id:client_secret"),
            ));
        }
        if self.genesys.slots() > MAX_SLOTS {
            return Err(invalid(
                "genesys.tokens",
                format!(
                    "{} clients with {} tokens each make {} slots; at most {MAX_SLOTS}",
                    1 + self.genesys.extra_clients.len(),
                    self.genesys.tokens,
                    self.genesys.slots()
                ),
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
        if self.merge.max_value_chars < 24 {
            return Err(invalid(
                "merge.max_value_chars",
                "must be at least 24 (the sync timestamp attrsync writes is 24 characters)",
            ));
        }
        let types = crate::merge::details::VALUE_TYPES;
        for (field, kind) in &self.merge.details_types {
            if !types.contains(&kind.trim()) {
                let key = format!("merge.details_types.{field}");
                return Err(invalid(&key, format!("one of {}", types.join(", "))));
            }
        }
        self.validate_crm()?;
        Ok(())
    }

    /// The chain (`crm.sources`, one instance per adapter), the match policy, and each source's
    /// section.
    fn validate_crm(&self) -> Result<(), ConfigError> {
        self.crm
            .shared
            .validate(self.queue.backend == QueueBackend::Postgres)?;
        let kinds = self.crm.source_kinds();
        for (i, kind) in kinds.iter().enumerate() {
            if kinds[..i].contains(kind) {
                return Err(invalid(
                    "crm.sources",
                    format!(
                        "lists {} twice; each adapter is one source (one [crm.{}] section)",
                        kind.as_str(),
                        kind.as_str()
                    ),
                ));
            }
            let section = format!("crm.{}", kind.as_str());
            self.crm.common(*kind).validate(&section)?;
            match kind {
                CrmAdapterKind::File => {
                    if !self.crm.file.path.is_file() {
                        return Err(invalid(
                            "crm.file.path",
                            format!("{} is not a readable file", self.crm.file.path.display()),
                        ));
                    }
                }
                CrmAdapterKind::Http => self.validate_http_crm()?,
                CrmAdapterKind::Sql => self.crm.sql.validate()?,
                CrmAdapterKind::Salesforce => self.crm.salesforce.validate()?,
                CrmAdapterKind::Dynamics => self.crm.dynamics.validate()?,
                CrmAdapterKind::ServiceNow => self.crm.servicenow.validate()?,
                CrmAdapterKind::Freshdesk => self.crm.freshdesk.validate()?,
                CrmAdapterKind::Zendesk => self.crm.zendesk.validate()?,
                CrmAdapterKind::Hubspot => self.crm.hubspot.validate()?,
            }
        }
        if self.crm.match_policy == MatchPolicy::Priority
            && self.crm.match_priority.iter().all(|t| t.trim().is_empty())
        {
            return Err(invalid(
                "crm.match_priority",
                "required when crm.match_policy = \"priority\": record types, best first, e.g. [\"Contact\", \"Lead\", \"Account\"]",
            ));
        }
        Ok(())
    }

    /// TLS files, client certificates and Genesys's ranges: what each group asks of the server.
    fn validate_edge(&self) -> Result<(), ConfigError> {
        let tls = &self.server.tls;
        let named = |path: &std::path::Path| !path.as_os_str().is_empty();
        if named(&tls.key_path) && !tls.enabled() {
            return Err(invalid(
                "server.tls.cert_path",
                "required when server.tls.key_path is set",
            ));
        }
        if tls.enabled() && !named(&tls.key_path) {
            return Err(invalid(
                "server.tls.key_path",
                "required when server.tls.cert_path is set",
            ));
        }
        if tls.client_certificates() && !tls.enabled() {
            return Err(invalid(
                "server.tls.client_ca_path",
                "client certificates need native TLS: set server.tls.cert_path and key_path too",
            ));
        }
        for (key, path) in [
            ("server.tls.cert_path", &tls.cert_path),
            ("server.tls.key_path", &tls.key_path),
            ("server.tls.client_ca_path", &tls.client_ca_path),
        ] {
            if named(path) && !path.is_file() {
                return Err(invalid(
                    key,
                    format!("{} is not a readable file", path.display()),
                ));
            }
        }
        for group in AuthGroup::ALL {
            let auth = self.auth.group(group);
            if auth.require_client_cert && !tls.client_certificates() {
                return Err(invalid(
                    &format!("auth.{}.require_client_cert", group.as_str()),
                    "needs server.tls.client_ca_path (the CA the client certificates are checked against)",
                ));
            }
            if auth.allow_genesys_ranges {
                if self.genesys.ip_ranges_refresh_secs == 0 {
                    return Err(invalid(
                        "genesys.ip_ranges_refresh_secs",
                        format!(
                            "must be greater than 0 when auth.{}.allow_genesys_ranges is set",
                            group.as_str()
                        ),
                    ));
                }
                if self
                    .genesys
                    .ip_ranges_services
                    .iter()
                    .all(|s| s.trim().is_empty())
                {
                    return Err(invalid(
                        "genesys.ip_ranges_services",
                        "must name at least one service, e.g. [\"data-actions\"]",
                    ));
                }
            }
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
            let probe = KeyKind::ALL
                .into_iter()
                .fold(template.clone(), |t, k| t.replace(&placeholder(k), "x"));
            if probe.contains('{') || probe.contains('}') {
                return Err(invalid(
                    &key,
                    "unknown placeholder; use {customer_id}, {external_contact_id}, {phone}, {email} or {messaging_id}",
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
        for (name, value) in &http.headers {
            let key = format!("crm.http.headers.{name}");
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&key, "not a header name"))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(&key, "not a valid header value"))?;
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
            HttpAuthKind::ApiKey => {
                reqwest::header::HeaderName::from_bytes(http.api_key_header.as_bytes())
                    .map_err(|_| invalid("crm.http.api_key_header", "not a header name"))?;
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
        let pointers = [
            ("crm.http.record_id_pointer", &http.record_id_pointer),
            ("crm.http.record_type_pointer", &http.record_type_pointer),
            (
                "crm.http.last_modified_pointer",
                &http.last_modified_pointer,
            ),
        ];
        let lists = [
            ("crm.http.phone_pointers", &http.phone_pointers),
            ("crm.http.email_pointers", &http.email_pointers),
        ];
        let all = pointers
            .into_iter()
            .map(|(key, p)| (key, p.as_str()))
            .chain(
                lists
                    .into_iter()
                    .flat_map(|(key, ps)| ps.iter().map(move |p| (key, p.as_str()))),
            );
        for (key, pointer) in all {
            if !pointer.is_empty() && !pointer.starts_with('/') {
                return Err(invalid(
                    key,
                    format!("`{pointer}`: a JSON pointer starts with '/' (or is empty)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::tests::{env, load};
    use super::*;

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
    fn extra_oauth_clients_and_tokens_make_the_pool_and_a_malformed_client_is_named() {
        let s = load(&[
            ("ATTRSYNC_GENESYS__TOKENS", "2"),
            (
                "ATTRSYNC_GENESYS__EXTRA_CLIENTS",
                "b2c1e0a4-id:secret:with-colon,c3d2-id:other",
            ),
        ])
        .unwrap();
        assert_eq!(s.genesys.slots(), 6);
        let clients: Vec<_> = s.genesys.clients().into_iter().flatten().collect();
        assert_eq!(clients.len(), 3);
        assert_eq!(clients[1].client_id, "b2c1e0a4-id");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&clients[1].client_secret),
            "secret:with-colon"
        );
        assert!(
            !s.redacted_toml().contains("with-colon"),
            "extra clients are secrets"
        );

        let err = load(&[("ATTRSYNC_GENESYS__EXTRA_CLIENTS", "no-secret-here")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("genesys.extra_clients"), "{err}");
        let err = load(&[("ATTRSYNC_GENESYS__TOKENS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("genesys.tokens"), "{err}");
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
    fn shared_crm_state_is_refused_on_sqlite_and_read_from_the_environment_on_postgres() {
        let err = load(&[("ATTRSYNC_CRM__SHARED__BUDGET", "postgres")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.shared.budget"), "{err}");
        let postgres = [
            ("ATTRSYNC_QUEUE__BACKEND", "postgres"),
            ("ATTRSYNC_QUEUE__POSTGRES_URL", "postgres://u@db/attrsync"),
            ("ATTRSYNC_CRM__SHARED__BUDGET", "postgres"),
            ("ATTRSYNC_CRM__SHARED__CACHE", "postgres"),
        ];
        let err = load(&postgres).unwrap_err().to_string();
        assert!(err.contains("crm.shared.cache_key_secret"), "{err}");
        let mut with_secret = postgres.to_vec();
        with_secret.push(("ATTRSYNC_CRM__SHARED__CACHE_KEY_SECRET", "0123456789abcdef"));
        let s = load(&with_secret).unwrap();
        assert!(s.crm.shared.uses_postgres());
        assert!(!s.redacted_toml().contains("0123456789abcdef"));
    }

    #[test]
    fn sources_are_listed_from_the_environment_and_each_adapter_only_once() {
        let s = load(&[
            ("ATTRSYNC_CRM__SOURCES", "http,file"),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                "https://crm.example.com/x?p={phone}",
            ),
            ("ATTRSYNC_CRM__HTTP__ALLOWED_HOSTS", "crm.example.com"),
        ])
        .unwrap();
        assert_eq!(
            s.crm.source_kinds(),
            [CrmAdapterKind::Http, CrmAdapterKind::File]
        );
        let err = load(&[("ATTRSYNC_CRM__SOURCES", "file,file")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.sources"), "{err}");
        let err = load(&[("ATTRSYNC_CRM__SOURCES", "file,nosuch")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("nosuch"), "{err}");
    }

    #[test]
    fn each_source_is_validated_naming_its_section() {
        // http is not the adapter but is in the chain: its section must be complete.
        let err = load(&[("ATTRSYNC_CRM__SOURCES", "file,http")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.http.templates"), "{err}");
        let err = load(&[("ATTRSYNC_CRM__FILE__TIMEOUT_MS", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.file.timeout_ms"), "{err}");
        let err = load(&[
            ("ATTRSYNC_CRM__ADAPTER", "http"),
            (
                "ATTRSYNC_CRM__HTTP__TEMPLATES__PHONE",
                "https://crm.example.com/x?p={phone}",
            ),
            ("ATTRSYNC_CRM__HTTP__ALLOWED_HOSTS", "crm.example.com"),
            ("ATTRSYNC_CRM__HTTP__PHONE_POINTERS", "phone"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("crm.http.phone_pointers"), "{err}");
    }

    #[test]
    fn the_priority_policy_needs_its_record_types() {
        let err = load(&[("ATTRSYNC_CRM__MATCH_POLICY", "priority")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.match_priority"), "{err}");
        let s = load(&[
            ("ATTRSYNC_CRM__MATCH_POLICY", "priority"),
            ("ATTRSYNC_CRM__MATCH_PRIORITY", "Contact,Lead"),
        ])
        .unwrap();
        assert_eq!(s.crm.matching().priority, ["Contact", "Lead"]);
        assert!(load(&[("ATTRSYNC_CRM__MIN_MATCH_QUALITY", "fuzzy")]).is_err());
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
    fn tls_settings_name_the_missing_or_unreadable_file() {
        let err = load(&[("ATTRSYNC_SERVER__TLS__CERT_PATH", "/nonexistent/cert.pem")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.tls.key_path"), "{err}");
        let err = load(&[
            ("ATTRSYNC_SERVER__TLS__CERT_PATH", "/nonexistent/cert.pem"),
            ("ATTRSYNC_SERVER__TLS__KEY_PATH", "/nonexistent/key.pem"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("server.tls.cert_path"), "{err}");
        assert!(err.contains("not a readable file"), "{err}");
    }

    #[test]
    fn requiring_a_client_certificate_needs_a_client_ca() {
        let err = load(&[("ATTRSYNC_AUTH__LOOKUP__REQUIRE_CLIENT_CERT", "true")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.lookup.require_client_cert"), "{err}");
        assert!(err.contains("server.tls.client_ca_path"), "{err}");
    }

    #[test]
    fn address_lists_are_parsed_at_load_and_a_bad_entry_names_its_key() {
        let s = load(&[
            (
                "ATTRSYNC_SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8, 2001:db8::1",
            ),
            ("ATTRSYNC_AUTH__LOOKUP__ALLOW_FROM", "192.0.2.0/24"),
        ])
        .unwrap();
        let proxies: Vec<String> = s
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "2001:db8::1/128"]);
        assert_eq!(s.auth.lookup.allow_from.len(), 1);
        let err = load(&[("ATTRSYNC_AUTH__LOOKUP__ALLOW_FROM", "192.0.2.0/40")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_from"), "{err}");
        assert!(err.contains("192.0.2.0/40"), "{err}");
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
}
