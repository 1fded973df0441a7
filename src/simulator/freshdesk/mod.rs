//! Freshdesk account simulator for the (later) Freshdesk adapter: contact list filters, a
//! contact by id and the filter ("search") API with a strict query parser (`search`), API-key
//! Basic authentication, the plan's per-minute limit and Contacts List cap with 429 and the
//! `X-RateLimit-*` headers on every answer (`api`), scriptable faults, request accounting, a
//! `/sim/...` admin API and the [`FreshdeskSim`] handle.
//!
//! Freshdesk's v2 reference could only be read through transcriptions; undocumented behaviour
//! (phone matching, 429 body, search's cost, window type) is a switch with the most likely
//! default. Sources: as listed in `crm::freshdesk` (support article 225439; the v2 reference
//! through transcriptions only).

mod api;
mod search;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::traffic::Traffic;
use super::{lock, ServerHandle};

/// A plan's documented per-minute limits (support.freshdesk.com article 225439).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Plan {
    /// 50 calls per minute; no separate Contacts List cap is documented.
    Trial,
    /// 200 per minute, Contacts List 20.
    Growth,
    /// 400 per minute, Contacts List 100.
    Pro,
    /// 700 per minute, Contacts List 200.
    Enterprise,
}

impl Plan {
    /// (calls per minute, Contacts List calls per minute).
    pub fn limits(self) -> (u32, u32) {
        match self {
            Plan::Trial => (50, 50),
            Plan::Growth => (200, 20),
            Plan::Pro => (400, 100),
            Plan::Enterprise => (700, 200),
        }
    }
}

/// What a 429 carries besides its headers (not documented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ThrottleBody {
    /// No body: nothing is claimed about Freshdesk's wording.
    Empty,
    /// A JSON `{"message": …}`, to check a client that reads it does not depend on it.
    Json,
}

#[derive(Debug, Clone)]
pub struct FreshdeskSimConfig {
    /// Agents' API keys; any password is accepted with them.
    pub api_keys: Vec<String>,
    pub per_minute: u32,
    pub contacts_list_per_minute: u32,
    /// Whether a search costs against the Contacts List cap (undocumented; default no).
    pub search_counts_as_contacts_list: bool,
    /// One minute on Freshdesk; shorter in tests.
    pub window: Duration,
    /// Phones compared by digits only instead of the stored text (undocumented; default exact).
    pub phone_digits_only: bool,
    /// Emails compared without case (undocumented; default yes).
    pub email_case_insensitive: bool,
    /// How long a written contact stays invisible to search ("a few minutes" on Freshdesk;
    /// zero by default so tests see their inserts, set it to test index lag).
    pub search_index_delay: Duration,
    pub throttle_body: ThrottleBody,
    pub latency: Duration,
}

impl FreshdeskSimConfig {
    /// The defaults with `plan`'s limits.
    pub fn for_plan(plan: Plan) -> Self {
        let (per_minute, contacts_list_per_minute) = plan.limits();
        Self {
            per_minute,
            contacts_list_per_minute,
            ..Self::default()
        }
    }
}

impl Default for FreshdeskSimConfig {
    fn default() -> Self {
        let (per_minute, contacts_list_per_minute) = Plan::Growth.limits();
        Self {
            api_keys: vec!["sim-api-key".to_owned()],
            per_minute,
            contacts_list_per_minute,
            search_counts_as_contacts_list: false,
            window: Duration::from_secs(60),
            phone_digits_only: false,
            email_case_insensitive: true,
            search_index_delay: Duration::ZERO,
            throttle_body: ThrottleBody::Empty,
            latency: Duration::ZERO,
        }
    }
}

/// The simulated operations, each with its own queue of scripted faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// `GET /api/v2/contacts`
    ContactsList = 0,
    /// `GET /api/v2/contacts/{id}`
    Contact = 1,
    /// `GET /api/v2/search/contacts`
    Search = 2,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::ContactsList => "contacts_list",
            Op::Contact => "contact",
            Op::Search => "search",
        }
    }
}

/// A canned outcome for the next request of an operation. On the admin API:
/// `{"kind":"status","status":503}`, `{"kind":"notJson"}`, `{"kind":"wrongShape"}`,
/// `{"kind":"delay","millis":250}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    Status { status: u16 },
    NotJson,
    WrongShape,
    Delay { millis: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FreshdeskStats {
    pub requests: BTreeMap<String, u64>,
    pub throttled: u64,
    pub faults_injected: u64,
    /// Every search `query` received, decoded.
    pub queries: Vec<String>,
    /// Search queries answered with a validation error: a correct client causes none.
    pub rejected_queries: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("a contact must be a JSON object")]
    NotAnObject,
    #[error("a contact id must be a positive integer")]
    BadId,
}

struct Contact {
    value: Value,
    written_at: Instant,
}

struct Settings {
    api_keys: Vec<String>,
    per_minute: u32,
    contacts_list_per_minute: u32,
    search_counts_as_contacts_list: bool,
    phone_digits_only: bool,
    email_case_insensitive: bool,
    search_index_delay: Duration,
    throttle_body: ThrottleBody,
    latency: Duration,
    down: bool,
}

#[derive(Default)]
struct Log {
    queries: Vec<String>,
    rejected_queries: Vec<String>,
    faults_injected: u64,
}

struct Shared {
    contacts: Mutex<Vec<Contact>>,
    next_id: Mutex<u64>,
    settings: Mutex<Settings>,
    limiter: Mutex<api::Limiter>,
    faults: Mutex<[VecDeque<Fault>; 3]>,
    log: Mutex<Log>,
    traffic: Traffic,
}

impl Shared {
    fn new(config: FreshdeskSimConfig) -> Self {
        Self {
            contacts: Mutex::new(Vec::new()),
            next_id: Mutex::new(43_000_000_001),
            limiter: Mutex::new(api::Limiter::new(config.window.as_secs())),
            settings: Mutex::new(Settings {
                api_keys: config.api_keys,
                per_minute: config.per_minute,
                contacts_list_per_minute: config.contacts_list_per_minute,
                search_counts_as_contacts_list: config.search_counts_as_contacts_list,
                phone_digits_only: config.phone_digits_only,
                email_case_insensitive: config.email_case_insensitive,
                search_index_delay: config.search_index_delay,
                throttle_body: config.throttle_body,
                latency: config.latency,
                down: false,
            }),
            faults: Mutex::new(Default::default()),
            log: Mutex::new(Log::default()),
            traffic: Traffic::default(),
        }
    }

    fn insert(&self, contact: Value) -> Result<u64, InsertError> {
        let Value::Object(mut contact) = contact else {
            return Err(InsertError::NotAnObject);
        };
        let id = match contact.get("id") {
            None => {
                let mut next = lock(&self.next_id);
                *next += 1;
                *next - 1
            }
            Some(v) => v.as_u64().filter(|n| *n > 0).ok_or(InsertError::BadId)?,
        };
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        contact.insert("id".to_owned(), Value::from(id));
        for key in ["created_at", "updated_at"] {
            contact
                .entry(key)
                .or_insert_with(|| Value::from(now.clone()));
        }
        for (key, default) in [
            ("active", json!(false)),
            ("deleted", json!(false)),
            ("custom_fields", json!({})),
        ] {
            contact.entry(key).or_insert(default);
        }
        let mut contacts = lock(&self.contacts);
        contacts.retain(|c| c.value.get("id").and_then(Value::as_u64) != Some(id));
        contacts.push(Contact {
            value: Value::Object(contact),
            written_at: Instant::now(),
        });
        Ok(id)
    }

    fn stats(&self) -> FreshdeskStats {
        let log = lock(&self.log);
        FreshdeskStats {
            requests: self.traffic.by_op(),
            throttled: lock(&self.limiter).throttled,
            faults_injected: log.faults_injected,
            queries: log.queries.clone(),
            rejected_queries: log.rejected_queries.clone(),
        }
    }
}

/// Handle to a running Freshdesk simulator; clones share the same state and server.
#[derive(Clone)]
pub struct FreshdeskSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for FreshdeskSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FreshdeskSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl FreshdeskSim {
    pub async fn start(config: FreshdeskSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("freshdesk", app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    pub fn router(&self) -> Router {
        app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`, standing in for `https://<domain>.freshdesk.com`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Stores `contact` (replacing one with the same id) and returns its id; `id`, `created_at`,
    /// `updated_at`, `active`, `deleted` and `custom_fields` are filled in if absent.
    pub fn insert(&self, contact: Value) -> Result<u64, InsertError> {
        self.shared.insert(contact)
    }

    /// Contacts for the demo, in differing notations.
    pub fn sample_contacts() -> Vec<Value> {
        vec![
            json!({"id": 43000000101_u64, "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+13175550125", "mobile": null, "active": true, "unique_external_id": "C-1001", "custom_fields": {"tier": "gold"}}),
            json!({"id": 43000000102_u64, "name": "Grace Hopper", "email": "Grace.Hopper@example.com", "phone": "(317) 555-0126", "mobile": "+1 317 555 0199", "active": true}),
            json!({"id": 43000000103_u64, "name": "Alan Turing", "email": "alan@example.co.uk", "phone": "+44 20 7946 0958", "mobile": null, "active": true, "deleted": true}),
        ]
    }

    pub fn stats(&self) -> FreshdeskStats {
        self.shared.stats()
    }

    /// Request accounting per operation (`contacts_list`, `contact`, `search`).
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    pub fn push_fault(&self, op: Op, fault: Fault) {
        lock(&self.shared.faults)[op as usize].push_back(fault);
    }

    pub fn set_down(&self, down: bool) {
        lock(&self.shared.settings).down = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.settings).latency = latency;
    }

    pub fn set_phone_digits_only(&self, on: bool) {
        lock(&self.shared.settings).phone_digits_only = on;
    }

    /// Replaces the valid API keys, as when an agent resets theirs: the old ones get 401.
    pub fn set_api_keys(&self, keys: Vec<String>) {
        lock(&self.shared.settings).api_keys = keys;
    }

    pub fn set_search_index_delay(&self, delay: Duration) {
        lock(&self.shared.settings).search_index_delay = delay;
    }

    /// Zeroes the current window's counts.
    pub fn reset_rate_limit(&self) {
        lock(&self.shared.limiter).reset();
    }
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/contacts", get(api::list_contacts))
        .route("/api/v2/contacts/{id}", get(api::get_contact))
        .route("/api/v2/search/contacts", get(api::search_contacts))
        .route("/sim/contacts", post(admin_insert))
        .route("/sim/stats", get(admin_stats))
        .route("/sim/config", patch(admin_config))
        .route("/sim/faults", post(admin_fault))
        .route("/sim/rate-limit/reset", post(admin_reset))
        .fallback(api::not_found)
        .with_state(shared)
}

// Admin API: not part of Freshdesk, so no auth, faults or accounting; `{"error": ...}`.

fn admin_error(status: StatusCode, message: impl fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

async fn admin_insert(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let contact: Value = match serde_json::from_slice(&body) {
        Ok(contact) => contact,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    match sim.insert(contact) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_stats(State(sim): State<Arc<Shared>>) -> Json<FreshdeskStats> {
    Json(sim.stats())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigPatch {
    down: Option<bool>,
    latency_ms: Option<u64>,
    per_minute: Option<u32>,
    contacts_list_per_minute: Option<u32>,
    search_counts_as_contacts_list: Option<bool>,
    phone_digits_only: Option<bool>,
    email_case_insensitive: Option<bool>,
    search_index_delay_ms: Option<u64>,
    throttle_body: Option<ThrottleBody>,
    plan: Option<Plan>,
    api_keys: Option<Vec<String>>,
}

async fn admin_config(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(patch) => patch,
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    let mut s = lock(&sim.settings);
    if let Some(plan) = patch.plan {
        (s.per_minute, s.contacts_list_per_minute) = plan.limits();
    }
    s.down = patch.down.unwrap_or(s.down);
    s.latency = patch.latency_ms.map_or(s.latency, Duration::from_millis);
    s.per_minute = patch.per_minute.unwrap_or(s.per_minute);
    s.contacts_list_per_minute = patch
        .contacts_list_per_minute
        .unwrap_or(s.contacts_list_per_minute);
    s.search_counts_as_contacts_list = patch
        .search_counts_as_contacts_list
        .unwrap_or(s.search_counts_as_contacts_list);
    s.phone_digits_only = patch.phone_digits_only.unwrap_or(s.phone_digits_only);
    s.email_case_insensitive = patch
        .email_case_insensitive
        .unwrap_or(s.email_case_insensitive);
    s.search_index_delay = patch
        .search_index_delay_ms
        .map_or(s.search_index_delay, Duration::from_millis);
    s.throttle_body = patch.throttle_body.unwrap_or(s.throttle_body);
    if let Some(keys) = patch.api_keys {
        s.api_keys = keys;
    }
    Json(json!({
        "down": s.down,
        "perMinute": s.per_minute,
        "contactsListPerMinute": s.contacts_list_per_minute,
        "searchCountsAsContactsList": s.search_counts_as_contacts_list,
        "phoneDigitsOnly": s.phone_digits_only,
        "emailCaseInsensitive": s.email_case_insensitive,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct PushFault {
    op: Op,
    fault: Fault,
}

async fn admin_fault(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<PushFault>(&body) {
        Ok(PushFault { op, fault }) => {
            lock(&sim.faults)[op as usize].push_back(fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn admin_reset(State(sim): State<Arc<Shared>>) -> StatusCode {
    lock(&sim.limiter).reset();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests;
