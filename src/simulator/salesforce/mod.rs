//! Salesforce simulator: an org's OAuth token endpoint (client credentials and JWT bearer),
//! sessions that expire and then answer 401 `INVALID_SESSION_ID`, the REST Search (SOSL) and Query
//! (SOQL) resources with strict parsers of the subset attrsync sends, formatting-insensitive phone
//! matching, `Sforce-Limit-Info` on every REST answer, a daily API allocation answering
//! `REQUEST_LIMIT_EXCEEDED` once spent, the concurrent long-running request limit, scriptable
//! faults, request accounting, a `/sim/...` admin API and the [`SalesforceSim`] handle.
//!
//! Facts and sources are in each submodule's header and in `config/examples/salesforce.md`.
//! What no public source settles is a switch with the most likely default: [`PhoneMatch`] (country
//! code), [`auth::SessionPolicy::sliding`], [`auth::AuthSettings::max_assertion_lifetime`].

mod admin;
pub mod auth;
mod http;
pub mod schema;
pub mod soql;
pub mod sosl;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{lock, ServerHandle, Traffic};
pub use auth::{AuthSettings, SessionPolicy};
use schema::{error_body, record_id, resolve_fields, QueryFault, Record};
pub use schema::{FieldType, ObjectSchema};
pub use sosl::PhoneMatch;

static LIMIT_INFO: HeaderName = HeaderName::from_static("sforce-limit-info");

/// How the simulated org starts; faults, latency and limits can be changed later.
#[derive(Debug, Clone)]
pub struct SalesforceSimConfig {
    pub auth: AuthSettings,
    pub objects: Vec<ObjectSchema>,
    pub phone_match: PhoneMatch,
    /// REST API major versions served (`v31.0`..`v67.0` by default; Summer '26 is 67.0).
    pub api_versions: RangeInclusive<u32>,
    /// The org's 24-hour API request allocation (`Sforce-Limit-Info`'s second number).
    pub daily_api_limit: u64,
    /// The rolling window the allocation counts over.
    pub allocation_window: Duration,
    /// Requests taking at least this long count as long-running (Salesforce: 20 s).
    pub long_running_threshold: Duration,
    /// Concurrent long-running requests allowed (production 25, Developer Edition 5).
    pub concurrent_long_running_limit: usize,
    /// Records per Query answer before `nextRecordsUrl` (Salesforce: up to 2,000).
    pub query_batch_size: usize,
    /// Added before every REST request is handled.
    pub latency: Duration,
}

impl Default for SalesforceSimConfig {
    fn default() -> Self {
        Self {
            auth: AuthSettings {
                consumer_key: "3MVG9SIMconsumerkey".to_owned(),
                consumer_secret: "sim-consumer-secret".to_owned(),
                run_as_user: Some("integration@sim.example".to_owned()),
                jwt_certificate: None,
                jwt_audiences: vec![
                    "https://login.salesforce.com".to_owned(),
                    "https://test.salesforce.com".to_owned(),
                ],
                jwt_users: vec!["integration@sim.example".to_owned()],
                max_assertion_lifetime: None,
                sessions: SessionPolicy {
                    timeout: Duration::from_secs(2 * 3600),
                    sliding: true,
                },
            },
            objects: ObjectSchema::defaults(),
            phone_match: PhoneMatch::default(),
            api_versions: 31..=67,
            daily_api_limit: 100_000,
            allocation_window: Duration::from_secs(24 * 3600),
            long_running_threshold: Duration::from_secs(20),
            concurrent_long_running_limit: 25,
            query_batch_size: 2000,
            latency: Duration::ZERO,
        }
    }
}

/// The simulated operations, each with its own queue of scripted faults and its own count in
/// [`SalesforceSim::traffic`] (`"token"`, `"search"`, `"query"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    Token,
    Search,
    Query,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Search => "search",
            Op::Query => "query",
        }
    }
}

/// A canned outcome for the next call of an operation. On the admin API:
/// `{"kind": "status", "status": 503}`, `{"kind": "garbage"}`, `{"kind": "wrongShape"}`,
/// `{"kind": "delay", "millis": 250}`, `{"kind": "invalidSession"}`, `{"kind": "dailyLimit"}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    /// Salesforce's error body for this status (401 INVALID_SESSION_ID, 403
    /// REQUEST_LIMIT_EXCEEDED, 404 NOT_FOUND, 500 UNKNOWN_EXCEPTION, 503 SERVER_UNAVAILABLE, …).
    Status { status: u16 },
    /// 200 with an HTML page instead of JSON.
    Garbage,
    /// 200 with JSON of the wrong shape.
    WrongShape,
    /// Wait, then handle normally (counts as long-running when over the threshold).
    Delay { millis: u64 },
    /// 401 INVALID_SESSION_ID although the token is valid.
    InvalidSession,
    /// 403 REQUEST_LIMIT_EXCEEDED although the allocation is not spent.
    DailyLimit,
}

/// Handle to a running simulator; clones share the same state and server.
#[derive(Clone)]
pub struct SalesforceSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for SalesforceSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SalesforceSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: SalesforceSimConfig,
    state: Mutex<SimState>,
    traffic: Traffic,
}

struct SimState {
    records: Vec<Record>,
    next_id: u64,
    sessions: auth::Sessions,
    usage: VecDeque<Instant>,
    daily_api_limit: u64,
    phone_match: PhoneMatch,
    latency: Duration,
    down: bool,
    scripted: HashMap<Op, VecDeque<Fault>>,
    long_running: usize,
    cursors: HashMap<String, (String, Vec<Value>)>,
    next_cursor: u64,
    queries: Vec<String>,
}

impl SalesforceSim {
    /// Serves on `listener` until [`SalesforceSim::shutdown`] or the end of the process.
    pub async fn start(
        config: SalesforceSimConfig,
        listener: TcpListener,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("salesforce", http::app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    /// The same app over the same state.
    pub fn router(&self) -> Router {
        http::app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`: the My Domain URL for the token endpoint, and the
    /// `instance_url` tokens point API calls at.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Stores a record of `object` with `fields` (an object; names are checked and made
    /// canonical; `LastModifiedDate` defaults to now) and returns its new 18-character id.
    pub fn insert(&self, object: &str, fields: Value) -> Result<String, String> {
        self.shared.insert(object, fields)
    }

    /// Records for demos and tests, phone numbers stored in different formats on purpose; the
    /// Contact and the Lead share a number so ambiguity can be tested.
    pub fn sample_records() -> Vec<(&'static str, Value)> {
        vec![
            (
                "Contact",
                json!({"Name": "Ada Lovelace", "FirstName": "Ada", "LastName": "Lovelace", "Phone": "(317) 555-0125", "Email": "ada@example.com", "LastModifiedDate": "2024-05-20T20:49:32.000+0000"}),
            ),
            (
                "Contact",
                json!({"Name": "Grace Hopper", "FirstName": "Grace", "LastName": "Hopper", "Phone": "317.555.0126", "MobilePhone": "+1 317 555 0199", "Email": "grace.hopper@example.com", "LastModifiedDate": "2024-06-01T08:00:00.000+0000"}),
            ),
            (
                "Account",
                json!({"Name": "Analytical Engines Ltd", "Phone": "+44 20 7946 0958", "AccountNumber": "ACC-1003", "LastModifiedDate": "2023-11-02T12:00:00.000+0000"}),
            ),
            (
                "Lead",
                json!({"Name": "Ada L.", "Company": "Engines", "Phone": "3175550125", "Email": "ada.l@example.com", "LastModifiedDate": "2025-01-15T09:30:00.000+0000"}),
            ),
        ]
    }

    pub fn push_fault(&self, op: Op, fault: Fault) {
        lock(&self.shared.state)
            .scripted
            .entry(op)
            .or_default()
            .push_back(fault);
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.state).latency = latency;
    }

    /// While down, every request gets 503 SERVER_UNAVAILABLE.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.state).down = down;
    }

    /// Every issued token stops working now; the next API call with one gets 401.
    pub fn expire_all_tokens(&self) {
        lock(&self.shared.state).sessions.expire_all();
    }

    pub fn set_daily_api_limit(&self, limit: u64) {
        lock(&self.shared.state).daily_api_limit = limit;
    }

    /// Pretends the org already used `used` calls in the current window (other integrations).
    pub fn set_api_usage(&self, used: u64) {
        let mut state = lock(&self.shared.state);
        let now = Instant::now();
        state.usage = std::iter::repeat_n(now, used as usize).collect();
    }

    /// `(used, limit)` as `Sforce-Limit-Info` would report it now.
    pub fn api_usage(&self) -> (u64, u64) {
        let mut state = lock(&self.shared.state);
        prune_usage(&mut state, self.shared.config.allocation_window);
        (state.usage.len() as u64, state.daily_api_limit)
    }

    pub fn set_phone_match(&self, mode: PhoneMatch) {
        lock(&self.shared.state).phone_match = mode;
    }

    /// Requests per operation (token requests included) and the busiest window.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// The SOSL and SOQL statements received, decoded, in arrival order.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.shared.state).queries.clone()
    }
}

impl Shared {
    fn new(config: SalesforceSimConfig) -> Self {
        let state = SimState {
            records: Vec::new(),
            next_id: 1,
            sessions: auth::Sessions::default(),
            usage: VecDeque::new(),
            daily_api_limit: config.daily_api_limit,
            phone_match: config.phone_match,
            latency: config.latency,
            down: false,
            scripted: HashMap::new(),
            long_running: 0,
            cursors: HashMap::new(),
            next_cursor: 1,
            queries: Vec::new(),
        };
        Self {
            config,
            state: Mutex::new(state),
            traffic: Traffic::default(),
        }
    }

    fn schema(&self, object: &str) -> Option<&ObjectSchema> {
        self.config
            .objects
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(object))
    }

    fn insert(&self, object: &str, fields: Value) -> Result<String, String> {
        let schema = self
            .schema(object)
            .ok_or_else(|| format!("unknown object {object:?}"))?;
        let Value::Object(given) = fields else {
            return Err("fields must be a JSON object".to_owned());
        };
        let mut canonical = Map::new();
        for (name, value) in given {
            let (field, _) = schema
                .field(&name)
                .ok_or_else(|| format!("no field {name:?} on {}", schema.name))?;
            if field != "Id" {
                canonical.insert(field.to_owned(), value);
            }
        }
        canonical.entry("LastModifiedDate").or_insert_with(|| {
            Value::String(
                chrono::Utc::now()
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string(),
            )
        });
        let mut state = lock(&self.state);
        let id = record_id(&schema.key_prefix, state.next_id);
        state.next_id += 1;
        canonical.insert("Id".to_owned(), Value::String(id.clone()));
        state.records.push(Record {
            object: schema.name.clone(),
            fields: canonical,
        });
        Ok(id)
    }
}

fn prune_usage(state: &mut SimState, window: Duration) {
    let now = Instant::now();
    while state
        .usage
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        state.usage.pop_front();
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(error_body(code, message))).into_response()
}

fn invalid_session() -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "INVALID_SESSION_ID",
        "Session expired or invalid",
    )
}

fn total_requests_exceeded() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "REQUEST_LIMIT_EXCEEDED",
        "TotalRequests Limit exceeded.",
    )
}

fn unavailable() -> Response {
    api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "SERVER_UNAVAILABLE",
        "Server is temporarily unavailable. Please try again later.",
    )
}

fn query_fault(fault: QueryFault) -> Response {
    api_error(StatusCode::BAD_REQUEST, fault.error_code, &fault.message)
}

fn status_fault(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        401 => invalid_session(),
        403 => total_requests_exceeded(),
        404 => api_error(status, "NOT_FOUND", "The requested resource does not exist"),
        503 => unavailable(),
        400 => api_error(status, "MALFORMED_QUERY", "simulated bad request"),
        _ => api_error(
            status,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 0000000000-00000 (-0000000000)",
        ),
    }
}

fn garbage() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body>Maintenance</body></html>",
    )
        .into_response()
}

fn wrong_shape() -> Response {
    (StatusCode::OK, Json(json!({"unexpected": "shape"}))).into_response()
}

#[cfg(test)]
mod tests;
