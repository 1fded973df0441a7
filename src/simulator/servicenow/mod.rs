//! ServiceNow instance simulator for the (later) ServiceNow adapter: the Table API over
//! configurable tables with a strict encoded-query engine (`encoded_query`), Basic and OAuth
//! authentication with expiring tokens (`auth`), per-hour rate-limit rules per user and role
//! (`rate_limit`), the HTTP surface (`api`), scriptable faults, request accounting, a `/sim/...`
//! admin API and the [`ServiceNowSim`] handle.
//!
//! Behaviour follows ServiceNow's documentation; where it is silent the simulator takes a switch
//! with the most likely default and says so. Sources: ServiceNow/ServiceNowDocs (`markdown/`
//! `api-reference/rest-apis/c_TableAPI.md`, `api-reference/rest-api-explorer/`
//! `inbound-REST-API-rate-limiting.md`, the OAuth pages cited in `auth`), as listed in
//! `crm::servicenow`.

mod admin;
mod api;
mod auth;
mod encoded_query;
mod rate_limit;

pub use auth::{OAuthClient, SimUser};
pub use rate_limit::{RateLimitRule, RuleTarget};

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

use super::traffic::Traffic;
use super::{lock, ServerHandle};
use auth::Auth;
use rate_limit::RateLimiter;

/// A table the instance has: its columns, the table it extends, the role reading it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSchema {
    pub name: String,
    /// Parent table (`customer_contact` extends `sys_user`): querying the parent returns the
    /// child's rows too, with the parent's columns.
    #[serde(default)]
    pub extends: Option<String>,
    /// Columns besides `sys_id`, `sys_created_on`, `sys_updated_on`, `sys_class_name`.
    pub fields: Vec<String>,
    /// A role the caller must hold, else 403 (a table ACL).
    #[serde(default)]
    pub read_role: Option<String>,
}

impl TableSchema {
    fn new(name: &str, extends: Option<&str>, fields: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            extends: extends.map(str::to_owned),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            read_role: None,
        }
    }
}

/// `sys_user` and CSM's `customer_contact` with the columns attrsync looks at.
pub fn default_tables() -> Vec<TableSchema> {
    const USER: &[&str] = &[
        "user_name",
        "first_name",
        "last_name",
        "name",
        "email",
        "phone",
        "mobile_phone",
        "home_phone",
        "title",
        "active",
        "company",
        "u_customer_number",
    ];
    let mut contact: Vec<&str> = USER.to_vec();
    contact.extend(["account", "vip"]);
    vec![
        TableSchema::new("sys_user", None, USER),
        TableSchema::new("customer_contact", Some("sys_user"), &contact),
    ]
}

/// Which Table API version the unversioned URL serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// A query without rows is 404 "No Record found".
    V1,
    /// A query without rows is 200 with `"result": []`.
    V2,
}

#[derive(Debug, Clone)]
pub struct ServiceNowSimConfig {
    pub users: Vec<SimUser>,
    pub oauth_clients: Vec<OAuthClient>,
    /// Basic authentication accepted (an access policy can turn it off).
    pub basic_auth: bool,
    /// `glide.oauth.inbound.client.credential.grant_type.enabled`: off by default, as documented.
    pub client_credentials: bool,
    /// Access-token lifespan; the documented default is 1800 s.
    pub token_lifetime: Duration,
    pub tables: Vec<TableSchema>,
    /// `glide.invalid_query.returns_no_rows`: false by default, so invalid parts are dropped.
    pub invalid_query_returns_no_rows: bool,
    /// The documentation says values are case-sensitive; an instance's database collation may
    /// not be, so this is a switch (default: as documented).
    pub case_sensitive_values: bool,
    pub latest_version: ApiVersion,
    /// A GET without `Accept` is a 400, as documented (`c_RESTAPI.md`).
    pub require_accept: bool,
    pub rate_limit_rules: Vec<RateLimitRule>,
    /// One hour on an instance; shorter in tests.
    pub rate_limit_window: Duration,
    pub latency: Duration,
}

impl Default for ServiceNowSimConfig {
    fn default() -> Self {
        Self {
            users: vec![SimUser {
                user_name: "attrsync.integration".to_owned(),
                password: "sim-password".to_owned(),
                roles: vec!["itil".to_owned()],
            }],
            oauth_clients: vec![OAuthClient {
                client_id: "attrsync-sim".to_owned(),
                client_secret: "sim-secret".to_owned(),
                application_user: Some("attrsync.integration".to_owned()),
            }],
            basic_auth: true,
            client_credentials: false,
            token_lifetime: Duration::from_secs(1800),
            tables: default_tables(),
            invalid_query_returns_no_rows: false,
            case_sensitive_values: true,
            latest_version: ApiVersion::V2,
            require_accept: true,
            rate_limit_rules: Vec::new(),
            rate_limit_window: Duration::from_secs(3600),
            latency: Duration::ZERO,
        }
    }
}

/// The simulated operations, each with its own queue of scripted faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// `POST /oauth_token.do`
    Token = 0,
    /// `GET /api/now/table/{table}`
    Table = 1,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Token => "token",
            Op::Table => "table",
        }
    }
}

/// A canned outcome for the next request of an operation. On the admin API:
/// `{"kind":"status","status":503}`, `{"kind":"notJson"}`, `{"kind":"wrongShape"}`,
/// `{"kind":"hibernating"}`, `{"kind":"delay","millis":250}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    /// The body the instance (or its load balancer) sends with this status.
    Status { status: u16 },
    /// 200 with a truncated JSON body.
    NotJson,
    /// 200 with JSON that has no `result`.
    WrongShape,
    /// 200 with the HTML page of a hibernating developer instance.
    Hibernating,
    /// Sleep `millis`, then handle the request normally.
    Delay { millis: u64 },
}

/// What the simulator saw, for tests and the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceNowStats {
    pub requests: BTreeMap<String, u64>,
    pub tokens_issued: u64,
    pub rate_limited: u64,
    pub faults_injected: u64,
    /// Every `sysparm_query` received, decoded.
    pub queries: Vec<String>,
    /// Conditions the instance would have dropped (or answered no rows for): a client that
    /// builds its queries right never causes one.
    pub invalid_query_parts: Vec<String>,
}

/// Why a record could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    #[error("no table {0:?}")]
    UnknownTable(String),
    #[error("a record must be a JSON object")]
    NotAnObject,
    #[error("table {table:?} has no column {field:?}")]
    UnknownField { table: String, field: String },
}

struct Table {
    name: String,
    extends: Option<String>,
    fields: Vec<String>,
    read_role: Option<String>,
    records: Vec<Map<String, Value>>,
}

const SYSTEM_FIELDS: [&str; 4] = [
    "sys_id",
    "sys_created_on",
    "sys_updated_on",
    "sys_class_name",
];

impl Table {
    fn has(&self, field: &str) -> bool {
        SYSTEM_FIELDS.contains(&field) || self.fields.iter().any(|f| f == field)
    }

    /// Every column, system columns first.
    fn columns(&self) -> impl Iterator<Item = &str> {
        SYSTEM_FIELDS
            .into_iter()
            .chain(self.fields.iter().map(String::as_str))
    }

    /// The tables this one extends, nearest first (bounded, so a cycle cannot loop).
    fn extends_chain<'a>(
        &'a self,
        tables: &'a BTreeMap<String, Table>,
    ) -> impl Iterator<Item = &'a str> {
        let mut next = self.extends.as_deref();
        std::iter::from_fn(move || {
            let current = next?;
            next = tables.get(current).and_then(|t| t.extends.as_deref());
            Some(current)
        })
        .take(16)
    }
}

struct Settings {
    latency: Duration,
    down: bool,
    invalid_query_returns_no_rows: bool,
    case_sensitive_values: bool,
    latest_version: ApiVersion,
    require_accept: bool,
}

#[derive(Default)]
struct Log {
    queries: Vec<String>,
    invalid_query_parts: Vec<String>,
    faults_injected: u64,
}

struct Shared {
    tables: Mutex<BTreeMap<String, Table>>,
    auth: Mutex<Auth>,
    limiter: Mutex<RateLimiter>,
    settings: Mutex<Settings>,
    faults: Mutex<[VecDeque<Fault>; 2]>,
    log: Mutex<Log>,
    traffic: Traffic,
}

impl Shared {
    fn new(config: ServiceNowSimConfig) -> Self {
        let tables = config
            .tables
            .into_iter()
            .map(|t| {
                (
                    t.name.clone(),
                    Table {
                        name: t.name,
                        extends: t.extends,
                        fields: t.fields,
                        read_role: t.read_role,
                        records: Vec::new(),
                    },
                )
            })
            .collect();
        Self {
            tables: Mutex::new(tables),
            auth: Mutex::new(Auth::new(
                config.users,
                config.oauth_clients,
                config.basic_auth,
                config.client_credentials,
                config.token_lifetime,
            )),
            limiter: Mutex::new(RateLimiter::new(
                config.rate_limit_rules,
                config.rate_limit_window,
            )),
            settings: Mutex::new(Settings {
                latency: config.latency,
                down: false,
                invalid_query_returns_no_rows: config.invalid_query_returns_no_rows,
                case_sensitive_values: config.case_sensitive_values,
                latest_version: config.latest_version,
                require_accept: config.require_accept,
            }),
            faults: Mutex::new(Default::default()),
            log: Mutex::new(Log::default()),
            traffic: Traffic::default(),
        }
    }

    fn insert(&self, table: &str, record: Value) -> Result<String, InsertError> {
        let Value::Object(mut record) = record else {
            return Err(InsertError::NotAnObject);
        };
        let mut tables = lock(&self.tables);
        let target = tables
            .get_mut(table)
            .ok_or_else(|| InsertError::UnknownTable(table.to_owned()))?;
        if let Some(field) = record.keys().find(|k| !target.has(k)) {
            return Err(InsertError::UnknownField {
                table: table.to_owned(),
                field: field.clone(),
            });
        }
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
        let sys_id = match record.get("sys_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => uuid::Uuid::new_v4().simple().to_string(),
        };
        record.insert("sys_id".to_owned(), Value::from(sys_id.clone()));
        for key in ["sys_created_on", "sys_updated_on"] {
            record
                .entry(key)
                .or_insert_with(|| Value::from(now.clone()));
        }
        record
            .entry("sys_class_name")
            .or_insert_with(|| Value::from(table));
        target
            .records
            .retain(|r| r.get("sys_id").and_then(Value::as_str) != Some(sys_id.as_str()));
        target.records.push(record);
        Ok(sys_id)
    }

    fn stats(&self) -> ServiceNowStats {
        let log = lock(&self.log);
        ServiceNowStats {
            requests: self.traffic.by_op(),
            tokens_issued: lock(&self.auth).tokens_issued,
            rate_limited: lock(&self.limiter).denied(),
            faults_injected: log.faults_injected,
            queries: log.queries.clone(),
            invalid_query_parts: log.invalid_query_parts.clone(),
        }
    }
}

/// Handle to a running ServiceNow simulator; clones share the same state and server.
#[derive(Clone)]
pub struct ServiceNowSim {
    shared: Arc<Shared>,
    server: Arc<ServerHandle>,
}

impl fmt::Debug for ServiceNowSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceNowSim")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

impl ServiceNowSim {
    /// Serves on `listener` (already bound, e.g. `127.0.0.1:0`) until [`ServiceNowSim::shutdown`].
    pub async fn start(
        config: ServiceNowSimConfig,
        listener: TcpListener,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::new(config));
        let server = ServerHandle::spawn("servicenow", app(Arc::clone(&shared)), listener)?;
        Ok(Self {
            shared,
            server: Arc::new(server),
        })
    }

    /// The same app over the same state.
    pub fn router(&self) -> Router {
        app(Arc::clone(&self.shared))
    }

    /// `http://127.0.0.1:PORT`, the instance URL (`https://<instance>.service-now.com`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn shutdown(&self) {
        self.server.shutdown();
    }

    /// Stores `record` in `table` (replacing one with the same `sys_id`) and returns its sys_id;
    /// `sys_id`, `sys_created_on`, `sys_updated_on` and `sys_class_name` are filled in if absent.
    pub fn insert(&self, table: &str, record: Value) -> Result<String, InsertError> {
        self.shared.insert(table, record)
    }

    /// Users and contacts for the demo, in the phone notations real instances hold (the
    /// official Contact API sample stores `+1 858 287 7834` and `+16692627777`).
    pub fn sample_records() -> Vec<(&'static str, Value)> {
        vec![
            (
                "sys_user",
                json!({"sys_id": "6816f79cc0a8016401c5a33be04be441", "user_name": "ada.lovelace", "first_name": "Ada", "last_name": "Lovelace", "name": "Ada Lovelace", "email": "ada@example.com", "phone": "+13175550125", "mobile_phone": "", "active": "true", "sys_updated_on": "2024-05-01 10:00:00"}),
            ),
            (
                "sys_user",
                json!({"sys_id": "9ee1b13dc6112271007f9d0efdb69cd0", "user_name": "grace.hopper", "first_name": "Grace", "last_name": "Hopper", "name": "Grace Hopper", "email": "grace.hopper@example.com", "phone": "(317) 555-0126", "mobile_phone": "+1 317 555 0199", "active": "true", "sys_updated_on": "2024-06-01 09:30:00"}),
            ),
            (
                "customer_contact",
                json!({"sys_id": "ddce70866f9331003b3c498f5d3ee417", "user_name": "george.warren", "first_name": "George", "last_name": "Warren", "name": "George Warren", "email": "geo.warren@example.com", "phone": "+1 858 287 7834", "mobile_phone": "+1 858 867 7857", "active": "true", "account": "86837a386f0331003b3c498f5d3ee4ca", "sys_updated_on": "2019-01-03 05:49:34"}),
            ),
        ]
    }

    pub fn stats(&self) -> ServiceNowStats {
        self.shared.stats()
    }

    /// Request accounting per operation (`token`, `table`) and the busiest window.
    pub fn traffic(&self) -> &Traffic {
        &self.shared.traffic
    }

    /// Every issued access token is rejected from now on.
    pub fn expire_tokens(&self) {
        lock(&self.shared.auth).expire_tokens();
    }

    pub fn push_fault(&self, op: Op, fault: Fault) {
        lock(&self.shared.faults)[op as usize].push_back(fault);
    }

    /// While down, every request gets 503 with an HTML body.
    pub fn set_down(&self, down: bool) {
        lock(&self.shared.settings).down = down;
    }

    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.settings).latency = latency;
    }

    pub fn set_invalid_query_returns_no_rows(&self, on: bool) {
        lock(&self.shared.settings).invalid_query_returns_no_rows = on;
    }

    pub fn set_case_sensitive_values(&self, on: bool) {
        lock(&self.shared.settings).case_sensitive_values = on;
    }

    pub fn set_client_credentials(&self, on: bool) {
        lock(&self.shared.auth).client_credentials_enabled = on;
    }

    pub fn set_basic_auth(&self, on: bool) {
        lock(&self.shared.auth).basic_enabled = on;
    }

    /// Replaces the rate-limit rules (counts restart, as when a rule's limit is edited).
    pub fn set_rate_limit_rules(&self, rules: Vec<RateLimitRule>) {
        lock(&self.shared.limiter).set_rules(rules);
    }

    /// "Reset Rate Limit Counts" for every rule.
    pub fn reset_rate_limits(&self) {
        lock(&self.shared.limiter).reset();
    }
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth_token.do", post(api::oauth_token))
        .route("/api/now/table/{table}", get(api::table_latest))
        .route(
            "/api/now/{version}/table/{table}",
            get(api::table_versioned),
        )
        .nest("/sim", admin::routes())
        .fallback(api::unknown_resource)
        .with_state(shared)
}

#[cfg(test)]
mod tests;
