//! Inbound authentication middleware, per endpoint group (settings in `config::AuthSettings`).
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
use axum::http::{header, HeaderName};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Refusal};
use crate::config::{AuthGroup, AuthMode, EndpointAuth};
use crate::metrics;

/// One endpoint group's verifier, shared by its routes' middleware.
pub struct Verifier {
    group: AuthGroup,
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

impl Verifier {
    pub fn new(
        group: AuthGroup,
        settings: &EndpointAuth,
        body_limit: usize,
    ) -> anyhow::Result<Arc<Self>> {
        settings.validate(group)?;
        let secrets: Vec<SecretString> = settings.present_secrets();
        let webhooks = if settings.mode == AuthMode::Signature {
            secrets
                .iter()
                .map(|s| standardwebhooks::Webhook::new(s.expose_secret()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    anyhow::anyhow!(
                        "auth.{}.secrets: not a Standard Webhooks secret",
                        group.as_str()
                    )
                })?
        } else {
            Vec::new()
        };
        if settings.mode == AuthMode::None && group != AuthGroup::Ops {
            let group = group.as_str();
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
                let key = req
                    .headers()
                    .get(&self.header)
                    .ok_or(Refusal::MissingCredentials)?;
                self.matches_a_secret(key.as_bytes())
                    .then_some(())
                    .ok_or(Refusal::InvalidCredentials)
            }
            AuthMode::Bearer => {
                let value = authorization().ok_or(Refusal::MissingCredentials)?;
                let (scheme, token) = value.split_once(' ').ok_or(Refusal::InvalidCredentials)?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(Refusal::InvalidCredentials);
                }
                self.matches_a_secret(token.trim().as_bytes())
                    .then_some(())
                    .ok_or(Refusal::InvalidCredentials)
            }
            AuthMode::Basic => {
                let value = authorization().ok_or(Refusal::MissingCredentials)?;
                let (scheme, encoded) = value.split_once(' ').ok_or(Refusal::InvalidCredentials)?;
                if !scheme.eq_ignore_ascii_case("basic") {
                    return Err(Refusal::InvalidCredentials);
                }
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|_| Refusal::InvalidCredentials)?;
                let text = String::from_utf8(decoded).map_err(|_| Refusal::InvalidCredentials)?;
                let (user, password) = text.split_once(':').ok_or(Refusal::InvalidCredentials)?;
                let user_ok = bool::from(user.as_bytes().ct_eq(self.username.as_bytes()));
                let password_ok = self.matches_a_secret(password.as_bytes());
                (user_ok & password_ok)
                    .then_some(())
                    .ok_or(Refusal::InvalidCredentials)
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
            .ok_or(Refusal::MissingCredentials)?
            .to_owned();
        if headers
            .get(standardwebhooks::HEADER_WEBHOOK_SIGNATURE)
            .is_none()
            || headers
                .get(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP)
                .is_none()
        {
            return Err(Refusal::MissingCredentials);
        }
        let mut last = Refusal::InvalidCredentials;
        for webhook in &self.webhooks {
            match webhook.verify(body, headers) {
                Ok(()) => return Ok(id),
                Err(
                    standardwebhooks::WebhookError::TimestampTooOldError
                    | standardwebhooks::WebhookError::FutureTimestampError,
                ) => last = Refusal::TimestampOutOfTolerance,
                Err(_) => {}
            }
        }
        Err(last)
    }
}

fn refuse(verifier: &Verifier, refusal: Refusal) -> Response {
    let endpoint = verifier.group.as_str();
    ::metrics::counter!(metrics::AUTH_FAILURES, "endpoint" => endpoint, "reason" => refusal.as_str())
        .increment(1);
    tracing::warn!(endpoint, reason = refusal.as_str(), "request refused");
    let challenge = match verifier.mode {
        AuthMode::Basic => Some("Basic realm=\"attrsync\""),
        AuthMode::Bearer => Some("Bearer realm=\"attrsync\""),
        _ => None,
    };
    ApiError::Unauthorized { refusal, challenge }.into_response()
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
    let Ok(bytes) = axum::body::to_bytes(body, verifier.body_limit).await else {
        return ApiError::PayloadTooLarge(verifier.body_limit).into_response();
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
    use axum::http::HeaderValue;

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
            AuthGroup::Genesys,
            &settings(AuthMode::ApiKey, &["old", "new"]),
            1024,
        )
        .unwrap();
        assert!(v.check_headers(&request(&[("x-api-key", "old")])).is_ok());
        assert!(v.check_headers(&request(&[("x-api-key", "new")])).is_ok());
        assert_eq!(
            v.check_headers(&request(&[("x-api-key", "other")])),
            Err(Refusal::InvalidCredentials)
        );
        assert_eq!(
            v.check_headers(&request(&[])),
            Err(Refusal::MissingCredentials)
        );
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let v =
            Verifier::new(AuthGroup::Lookup, &settings(AuthMode::Basic, &["pw"]), 1024).unwrap();
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
            Err(Refusal::InvalidCredentials)
        );
        assert_eq!(
            v.check_headers(&request(&[("authorization", "Bearer pw")])),
            Err(Refusal::InvalidCredentials)
        );
    }

    #[test]
    fn bearer_tokens_are_compared_whatever_the_scheme_case() {
        let v = Verifier::new(AuthGroup::Ops, &settings(AuthMode::Bearer, &["tok"]), 1024).unwrap();
        assert!(v
            .check_headers(&request(&[("authorization", "bearer tok")]))
            .is_ok());
        assert_eq!(
            v.check_headers(&request(&[("authorization", "Bearer tok2")])),
            Err(Refusal::InvalidCredentials)
        );
    }

    #[test]
    fn a_signature_from_a_rotated_out_secret_is_refused_and_a_current_one_accepted() {
        let current = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let retired = "whsec_dGhpcyBpcyBhIHJldGlyZWQgc2VjcmV0IGtleQ==";
        let v = Verifier::new(
            AuthGroup::Cti,
            &settings(AuthMode::Signature, &[current]),
            1024,
        )
        .unwrap();
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
