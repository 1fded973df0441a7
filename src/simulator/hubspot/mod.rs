//! HubSpot CRM simulator: `POST /crm/v3/objects/contacts/search` with a strict validator of the
//! filter groups, `GET /crm/v3/objects/contacts/{id}` (also `?idProperty=email`), private-app
//! Bearer tokens with expiry and revocation and HubSpot's 401 bodies, the search endpoint's own
//! per-second limit (per account or per token) with HubSpot's 429 body and no rate-limit
//! headers, the ten-secondly and daily limits with their headers on the other endpoints, the
//! search index lag, faults, a `/sim/...` admin API and the [`HubSpotSim`] handle.
//!
//! Gate order: count, latency, outage/scripted fault, authenticate, scope, rate limit, handle.
//! Every answer carries `x-hubspot-correlation-id`. Facts and sources: the CRM search guide
//! (developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm) and usage details;
//! the search body is in [`filter`].

pub mod filter;

mod admin;
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

pub use filter::{FilterLimits, PhoneFilterMode, UnknownProperty};

/// Who shares the search limit: the current guide says "per account"; earlier docs and the
/// changelog said "per authentication token".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    #[default]
    Account,
    Token,
}

#[derive(Debug, Clone)]
pub struct HubSpotSimConfig {
    /// Private-app access tokens (`Authorization: Bearer pat-...`).
    pub access_tokens: Vec<String>,
    /// `None`: static private-app tokens that never expire; `Some`: they expire after this long
    /// (as OAuth tokens do).
    pub token_lifetime: Option<Duration>,
    /// Scopes the app was granted; search and reads need `crm.objects.contacts.read`.
    pub granted_scopes: Vec<String>,
    /// "rate limited to five requests per second per account" (current search guide).
    pub search_per_second: u32,
    pub search_scope: LimitScope,
    /// `policyName` of the search 429. `SECONDLY` is what HubSpot answered for per-second limits
    /// (community reports); for search today it is unverified.
    pub search_policy_name: String,
    /// A `Retry-After` on the search 429; HubSpot documents none.
    pub search_retry_after: Option<u64>,
    /// Per token per 10 s on the other endpoints: 100 (Free/Starter), 190 (Pro/Enterprise).
    pub ten_secondly_limit: u32,
    pub daily_limit: u64,
    pub filter_limits: FilterLimits,
    pub phone_filter: PhoneFilterMode,
    pub unknown_property: UnknownProperty,
    /// Custom contact properties the account defines.
    pub custom_properties: Vec<String>,
    /// Region for numbers stored without a country code when computing the calculated phone
    /// properties.
    pub default_region: String,
    /// New or updated contacts reach search after this ("may take a few moments"; community
    /// code assumes 5–10 s). Direct reads see them at once.
    pub index_lag: Duration,
    pub latency: Duration,
}

impl Default for HubSpotSimConfig {
    fn default() -> Self {
        Self {
            access_tokens: vec!["pat-na1-sim-token".to_owned()],
            token_lifetime: None,
            granted_scopes: vec!["crm.objects.contacts.read".to_owned()],
            search_per_second: 5,
            search_scope: LimitScope::default(),
            search_policy_name: "SECONDLY".to_owned(),
            search_retry_after: None,
            ten_secondly_limit: 190,
            daily_limit: 650_000,
            filter_limits: FilterLimits::default(),
            phone_filter: PhoneFilterMode::default(),
            unknown_property: UnknownProperty::default(),
            custom_properties: vec!["account_no".to_owned(), "work_phone".to_owned()],
            default_region: "US".to_owned(),
            index_lag: Duration::from_secs(3),
            latency: Duration::ZERO,
        }
    }
}

/// A canned outcome for the next API request, consumed before authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    /// This status with a HubSpot-style body (429 with the search policy).
    Status {
        status: u16,
    },
    /// 200 with an HTML body.
    Garbage,
    /// 200 with JSON of the wrong shape.
    WrongShape,
    Delay {
        millis: u64,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStats {
    pub auth_failures: u64,
    pub search_rate_limited: u64,
    pub general_rate_limited: u64,
    pub invalid_requests: u64,
    pub faults_injected: u64,
}

/// Handle to a running HubSpot simulator; clones share state and server.
#[derive(Clone)]
pub struct HubSpotSim {
    shared: Arc<state::Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for HubSpotSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl HubSpotSim {
    pub async fn start(config: HubSpotSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(state::Shared::new(config));
        let server = ServerHandle::spawn("hubspot", api::app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    pub fn router(&self) -> Router {
        api::app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`, standing in for `https://api.hubapi.com`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Creates a contact from a properties object; searchable after the index lag, readable by
    /// id at once. `None` for a non-object.
    pub fn insert_contact(&self, properties: Value) -> Option<u64> {
        match properties {
            Value::Object(p) => Some(self.shared.insert(p, false)),
            _ => None,
        }
    }

    /// Like [`HubSpotSim::insert_contact`] but searchable at once.
    pub fn seed_contact(&self, properties: Value) -> Option<u64> {
        match properties {
            Value::Object(p) => Some(self.shared.insert(p, true)),
            _ => None,
        }
    }

    /// Changes properties; search sees the old values until the index lag has passed.
    pub fn update_contact(&self, id: u64, properties: Value) -> bool {
        match properties {
            Value::Object(p) => self.shared.update(id, p, false),
            _ => false,
        }
    }

    pub fn archive_contact(&self, id: u64) -> bool {
        lock(&self.shared.contacts)
            .get_mut(&id)
            .map(|c| c.archived = true)
            .is_some()
    }

    pub fn sample_contacts() -> Vec<Value> {
        state::sample_contacts()
    }

    /// Requests per operation (`search`, `get_contact`) and windows.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    pub fn stats(&self) -> SimStats {
        *lock(&self.shared.stats)
    }

    /// The search bodies received, in arrival order.
    pub fn search_bodies(&self) -> Vec<String> {
        lock(&self.shared.bodies).clone()
    }

    /// Every token is expired from now on (401 `EXPIRED_AUTHENTICATION`).
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// This token is revoked (401 `INVALID_AUTHENTICATION`, as for an unknown token).
    pub fn revoke_token(&self, token: &str) {
        if let Some(state) = lock(&self.shared.tokens).get_mut(token) {
            *state = state::TokenState::Revoked;
        }
    }

    /// Issues (or re-validates) a token, e.g. after a rotation.
    pub fn add_token(&self, token: &str) {
        self.shared.add_token(token);
    }

    pub fn push_fault(&self, fault: Fault) {
        lock(&self.shared.settings).faults.push_back(fault);
    }

    pub fn set_down(&self, down: bool) {
        lock(&self.shared.settings).down = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.settings).latency = latency;
    }

    pub fn set_search_limit(&self, per_second: u32, scope: LimitScope) {
        let mut settings = lock(&self.shared.settings);
        settings.search_per_second = per_second;
        settings.search_scope = scope;
    }

    pub fn set_phone_filter(&self, mode: PhoneFilterMode) {
        lock(&self.shared.settings).phone_filter = mode;
    }

    pub fn set_index_lag(&self, lag: Duration) {
        lock(&self.shared.settings).index_lag = lag;
    }
}

impl state::Shared {
    fn expire_tokens(&self) {
        let now = chrono::Utc::now();
        for state in lock(&self.tokens).values_mut() {
            if matches!(state, state::TokenState::Valid { .. }) {
                *state = state::TokenState::Expired { at: now };
            }
        }
    }

    fn add_token(&self, token: &str) {
        let expires_at = self.token_lifetime.map(|l| tokio::time::Instant::now() + l);
        lock(&self.tokens).insert(token.to_owned(), state::TokenState::Valid { expires_at });
    }
}
