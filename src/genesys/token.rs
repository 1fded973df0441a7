//! The OAuth client-credentials token: fetched from `POST {login}/oauth/token`, kept in a
//! one-entry moka cache until shortly before `expires_in`, shared by every caller.
//!
//! Client-credentials grants have no refresh token, so "refresh" means fetching a new one.
//! `try_get_with` makes concurrent callers wait for a single fetch, which is what prevents the
//! token storms peers have suffered; `invalidate` only drops the token the caller saw fail, so a
//! burst of 401s on one stale token costs one new fetch, not one each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use secrecy::{ExposeSecret, SecretString};

use super::model::TokenResponse;
use super::GenesysError;
use crate::metrics;

/// A bearer token ready to be sent, and how long the cache may keep it.
#[derive(Clone)]
pub struct AccessToken {
    /// The full `Authorization` header value, e.g. `bearer abc...`.
    header: String,
    keep_for: Duration,
}

impl AccessToken {
    pub fn header_value(&self) -> &str {
        &self.header
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("header", &"[redacted]")
            .field("keep_for", &self.keep_for)
            .finish()
    }
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
pub struct TokenProvider {
    http: reqwest::Client,
    token_url: url::Url,
    client_id: String,
    client_secret: SecretString,
    refresh_margin: Duration,
    /// The pool slot this token fills, for the metrics.
    slot: String,
    cache: Cache<(), Arc<AccessToken>>,
}

impl TokenProvider {
    pub fn new(
        http: reqwest::Client,
        login_base: &url::Url,
        client_id: String,
        client_secret: SecretString,
        refresh_margin: Duration,
        slot: usize,
    ) -> Result<Self, GenesysError> {
        let token_url = login_base
            .join("oauth/token")
            .map_err(|e| GenesysError::InvalidResponse(format!("bad login URL: {e}")))?;
        Ok(Self {
            http,
            token_url,
            client_id,
            client_secret,
            refresh_margin,
            slot: slot.to_string(),
            cache: Cache::builder()
                .max_capacity(1)
                .expire_after(KeepFor)
                .build(),
        })
    }

    /// The current token, fetching one if there is none or it is about to expire.
    pub async fn token(&self) -> Result<Arc<AccessToken>, GenesysError> {
        self.cache
            .try_get_with((), self.fetch())
            .await
            .map_err(|e: Arc<GenesysError>| (*e).clone())
    }

    /// Drops `stale` after Genesys rejected it, unless another caller already replaced it.
    pub async fn invalidate(&self, stale: &AccessToken) {
        if let Some(current) = self.cache.get(&()).await {
            if current.header == stale.header {
                self.cache.invalidate(&()).await;
            }
        }
    }

    async fn fetch(&self) -> Result<Arc<AccessToken>, GenesysError> {
        let started = tokio::time::Instant::now();
        let result = self
            .http
            .post(self.token_url.clone())
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) => {
                metrics::upstream_call("genesys", "token", None, started.elapsed());
                ::metrics::counter!(metrics::TOKEN_FETCHES, "slot" => self.slot.clone(), "outcome" => "error").increment(1);
                return Err(GenesysError::from_transport(&e));
            }
        };
        let status = response.status();
        metrics::upstream_call("genesys", "token", Some(status.as_u16()), started.elapsed());
        if !status.is_success() {
            ::metrics::counter!(metrics::TOKEN_FETCHES, "slot" => self.slot.clone(), "outcome" => "rejected").increment(1);
            return Err(GenesysError::from_response(response).await);
        }
        let body: TokenResponse = response.json().await.map_err(|e| {
            ::metrics::counter!(metrics::TOKEN_FETCHES, "slot" => self.slot.clone(), "outcome" => "error").increment(1);
            GenesysError::InvalidResponse(format!("token response: {e}"))
        })?;
        ::metrics::counter!(metrics::TOKEN_FETCHES, "slot" => self.slot.clone(), "outcome" => "ok")
            .increment(1);
        let lifetime = Duration::from_secs(body.expires_in);
        // Never keep a token past half its life minus nothing: a 300 s token with the default
        // 300 s margin would otherwise never be reused.
        let margin = self.refresh_margin.min(lifetime / 2);
        tracing::info!(
            slot = %self.slot,
            expires_in = body.expires_in,
            "fetched a Genesys access token"
        );
        Ok(Arc::new(AccessToken {
            header: format!("{} {}", body.token_type, body.access_token),
            keep_for: lifetime.saturating_sub(margin).max(Duration::from_secs(1)),
        }))
    }
}
