//! The instance as a client sees it: `POST /oauth_token.do` and the Table API's
//! `GET /api/now[/v1|/v2]/table/{table}`, with ServiceNow's error envelope
//! `{"error":{"message","detail"},"status":"failure"}` (ServiceNowDocs `c_CustomWebServices.md`).
//!
//! Order of a Table API request: count it, latency, outage, one scripted fault, authentication,
//! `Accept`, version, rate-limit rule, table, read role, then the query. Rate-limit headers go on
//! every answer after the rule was applied, as the documentation describes for matching
//! requests.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::encoded_query;
use super::rate_limit::{Decision, Headers};
use super::{lock, ApiVersion, Fault, Op, Shared};

const JSON: &str = "application/json;charset=UTF-8";
/// `sysparm_limit`'s documented default.
const DEFAULT_LIMIT: usize = 10_000;

/// The error envelope. `detail: None` is written as JSON `null`, as instances do.
pub(super) fn envelope(status: StatusCode, message: &str, detail: Option<&str>) -> Response {
    let body = json!({"error": {"message": message, "detail": detail}, "status": "failure"});
    (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
}

/// Documented by quotation for missing or wrong credentials; for an expired or unknown bearer
/// token the same answer is assumed (no source).
fn not_authenticated() -> Response {
    envelope(
        StatusCode::UNAUTHORIZED,
        "User Not Authenticated",
        Some("Required to provide Auth information"),
    )
}

fn access_denied() -> Response {
    let body = json!({"error_description": "access_denied", "error": "server_error"});
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, JSON)],
        body.to_string(),
    )
        .into_response()
}

/// What a load balancer in front of an unreachable node answers: not the JSON envelope.
fn html(status: StatusCode, text: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], text).into_response()
}

fn rate_limit_exceeded(headers: &Headers, retry_after: u64) -> Response {
    let detail = format!(
        "Rate limit of {} requests per hour for Table API exceeded",
        headers.limit
    );
    let mut response = envelope(
        StatusCode::TOO_MANY_REQUESTS,
        "Rate limit exceeded",
        Some(&detail),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    with_rate_headers(response, Some(headers))
}

fn with_rate_headers(mut response: Response, headers: Option<&Headers>) -> Response {
    if let Some(h) = headers {
        let map = response.headers_mut();
        map.insert("x-ratelimit-limit", HeaderValue::from(h.limit));
        map.insert("x-ratelimit-reset", HeaderValue::from(h.reset_unix));
        if let Ok(rule) = HeaderValue::from_str(&h.rule) {
            map.insert("x-ratelimit-rule", rule);
        }
    }
    response
}

/// A scripted status with the body an instance (or the proxy before it) would send.
fn scripted_status(status: u16) -> Response {
    let status = StatusCode::from_u16(status)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        StatusCode::UNAUTHORIZED => not_authenticated(),
        StatusCode::FORBIDDEN => envelope(status, "Insufficient rights to query records", None),
        StatusCode::NOT_FOUND => envelope(
            status,
            "No Record found",
            Some("Records matching query not found. Check query parameter or offset parameter"),
        ),
        StatusCode::TOO_MANY_REQUESTS => {
            let mut response = envelope(
                status,
                "Rate limit exceeded",
                Some("Rate limit of 1 requests per hour for Table API exceeded"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            response
        }
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            html(
                status,
                "<html><body><h1>Service Unavailable</h1></body></html>",
            )
        }
        // Wording of the simulator: instances vary by cause.
        other => envelope(other, other.canonical_reason().unwrap_or("Error"), None),
    }
}

/// The fault the next request of `op` gets, if one is scripted; `Delay` has been slept through.
async fn scripted_fault(sim: &Shared, op: Op) -> Option<Response> {
    let fault = lock(&sim.faults)[op as usize].pop_front()?;
    lock(&sim.log).faults_injected += 1;
    Some(match fault {
        Fault::Delay { millis } => {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            return None;
        }
        Fault::Status { status } => scripted_status(status),
        Fault::NotJson => (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], "{\"result\":[").into_response(),
        Fault::WrongShape => (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], "{\"records\":[]}").into_response(),
        // A hibernating Personal Developer Instance answers 200 with an HTML page.
        Fault::Hibernating => html(
            StatusCode::OK,
            "<html><head><title>Instance Hibernating page</title></head><body>This instance is hibernating</body></html>",
        ),
    })
}

/// Latency, outage and scripted fault: what precedes any handling.
async fn gate(sim: &Shared, op: Op) -> Option<Response> {
    sim.traffic.record(op.name());
    let (latency, down) = {
        let settings = lock(&sim.settings);
        (settings.latency, settings.down)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if down {
        return Some(html(
            StatusCode::SERVICE_UNAVAILABLE,
            "<html><body><h1>Service Unavailable</h1></body></html>",
        ));
    }
    scripted_fault(sim, op).await
}

pub(super) async fn oauth_token(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(response) = gate(&sim, Op::Token).await {
        return response;
    }
    // Parameters come from a form body only; anything else has no parameters.
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let params: HashMap<String, String> = if is_form {
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        HashMap::new()
    };
    match lock(&sim.auth).token(&params, Instant::now()) {
        Ok(token) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON)],
            json!(token).to_string(),
        )
            .into_response(),
        Err(_) => access_denied(),
    }
}

pub(super) async fn table_latest(
    State(sim): State<Arc<Shared>>,
    Path(table): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    table_get(&sim, None, &table, &uri, &headers).await
}

pub(super) async fn table_versioned(
    State(sim): State<Arc<Shared>>,
    Path((version, table)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    table_get(&sim, Some(&version), &table, &uri, &headers).await
}

pub(super) async fn unknown_resource() -> Response {
    envelope(
        StatusCode::BAD_REQUEST,
        "Requested URI does not represent any resource",
        None,
    )
}

async fn table_get(
    sim: &Shared,
    version: Option<&str>,
    table: &str,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    if let Some(response) = gate(sim, Op::Table).await {
        return response;
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(caller) = lock(&sim.auth).authenticate(authorization, Instant::now()) else {
        return not_authenticated();
    };
    if let Some(response) = check_accept(sim, headers) {
        return response;
    }
    let version = match version {
        None => lock(&sim.settings).latest_version,
        Some("v1") => ApiVersion::V1,
        Some("v2") => ApiVersion::V2,
        Some(_) => return unknown_resource().await,
    };
    let rate =
        match lock(&sim.limiter).admit(Instant::now(), table, &caller.user_name, &caller.roles) {
            Decision::Unlimited => None,
            Decision::Allowed(h) => Some(h),
            Decision::Denied {
                headers,
                retry_after,
            } => {
                return rate_limit_exceeded(&headers, retry_after);
            }
        };
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let response = query_table(sim, version, table, &caller.roles, &params);
    with_rate_headers(response, rate.as_ref())
}

/// JSON only: the documented XML alternative is not simulated. A missing `Accept` is a 400 as
/// documented for GET (`c_RESTAPI.md`, "Data format headers"); switchable because whether
/// instances enforce it is unverified.
fn check_accept(sim: &Shared, headers: &HeaderMap) -> Option<Response> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    match accept {
        None if lock(&sim.settings).require_accept => Some(envelope(
            StatusCode::BAD_REQUEST,
            "Invalid request: missing Accept header",
            None,
        )),
        None => None,
        Some(value) => {
            let json_ok = value.split(',').any(|part| {
                let media = part.split(';').next().unwrap_or("").trim();
                matches!(media, "application/json" | "*/*" | "application/*")
            });
            (!json_ok).then(|| envelope(StatusCode::NOT_ACCEPTABLE, "Not Acceptable", None))
        }
    }
}

fn first<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn query_table(
    sim: &Shared,
    version: ApiVersion,
    table: &str,
    roles: &[String],
    params: &[(String, String)],
) -> Response {
    let tables = lock(&sim.tables);
    let Some(schema) = tables.get(table) else {
        return envelope(
            StatusCode::BAD_REQUEST,
            &format!("Invalid table {table}"),
            Some(&format!("Table {table} does not exist")),
        );
    };
    if let Some(role) = &schema.read_role {
        if !roles.contains(role) {
            return envelope(
                StatusCode::FORBIDDEN,
                "Insufficient rights to query records",
                None,
            );
        }
    }
    let known = |field: &str| schema.has(field);
    // Name-value pairs filter when there is no `sysparm_query` (they are mutually exclusive).
    let text = match first(params, "sysparm_query") {
        Some(q) => q.to_owned(),
        None => params
            .iter()
            .filter(|(k, _)| !k.starts_with("sysparm_"))
            .map(|(k, v)| format!("{k}={}", v.replace('^', "^^")))
            .collect::<Vec<_>>()
            .join("^"),
    };
    let query = encoded_query::parse(&text, known);
    let (no_rows, case_sensitive) = {
        let settings = lock(&sim.settings);
        (
            settings.invalid_query_returns_no_rows && !query.invalid_parts.is_empty(),
            settings.case_sensitive_values,
        )
    };
    {
        let mut log = lock(&sim.log);
        log.queries.push(text.clone());
        log.invalid_query_parts
            .extend(query.invalid_parts.iter().cloned());
    }
    let mut rows: Vec<&Map<String, Value>> = if no_rows {
        Vec::new()
    } else {
        tables
            .values()
            .filter(|t| t.name == table || t.extends_chain(&tables).any(|p| p == table))
            .flat_map(|t| t.records.iter())
            .filter(|r| query.matches(r, case_sensitive))
            .collect()
    };
    query.sort(&mut rows);
    let total = rows.len();
    let number = |key| first(params, key).and_then(|v| v.trim().parse::<usize>().ok());
    let offset = number("sysparm_offset").unwrap_or(0);
    let limit = number("sysparm_limit").unwrap_or(DEFAULT_LIMIT);
    let fields: Vec<&str> = match first(params, "sysparm_fields") {
        // Invalid fields are ignored (`c_TableAPI.md`, `sysparm_fields`).
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|f| known(f))
            .collect(),
        None => schema.columns().collect(),
    };
    let display_all = first(params, "sysparm_display_value") == Some("all");
    let result: Vec<Value> = rows
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|row| project(row, &fields, display_all))
        .collect();
    if result.is_empty() && version == ApiVersion::V1 {
        return envelope(
            StatusCode::NOT_FOUND,
            "No Record found",
            Some("Records matching query not found. Check query parameter or offset parameter"),
        );
    }
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON)],
        json!({"result": result}).to_string(),
    )
        .into_response();
    if first(params, "sysparm_no_count") != Some("true") {
        response
            .headers_mut()
            .insert("x-total-count", HeaderValue::from(total));
    }
    response
}

/// The requested fields of a row, a column without a value as `""`; with `display_value=all`
/// every field becomes `{"display_value","value"}` (the simulator keeps no separate display
/// values).
fn project(row: &Map<String, Value>, fields: &[&str], display_all: bool) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .map(|field| {
            let value = row.get(*field).cloned().unwrap_or_else(|| Value::from(""));
            let value = if display_all {
                json!({"display_value": value, "value": value})
            } else {
                value
            };
            ((*field).to_owned(), value)
        })
        .collect();
    Value::Object(map)
}
