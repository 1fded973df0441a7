//! Loading: the layers, later wins — the embedded `config/default.toml`, an optional file
//! (`--config` or `ATTRSYNC_CONFIG`), `ATTRSYNC_<SECTION>__<KEY>` variables, then the plain
//! `GENESYS_*` variables Genesys users already have in their environments — and the `X_FILE`
//! variables that read a secret from a mounted file.

use std::path::{Path, PathBuf};

use super::{invalid, ConfigError, Settings};

const DEFAULTS: &str = include_str!("../../config/default.toml");

/// Keys whose environment variables hold comma-separated lists.
const LIST_KEYS: &[&str] = &[
    "genesys.participant_purposes",
    "genesys.outbound_participant_purposes",
    "genesys.extra_clients",
    "crm.key_order",
    "crm.sources",
    "crm.match_priority",
    "crm.file.phone_fields",
    "crm.file.email_fields",
    "crm.http.phone_notations",
    "crm.http.allowed_hosts",
    "crm.http.phone_pointers",
    "crm.http.email_pointers",
    "crm.salesforce.objects",
    "crm.salesforce.fields",
    "crm.salesforce.phone_fields",
    "crm.salesforce.email_fields",
    "crm.salesforce.external_id_fields",
    "crm.salesforce.phone_notations",
    "crm.dynamics.entity_sets",
    "crm.dynamics.primary_ids",
    "crm.dynamics.select",
    "crm.dynamics.phone_columns",
    "crm.dynamics.email_columns",
    "crm.dynamics.external_id_columns",
    "crm.dynamics.phone_notations",
    "crm.servicenow.tables",
    "crm.servicenow.phone_fields",
    "crm.servicenow.email_fields",
    "crm.servicenow.return_fields",
    "crm.servicenow.phone_notations",
    "crm.freshdesk.phone_fields",
    "crm.freshdesk.phone_notations",
    "merge.exclude",
    "auth.genesys.secrets",
    "auth.cti.secrets",
    "auth.lookup.secrets",
    "auth.ops.secrets",
    "server.trusted_proxies",
    "genesys.ip_ranges_services",
    "genesys.ip_ranges_regions",
    "auth.genesys.allow_from",
    "auth.cti.allow_from",
    "auth.lookup.allow_from",
    "auth.ops.allow_from",
    "auth.genesys.client_cert_subjects",
    "auth.cti.client_cert_subjects",
    "auth.lookup.client_cert_subjects",
    "auth.ops.client_cert_subjects",
];

/// Keys that moved, and where to: a configuration still setting them is refused rather than
/// silently ignored (serde would drop them).
const MOVED_KEYS: &[(&str, &str)] = &[
    ("cache.ttl_secs", "crm.<source>.cache_ttl_secs"),
    (
        "cache.not_found_ttl_secs",
        "crm.<source>.not_found_ttl_secs",
    ),
    ("crm.breaker_failures", "crm.<source>.breaker_failures"),
    (
        "crm.breaker_cooldown_ms",
        "crm.<source>.breaker_cooldown_ms",
    ),
];

/// The plain Genesys variables and the keys they set.
const GENESYS_VARIABLES: &[(&str, &str)] = &[
    ("GENESYS_CLIENT_ID", "genesys.client_id"),
    ("GENESYS_CLIENT_SECRET", "genesys.client_secret"),
    ("GENESYS_REGION", "genesys.region"),
    ("GENESYS_API_URL", "genesys.api_url"),
    ("GENESYS_LOGIN_URL", "genesys.login_url"),
];

/// Resolves `X_FILE=/path` variables (how Docker and Kubernetes mount secrets) into `X=<file
/// content>`; for a list key (`LIST_KEYS`) a file with several lines gives a comma-separated
/// list, for any other key the text is kept whole (a PEM key is several lines). `X` itself wins
/// if set.
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
        let value = if is_list_variable(target) {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(",")
        } else {
            text.trim().to_owned()
        };
        out.retain(|(k, _)| k != target);
        out.push((target.to_owned(), value));
    }
    Ok(out)
}

/// Whether the variable `name` (`ATTRSYNC_AUTH__GENESYS__SECRETS`) sets a key of `LIST_KEYS`.
fn is_list_variable(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("ATTRSYNC_") else {
        return false;
    };
    let key = rest.to_ascii_lowercase().replace("__", ".");
    LIST_KEYS.contains(&key.as_str())
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
        let settings = Self::load_unvalidated(file, env)?;
        settings.validate()?;
        Ok(settings)
    }

    /// The layers, parsed but not yet [validated](Settings::validate): for a caller that adjusts
    /// the settings first (the demo), then validates.
    pub fn load_unvalidated(
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
        for (var, key) in GENESYS_VARIABLES {
            if let Some(value) = get(var) {
                builder = builder.set_override(*key, value)?;
            }
        }
        let layered = builder.build()?;
        for (moved, to) in MOVED_KEYS {
            if layered.get::<config::Value>(moved).is_ok() {
                return Err(invalid(
                    moved,
                    format!("moved to {to}: each CRM source has its own (see CHANGELOG.md)"),
                ));
            }
        }
        Ok(layered.try_deserialize()?)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
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

    pub fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        // The embedded file CRM path is relative to the crate root, where tests run.
        Settings::load_from(None, &env(pairs))
    }

    #[test]
    fn embedded_defaults_load_once_credentials_are_given() {
        let s = load(&[]).expect("defaults load");
        assert_eq!(s.server.port, 8080);
        assert_eq!(
            s.genesys.api_url().unwrap().as_str(),
            "https://api.mypurecloud.com/"
        );
        assert_eq!(
            s.genesys.login_url().unwrap().as_str(),
            "https://login.mypurecloud.com/"
        );
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
            .map(secrecy::ExposeSecret::expose_secret)
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
    fn a_key_that_moved_is_refused_naming_where_it_went() {
        let err = load(&[("ATTRSYNC_CACHE__TTL_SECS", "60")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache.ttl_secs"), "{err}");
        assert!(err.contains("crm.<source>.cache_ttl_secs"), "{err}");
        let err = load(&[("ATTRSYNC_CRM__BREAKER_FAILURES", "3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("crm.<source>.breaker_failures"), "{err}");
    }

    #[test]
    fn a_file_variable_for_a_single_value_keeps_its_lines() {
        // A PEM key mounted as a file must reach the key as written, not joined with commas.
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("key.pem");
        std::fs::write(&pem, "-----BEGIN X-----\nAAAA\nBBBB\n-----END X-----\n").unwrap();
        let env: Vec<(String, String)> = env(&[])
            .into_iter()
            .filter(|(k, _)| k != "GENESYS_CLIENT_SECRET")
            .chain([(
                "GENESYS_CLIENT_SECRET_FILE".to_owned(),
                pem.display().to_string(),
            )])
            .collect();
        let s = Settings::load_from(None, &env).unwrap();
        assert_eq!(
            s.genesys.client_secret.expose_secret(),
            "-----BEGIN X-----\nAAAA\nBBBB\n-----END X-----"
        );
        assert!(is_list_variable("ATTRSYNC_AUTH__LOOKUP__SECRETS"));
        assert!(!is_list_variable("ATTRSYNC_CRM__HTTP__TOKEN"));
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
        assert_eq!(s.crm.http.common.timeout_ms, 777);
        assert_eq!(s.genesys.participant_purposes, ["customer", "external"]);
    }

    #[test]
    fn genesys_region_variable_sets_both_hosts() {
        let s = load(&[("GENESYS_REGION", "us_west_2")]).unwrap();
        assert_eq!(
            s.genesys.api_url().unwrap().host_str(),
            Some("api.usw2.pure.cloud")
        );
        assert_eq!(
            s.genesys.login_url().unwrap().host_str(),
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
            s.genesys.api_url().unwrap().as_str(),
            "http://127.0.0.1:9999/"
        );
        assert_eq!(s.genesys.login_url().unwrap().port(), Some(9998));
    }

    #[test]
    fn the_default_region_is_parsed_once_at_load() {
        let s = load(&[("ATTRSYNC_PHONE__DEFAULT_REGION", "gb")]).unwrap();
        assert_eq!(s.phone.default_region, phonenumber::country::Id::GB);
    }
}
