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
//! Facts and sources are in the project notes (`crm-dynamics.md`) and the submodules' headers. Not
//! settled by the docs, so switches: the 401's body ([`UnauthorizedBody`]); whether the OData
//! headers are required ([`DynamicsSimConfig::require_odata_headers`]; the docs say requests
//! "should" include them and "your code should work even if this header isn't included").

pub mod cert;
pub mod entra;
pub mod filter;
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
        let server = ServerHandle::spawn("dynamics", app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    pub fn router(&self) -> Router {
        app(Arc::clone(&self.shared))
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

// ---------------------------------------------------------------------------------------------
// HTTP

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/api/data/{version}/{entity_set}", get(query))
        .route("/sim/rows", post(admin_insert))
        .route("/sim/faults", post(admin_fault))
        .route("/sim/config", patch(admin_config))
        .route("/sim/tokens/expire", post(admin_expire))
        .route("/sim/stats", get(admin_stats))
        .with_state(shared)
}

/// Traffic, latency, outage and scripted faults, in that order.
async fn before(shared: &Shared, op: Op) -> Option<Response> {
    shared.traffic.record(op.name());
    let (latency, down, fault) = {
        let mut state = lock(&shared.state);
        let fault = state.scripted.get_mut(&op).and_then(VecDeque::pop_front);
        (state.latency, state.down, fault)
    };
    let mut delay = latency;
    if let Some(Fault::Delay { millis }) = fault {
        delay += Duration::from_millis(millis);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if down {
        return Some(unavailable());
    }
    match fault? {
        Fault::Delay { .. } => None,
        Fault::Status { status } if op == Op::Token => Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({"error": "temporarily_unavailable", "error_description": "AADSTS90024: simulated", "error_codes": [90024]})),
            )
                .into_response(),
        ),
        Fault::Status { status } => Some(status_fault(status)),
        Fault::Garbage => Some((StatusCode::OK, [(header::CONTENT_TYPE, "text/html")], "<html>oops</html>").into_response()),
        Fault::WrongShape => Some((StatusCode::OK, Json(json!({"values": "nope"}))).into_response()),
        Fault::Unauthorized => Some(StatusCode::UNAUTHORIZED.into_response()),
        Fault::Throttle { retry_after_secs } => Some(throttled(
            "0x80072322",
            "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
            Duration::from_secs(retry_after_secs),
        )),
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = before(&shared, Op::Token).await {
        return response;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let result = {
        let mut state = lock(&shared.state);
        entra::token(
            &shared.config.entra,
            &mut state.tokens,
            &tenant,
            &form,
            authorization,
            &own_url(&headers),
            Instant::now(),
        )
    };
    match result {
        Ok(body) => Json(body).into_response(),
        Err(error) => (error.status, Json(error.body())).into_response(),
    }
}

/// Query options as the Web API reads them: form-decoded (`+` is a space), names as given.
fn options(raw: Option<&str>) -> Vec<(String, String)> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

fn header_text(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// OData version negotiation (OData v4 Protocol §8.2.6–8.2.7): a client whose
/// `OData-MaxVersion` is below 4.0 cannot be served; only JSON is offered ("the Web API only
/// supports JSON").
/// `None` when the headers are acceptable, else the answer to send.
fn check_odata_headers(config: &DynamicsSimConfig, headers: &HeaderMap) -> Option<Response> {
    let max = header_text(headers, &ODATA_MAX_VERSION);
    let version = header_text(headers, &ODATA_VERSION);
    let accept = header_text(headers, &header::ACCEPT);
    if config.require_odata_headers && (max.is_none() || version.is_none() || accept.is_none()) {
        return Some(bad_request(
            "The request must carry Accept, OData-MaxVersion and OData-Version headers.",
        ));
    }
    let below_four = |v: &str| {
        v.trim()
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_none_or(|m| m < 4)
    };
    if max.as_deref().is_some_and(below_four) || version.as_deref().is_some_and(below_four) {
        return Some(bad_request(
            "The OData version requested is not supported; this service implements OData 4.0.",
        ));
    }
    if let Some(accept) = accept {
        let json_ok = accept.split(',').any(|part| {
            let media = part.split(';').next().unwrap_or("").trim();
            matches!(media, "application/json" | "application/*" | "*/*" | "")
        });
        if !json_ok {
            return Some(web_api_error(
                StatusCode::NOT_ACCEPTABLE,
                ODATA_ERROR,
                "Only application/json is supported.",
            ));
        }
    }
    None
}

fn max_page_size(headers: &HeaderMap) -> Option<usize> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|pref| {
            let (key, value) = pref.trim().split_once('=')?;
            (key.trim() == "odata.maxpagesize")
                .then(|| value.trim().trim_matches('"').parse().ok())
                .flatten()
        })
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Path((version, entity_set)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    if let Some(response) = before(&shared, Op::Query).await {
        return response;
    }
    let own = own_url(&headers);
    let options = options(raw.as_deref());
    let filter_text = options
        .iter()
        .find(|(k, _)| k == "$filter")
        .map(|(_, v)| v.clone());
    let seen_headers = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    lock(&shared.state).requests.push(SeenRequest {
        path: format!("/api/data/{version}/{entity_set}"),
        filter: filter_text.clone(),
        headers: seen_headers,
    });

    let Some(token) = bearer_token(&headers) else {
        return unauthorized(&shared, &own);
    };
    let user = {
        let mut state = lock(&shared.state);
        let Some(user) = state.tokens.check(token, Instant::now()) else {
            drop(state);
            return unauthorized(&shared, &own);
        };
        let limits = state.limits;
        if let Err(t) = state.protection.admit(&user, &limits, Instant::now()) {
            return throttled(t.code, &t.message, t.retry_after);
        }
        user
    };
    let response = answer(
        &shared,
        &version,
        &entity_set,
        &options,
        &headers,
        &own,
        &user,
    );
    let mut state = lock(&shared.state);
    state.protection.finish(&user, started, started.elapsed());
    response
}

#[allow(clippy::too_many_arguments)]
fn answer(
    shared: &Shared,
    version: &str,
    entity_set: &str,
    options: &[(String, String)],
    headers: &HeaderMap,
    own: &str,
    user: &str,
) -> Response {
    if let Some(response) = check_odata_headers(&shared.config, headers) {
        return response;
    }
    if !shared.config.api_versions.iter().any(|v| v == version) {
        return web_api_error(
            StatusCode::NOT_FOUND,
            ODATA_ERROR,
            &format!("Resource not found for the segment '{version}'."),
        );
    }
    let Some(table) = shared.table(entity_set) else {
        return web_api_error(
            StatusCode::NOT_FOUND,
            ODATA_ERROR,
            &format!("Resource not found for the segment '{entity_set}'."),
        );
    };
    let mut select: Option<Vec<String>> = None;
    let mut filter = None;
    let mut top = None;
    let mut skip = 0usize;
    for (name, value) in options {
        match name.as_str() {
            "$select" => {
                let mut columns = Vec::new();
                for column in value.split(',').map(str::trim) {
                    if table.column(column).is_none() {
                        return bad_request(&format!("Could not find a property named '{column}' on type 'Microsoft.Dynamics.CRM.{}'.", table.logical_name));
                    }
                    columns.push(column.to_owned());
                }
                select = Some(columns);
            }
            "$filter" => match filter::parse(value, table) {
                Ok(f) => filter = Some(f),
                Err(e) => return bad_request(&e.0),
            },
            "$top" => match value.trim().parse::<usize>() {
                Ok(n) => top = Some(n),
                Err(_) => {
                    return bad_request(&format!(
                        "Invalid value '{value}' for $top query option found."
                    ))
                }
            },
            // The simulator's own paging cookie (Dataverse's real $skiptoken is an XML cookie).
            "$skiptoken" => match value.strip_prefix("sim-").and_then(|n| n.parse().ok()) {
                Some(n) => skip = n,
                None => return bad_request("Invalid $skiptoken."),
            },
            other if other.starts_with('$') => {
                return bad_request(&format!("The query parameter '{other}' is not supported."));
            }
            _ => {}
        }
    }
    let state = lock(&shared.state);
    let mut hits: Vec<&Row> = state
        .rows
        .iter()
        .filter(|r| r.entity_set == entity_set)
        .filter(|r| {
            filter
                .as_ref()
                .is_none_or(|f| filter::matches(f, &r.columns))
        })
        .collect();
    if let Some(top) = top {
        hits.truncate(top);
    }
    let page_size = max_page_size(headers)
        .unwrap_or(shared.config.default_page_size)
        .max(1);
    let page: Vec<&Row> = hits.iter().skip(skip).take(page_size).copied().collect();
    let more = hits.len() > skip + page.len();
    let columns: Vec<String> = match &select {
        Some(columns) => columns.clone(),
        None => table.columns.iter().map(|(c, _)| c.clone()).collect(),
    };
    let rows: Vec<Value> = page
        .iter()
        .map(|row| {
            let mut out = Map::new();
            out.insert(
                "@odata.etag".to_owned(),
                Value::String(format!("W/\"{}\"", row.version)),
            );
            for column in &columns {
                out.insert(
                    column.clone(),
                    row.columns.get(column).cloned().unwrap_or(Value::Null),
                );
            }
            // The primary key comes back whether selected or not.
            out.insert(
                table.primary_id.clone(),
                row.columns
                    .get(&table.primary_id)
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            Value::Object(out)
        })
        .collect();
    let context_columns = select
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default();
    let mut body = json!({
        "@odata.context": format!("{own}/api/data/{version}/$metadata#{entity_set}{context_columns}"),
        "value": rows,
    });
    if more {
        let mut next: Vec<(String, String)> = options
            .iter()
            .filter(|(k, _)| k != "$skiptoken")
            .cloned()
            .collect();
        next.push((
            "$skiptoken".to_owned(),
            format!("sim-{}", skip + page.len()),
        ));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        body["@odata.nextLink"] =
            Value::String(format!("{own}/api/data/{version}/{entity_set}?{query}"));
    }
    let remaining = state.protection.remaining(user, &state.limits);
    drop(state);
    let mut response = (StatusCode::OK, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; odata.metadata=minimal"),
    );
    h.insert(ODATA_VERSION.clone(), HeaderValue::from_static("4.0"));
    h.insert(BURST_REMAINING.clone(), HeaderValue::from(remaining as u64));
    if let Some(size) = max_page_size(headers) {
        if let Ok(v) = HeaderValue::from_str(&format!("odata.maxpagesize={size}")) {
            h.insert(PREFERENCE_APPLIED.clone(), v);
        }
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Admin API: not part of the simulated service, so no auth, faults or accounting.

fn admin_error(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewRow {
    entity_set: String,
    row: Value,
}

async fn admin_insert(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewRow>(&body) {
        Ok(new) => match shared.insert(&new.entity_set, new.row) {
            Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
            Err(e) => admin_error(e),
        },
        Err(e) => admin_error(e.to_string()),
    }
}

#[derive(Deserialize)]
struct NewFault {
    op: Op,
    fault: Fault,
}

async fn admin_fault(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<NewFault>(&body) {
        Ok(f) => {
            lock(&shared.state)
                .scripted
                .entry(f.op)
                .or_default()
                .push_back(f.fault);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => admin_error(e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPatch {
    latency_ms: Option<u64>,
    down: Option<bool>,
    max_requests: Option<usize>,
    window_secs: Option<u64>,
    max_concurrent: Option<usize>,
}

async fn admin_config(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let patch: ConfigPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return admin_error(e.to_string()),
    };
    let mut state = lock(&shared.state);
    if let Some(ms) = patch.latency_ms {
        state.latency = Duration::from_millis(ms);
    }
    if let Some(down) = patch.down {
        state.down = down;
    }
    if let Some(n) = patch.max_requests {
        state.limits.max_requests = n;
    }
    if let Some(s) = patch.window_secs {
        state.limits.window = Duration::from_secs(s);
    }
    if let Some(n) = patch.max_concurrent {
        state.limits.max_concurrent = n;
    }
    if patch.max_requests.is_some() || patch.window_secs.is_some() || patch.max_concurrent.is_some()
    {
        state.protection.reset();
    }
    Json(json!({
        "latencyMs": u64::try_from(state.latency.as_millis()).unwrap_or(u64::MAX),
        "down": state.down,
        "maxRequests": state.limits.max_requests,
        "windowSecs": state.limits.window.as_secs(),
        "maxConcurrent": state.limits.max_concurrent,
    }))
    .into_response()
}

async fn admin_expire(State(shared): State<Arc<Shared>>) -> StatusCode {
    lock(&shared.state).tokens.expire_all();
    StatusCode::NO_CONTENT
}

async fn admin_stats(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let state = lock(&shared.state);
    Json(json!({
        "byOp": shared.traffic.by_op(),
        "total": shared.traffic.total(),
        "tokens": state.tokens.count(),
        "rows": state.rows.len(),
        "filters": state.requests.iter().filter_map(|r| r.filter.clone()).collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests;
