//! CRM simulator: a small, stateful REST CRM for attrsync's `http` CRM adapter, with bearer
//! auth, fault injection (latency, outage, scripted statuses), request accounting, a `/sim/...`
//! admin API and the [`CrmSim`] handle.
//!
//! Phone lookups compare the stored `phone`/`mobile` strings exactly (after trimming), like the
//! CRMs attrsync integrates with: `+13175550125`, `(317) 555-0125` and `3175550125` are
//! different keys, so the adapter has to try the notations the customer's CRM actually stores.
//! Query strings are decoded as forms, so an unencoded `+` arrives as a space; that too is what
//! real servers do to a client that forgets to percent-encode.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{bearer_token, lock, ServerHandle, Traffic};

#[derive(Debug, Clone, Default)]
pub struct CrmSimConfig {
    /// Token every request must present as `Authorization: Bearer ...`; `None` leaves the
    /// CRM open.
    pub bearer_token: Option<String>,
    /// Added before every API request is handled.
    pub latency: Duration,
}

/// Handle to a running CRM simulator; clones share the same state and server.
#[derive(Clone)]
pub struct CrmSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for CrmSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrmSim")
            .field("base_url", &self.base_url())
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl CrmSim {
    /// Serves on `listener` (already bound, e.g. `127.0.0.1:0`) in a spawned task until
    /// [`CrmSim::shutdown`] or the end of the process.
    pub async fn start(config: CrmSimConfig, listener: TcpListener) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("crm", app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    /// The same app over the same state, for serving it elsewhere or mounting it in another
    /// router.
    pub fn router(&self) -> Router {
        app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`; the customer API is under `/api/customers`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Stops accepting connections and lets in-flight requests finish.
    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Stores `customer` under its `"id"` (string or number), replacing any customer with that
    /// id. Returns `false`, storing nothing, when there is no usable id.
    pub fn insert(&self, customer: Value) -> bool {
        self.shared.insert(customer)
    }

    /// A handful of customers for the demo, stored in different phone notations on purpose.
    pub fn sample_customers() -> Vec<Value> {
        vec![
            json!({
                "id": "C-1001", "firstName": "Ada", "lastName": "Lovelace",
                "email": "ada@example.com", "phone": "+13175550125", "tier": "gold",
                "accountNumber": "ACC-000-1001",
                "address": {"city": "Indianapolis", "country": "US"}
            }),
            json!({
                "id": "C-1002", "firstName": "Grace", "lastName": "Hopper",
                "email": "grace.hopper@example.com", "phone": "(317) 555-0126",
                "mobile": "+13175550199", "tier": "silver", "accountNumber": "ACC-000-1002",
                "address": {"city": "Carmel", "country": "US"}
            }),
            json!({
                "id": "C-1003", "firstName": "Alan", "lastName": "Turing",
                "email": "alan@example.co.uk", "phone": "+44 20 7946 0958", "tier": "bronze",
                "accountNumber": "ACC-000-1003",
                "address": {"city": "London", "country": "GB"}
            }),
        ]
    }

    /// API requests received under `/api/customers`, whatever their outcome.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// API requests as the CRM would count them against a rate limit: every request under
    /// `/api/customers` (operation `api`), with the busiest window
    /// ([`Traffic::max_in_window`]).
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// API requests received per request path (e.g. `/api/customers`,
    /// `/api/customers/C-1001`).
    pub fn requests_by_path(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.log).by_path.clone()
    }

    /// The `phone` and `email` values searched for, decoded, in arrival order.
    pub fn queries(&self) -> Vec<String> {
        lock(&self.shared.log).queries.clone()
    }

    /// The W3C `traceparent` headers API requests carried, in arrival order.
    pub fn traceparents(&self) -> Vec<String> {
        lock(&self.shared.log).traceparents.clone()
    }

    /// While down, every API request gets 503 `{"error":"unavailable"}`.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.faults).down = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.faults).latency = latency;
    }

    /// Answers the next not-yet-faulted API request with `status` (FIFO). A 429 carries
    /// `Retry-After: 1`; values outside 400–599 become 500.
    pub fn push_status(&self, status: u16) {
        lock(&self.shared.faults).scripted.push_back(status);
    }
}

// ---------------------------------------------------------------------------------------------
// State

struct Shared {
    bearer_token: Option<String>,
    customers: Mutex<BTreeMap<String, Value>>,
    faults: Mutex<Faults>,
    log: Mutex<RequestLog>,
    requests: AtomicU64,
    traffic: Traffic,
}

struct Faults {
    latency: Duration,
    down: bool,
    scripted: VecDeque<u16>,
}

#[derive(Default)]
struct RequestLog {
    by_path: BTreeMap<String, u64>,
    queries: Vec<String>,
    traceparents: Vec<String>,
}

impl Shared {
    fn new(config: CrmSimConfig) -> Self {
        Self {
            bearer_token: config.bearer_token,
            customers: Mutex::new(BTreeMap::new()),
            faults: Mutex::new(Faults {
                latency: config.latency,
                down: false,
                scripted: VecDeque::new(),
            }),
            log: Mutex::new(RequestLog::default()),
            requests: AtomicU64::new(0),
            traffic: Traffic::default(),
        }
    }

    fn insert(&self, customer: Value) -> bool {
        let id = match customer.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => return false,
        };
        lock(&self.customers).insert(id, customer);
        true
    }

    /// Logged before any fault or auth check: tests want to see every attempt the adapter
    /// made, including the ones the CRM refused.
    fn record(&self, path: &str, queries: impl IntoIterator<Item = String>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.traffic.record("api");
        let mut log = lock(&self.log);
        *log.by_path.entry(path.to_owned()).or_default() += 1;
        log.queries.extend(queries);
    }

    /// Latency, outage, scripted status and auth, in that order, so an outage is reported even
    /// to a client with the wrong token.
    async fn admit(&self, headers: &HeaderMap) -> Result<(), CrmError> {
        if let Some(parent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            lock(&self.log).traceparents.push(parent.to_owned());
        }
        let latency = lock(&self.faults).latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (down, scripted) = {
            let mut faults = lock(&self.faults);
            (faults.down, faults.scripted.pop_front())
        };
        if down {
            return Err(CrmError::unavailable());
        }
        if let Some(status) = scripted {
            return Err(CrmError::scripted(status));
        }
        match &self.bearer_token {
            Some(expected) if bearer_token(headers) != Some(expected.as_str()) => {
                Err(CrmError::unauthorized())
            }
            _ => Ok(()),
        }
    }

    fn search(&self, phone: Option<&str>, email: Option<&str>) -> Vec<Value> {
        let phone = phone.map(str::trim);
        let email = email.map(|e| e.trim().to_lowercase());
        let matches_phone = |customer: &Value| {
            phone.is_none_or(|wanted| {
                !wanted.is_empty()
                    && ["phone", "mobile"]
                        .iter()
                        .any(|field| customer[*field].as_str().map(str::trim) == Some(wanted))
            })
        };
        let matches_email = |customer: &Value| {
            email.as_deref().is_none_or(|wanted| {
                !wanted.is_empty()
                    && customer["email"]
                        .as_str()
                        .is_some_and(|stored| stored.trim().to_lowercase() == wanted)
            })
        };
        lock(&self.customers)
            .values()
            .filter(|customer| matches_phone(customer) && matches_email(customer))
            .cloned()
            .collect()
    }
}

/// A CRM error response: `{"error": message}`, plus `Retry-After: 1` on a 429 so clients that
/// honour it retry quickly in tests.
#[derive(Debug)]
struct CrmError {
    status: StatusCode,
    message: Cow<'static, str>,
}

impl CrmError {
    fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    }

    fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized")
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    fn scripted(status: u16) -> Self {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match status {
            StatusCode::UNAUTHORIZED => Self::unauthorized(),
            StatusCode::NOT_FOUND => Self::not_found(),
            StatusCode::SERVICE_UNAVAILABLE => Self::unavailable(),
            StatusCode::TOO_MANY_REQUESTS => Self::new(status, "rate limited"),
            other => Self::new(
                other,
                other
                    .canonical_reason()
                    .unwrap_or("error")
                    .to_ascii_lowercase(),
            ),
        }
    }
}

impl IntoResponse for CrmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
        }
        response
    }
}

// ---------------------------------------------------------------------------------------------
// API

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/customers", get(search_customers))
        .route("/api/customers/{id}", get(get_customer))
        .route("/sim/customers", post(admin_insert_customer))
        .route("/sim/stats", get(admin_stats))
        .route("/sim/config", patch(admin_patch_config))
        .route("/sim/faults", post(admin_push_status))
        .with_state(shared)
}

#[derive(Deserialize)]
struct SearchParams {
    phone: Option<String>,
    email: Option<String>,
}

async fn search_customers(
    State(crm): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Query(params): Query<SearchParams>,
) -> Result<Json<Value>, CrmError> {
    crm.record(
        uri.path(),
        params.phone.iter().chain(params.email.iter()).cloned(),
    );
    crm.admit(&headers).await?;
    if params.phone.is_none() && params.email.is_none() {
        return Err(CrmError::new(
            StatusCode::BAD_REQUEST,
            "phone or email query parameter required",
        ));
    }
    let results = crm.search(params.phone.as_deref(), params.email.as_deref());
    Ok(Json(json!({ "results": results })))
}

async fn get_customer(
    State(crm): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, CrmError> {
    crm.record(uri.path(), None);
    crm.admit(&headers).await?;
    lock(&crm.customers)
        .get(&id)
        .cloned()
        .map(Json)
        .ok_or_else(CrmError::not_found)
}

// Admin API: not part of the simulated CRM, so it has no auth, faults or accounting.

fn bad_admin_body(error: serde_json::Error) -> CrmError {
    CrmError::new(StatusCode::BAD_REQUEST, error.to_string())
}

async fn admin_insert_customer(
    State(crm): State<Arc<Shared>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), CrmError> {
    let customer: Value = serde_json::from_slice(&body).map_err(bad_admin_body)?;
    if crm.insert(customer.clone()) {
        Ok((StatusCode::CREATED, Json(customer)))
    } else {
        Err(CrmError::new(
            StatusCode::BAD_REQUEST,
            "customer needs an \"id\"",
        ))
    }
}

async fn admin_stats(State(crm): State<Arc<Shared>>) -> Json<Value> {
    let log = lock(&crm.log);
    Json(json!({
        "requests": crm.requests.load(Ordering::Relaxed),
        "byPath": log.by_path,
        "queries": log.queries,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPatch {
    down: Option<bool>,
    latency_ms: Option<u64>,
}

async fn admin_patch_config(
    State(crm): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Json<Value>, CrmError> {
    let patch: ConfigPatch = serde_json::from_slice(&body).map_err(bad_admin_body)?;
    let mut faults = lock(&crm.faults);
    if let Some(down) = patch.down {
        faults.down = down;
    }
    if let Some(ms) = patch.latency_ms {
        faults.latency = Duration::from_millis(ms);
    }
    Ok(Json(json!({
        "down": faults.down,
        "latencyMs": u64::try_from(faults.latency.as_millis()).unwrap_or(u64::MAX),
        "scriptedStatuses": faults.scripted.len(),
    })))
}

#[derive(Deserialize)]
struct PushStatus {
    status: u16,
}

async fn admin_push_status(
    State(crm): State<Arc<Shared>>,
    body: Bytes,
) -> Result<StatusCode, CrmError> {
    let PushStatus { status } = serde_json::from_slice(&body).map_err(bad_admin_body)?;
    lock(&crm.faults).scripted.push_back(status);
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    async fn start(config: CrmSimConfig) -> std::io::Result<CrmSim> {
        let crm = CrmSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
        for customer in CrmSim::sample_customers() {
            assert!(crm.insert(customer));
        }
        Ok(crm)
    }

    fn client() -> reqwest::Client {
        // Loopback must never be routed through a proxy from the environment.
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default()
    }

    async fn search(crm: &CrmSim, key: &str, value: &str) -> reqwest::Result<reqwest::Response> {
        client()
            .get(format!("{}/api/customers", crm.base_url()))
            .query(&[(key, value)])
            .send()
            .await
    }

    async fn result_ids(response: reqwest::Response) -> reqwest::Result<Vec<String>> {
        let body: Value = response.json().await?;
        Ok(body["results"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect())
    }

    #[tokio::test]
    async fn a_phone_lookup_matches_only_the_exact_stored_notation() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        assert_eq!(
            result_ids(search(&crm, "phone", "+13175550125").await?).await?,
            ["C-1001"]
        );
        assert_eq!(
            result_ids(search(&crm, "phone", " +13175550125 ").await?).await?,
            ["C-1001"]
        );
        assert!(result_ids(search(&crm, "phone", "3175550125").await?)
            .await?
            .is_empty());
        assert!(result_ids(search(&crm, "phone", "+13175550126").await?)
            .await?
            .is_empty());
        assert_eq!(
            result_ids(search(&crm, "phone", "(317) 555-0126").await?).await?,
            ["C-1002"]
        );
        assert_eq!(
            result_ids(search(&crm, "phone", "+13175550199").await?).await?,
            ["C-1002"]
        );

        assert_eq!(crm.requests(), 6);
        assert_eq!(
            crm.queries(),
            [
                "+13175550125",
                " +13175550125 ",
                "3175550125",
                "+13175550126",
                "(317) 555-0126",
                "+13175550199"
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_unencoded_plus_in_the_query_arrives_as_a_space_and_does_not_match() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        let url = format!("{}/api/customers?phone=+13175550125", crm.base_url());
        let response = client().get(url).send().await?;
        assert!(result_ids(response).await?.is_empty());
        assert_eq!(crm.queries(), [" 13175550125"]);
        Ok(())
    }

    #[tokio::test]
    async fn an_email_lookup_ignores_case() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        let response = search(&crm, "email", "Grace.Hopper@Example.com").await?;
        assert_eq!(result_ids(response).await?, ["C-1002"]);
        Ok(())
    }

    #[tokio::test]
    async fn a_customer_is_fetched_by_id_and_an_unknown_id_is_not_found() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        let found = client()
            .get(format!("{}/api/customers/C-1001", crm.base_url()))
            .send()
            .await?;
        assert_eq!(found.status(), 200);
        let customer: Value = found.json().await?;
        assert_eq!(customer["address"]["city"], "Indianapolis");

        let missing = client()
            .get(format!("{}/api/customers/C-9999", crm.base_url()))
            .send()
            .await?;
        assert_eq!(missing.status(), 404);
        assert_eq!(
            missing.json::<Value>().await?,
            json!({"error": "not found"})
        );
        assert_eq!(
            crm.requests_by_path(),
            BTreeMap::from([
                ("/api/customers/C-1001".to_owned(), 1),
                ("/api/customers/C-9999".to_owned(), 1),
            ])
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_or_wrong_bearer_token_is_unauthorized() -> TestResult {
        let crm = start(CrmSimConfig {
            bearer_token: Some("crm-token".to_owned()),
            ..CrmSimConfig::default()
        })
        .await?;
        let url = format!("{}/api/customers/C-1001", crm.base_url());
        let missing = client().get(&url).send().await?;
        assert_eq!(missing.status(), 401);
        assert_eq!(
            missing.json::<Value>().await?,
            json!({"error": "unauthorized"})
        );
        let wrong = client().get(&url).bearer_auth("other").send().await?;
        assert_eq!(wrong.status(), 401);
        let right = client().get(&url).bearer_auth("crm-token").send().await?;
        assert_eq!(right.status(), 200);
        Ok(())
    }

    #[tokio::test]
    async fn a_crm_that_is_down_answers_every_request_with_503_until_it_is_back() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        crm.set_down(true);
        let response = search(&crm, "phone", "+13175550125").await?;
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.json::<Value>().await?,
            json!({"error": "unavailable"})
        );

        crm.set_down(false);
        let response = search(&crm, "phone", "+13175550125").await?;
        assert_eq!(result_ids(response).await?, ["C-1001"]);
        assert_eq!(crm.requests(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn scripted_statuses_are_answered_in_order_and_a_429_asks_to_retry_after_a_second(
    ) -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        crm.push_status(429);
        crm.push_status(500);
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..3 {
            let response = search(&crm, "phone", "+13175550125").await?;
            if response.status() == 429 {
                retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            }
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [429, 500, 200]);
        assert_eq!(retry_after, Some(HeaderValue::from(1u64)));
        Ok(())
    }

    #[tokio::test]
    async fn a_search_without_phone_or_email_is_a_bad_request() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        let response = client()
            .get(format!("{}/api/customers", crm.base_url()))
            .send()
            .await?;
        assert_eq!(response.status(), 400);
        Ok(())
    }

    #[tokio::test]
    async fn the_admin_api_inserts_customers_and_takes_the_crm_down() -> TestResult {
        let crm = start(CrmSimConfig::default()).await?;
        let admin = format!("{}/sim", crm.base_url());
        let customer = json!({"id": "C-2001", "phone": "+15555550100"});
        let created = client()
            .post(format!("{admin}/customers"))
            .json(&customer)
            .send()
            .await?;
        assert_eq!(created.status(), 201);
        let no_id = client()
            .post(format!("{admin}/customers"))
            .json(&json!({}))
            .send()
            .await?;
        assert_eq!(no_id.status(), 400);
        assert_eq!(
            result_ids(search(&crm, "phone", "+15555550100").await?).await?,
            ["C-2001"]
        );

        let config = client()
            .patch(format!("{admin}/config"))
            .json(&json!({"down": true}))
            .send()
            .await?;
        assert_eq!(config.status(), 200);
        assert_eq!(search(&crm, "phone", "+15555550100").await?.status(), 503);

        let stats: Value = client()
            .get(format!("{admin}/stats"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(stats["requests"], 2);
        assert_eq!(stats["queries"], json!(["+15555550100", "+15555550100"]));
        Ok(())
    }

    #[test]
    fn a_customer_without_an_id_is_not_stored() {
        let shared = Shared::new(CrmSimConfig::default());
        assert!(!shared.insert(json!({"phone": "+13175550125"})));
        assert!(shared.insert(json!({"id": 7, "phone": "+13175550125"})));
        assert_eq!(shared.search(Some("+13175550125"), None).len(), 1);
    }
}
