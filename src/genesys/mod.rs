//! The Genesys Cloud client: read a conversation, write participant attributes, read the
//! published address ranges (`ranges` keeps them fresh).
//!
//! Every call takes a permit from the token pool (`pool`, `slots`): the token with the most
//! budget left. A 429 parks that token for its `Retry-After` and the call moves to another at
//! once; when every token is parked it waits for `Retry-After`. 5xx, timeouts and connection
//! errors back off exponentially with jitter; a 401 drops that token and the call is tried once
//! more with a fresh one; any other 4xx fails at once and carries Genesys's `code`, `message`
//! and `contextId`.

pub mod model;
pub mod pool;
pub mod ranges;
pub mod region;
pub mod slots;
pub mod token;
pub mod visibility;

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use crate::config::GenesysSettings;
use crate::domain::{ConversationId, ParticipantId};
use crate::metrics;
use crate::retry::{RetryPolicy, Retryable};
use model::{AttributesPatch, Conversation, ErrorBody, IpAddressRange, IpAddressRangeListing};
use pool::TokenPool;
use token::TokenProvider;
use visibility::Visibility;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GenesysError {
    /// Genesys answered with an error status and (usually) an `ErrorBody`.
    #[error("Genesys answered {status} {code}: {message} (contextId {context_id})")]
    Api {
        status: u16,
        code: String,
        message: String,
        context_id: String,
        retry_after: Option<Duration>,
    },
    #[error("Genesys did not answer in time")]
    Timeout,
    /// Every token of the pool is parked after 429s (or out of budget) for longer than
    /// `genesys.max_retry_after_secs`: the call is not sent, and the job waits in the queue.
    #[error("every Genesys token is rate limited for {}s", retry_after.as_secs())]
    AllTokensParked { retry_after: Duration },
    #[error("could not reach Genesys: {0}")]
    Connect(String),
    #[error("unexpected response from Genesys: {0}")]
    InvalidResponse(String),
}

impl GenesysError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GenesysError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub(crate) fn from_transport(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            GenesysError::Timeout
        } else if e.is_connect() || e.is_request() {
            // Strip the URL: it can carry ids, and the error is logged.
            GenesysError::Connect(e.without_url_ref().to_string())
        } else {
            GenesysError::InvalidResponse(e.without_url_ref().to_string())
        }
    }

    pub(crate) async fn from_response(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let retry_after = crate::retry::retry_after_header(response.headers());
        let header_context = response
            .headers()
            .get("inin-correlation-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body: ErrorBody = response.json().await.unwrap_or_default();
        let context_id = if body.context_id.is_empty() {
            header_context.unwrap_or_default()
        } else {
            body.context_id.clone()
        };
        // Platform `ErrorBody` or OAuth `{"error", "error_description"}`: the description is
        // kept, it is what says why a token was refused.
        let (code, message) = body.code_and_message();
        GenesysError::Api {
            status,
            code: if code.is_empty() {
                "unknown".to_owned()
            } else {
                code
            },
            message,
            context_id,
            retry_after,
        }
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "<genesys>");
        }
        text
    }
}

impl Retryable for GenesysError {
    fn is_retryable(&self) -> bool {
        match self {
            GenesysError::Api { status, .. } => matches!(*status, 408 | 429 | 500..=599),
            GenesysError::Timeout
            | GenesysError::Connect(_)
            | GenesysError::AllTokensParked { .. } => true,
            GenesysError::InvalidResponse(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            GenesysError::Api { retry_after, .. } => *retry_after,
            GenesysError::AllTokensParked { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct GenesysClient {
    http: reqwest::Client,
    api_base: url::Url,
    pool: std::sync::Arc<TokenPool>,
    retry: RetryPolicy,
    /// Recent 404s of GET and PATCH: a division misconfiguration looks like this.
    visibility: std::sync::Arc<Visibility>,
}

impl GenesysClient {
    /// The client `[genesys]` describes: its hosts, credentials, timeouts, retries and budget.
    pub fn from_settings(settings: &GenesysSettings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout())
            .connect_timeout(settings.connect_timeout())
            .user_agent(concat!("attrsync/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(50))
            .build()
            .context("building the Genesys HTTP client")?;
        let login = settings.login_url()?;
        let mut providers = Vec::new();
        for client in settings.clients() {
            let client = client.context("genesys.extra_clients: not client_id:client_secret")?;
            for _ in 0..settings.tokens {
                providers.push(TokenProvider::new(
                    http.clone(),
                    &login,
                    client.client_id.clone(),
                    client.client_secret.clone(),
                    settings.token_refresh_margin(),
                    providers.len(),
                )?);
            }
        }
        let pool = TokenPool::new(
            providers,
            settings.rate_limit_per_minute,
            settings.rate_limit_burst,
        );
        Ok(Self {
            http,
            api_base: settings.api_url()?,
            pool: std::sync::Arc::new(pool),
            retry: settings.retry(),
            visibility: std::sync::Arc::default(),
        })
    }

    /// Proves a token can be obtained (cached or fresh) on at least one slot: the readiness
    /// check.
    pub async fn check_token(&self) -> Result<(), GenesysError> {
        let slots = self.check_slots().await;
        if slots.iter().any(Result::is_ok) {
            return Ok(());
        }
        slots.into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// Each slot's token, by slot number.
    pub async fn check_slots(&self) -> Vec<Result<(), GenesysError>> {
        self.pool.check().await
    }

    /// `GET /api/v2/conversations/{conversationId}`.
    pub async fn get_conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Conversation, GenesysError> {
        let path = format!("api/v2/conversations/{}", id.as_str());
        let response = self.observed(
            self.send("get_conversation", Method::GET, &path, None)
                .await,
        )?;
        response
            .json::<Conversation>()
            .await
            .map_err(|e| GenesysError::InvalidResponse(format!("conversation body: {e}")))
    }

    /// `PATCH /api/v2/conversations/{id}/participants/{pid}/attributes` with only the given keys.
    pub async fn patch_participant_attributes(
        &self,
        conversation: &ConversationId,
        participant: &ParticipantId,
        attributes: &BTreeMap<String, String>,
    ) -> Result<(), GenesysError> {
        let path = format!(
            "api/v2/conversations/{}/participants/{}/attributes",
            conversation.as_str(),
            participant.as_str()
        );
        let body = serde_json::to_vec(&AttributesPatch { attributes })
            .map_err(|e| GenesysError::InvalidResponse(format!("patch body: {e}")))?;
        // Any 2xx is success: 202 with no body is documented.
        self.observed(
            self.send("patch_attributes", Method::PATCH, &path, Some(body))
                .await,
        )
        .map(|_| ())
    }

    /// Notes whether a conversation call answered 404 (see `visibility`).
    fn observed<T>(&self, result: Result<T, GenesysError>) -> Result<T, GenesysError> {
        match &result {
            Ok(_) => self.visibility.record(false),
            Err(e) if e.is_not_found() => self.visibility.record(true),
            Err(_) => {}
        }
        result
    }

    /// `GET /api/v2/ipranges`: Genesys Cloud's public address ranges. "Requires no permissions";
    /// the SDKs send the OAuth token, so this does too (UtilitiesApi.md of
    /// MyPureCloud/platform-client-sdk-python@f80f2db).
    pub async fn ip_ranges(&self) -> Result<Vec<IpAddressRange>, GenesysError> {
        let response = self
            .send("get_ip_ranges", Method::GET, "api/v2/ipranges", None)
            .await?;
        response
            .json::<IpAddressRangeListing>()
            .await
            .map(|listing| listing.entities)
            .map_err(|e| GenesysError::InvalidResponse(format!("ipranges body: {e}")))
    }

    /// One logical call: retries per the policy, with one extra attempt after a 401.
    async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, GenesysError> {
        let url = self
            .api_base
            .join(path)
            .map_err(|e| GenesysError::InvalidResponse(format!("bad URL: {e}")))?;
        self.retry
            .run(
                || self.attempt_with_fresh_token_on_401(op, method.clone(), url.clone(), body.clone()),
                |e, wait| {
                    metrics::upstream_retry("genesys", op);
                    tracing::warn!(operation = op, error = %e, wait_ms = wait.as_millis() as u64, "retrying Genesys call");
                },
            )
            .await
    }

    /// One attempt as the retry policy sees it: a slot's permit and token, and the request. A
    /// 401 drops that slot's token and tries once more (any slot); a 429 parks the slot and, if
    /// another slot is free now, moves there at once, at most once per slot.
    async fn attempt_with_fresh_token_on_401(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, GenesysError> {
        let mut renewed = false;
        let mut moves = 0;
        loop {
            let permit = self
                .pool
                .acquire(self.retry.max_retry_after)
                .await
                .map_err(|retry_after| GenesysError::AllTokensParked { retry_after })?;
            let token = self.pool.token(permit).await?;
            match self
                .attempt(
                    op,
                    method.clone(),
                    url.clone(),
                    body.clone(),
                    token.header_value(),
                )
                .await
            {
                Err(GenesysError::Api { status: 401, .. }) if !renewed => {
                    tracing::info!(
                        operation = op,
                        slot = permit.slot,
                        "Genesys rejected the token; fetching a new one"
                    );
                    self.pool.invalidate(permit, &token).await;
                    renewed = true;
                }
                Err(e @ GenesysError::Api { status: 429, .. }) => {
                    let another_is_free = self.pool.rate_limited(permit, e.retry_after());
                    moves += 1;
                    if !another_is_free || moves >= self.pool.len() {
                        return Err(e);
                    }
                    tracing::info!(
                        operation = op,
                        slot = permit.slot,
                        "token parked after a 429; the call moves to another"
                    );
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
        authorization: &str,
    ) -> Result<reqwest::Response, GenesysError> {
        let mut request = self.http.request(method, url);
        if let Ok(value) = HeaderValue::from_str(authorization) {
            request = request.header(AUTHORIZATION, value);
        }
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        let started = tokio::time::Instant::now();
        match request.send().await {
            Err(e) => {
                metrics::upstream_call("genesys", op, None, started.elapsed());
                Err(GenesysError::from_transport(&e))
            }
            Ok(response) => {
                let status = response.status();
                metrics::upstream_call("genesys", op, Some(status.as_u16()), started.elapsed());
                if status.is_success() {
                    Ok(response)
                } else {
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        tracing::warn!(operation = op, "Genesys rate limit reached (429)");
                    }
                    Err(GenesysError::from_response(response).await)
                }
            }
        }
    }
}
