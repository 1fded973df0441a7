//! Zendesk Support simulator: the user lookups attrsync's Zendesk adapter makes (unified search,
//! Search Users by query or `external_id`, Show User), API-token (Basic) and OAuth (Bearer,
//! `client_credentials` grant) authentication each switchable off, the account's per-minute
//! limit and the search endpoint's own limit with Zendesk's headers and 429, the search index
//! lag, fault injection, a `/sim/...` admin API and the [`ZendeskSim`] handle.
//!
//! Every API request goes through one gate, in this order: count it, add latency, answer an
//! outage or a scripted fault, authenticate, apply the rate limits, then handle it; answers that
//! got past authentication carry the rate-limit headers. Facts and sources:
//! developer.zendesk.com/api-reference/ (search, users, rate limits, OAuth tokens); the query
//! language is in [`search`].

pub mod search;

mod admin;
mod answers;
mod api;
mod state;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpListener;

use super::{lock, ServerHandle, Traffic};

pub use search::PhoneExactMode;

/// Per-minute account limits by plan (support.zendesk.com/hc/ja/articles/4408836402074).
pub const PLAN_TEAM_PER_MINUTE: u32 = 200;
pub const PLAN_GROWTH_PER_MINUTE: u32 = 400;
pub const PLAN_PROFESSIONAL_PER_MINUTE: u32 = 400;
pub const PLAN_ENTERPRISE_PER_MINUTE: u32 = 700;
pub const HIGH_VOLUME_PER_MINUTE: u32 = 2_500;
/// The search endpoint's own limit, which "counts towards the global API rate limit"
/// (api-reference/ticketing/ticket-management/search/, Limits).
pub const SEARCH_PER_MINUTE: u32 = 2_500;

/// An OAuth client that may use the `client_credentials` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    pub id: String,
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct ZendeskSimConfig {
    /// The agent whose email goes with an API token (`{email}/token:{api_token}`).
    pub agent_email: String,
    pub api_tokens: Vec<String>,
    /// Admin Center's "API token access". Real new accounts start with it **off**; the simulator
    /// starts configured, and tests turn it off.
    pub api_token_access: bool,
    /// Whether OAuth access tokens are accepted (also off in a new real account).
    pub oauth_access: bool,
    pub oauth_clients: Vec<OAuthClient>,
    /// Lifetime of tokens issued without `expires_in`; `None` = they never expire, Zendesk's
    /// documented default ("There is no default expires_in value").
    pub default_token_lifetime: Option<Duration>,
    /// The plan's account-wide limit per minute.
    pub rate_limit_per_minute: u32,
    pub search_rate_limit_per_minute: u32,
    pub phone_exact: PhoneExactMode,
    /// Custom user field keys the account defines (searchable as `key:value`).
    pub user_fields: Vec<String>,
    /// How long a new or updated user stays invisible to search (Zendesk: "up to a few minutes",
    /// "typically about a minute"). Show User sees it at once.
    pub index_lag: Duration,
    pub latency: Duration,
}

impl Default for ZendeskSimConfig {
    fn default() -> Self {
        Self {
            agent_email: "agent@example.com".to_owned(),
            api_tokens: vec!["sim-api-token".to_owned()],
            api_token_access: true,
            oauth_access: true,
            oauth_clients: vec![OAuthClient {
                id: "attrsync".to_owned(),
                secret: "sim-oauth-secret".to_owned(),
            }],
            default_token_lifetime: None,
            rate_limit_per_minute: PLAN_GROWTH_PER_MINUTE,
            search_rate_limit_per_minute: SEARCH_PER_MINUTE,
            phone_exact: PhoneExactMode::default(),
            user_fields: vec!["account_no".to_owned(), "tier".to_owned()],
            index_lag: Duration::ZERO,
            latency: Duration::ZERO,
        }
    }
}

/// A canned outcome for the next API request, consumed before authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    /// This status with the body Zendesk gives it (429 with `Retry-After: 1`).
    Status { status: u16 },
    /// 200 with an HTML body, as a proxy or maintenance page would answer.
    Garbage,
    /// 200 with JSON of the wrong shape (`results` is not an array).
    WrongShape,
    /// Sleep, then handle the request normally.
    Delay { millis: u64 },
}

/// Counters beyond the per-operation traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    pub tokens_issued: u64,
    pub auth_failures: u64,
    pub rate_limited: u64,
    pub invalid_queries: u64,
    pub faults_injected: u64,
}

/// Handle to a running Zendesk simulator; clones share state and server.
#[derive(Clone)]
pub struct ZendeskSim {
    shared: Arc<state::Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for ZendeskSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZendeskSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl ZendeskSim {
    /// Serves on `listener` (e.g. bound to `127.0.0.1:0`) until [`ZendeskSim::shutdown`].
    pub async fn start(config: ZendeskSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(state::Shared::new(config));
        let server = ServerHandle::spawn("zendesk", api::app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    /// The same app over the same state, to mount elsewhere.
    pub fn router(&self) -> Router {
        api::app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`, standing in for `https://{subdomain}.zendesk.com`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Stores a user (a Zendesk user object; `id` assigned when absent, `role` defaults to
    /// `end-user`), searchable after the index lag. Returns its id, or `None` for a non-object.
    pub fn insert_user(&self, user: Value) -> Option<u64> {
        self.shared.insert_user(user, false)
    }

    /// Like [`ZendeskSim::insert_user`] but searchable at once (seeding before a test).
    pub fn seed_user(&self, user: Value) -> Option<u64> {
        self.shared.insert_user(user, true)
    }

    /// Users stored in different notations on purpose.
    pub fn sample_users() -> Vec<Value> {
        state::sample_users()
    }

    /// Requests per operation (`search`, `users_search`, `show_user`, `token`) and windows.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    pub fn stats(&self) -> SimStats {
        *lock(&self.shared.stats)
    }

    /// The `query` values received, decoded, in arrival order.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.shared.queries).clone()
    }

    /// Every OAuth token issued so far is expired from now on.
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.settings).faults.push_back(fault);
    }

    /// While down, every API request gets 503.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.settings).down = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.settings).latency = latency;
    }

    pub fn set_api_token_access(&self, on: bool) {
        lock(&self.shared.settings).api_token_access = on;
    }

    pub fn set_oauth_access(&self, on: bool) {
        lock(&self.shared.settings).oauth_access = on;
    }

    pub fn set_rate_limit_per_minute(&self, limit: u32) {
        lock(&self.shared.settings).rate_limit_per_minute = limit;
    }

    pub fn set_phone_exact(&self, mode: PhoneExactMode) {
        lock(&self.shared.settings).phone_exact = mode;
    }

    pub fn set_index_lag(&self, lag: Duration) {
        lock(&self.shared.settings).index_lag = lag;
    }
}
