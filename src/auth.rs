//! Inbound authentication, configured per endpoint group (`[auth.genesys]`, `[auth.cti]`,
//! `[auth.lookup]`, `[auth.ops]`).
//!
//! Senders that can sign use Standard Webhooks (the `standardwebhooks` crate: HMAC-SHA256 over
//! id, timestamp and raw body, 5-minute timestamp tolerance, constant-time comparison); a
//! `webhook-id` already accepted is refused as a replay. Senders that cannot sign (Genesys data
//! actions, EventBridge API destinations) use an API-key header, a bearer token or HTTP Basic.
//! Every mode takes several secrets at once, so they can be rotated without downtime. `none`
//! must be chosen explicitly and is logged as a warning at start.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};
use subtle::ConstantTimeEq;

use crate::metrics;

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

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EndpointAuth {
    pub mode: AuthMode,
    /// Accepted secrets (keys, tokens, passwords or signing secrets); several for rotation.
    #[serde(serialize_with = "redacted_list")]
    pub secrets: Vec<SecretString>,
    pub api_key_header: String,
    pub basic_username: String,
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
    pub fn groups(&self) -> [(&'static str, &EndpointAuth); 4] {
        [
            ("genesys", &self.genesys),
            ("cti", &self.cti),
            ("lookup", &self.lookup),
            ("ops", &self.ops),
        ]
    }
}

impl EndpointAuth {
    /// Checks the group's settings; the error is the full key at fault and what is wrong.
    pub fn validate(&self, group: &str) -> Result<(), (String, String)> {
        let key = |k: &str| format!("auth.{group}.{k}");
        if self.mode == AuthMode::None {
            return Ok(());
        }
        let secrets: Vec<&str> = self
            .secrets
            .iter()
            .map(|s| s.expose_secret().trim())
            .filter(|s| !s.is_empty())
            .collect();
        if secrets.is_empty() {
            return Err((
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
                HeaderName::from_bytes(self.api_key_header.as_bytes())
                    .map_err(|_| (key("api_key_header"), "not a valid header name".to_owned()))?;
            }
            AuthMode::Basic
                if self.basic_username.is_empty() || self.basic_username.contains(':') =>
            {
                return Err((key("basic_username"), "required, without ':'".to_owned()));
            }
            AuthMode::Signature => {
                for (i, secret) in secrets.iter().enumerate() {
                    standardwebhooks::Webhook::new(secret).map_err(|_| {
                        (
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

/// One endpoint group's verifier, shared by its routes' middleware.
pub struct Verifier {
    group: &'static str,
    mode: AuthMode,
    secrets: Vec<SecretString>,
    header: HeaderName,
    username: String,
    webhooks: Vec<standardwebhooks::Webhook>,
    body_limit: usize,
    /// `webhook-id`s accepted in the last ten minutes (twice the signature tolerance), so a
    /// captured request cannot be played again while its timestamp is still valid.
    seen: moka::future::Cache<String, ()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Missing,
    Invalid,
    Expired,
    Replayed,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Missing => "missing_credentials",
            Refusal::Invalid => "invalid_credentials",
            Refusal::Expired => "timestamp_out_of_tolerance",
            Refusal::Replayed => "replayed",
        }
    }
}

impl Verifier {
    pub fn new(
        group: &'static str,
        settings: &EndpointAuth,
        body_limit: usize,
    ) -> anyhow::Result<Arc<Self>> {
        settings
            .validate(group)
            .map_err(|(key, reason)| anyhow::anyhow!("{key}: {reason}"))?;
        let secrets: Vec<SecretString> = settings
            .secrets
            .iter()
            .filter(|s| !s.expose_secret().trim().is_empty())
            .map(|s| SecretString::from(s.expose_secret().trim().to_owned()))
            .collect();
        let webhooks = if settings.mode == AuthMode::Signature {
            secrets
                .iter()
                .map(|s| standardwebhooks::Webhook::new(s.expose_secret()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!("auth.{group}.secrets: not a Standard Webhooks secret")
                })?
        } else {
            Vec::new()
        };
        if settings.mode == AuthMode::None && group != "ops" {
            tracing::warn!(endpoints = group, "authentication is off (auth.{group}.mode = \"none\"): anyone who can reach attrsync can use these endpoints");
        }
        Ok(Arc::new(Self {
            group,
            mode: settings.mode,
            secrets,
            header: HeaderName::from_bytes(settings.api_key_header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-api-key")),
            username: settings.basic_username.clone(),
            webhooks,
            body_limit,
            seen: moka::future::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(600))
                .build(),
        }))
    }

    fn matches_a_secret(&self, presented: &[u8]) -> bool {
        // Compare against every secret, so timing does not reveal which one (or whether any)
        // came close.
        self.secrets.iter().fold(false, |ok, secret| {
            ok | bool::from(secret.expose_secret().as_bytes().ct_eq(presented))
        })
    }

    fn check_headers(&self, req: &Request) -> Result<(), Refusal> {
        let authorization = || {
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        match self.mode {
            AuthMode::None | AuthMode::Signature => Ok(()),
            AuthMode::ApiKey => {
                let key = req.headers().get(&self.header).ok_or(Refusal::Missing)?;
                self.matches_a_secret(key.as_bytes())
                    .then_some(())
                    .ok_or(Refusal::Invalid)
            }
            AuthMode::Bearer => {
                let value = authorization().ok_or(Refusal::Missing)?;
                let (scheme, token) = value.split_once(' ').ok_or(Refusal::Invalid)?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(Refusal::Invalid);
                }
                self.matches_a_secret(token.trim().as_bytes())
                    .then_some(())
                    .ok_or(Refusal::Invalid)
            }
            AuthMode::Basic => {
                let value = authorization().ok_or(Refusal::Missing)?;
                let (scheme, encoded) = value.split_once(' ').ok_or(Refusal::Invalid)?;
                if !scheme.eq_ignore_ascii_case("basic") {
                    return Err(Refusal::Invalid);
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| Refusal::Invalid)?;
                let text = String::from_utf8(decoded).map_err(|_| Refusal::Invalid)?;
                let (user, password) = text.split_once(':').ok_or(Refusal::Invalid)?;
                let user_ok = bool::from(user.as_bytes().ct_eq(self.username.as_bytes()));
                let password_ok = self.matches_a_secret(password.as_bytes());
                (user_ok & password_ok)
                    .then_some(())
                    .ok_or(Refusal::Invalid)
            }
        }
    }

    fn check_signature(
        &self,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<String, Refusal> {
        let id = headers
            .get(standardwebhooks::HEADER_WEBHOOK_ID)
            .and_then(|v| v.to_str().ok())
            .ok_or(Refusal::Missing)?
            .to_owned();
        if headers
            .get(standardwebhooks::HEADER_WEBHOOK_SIGNATURE)
            .is_none()
            || headers
                .get(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP)
                .is_none()
        {
            return Err(Refusal::Missing);
        }
        let mut last = Refusal::Invalid;
        for webhook in &self.webhooks {
            match webhook.verify(body, headers) {
                Ok(()) => return Ok(id),
                Err(
                    standardwebhooks::WebhookError::TimestampTooOldError
                    | standardwebhooks::WebhookError::FutureTimestampError,
                ) => last = Refusal::Expired,
                Err(_) => {}
            }
        }
        Err(last)
    }
}

fn refuse(verifier: &Verifier, refusal: Refusal) -> Response {
    ::metrics::counter!(metrics::AUTH_FAILURES, "endpoint" => verifier.group, "reason" => refusal.as_str())
        .increment(1);
    tracing::warn!(
        endpoint = verifier.group,
        reason = refusal.as_str(),
        "request refused"
    );
    let message = match refusal {
        Refusal::Missing => "credentials are required",
        Refusal::Invalid => "the credentials are not valid",
        Refusal::Expired => "the webhook-timestamp is outside the 5-minute tolerance",
        Refusal::Replayed => "this webhook-id was already accepted",
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"code": "unauthorized", "message": message, "reason": refusal.as_str()})),
    )
        .into_response();
    let challenge = match verifier.mode {
        AuthMode::Basic => Some("Basic realm=\"attrsync\""),
        AuthMode::Bearer => Some("Bearer realm=\"attrsync\""),
        _ => None,
    };
    if let Some(challenge) = challenge {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// Middleware for a route group: refuses with 401 before the handler sees anything.
pub async fn require(State(verifier): State<Arc<Verifier>>, req: Request, next: Next) -> Response {
    if verifier.mode != AuthMode::Signature {
        return match verifier.check_headers(&req) {
            Ok(()) => next.run(req).await,
            Err(refusal) => refuse(&verifier, refusal),
        };
    }
    // The signature covers the raw body, so it must be read before any parsing.
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, verifier.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return crate::error::ApiError::PayloadTooLarge(verifier.body_limit).into_response();
        }
    };
    let id = match verifier.check_signature(&parts.headers, &bytes) {
        Ok(id) => id,
        Err(refusal) => return refuse(&verifier, refusal),
    };
    // Claim the id atomically, so two concurrent copies of one message cannot both pass.
    let claimed = verifier
        .seen
        .entry(id.clone())
        .or_insert(())
        .await
        .is_fresh();
    if !claimed {
        return refuse(&verifier, Refusal::Replayed);
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        // Not accepted (bad input, overload): the sender may fix it or retry with the same id.
        verifier.seen.invalidate(&id).await;
    }
    response
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
        }
    }

    #[test]
    fn a_mode_other_than_none_needs_a_secret_and_names_the_key() {
        let (key, reason) = settings(AuthMode::ApiKey, &[])
            .validate("genesys")
            .unwrap_err();
        assert_eq!(key, "auth.genesys.secrets");
        assert!(reason.contains("mode = \"api_key\""), "{reason}");
        assert!(settings(AuthMode::None, &[]).validate("genesys").is_ok());
    }

    #[test]
    fn signature_secrets_must_be_standard_webhooks_secrets() {
        let (key, _) = settings(AuthMode::Signature, &["not base64!"])
            .validate("cti")
            .unwrap_err();
        assert_eq!(key, "auth.cti.secrets[0]");
        assert!(settings(
            AuthMode::Signature,
            &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        )
        .validate("cti")
        .is_ok());
    }

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri("/");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(Body::empty()).unwrap()
    }

    #[test]
    fn any_of_several_keys_is_accepted_for_rotation() {
        let v = Verifier::new(
            "genesys",
            &settings(AuthMode::ApiKey, &["old", "new"]),
            1024,
        )
        .unwrap();
        assert!(v.check_headers(&request(&[("x-api-key", "old")])).is_ok());
        assert!(v.check_headers(&request(&[("x-api-key", "new")])).is_ok());
        assert_eq!(
            v.check_headers(&request(&[("x-api-key", "other")])),
            Err(Refusal::Invalid)
        );
        assert_eq!(v.check_headers(&request(&[])), Err(Refusal::Missing));
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let v = Verifier::new("lookup", &settings(AuthMode::Basic, &["pw"]), 1024).unwrap();
        let good = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("attrsync:pw")
        );
        let wrong_user = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:pw")
        );
        assert!(v
            .check_headers(&request(&[("authorization", &good)]))
            .is_ok());
        assert_eq!(
            v.check_headers(&request(&[("authorization", &wrong_user)])),
            Err(Refusal::Invalid)
        );
        assert_eq!(
            v.check_headers(&request(&[("authorization", "Bearer pw")])),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn bearer_tokens_are_compared_whatever_the_scheme_case() {
        let v = Verifier::new("ops", &settings(AuthMode::Bearer, &["tok"]), 1024).unwrap();
        assert!(v
            .check_headers(&request(&[("authorization", "bearer tok")]))
            .is_ok());
        assert_eq!(
            v.check_headers(&request(&[("authorization", "Bearer tok2")])),
            Err(Refusal::Invalid)
        );
    }

    #[test]
    fn a_signature_from_a_rotated_out_secret_is_refused_and_a_current_one_accepted() {
        let current = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let retired = "whsec_dGhpcyBpcyBhIHJldGlyZWQgc2VjcmV0IGtleQ==";
        let v = Verifier::new("cti", &settings(AuthMode::Signature, &[current]), 1024).unwrap();
        let body = br#"{"x":1}"#;
        let now = chrono::Utc::now().timestamp();
        for (secret, expected) in [(current, true), (retired, false)] {
            let sig = standardwebhooks::Webhook::new(secret)
                .unwrap()
                .sign("msg_1", now, body)
                .unwrap();
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("webhook-id", HeaderValue::from_static("msg_1"));
            headers.insert(
                "webhook-timestamp",
                HeaderValue::from_str(&now.to_string()).unwrap(),
            );
            headers.insert("webhook-signature", HeaderValue::from_str(&sig).unwrap());
            assert_eq!(
                v.check_signature(&headers, body).is_ok(),
                expected,
                "{secret}"
            );
        }
    }
}
