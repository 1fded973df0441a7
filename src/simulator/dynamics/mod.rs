//! Microsoft Dynamics 365 / Dataverse simulator: the Entra ID token endpoint (client secret or
//! certificate assertion), tokens that expire and then get the Web API's 401, the Web API's
//! entity-set queries with a strict `$filter` parser (`eq`, `and`, `or`, parentheses, `''`-escaped
//! literals) comparing stored text exactly (ignoring case, as documented), `$select`, `$top`,
//! `Prefer: odata.maxpagesize` paging, the OData response shape, service protection (429 +
//! `Retry-After` and the documented error body), scriptable faults, request accounting, a
//! `/sim/...` admin API and the [`DynamicsSim`] handle. Entra and Dataverse are served by one
//! listener: the token path is `/{tenant}/oauth2/v2.0/token`, the Web API `/api/data/v9.x/...`, so
//! the base URL is both the authority and the environment URL.
//!
//! Facts and sources are in the submodules' headers and `config/examples/dynamics.md`. Not
//! settled by the docs, so switches: the 401's body ([`UnauthorizedBody`]); whether the OData
//! headers are required ([`DynamicsSimConfig::require_odata_headers`]; the docs say requests
//! "should" include them and "your code should work even if this header isn't included").

mod admin;
pub mod cert;
pub mod entra;
pub mod filter;
mod http;
pub mod tables;
pub mod throttle;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::{bearer_token, lock, ServerHandle, Traffic};
pub use entra::EntraSettings;
use tables::Row;
pub use tables::{ColumnType, Table};
pub use throttle::Limits;

static ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");
static ODATA_MAX_VERSION: HeaderName = HeaderName::from_static("odata-maxversion");
static BURST_REMAINING: HeaderName =
    HeaderName::from_static("x-ms-ratelimit-burst-remaining-xrm-requests");
static PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// What a 401 from the Web API carries besides `WWW-Authenticate`. Not documented; an empty
/// body is what the platform's bearer-token middleware usually sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnauthorizedBody {
    #[default]
    Empty,
    /// `{"error": {"code", "message"}}` JSON (the code the simulator puts there is made up).
    Json,
}

#[derive(Debug, Clone)]
pub struct DynamicsSimConfig {
    pub entra: EntraSettings,
    pub tables: Vec<Table>,
    pub limits: Limits,
    /// Web API versions served.
    pub api_versions: Vec<String>,
    pub unauthorized_body: UnauthorizedBody,
    /// Answer 400 when `Accept`, `OData-MaxVersion` or `OData-Version` is missing.
    pub require_odata_headers: bool,
    /// Rows per page when the client sends no `Prefer: odata.maxpagesize` (Dataverse: 5,000).
    pub default_page_size: usize,
    pub latency: Duration,
}

impl Default for DynamicsSimConfig {
    fn default() -> Self {
        Self {
            entra: EntraSettings {
                tenant_id: "00000000-0000-4000-8000-000000000001".to_owned(),
                tenant_aliases: vec!["sim.onmicrosoft.com".to_owned()],
                client_id: "00000000-0000-4000-8000-0000000000a1".to_owned(),
                client_secret: Some("sim-client-secret".to_owned()),
                certificate: None,
                resources: Vec::new(),
                token_lifetime: Duration::from_secs(3599),
            },
            tables: Table::defaults(),
            limits: Limits::default(),
            api_versions: vec!["v9.0".to_owned(), "v9.1".to_owned(), "v9.2".to_owned()],
            unauthorized_body: UnauthorizedBody::default(),
            require_odata_headers: false,
            default_page_size: 5000,
            latency: Duration::ZERO,
        }
    }
}

/// The simulated operations: `"token"` (Entra) and `"query"` (Web API) in [`DynamicsSim::traffic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    Token,
    Query,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Query => "query",
        }
    }
}

/// A canned outcome for the next call of an operation. On the admin API:
/// `{"kind": "status", "status": 503}`, `{"kind": "garbage"}`, `{"kind": "wrongShape"}`,
/// `{"kind": "delay", "millis": 250}`, `{"kind": "unauthorized"}`,
/// `{"kind": "throttle", "retryAfterSecs": 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    Status {
        status: u16,
    },
    Garbage,
    WrongShape,
    Delay {
        millis: u64,
    },
    Unauthorized,
    Throttle {
        #[serde(rename = "retryAfterSecs")]
        retry_after_secs: u64,
    },
}

#[derive(Clone)]
pub struct DynamicsSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for DynamicsSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynamicsSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: DynamicsSimConfig,
    state: Mutex<SimState>,
    traffic: Traffic,
}

struct SimState {
    rows: Vec<Row>,
    next_version: u64,
    tokens: entra::Tokens,
    protection: throttle::ServiceProtection,
    limits: Limits,
    latency: Duration,
    down: bool,
    scripted: HashMap<Op, VecDeque<Fault>>,
    requests: Vec<SeenRequest>,
}

/// What the simulator saw of a Web API request: for tests of the headers and filters sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    pub path: String,
    /// The decoded `$filter`, if any.
    pub filter: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl DynamicsSim {
    pub async fn start(config: DynamicsSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("dynamics", http::app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    pub fn router(&self) -> Router {
        http::app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`: the Entra authority (`{base}/{tenant}/oauth2/v2.0/token`)
    /// and the environment URL (`{base}/api/data/v9.2/...`, scope `{base}/.default`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Token endpoint URL for the configured tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.base_url(),
            self.shared.config.entra.tenant_id
        )
    }

    /// Stores a row in `entity_set` (columns checked; primary id and `modifiedon` filled in
    /// when absent) and returns its id.
    pub fn insert(&self, entity_set: &str, row: Value) -> Result<String, String> {
        self.shared.insert(entity_set, row)
    }

    /// Rows for demos and tests, numbers stored as typed in different notations on purpose; a
    /// contact and a lead share `+13175550125`.
    pub fn sample_rows() -> Vec<(&'static str, Value)> {
        vec![
            (
                "contacts",
                json!({"fullname": "Ada Lovelace", "firstname": "Ada", "lastname": "Lovelace", "telephone1": "+13175550125", "emailaddress1": "ada@example.com", "modifiedon": "2024-05-20T20:49:32Z"}),
            ),
            (
                "contacts",
                json!({"fullname": "Grace Hopper", "firstname": "Grace", "lastname": "Hopper", "telephone1": "(317) 555-0126", "mobilephone": "+1 317 555 0199", "emailaddress1": "grace.hopper@example.com", "modifiedon": "2024-06-01T08:00:00Z"}),
            ),
            (
                "accounts",
                json!({"name": "Analytical Engines Ltd", "accountnumber": "ACC-1003", "telephone1": "+44 20 7946 0958", "modifiedon": "2023-11-02T12:00:00Z"}),
            ),
            (
                "leads",
                json!({"fullname": "Ada L.", "companyname": "Engines", "mobilephone": "+13175550125", "modifiedon": "2025-01-15T09:30:00Z"}),
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

    pub fn set_down(&self, down: bool) {
        lock(&self.shared.state).down = down;
    }

    /// Every issued token stops working now.
    pub fn expire_all_tokens(&self) {
        lock(&self.shared.state).tokens.expire_all();
    }

    pub fn set_limits(&self, limits: Limits) {
        let mut state = lock(&self.shared.state);
        state.limits = limits;
        state.protection.reset();
    }

    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// The Web API requests received, in arrival order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        lock(&self.shared.state).requests.clone()
    }
}

impl Shared {
    fn new(config: DynamicsSimConfig) -> Self {
        let state = SimState {
            rows: Vec::new(),
            next_version: 1_000_001,
            tokens: entra::Tokens::default(),
            protection: throttle::ServiceProtection::default(),
            limits: config.limits,
            latency: config.latency,
            down: false,
            scripted: HashMap::new(),
            requests: Vec::new(),
        };
        Self {
            config,
            state: Mutex::new(state),
            traffic: Traffic::default(),
        }
    }

    fn table(&self, entity_set: &str) -> Option<&Table> {
        self.config
            .tables
            .iter()
            .find(|t| t.entity_set == entity_set)
    }

    fn insert(&self, entity_set: &str, row: Value) -> Result<String, String> {
        let table = self
            .table(entity_set)
            .ok_or_else(|| format!("unknown entity set {entity_set:?}"))?;
        let Value::Object(columns) = row else {
            return Err("a row must be a JSON object".to_owned());
        };
        for name in columns.keys() {
            if table.column(name).is_none() {
                return Err(format!("no column {name:?} on {}", table.logical_name));
            }
        }
        let mut columns = columns;
        let id = match columns.get(&table.primary_id).and_then(Value::as_str) {
            Some(id) => id.to_ascii_lowercase(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        columns.insert(table.primary_id.clone(), Value::String(id.clone()));
        columns.entry("modifiedon").or_insert_with(|| {
            Value::String(chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string())
        });
        let mut state = lock(&self.state);
        let version = state.next_version;
        state.next_version += 1;
        state.rows.push(Row {
            entity_set: entity_set.to_owned(),
            version,
            columns,
        });
        Ok(id)
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// The Web API error body `{"error": {"code", "message"}}`.
fn web_api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// The code Dataverse gives OData request errors (unknown property, syntax) in the samples
/// seen; the docs say the code "is frequently empty" and "not related to the http status".
const ODATA_ERROR: &str = "0x80060888";

fn bad_request(message: &str) -> Response {
    web_api_error(StatusCode::BAD_REQUEST, ODATA_ERROR, message)
}

fn throttled(code: &str, message: &str, retry_after: Duration) -> Response {
    let mut response = web_api_error(StatusCode::TOO_MANY_REQUESTS, code, message);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(retry_after.as_secs().max(1)),
    );
    response
}

fn unauthorized(shared: &Shared, own_url: &str) -> Response {
    let challenge = format!(
        "Bearer authorization_uri=https://login.microsoftonline.com/{}/oauth2/authorize, resource_id={own_url}/",
        shared.config.entra.tenant_id
    );
    let mut response = match shared.config.unauthorized_body {
        UnauthorizedBody::Empty => StatusCode::UNAUTHORIZED.into_response(),
        UnauthorizedBody::Json => web_api_error(
            StatusCode::UNAUTHORIZED,
            "0x80072243",
            "ExpiredAuthTicket: the access token has expired or is not valid.",
        ),
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

fn unavailable() -> Response {
    web_api_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "",
        "The service is temporarily unavailable.",
    )
}

fn status_fault(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status.as_u16() {
        429 => throttled(
            "0x80072322",
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            Duration::from_secs(1),
        ),
        503 => unavailable(),
        _ => web_api_error(status, "0x80040216", "An unexpected error occurred."),
    }
}

fn own_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

#[cfg(test)]
mod tests;
