//! Inbound authentication settings, per endpoint group (`[auth.genesys]`, `[auth.cti]`,
//! `[auth.lookup]`, `[auth.ops]`): plain data and its validation. The middleware that enforces
//! them is `http::auth`.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Anyone who can reach the endpoint may use it.
    None,
    /// A secret in the header named `api_key_header`.
    ApiKey,
    /// `Authorization: Bearer <secret>`.
    Bearer,
    /// `Authorization: Basic` with `basic_username` and one of the secrets as password.
    Basic,
    /// Standard Webhooks signature headers; secrets are `whsec_...` base64 keys.
    Signature,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::ApiKey => "api_key",
            AuthMode::Bearer => "bearer",
            AuthMode::Basic => "basic",
            AuthMode::Signature => "signature",
        }
    }
}

/// An endpoint group: its own `[auth.<group>]` section, and the `endpoint` label of
/// `attrsync_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthGroup {
    /// `POST /v1/events/genesys`.
    Genesys,
    /// `POST /v1/events/cti`.
    Cti,
    /// `POST /v1/lookup`.
    Lookup,
    /// `GET /metrics` and the admin endpoints.
    Ops,
}

impl AuthGroup {
    pub const ALL: [AuthGroup; 4] = [
        AuthGroup::Genesys,
        AuthGroup::Cti,
        AuthGroup::Lookup,
        AuthGroup::Ops,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthGroup::Genesys => "genesys",
            AuthGroup::Cti => "cti",
            AuthGroup::Lookup => "lookup",
            AuthGroup::Ops => "ops",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EndpointAuth {
    pub mode: AuthMode,
    /// Accepted secrets (keys, tokens, passwords or signing secrets); several for rotation.
    #[serde(serialize_with = "redacted_list")]
    pub secrets: Vec<SecretString>,
    pub api_key_header: String,
    pub basic_username: String,
    /// Source addresses allowed to call the group (CIDRs); empty = any, unless
    /// `allow_genesys_ranges` is set. Checked before the credentials.
    #[serde(deserialize_with = "super::network::cidr_list")]
    pub allow_from: Vec<ipnet::IpNet>,
    /// Also allow Genesys's published data-action ranges (`GET /api/v2/ipranges`), and refuse
    /// everyone else not in `allow_from`.
    pub allow_genesys_ranges: bool,
    /// Refuse requests whose TLS connection presented no client certificate that verified
    /// against `server.tls.client_ca_path`.
    pub require_client_cert: bool,
    /// When not empty, the client certificate must name one of these (subject CN or a DNS
    /// subject alternative name, compared case-insensitively).
    pub client_cert_subjects: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuthSettings {
    /// `POST /v1/events/genesys`.
    pub genesys: EndpointAuth,
    /// `POST /v1/events/cti`.
    pub cti: EndpointAuth,
    /// `POST /v1/lookup`.
    pub lookup: EndpointAuth,
    /// `GET /metrics` and the admin endpoints.
    pub ops: EndpointAuth,
}

fn redacted_list<S: Serializer>(secrets: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(secrets.iter().map(|_| "[redacted]"))
}

impl AuthSettings {
    pub fn group(&self, group: AuthGroup) -> &EndpointAuth {
        match group {
            AuthGroup::Genesys => &self.genesys,
            AuthGroup::Cti => &self.cti,
            AuthGroup::Lookup => &self.lookup,
            AuthGroup::Ops => &self.ops,
        }
    }
}

impl EndpointAuth {
    /// The secrets given, trimmed, blank ones left out.
    pub fn present_secrets(&self) -> Vec<SecretString> {
        self.secrets
            .iter()
            .map(|s| s.expose_secret().trim())
            .filter(|s| !s.is_empty())
            .map(|s| SecretString::from(s.to_owned()))
            .collect()
    }

    /// Checks the group's settings; the error names the full key at fault and what is wrong.
    pub fn validate(&self, group: AuthGroup) -> Result<(), ConfigError> {
        let key = |k: &str| format!("auth.{}.{k}", group.as_str());
        let invalid = |key: String, reason: String| ConfigError::Invalid { key, reason };
        if !self.client_cert_subjects.is_empty() && !self.require_client_cert {
            return Err(invalid(
                key("client_cert_subjects"),
                format!(
                    "only checked when {} = true; set it too",
                    key("require_client_cert")
                ),
            ));
        }
        if self
            .client_cert_subjects
            .iter()
            .any(|s| s.trim().is_empty())
        {
            return Err(invalid(
                key("client_cert_subjects"),
                "an empty name never matches; remove it".to_owned(),
            ));
        }
        if self.mode == AuthMode::None {
            return Ok(());
        }
        let secrets = self.present_secrets();
        if secrets.is_empty() {
            return Err(invalid(
                key("secrets"),
                format!(
                    "required when mode = \"{}\"; give at least one secret, or set {} = \"none\" to accept unauthenticated requests",
                    self.mode.as_str(),
                    key("mode")
                ),
            ));
        }
        match self.mode {
            AuthMode::ApiKey => {
                axum::http::HeaderName::from_bytes(self.api_key_header.as_bytes()).map_err(
                    |_| invalid(key("api_key_header"), "not a valid header name".to_owned()),
                )?;
            }
            AuthMode::Basic
                if self.basic_username.is_empty() || self.basic_username.contains(':') =>
            {
                return Err(invalid(
                    key("basic_username"),
                    "required, without ':'".to_owned(),
                ));
            }
            AuthMode::Signature => {
                for (i, secret) in secrets.iter().enumerate() {
                    standardwebhooks::Webhook::new(secret.expose_secret()).map_err(|_| {
                        invalid(
                            format!("{}[{i}]", key("secrets")),
                            "not a Standard Webhooks secret (whsec_ followed by base64)".to_owned(),
                        )
                    })?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: AuthMode, secrets: &[&str]) -> EndpointAuth {
        EndpointAuth {
            mode,
            secrets: secrets
                .iter()
                .map(|s| SecretString::from(s.to_string()))
                .collect(),
            api_key_header: "X-API-Key".into(),
            basic_username: "attrsync".into(),
            allow_from: Vec::new(),
            allow_genesys_ranges: false,
            require_client_cert: false,
            client_cert_subjects: Vec::new(),
        }
    }

    fn key_and_reason(e: ConfigError) -> (String, String) {
        match e {
            ConfigError::Invalid { key, reason } => (key, reason),
            other => panic!("not an invalid setting: {other}"),
        }
    }

    #[test]
    fn a_mode_other_than_none_needs_a_secret_and_names_the_key() {
        let (key, reason) = key_and_reason(
            settings(AuthMode::ApiKey, &[])
                .validate(AuthGroup::Genesys)
                .unwrap_err(),
        );
        assert_eq!(key, "auth.genesys.secrets");
        assert!(reason.contains("mode = \"api_key\""), "{reason}");
        assert!(settings(AuthMode::None, &[])
            .validate(AuthGroup::Genesys)
            .is_ok());
    }

    #[test]
    fn signature_secrets_must_be_standard_webhooks_secrets() {
        let (key, _) = key_and_reason(
            settings(AuthMode::Signature, &["not base64!"])
                .validate(AuthGroup::Cti)
                .unwrap_err(),
        );
        assert_eq!(key, "auth.cti.secrets[0]");
        assert!(settings(
            AuthMode::Signature,
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        )
        .validate(AuthGroup::Cti)
        .is_ok());
    }

    #[test]
    fn certificate_subjects_without_requiring_a_certificate_are_refused() {
        let mut s = settings(AuthMode::None, &[]);
        s.client_cert_subjects = vec!["dataactions.prod.us-east-1.mypurecloud.com".into()];
        let (key, reason) = key_and_reason(s.validate(AuthGroup::Lookup).unwrap_err());
        assert_eq!(key, "auth.lookup.client_cert_subjects");
        assert!(
            reason.contains("auth.lookup.require_client_cert"),
            "{reason}"
        );
        s.require_client_cert = true;
        assert!(s.validate(AuthGroup::Lookup).is_ok());
    }
}
