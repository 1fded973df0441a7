//! The OAuth client settings a CRM adapter embeds as its `oauth` table (`[crm.<adapter>.oauth]`):
//! which grant, the client's credentials (a secret, or a private key and certificate as PEM),
//! the token endpoint and what the token request carries. Plain data; `crm::oauth` builds the
//! token manager from it.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{invalid, redacted, ConfigError};

/// `grant`: how the client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// RFC 6749 §4.4 with `client_secret`.
    ClientCredentials,
    /// RFC 7523 §2.1: a JWT signed with `private_key` is the grant (Salesforce's JWT bearer
    /// flow: `iss` = client id, `sub` = `subject`, `aud` = `audience`).
    JwtBearer,
    /// RFC 6749 §4.4 with RFC 7523 §2.2 client authentication: a JWT signed with `private_key`,
    /// naming `certificate` by thumbprint, in place of a secret (Entra ID's certificate
    /// credentials).
    ClientAssertion,
}

/// `client_auth`: where a client secret goes (RFC 6749 §2.3.1 allows both; vendors differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    Body,
    /// `Authorization: Basic base64(client_id:client_secret)`.
    Basic,
}

/// `algorithm` of a signed assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum AssertionAlgorithm {
    RS256,
    PS256,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OAuthSettings {
    pub grant: OAuthGrant,
    /// The token endpoint; empty = the adapter's (derived from its other settings).
    pub token_url: String,
    pub client_id: String,
    #[serde(serialize_with = "redacted")]
    pub client_secret: SecretString,
    pub client_auth: ClientAuth,
    /// PEM (PKCS#8 or PKCS#1) RSA private key, for `jwt_bearer` and `client_assertion`.
    #[serde(serialize_with = "redacted")]
    pub private_key: SecretString,
    /// PEM certificate of that key, for `client_assertion` (its thumbprints go in the header).
    pub certificate: String,
    /// `sub` of a `jwt_bearer` assertion (Salesforce: the integration user's username).
    pub subject: String,
    /// `aud` of an assertion; empty = the adapter's.
    pub audience: String,
    /// `scope` of the token request; empty = none, or the adapter's.
    pub scope: String,
    pub algorithm: AssertionAlgorithm,
    /// An assertion's `exp` is this long after it is signed.
    pub assertion_lifetime_secs: u64,
    /// A token whose answer has no `expires_in` is assumed to live this long.
    pub token_lifetime_secs: u64,
    /// A token is renewed this long before it expires (at most half its lifetime).
    pub refresh_margin_secs: u64,
}

impl OAuthSettings {
    pub fn assertion_lifetime(&self) -> Duration {
        Duration::from_secs(self.assertion_lifetime_secs)
    }
    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.token_lifetime_secs)
    }
    pub fn refresh_margin(&self) -> Duration {
        Duration::from_secs(self.refresh_margin_secs)
    }

    /// What the grant requires; `section` is the table's key, e.g. `crm.salesforce.oauth`.
    /// Whether the PEM text is a usable key is checked when the token manager is built.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{section}.{name}");
        let required = |name: &str| {
            invalid(
                &key(name),
                format!("required when {section}.grant = \"{}\"", self.grant_name()),
            )
        };
        if self.client_id.trim().is_empty() {
            return Err(required("client_id"));
        }
        match self.grant {
            OAuthGrant::ClientCredentials => {
                if self.client_secret.expose_secret().trim().is_empty() {
                    return Err(required("client_secret"));
                }
            }
            OAuthGrant::JwtBearer | OAuthGrant::ClientAssertion => {
                if self.private_key.expose_secret().trim().is_empty() {
                    return Err(required("private_key"));
                }
                if self.grant == OAuthGrant::JwtBearer && self.subject.trim().is_empty() {
                    return Err(required("subject"));
                }
                if self.grant == OAuthGrant::ClientAssertion && self.certificate.trim().is_empty() {
                    return Err(required("certificate"));
                }
                if self.assertion_lifetime_secs == 0 {
                    return Err(invalid(
                        &key("assertion_lifetime_secs"),
                        "must be greater than 0",
                    ));
                }
            }
        }
        if !self.token_url.trim().is_empty() {
            let url = url::Url::parse(self.token_url.trim())
                .map_err(|e| invalid(&key("token_url"), e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid(&key("token_url"), "must be an http or https URL"));
            }
        }
        if self.token_lifetime_secs == 0 {
            return Err(invalid(
                &key("token_lifetime_secs"),
                "must be greater than 0",
            ));
        }
        Ok(())
    }

    fn grant_name(&self) -> &'static str {
        match self.grant {
            OAuthGrant::ClientCredentials => "client_credentials",
            OAuthGrant::JwtBearer => "jwt_bearer",
            OAuthGrant::ClientAssertion => "client_assertion",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Client credentials with a secret, everything else empty.
    pub(crate) fn client_credentials() -> OAuthSettings {
        OAuthSettings {
            grant: OAuthGrant::ClientCredentials,
            token_url: String::new(),
            client_id: "client".into(),
            client_secret: SecretString::from("secret"),
            client_auth: ClientAuth::Body,
            private_key: SecretString::from(""),
            certificate: String::new(),
            subject: String::new(),
            audience: String::new(),
            scope: String::new(),
            algorithm: AssertionAlgorithm::RS256,
            assertion_lifetime_secs: 180,
            token_lifetime_secs: 3600,
            refresh_margin_secs: 60,
        }
    }

    #[test]
    fn each_grant_requires_its_own_credentials_naming_the_key() {
        assert!(client_credentials().validate("crm.x.oauth").is_ok());
        let mut s = client_credentials();
        s.client_secret = SecretString::from(" ");
        let err = s.validate("crm.x.oauth").unwrap_err().to_string();
        assert!(err.contains("crm.x.oauth.client_secret"), "{err}");

        s.grant = OAuthGrant::JwtBearer;
        let err = s.validate("crm.x.oauth").unwrap_err().to_string();
        assert!(err.contains("crm.x.oauth.private_key"), "{err}");
        s.private_key = SecretString::from("-----BEGIN PRIVATE KEY-----");
        let err = s.validate("crm.x.oauth").unwrap_err().to_string();
        assert!(err.contains("crm.x.oauth.subject"), "{err}");
        s.subject = "user@example.com".into();
        assert!(s.validate("crm.x.oauth").is_ok());

        s.grant = OAuthGrant::ClientAssertion;
        let err = s.validate("crm.x.oauth").unwrap_err().to_string();
        assert!(err.contains("crm.x.oauth.certificate"), "{err}");
    }

    #[test]
    fn a_token_url_must_be_http() {
        let mut s = client_credentials();
        s.token_url = "ftp://login.example.com/token".into();
        let err = s.validate("crm.x.oauth").unwrap_err().to_string();
        assert!(err.contains("crm.x.oauth.token_url"), "{err}");
    }
}
