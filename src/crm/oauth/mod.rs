//! One OAuth token manager for the CRM adapters' credentials ([`TokenManager`]), over the three
//! grants of `client` (a secret, a JWT bearer grant, a certificate's client assertion).
//!
//! The token lives in a one-entry moka cache: concurrent callers share one fetch
//! (`try_get_with`), so a burst of lookups never becomes a burst of token requests. It is
//! renewed `refresh_margin` before `expires_in` (at most half its life) when the answer says;
//! when it does not (Salesforce's answer has no `expires_in`), it is assumed to live the
//! configured lifetime and is renewed on the vendor's invalid-session answer as well:
//! [`TokenManager::with_token`] renews once and tries again, and `invalidate` drops only the
//! token that failed, so a burst of refusals of one stale token costs one new fetch.
//!
//! Token errors are parsed from the OAuth error body (`error`, `error_description`, RFC 6749
//! §5.2) into the log line and the error; secrets, keys and tokens are never logged.

pub mod client;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use moka::future::Cache;
use moka::Expiry;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value};

pub use client::{Credentials, Defaults, OAuthClient, SigningKey, Thumbprints, TokenRequest};

use super::CrmError;
use crate::metrics;

/// An access token and what its answer said besides.
pub struct AccessToken {
    value: SecretString,
    token_type: String,
    expires_in: Option<u64>,
    /// The answer's other fields (`instance_url`, `id`, `issued_at`, `scope`, ...).
    extra: Map<String, Value>,
    keep_for: Duration,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

impl AccessToken {
    /// The `Authorization` header value: `Bearer <token>` (RFC 6750; vendors answer
    /// `token_type` as `Bearer` or `bearer`).
    pub fn authorization(&self) -> String {
        let scheme = if self.token_type.eq_ignore_ascii_case("bearer") || self.token_type.is_empty()
        {
            "Bearer"
        } else {
            self.token_type.as_str()
        };
        format!("{scheme} {}", self.value.expose_secret())
    }

    /// The bare token, for a client that sets the header itself.
    pub fn secret(&self) -> &str {
        self.value.expose_secret()
    }

    /// Salesforce's `instance_url`: where API calls go.
    pub fn instance_url(&self) -> Option<&str> {
        self.extra.get("instance_url").and_then(Value::as_str)
    }

    /// Any other field of the token answer.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.extra.get(name)
    }

    pub fn expires_in(&self) -> Option<u64> {
        self.expires_in
    }

    /// How long it is used before a new one is fetched.
    pub fn keep_for(&self) -> Duration {
        self.keep_for
    }
}

/// The token answer (RFC 6749 §5.1); `expires_in` as a number or a string (some services send
/// strings).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// An error answer (RFC 6749 §5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

struct KeepFor;

impl Expiry<(), Arc<AccessToken>> for KeepFor {
    fn expire_after_create(
        &self,
        _: &(),
        token: &Arc<AccessToken>,
        _: Instant,
    ) -> Option<Duration> {
        Some(token.keep_for)
    }
}

#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    client: OAuthClient,
    source: &'static str,
    cache: Cache<(), Arc<AccessToken>>,
}

impl TokenManager {
    /// Tokens for `source` from `client`'s token endpoint, fetched with `http`.
    pub fn new(http: reqwest::Client, client: OAuthClient, source: &'static str) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                client,
                source,
                cache: Cache::builder()
                    .max_capacity(1)
                    .expire_after(KeepFor)
                    .build(),
            }),
        }
    }

    /// The current token, fetching one (once, for every concurrent caller) if there is none or
    /// it is about to expire.
    pub async fn token(&self) -> Result<Arc<AccessToken>, CrmError> {
        self.inner
            .cache
            .try_get_with((), self.fetch())
            .await
            .map_err(|e: Arc<CrmError>| (*e).clone())
    }

    /// Drops `stale` after the vendor refused it, unless another caller already replaced it.
    pub async fn invalidate(&self, stale: &AccessToken) {
        if let Some(current) = self.inner.cache.get(&()).await {
            if current.value.expose_secret() == stale.value.expose_secret() {
                self.inner.cache.invalidate(&()).await;
            }
        }
    }

    /// Runs `call` with the current token; when it fails with `CrmError::InvalidSession`, drops
    /// that token and runs it once more with a new one.
    pub async fn with_token<T, F, Fut>(&self, mut call: F) -> Result<T, CrmError>
    where
        F: FnMut(Arc<AccessToken>) -> Fut,
        Fut: Future<Output = Result<T, CrmError>>,
    {
        let token = self.token().await?;
        match call(token.clone()).await {
            Err(CrmError::InvalidSession) => {
                tracing::info!(
                    source = self.inner.source,
                    "access token refused; renewing it once"
                );
                self.invalidate(&token).await;
                call(self.token().await?).await
            }
            other => other,
        }
    }

    async fn fetch(&self) -> Result<Arc<AccessToken>, CrmError> {
        let inner = &self.inner;
        let counted = |outcome: &'static str| {
            ::metrics::counter!(metrics::CRM_TOKEN_FETCHES, "source" => inner.source, "outcome" => outcome)
                .increment(1);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let token_request = inner.client.request(now).map_err(|e| {
            counted("error");
            CrmError::Unavailable(e)
        })?;
        let mut request = inner
            .http
            .post(inner.client.token_url.clone())
            .form(&token_request.form);
        if let Some(value) = token_request.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value);
        }
        let started = tokio::time::Instant::now();
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::crm_call(inner.source, "token", None, started.elapsed());
                counted("error");
                return Err(if e.is_timeout() {
                    CrmError::Timeout
                } else {
                    CrmError::Connect(e.without_url().to_string())
                });
            }
        };
        let status = response.status().as_u16();
        metrics::crm_call(inner.source, "token", Some(status), started.elapsed());
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            counted("rejected");
            return Err(self.refusal(status, &headers, &body));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            counted("error");
            // serde's message may quote the body, which holds the token: only its position.
            CrmError::InvalidResponse(format!(
                "token answer is not an OAuth token response (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        counted("ok");
        let expires_in = answer.expires_in.as_ref().and_then(|v| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let lifetime = expires_in.map_or(inner.client.assumed_lifetime, Duration::from_secs);
        let margin = inner.client.refresh_margin.min(lifetime / 2);
        let keep_for = lifetime.saturating_sub(margin).max(Duration::from_secs(1));
        tracing::info!(
            source = inner.source,
            expires_in = expires_in,
            keep_for_secs = keep_for.as_secs(),
            "fetched a CRM access token"
        );
        Ok(Arc::new(AccessToken {
            value: SecretString::from(answer.access_token),
            token_type: answer.token_type,
            expires_in,
            extra: answer.extra,
            keep_for,
        }))
    }

    /// The error for a refused token request, logged with the OAuth error code and description.
    fn refusal(&self, status: u16, headers: &reqwest::header::HeaderMap, body: &[u8]) -> CrmError {
        let parsed: Option<ErrorAnswer> = serde_json::from_slice(body).ok();
        let (code, description) = match &parsed {
            Some(e) => (
                e.error.as_str(),
                e.error_description.as_deref().unwrap_or(""),
            ),
            None => ("", ""),
        };
        // Descriptions are the vendor's prose (Entra's carry trace ids); cut, never a secret.
        let description: String = description.chars().take(300).collect();
        tracing::warn!(
            source = self.inner.source,
            status,
            error = code,
            error_description = %description,
            "the CRM's token endpoint refused the request"
        );
        match (status, code) {
            (_, "temporarily_unavailable") | (429 | 500..=599, _) => {
                CrmError::from_status(status, headers)
            }
            (_, "") => CrmError::Auth(format!("token endpoint answered {status}")),
            _ if description.is_empty() => CrmError::Auth(code.to_owned()),
            _ => CrmError::Auth(format!("{code}: {description}")),
        }
    }
}

#[cfg(test)]
mod tests;
