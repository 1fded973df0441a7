//! The OAuth client a token manager asks for tokens: the token endpoint, the credentials in one
//! of three grants, and the token request each makes.
//!
//! - Client credentials with a secret (RFC 6749 §4.4), the secret in the form body or as HTTP
//!   Basic (§2.3.1: id and secret form-urlencoded, then base64).
//! - JWT bearer (RFC 7523 §2.1; Salesforce's "OAuth 2.0 JWT Bearer Flow"): the grant is an
//!   RS256 JWT with `iss` = client id, `sub` = the user, `aud` = the authorization server, `exp`
//!   (forcedotcom/sfdx-core `src/org/authInfo.ts` signs exactly these four).
//! - Client assertion (RFC 7523 §2.2; Entra ID's certificate credentials,
//!   MicrosoftDocs/entra-docs `identity-platform/certificate-credentials.md`): client credentials
//!   with a JWT instead of a secret: `aud` = the token endpoint, `iss` = `sub` = client id,
//!   `exp`, `nbf`, `iat`, `jti`; the header names the certificate by its SHA-1 (`x5t`, the 2024
//!   page) and SHA-256 (`x5t#S256`, the 2025 page) thumbprints: both are sent, so either
//!   version of the service finds it.

use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::{ExposeSecret as _, SecretString};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use crate::config::{AssertionAlgorithm, ClientAuth, OAuthGrant, OAuthSettings};

/// `grant_type` of the JWT bearer grant (RFC 7523 §2.1).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_CLIENT_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An RSA private key ready to sign, and the algorithm to sign with. Never printed.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    algorithm: Algorithm,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A PEM RSA key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`). Literal `\n` are read
    /// as line breaks: an environment variable often carries a PEM on one line.
    pub fn from_pem(pem: &str, algorithm: AssertionAlgorithm) -> Result<Self, String> {
        let pem = pem.trim().replace("\\n", "\n");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("not a PEM RSA private key ({e})"))?;
        Ok(Self {
            key,
            algorithm: match algorithm {
                AssertionAlgorithm::RS256 => Algorithm::RS256,
                AssertionAlgorithm::PS256 => Algorithm::PS256,
            },
        })
    }

    fn sign(&self, header: Header, claims: &serde_json::Value) -> Result<String, String> {
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| format!("cannot sign the assertion: {e}"))
    }
}

/// A certificate's thumbprints, base64url of the SHA-1 and SHA-256 of its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprints {
    pub x5t: String,
    pub x5t_s256: String,
}

impl Thumbprints {
    /// Of a PEM `CERTIFICATE` (literal `\n` read as line breaks).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pem = pem.trim().replace("\\n", "\n");
        let (label, der) = x509_cert::der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| format!("not a PEM document ({e})"))?;
        if label != "CERTIFICATE" {
            return Err(format!("the PEM label is {label:?}, not CERTIFICATE"));
        }
        Ok(Self {
            x5t: URL_SAFE_NO_PAD.encode(Sha1::digest(&der)),
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        })
    }
}

#[derive(Debug, Clone)]
pub enum Credentials {
    Secret {
        client_id: String,
        secret: SecretString,
        auth: ClientAuth,
    },
    JwtBearer {
        client_id: String,
        subject: String,
        audience: String,
        key: SigningKey,
        lifetime: Duration,
    },
    ClientAssertion {
        client_id: String,
        audience: String,
        key: SigningKey,
        certificate: Thumbprints,
        lifetime: Duration,
    },
}

/// What an adapter knows that the settings may leave empty.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// The token endpoint (Salesforce: the My Domain's; Entra: the tenant's).
    pub token_url: Option<url::Url>,
    /// `aud` of an assertion (Salesforce: `https://login.salesforce.com`; a client assertion
    /// defaults to the token endpoint).
    pub audience: Option<String>,
    /// `scope` (Entra: `https://<org>.crm.dynamics.com/.default`).
    pub scope: Option<String>,
}

/// A token request: its form fields and, for HTTP Basic client authentication, the
/// `Authorization` header.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub form: Vec<(&'static str, String)>,
    pub authorization: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub token_url: url::Url,
    pub credentials: Credentials,
    pub scope: Option<String>,
    /// Renew this long before the token expires (at most half its lifetime).
    pub refresh_margin: Duration,
    /// The lifetime of a token whose answer has no `expires_in` (Salesforce's).
    pub assumed_lifetime: Duration,
}

impl OAuthClient {
    /// The client `settings` (the table `section`, e.g. `crm.salesforce.oauth`) describe, with
    /// the adapter's `defaults` for what they leave empty. Errors name the key.
    pub fn from_settings(
        settings: &OAuthSettings,
        section: &str,
        defaults: Defaults,
    ) -> anyhow::Result<Self> {
        let key = |name: &str| format!("{section}.{name}");
        let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let token_url = match nonempty(&settings.token_url) {
            Some(url) => {
                url::Url::parse(&url).map_err(|e| anyhow::anyhow!("{}: {e}", key("token_url")))?
            }
            None => defaults
                .token_url
                .ok_or_else(|| anyhow::anyhow!("{}: required", key("token_url")))?,
        };
        let signing_key = || {
            SigningKey::from_pem(settings.private_key.expose_secret(), settings.algorithm)
                .map_err(|e| anyhow::anyhow!("{}: {e}", key("private_key")))
        };
        let client_id = settings.client_id.trim().to_owned();
        let credentials = match settings.grant {
            OAuthGrant::ClientCredentials => Credentials::Secret {
                client_id,
                secret: settings.client_secret.clone(),
                auth: settings.client_auth,
            },
            OAuthGrant::JwtBearer => Credentials::JwtBearer {
                client_id,
                subject: settings.subject.trim().to_owned(),
                audience: nonempty(&settings.audience)
                    .or(defaults.audience)
                    .ok_or_else(|| anyhow::anyhow!("{}: required", key("audience")))?,
                key: signing_key()?,
                lifetime: settings.assertion_lifetime(),
            },
            OAuthGrant::ClientAssertion => Credentials::ClientAssertion {
                client_id,
                audience: nonempty(&settings.audience)
                    .or(defaults.audience)
                    .unwrap_or_else(|| token_url.to_string()),
                key: signing_key()?,
                certificate: Thumbprints::from_pem(&settings.certificate)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", key("certificate")))?,
                lifetime: settings.assertion_lifetime(),
            },
        };
        Ok(Self {
            token_url,
            credentials,
            scope: nonempty(&settings.scope).or(defaults.scope),
            refresh_margin: settings.refresh_margin(),
            assumed_lifetime: settings.token_lifetime(),
        })
    }

    /// The token request at `now` (Unix seconds).
    pub fn request(&self, now: u64) -> Result<TokenRequest, String> {
        let mut form: Vec<(&'static str, String)> = Vec::new();
        let mut authorization = None;
        match &self.credentials {
            Credentials::Secret {
                client_id,
                secret,
                auth,
            } => {
                form.push(("grant_type", "client_credentials".to_owned()));
                match auth {
                    ClientAuth::Body => {
                        form.push(("client_id", client_id.clone()));
                        form.push(("client_secret", secret.expose_secret().to_owned()));
                    }
                    ClientAuth::Basic => {
                        let encode = |s: &str| -> String {
                            url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
                        };
                        let pair =
                            format!("{}:{}", encode(client_id), encode(secret.expose_secret()));
                        authorization = Some(format!("Basic {}", STANDARD.encode(pair)));
                    }
                }
            }
            Credentials::JwtBearer {
                client_id,
                subject,
                audience,
                key,
                lifetime,
            } => {
                let claims = serde_json::json!({
                    "iss": client_id,
                    "sub": subject,
                    "aud": audience,
                    "exp": now + lifetime.as_secs(),
                });
                form.push(("grant_type", JWT_BEARER_GRANT.to_owned()));
                form.push(("assertion", key.sign(Header::new(key.algorithm), &claims)?));
            }
            Credentials::ClientAssertion {
                client_id,
                audience,
                key,
                certificate,
                lifetime,
            } => {
                let mut header = Header::new(key.algorithm);
                header.typ = Some("JWT".to_owned());
                header.x5t = Some(certificate.x5t.clone());
                header.x5t_s256 = Some(certificate.x5t_s256.clone());
                let claims = serde_json::json!({
                    "aud": audience,
                    "iss": client_id,
                    "sub": client_id,
                    "exp": now + lifetime.as_secs(),
                    "nbf": now,
                    "iat": now,
                    "jti": uuid::Uuid::new_v4().to_string(),
                });
                form.push(("grant_type", "client_credentials".to_owned()));
                form.push(("client_id", client_id.clone()));
                form.push(("client_assertion_type", JWT_CLIENT_ASSERTION.to_owned()));
                form.push(("client_assertion", key.sign(header, &claims)?));
            }
        }
        if let Some(scope) = &self.scope {
            form.push(("scope", scope.clone()));
        }
        Ok(TokenRequest {
            form,
            authorization,
        })
    }
}
