//! The Freshdesk account as a client sees it: `GET /api/v2/contacts` (list with filters),
//! `GET /api/v2/contacts/{id}` and `GET /api/v2/search/contacts`, Basic authentication with the
//! API key as user name, and the per-minute account limit with a per-endpoint cap for Contacts
//! List (support.freshdesk.com article 225439).
//!
//! Every answer carries `X-RateLimit-Total`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Used-CurrentRequest`; a throttled one is 429 with `Retry-After`. Every request
//! counts, invalid ones included, so the limit is applied before authentication (the account is
//! the host, not the key).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::search::{self, text_matches, Matching};
use super::{lock, Fault, Op, Shared, ThrottleBody};

const JSON: &str = "application/json; charset=utf-8";
const SEARCH_PAGE_SIZE: usize = 30;
const MAX_SEARCH_PAGE: usize = 10;
/// List filters the simulator accepts; anything else is an `invalid_field` validation error.
const LIST_PARAMS: &[&str] = &[
    "email",
    "mobile",
    "phone",
    "company_id",
    "state",
    "updated_since",
    "page",
    "per_page",
];

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
}

fn validation(field: &str, message: &str, code: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"description": "Validation failed", "errors": [{"field": field, "message": message, "code": code}]}),
    )
}

fn invalid_credentials() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"code": "invalid_credentials", "message": "You have to be logged in to perform this action."}),
    )
}

/// The per-minute windows, fixed and aligned to the clock minute (not documented).
pub(super) struct Limiter {
    origin: Instant,
    origin_unix: u64,
    window: u64,
    index: u64,
    used: u32,
    used_contacts_list: u32,
    pub(super) throttled: u64,
}

pub(super) enum Admission {
    Allowed { remaining: u32 },
    Throttled { retry_after: u64, remaining: u32 },
}

impl Limiter {
    pub(super) fn new(window_secs: u64) -> Self {
        let origin_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            origin: Instant::now(),
            origin_unix,
            window: window_secs.max(1),
            index: 0,
            used: 0,
            used_contacts_list: 0,
            throttled: 0,
        }
    }

    pub(super) fn reset(&mut self) {
        self.used = 0;
        self.used_contacts_list = 0;
    }

    fn admit(&mut self, now: Instant, total: u32, list_cap: Option<u32>) -> Admission {
        let now_unix = self.origin_unix + now.saturating_duration_since(self.origin).as_secs();
        let index = now_unix / self.window;
        if index != self.index {
            self.index = index;
            self.reset();
        }
        let remaining = total.saturating_sub(self.used);
        let list_full = list_cap.is_some_and(|cap| self.used_contacts_list >= cap);
        if remaining == 0 || list_full {
            self.throttled += 1;
            let retry_after = ((index + 1) * self.window).saturating_sub(now_unix).max(1);
            return Admission::Throttled {
                retry_after,
                remaining,
            };
        }
        self.used += 1;
        if list_cap.is_some() {
            self.used_contacts_list += 1;
        }
        Admission::Allowed {
            remaining: remaining - 1,
        }
    }
}

fn rate_headers(mut response: Response, total: u32, remaining: u32, used: u32) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-total", HeaderValue::from(total));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
    headers.insert("x-ratelimit-used-currentrequest", HeaderValue::from(used));
    response
}

fn scripted(fault: Fault) -> Option<Response> {
    Some(match fault {
        Fault::Delay { .. } => return None,
        Fault::Status { status } => {
            let status = StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match status {
                StatusCode::UNAUTHORIZED => invalid_credentials(),
                StatusCode::FORBIDDEN => json_response(
                    status,
                    &json!({"code": "access_denied", "message": "You are not authorized to perform this action."}),
                ),
                StatusCode::TOO_MANY_REQUESTS => {
                    let mut response = status.into_response();
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
                    response
                }
                other if other.is_server_error() => (
                    other,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body>Service Unavailable</body></html>",
                )
                    .into_response(),
                other => json_response(
                    other,
                    &json!({"code": "error", "message": other.canonical_reason()}),
                ),
            }
        }
        Fault::NotJson => {
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], "[{\"id\":").into_response()
        }
        Fault::WrongShape => json_response(StatusCode::OK, &json!({"contacts": []})),
    })
}

/// Counting, latency, outage, scripted fault, rate limit and authentication, in that order.
/// `Ok` carries the rate-limit header values for the answer.
async fn gate(sim: &Shared, op: Op, headers: &HeaderMap) -> Result<(u32, u32), Response> {
    sim.traffic.record(op.name());
    let (latency, down, total, list_cap, search_is_list) = {
        let s = lock(&sim.settings);
        (
            s.latency,
            s.down,
            s.per_minute,
            s.contacts_list_per_minute,
            s.search_counts_as_contacts_list,
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if down {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Service Unavailable</body></html>",
        )
            .into_response());
    }
    let fault = lock(&sim.faults)[op as usize].pop_front();
    if let Some(fault) = fault {
        lock(&sim.log).faults_injected += 1;
        if let Fault::Delay { millis } = fault {
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        } else if let Some(response) = scripted(fault) {
            return Err(response);
        }
    }
    let list_cap = match op {
        Op::ContactsList => Some(list_cap),
        Op::Search if search_is_list => Some(list_cap),
        _ => None,
    };
    let remaining = match lock(&sim.limiter).admit(Instant::now(), total, list_cap) {
        Admission::Allowed { remaining } => remaining,
        Admission::Throttled {
            retry_after,
            remaining,
        } => {
            let body = lock(&sim.settings).throttle_body;
            let mut response = match body {
                ThrottleBody::Empty => StatusCode::TOO_MANY_REQUESTS.into_response(),
                ThrottleBody::Json => json_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    &json!({"message": "You have exceeded the limit of requests per minute"}),
                ),
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            // Nothing was consumed by a refused request.
            return Err(rate_headers(response, total, remaining, 0));
        }
    };
    if !authenticated(sim, headers) {
        return Err(rate_headers(invalid_credentials(), total, remaining, 1));
    }
    Ok((total, remaining))
}

/// Basic with the API key as user name and any password.
fn authenticated(sim: &Shared, headers: &HeaderMap) -> bool {
    let Some((scheme, encoded)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Some(decoded) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
    else {
        return false;
    };
    let key = decoded.split_once(':').map_or(decoded.as_str(), |(k, _)| k);
    lock(&sim.settings).api_keys.iter().any(|k| k == key)
}

fn params(uri: &Uri) -> Vec<(String, String)> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn matching(sim: &Shared) -> Matching {
    let s = lock(&sim.settings);
    Matching {
        phone_digits_only: s.phone_digits_only,
        email_case_insensitive: s.email_case_insensitive,
    }
}

fn state_of(contact: &Map<String, Value>) -> &'static str {
    let flag = |k: &str| contact.get(k).and_then(Value::as_bool) == Some(true);
    if flag("deleted") {
        "deleted"
    } else if flag("blocked") {
        "blocked"
    } else if flag("active") {
        "verified"
    } else {
        "unverified"
    }
}

pub(super) async fn list_contacts(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (total, remaining) = match gate(&sim, Op::ContactsList, &headers).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let params = params(&uri);
    rate_headers(list_answer(&sim, &params), total, remaining, 1)
}

fn list_answer(sim: &Shared, params: &[(String, String)]) -> Response {
    if let Some((field, _)) = params
        .iter()
        .find(|(k, _)| !LIST_PARAMS.contains(&k.as_str()))
    {
        return validation(
            field,
            "Unexpected/invalid field in request",
            "invalid_field",
        );
    }
    // A present but malformed number is a validation error naming the parameter.
    let number = |key: &'static str, max: usize| -> Result<Option<usize>, (&'static str, usize)> {
        match params.iter().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, v)) => match v.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err((key, max)),
            },
        }
    };
    let (per_page, page) = match (number("per_page", 100), number("page", usize::MAX)) {
        (Ok(per_page), Ok(page)) => (per_page.unwrap_or(30), page.unwrap_or(1)),
        (Err((key, max)), _) | (_, Err((key, max))) => {
            let message = format!("It should be a number between 1 and {max}");
            return validation(key, &message, "invalid_value");
        }
    };
    let how = matching(sim);
    let state = params
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str());
    let contacts = lock(&sim.contacts);
    let rows: Vec<&Value> = contacts
        .iter()
        .map(|c| &c.value)
        .filter(|c| {
            let Value::Object(contact) = c else {
                return false;
            };
            let in_state = match state {
                Some(wanted) => state_of(contact) == wanted,
                // By default all unblocked and undeleted contacts.
                None => !matches!(state_of(contact), "deleted" | "blocked"),
            };
            in_state
                && params.iter().all(|(key, wanted)| match key.as_str() {
                    "email" | "phone" | "mobile" => contact
                        .get(key)
                        .and_then(Value::as_str)
                        .is_some_and(|stored| text_matches(key, stored, wanted, how)),
                    "company_id" => {
                        contact.get(key).map(Value::to_string).as_deref() == Some(wanted)
                    }
                    "updated_since" => contact
                        .get("updated_at")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t >= wanted.as_str()),
                    _ => true,
                })
        })
        .collect();
    let page_rows: Vec<&Value> = rows
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    json_response(StatusCode::OK, &json!(page_rows))
}

pub(super) async fn get_contact(
    State(sim): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (total, remaining) = match gate(&sim, Op::Contact, &headers).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let contacts = lock(&sim.contacts);
    let found = contacts.iter().map(|c| &c.value).find(|c| {
        c.get("id").map(Value::to_string).as_deref() == Some(id.as_str())
            && c.get("deleted").and_then(Value::as_bool) != Some(true)
    });
    let response = match found {
        Some(contact) => json_response(StatusCode::OK, contact),
        // Body of a 404 is not documented: none.
        None => StatusCode::NOT_FOUND.into_response(),
    };
    rate_headers(response, total, remaining, 1)
}

pub(super) async fn search_contacts(
    State(sim): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let (total, remaining) = match gate(&sim, Op::Search, &headers).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let params = params(&uri);
    rate_headers(search_answer(&sim, &params), total, remaining, 1)
}

fn search_answer(sim: &Shared, params: &[(String, String)]) -> Response {
    let Some(raw) = params
        .iter()
        .find(|(k, _)| k == "query")
        .map(|(_, v)| v.clone())
    else {
        return validation("query", "It should be a/an String", "missing_field");
    };
    lock(&sim.log).queries.push(raw.clone());
    let expr = match search::parse(&raw) {
        Ok(expr) => expr,
        Err(message) => {
            lock(&sim.log).rejected_queries.push(raw);
            return validation("query", &message, "invalid_value");
        }
    };
    let page = match params.iter().find(|(k, _)| k == "page") {
        None => 1,
        Some((_, v)) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_SEARCH_PAGE).contains(&n) => n,
            _ => {
                return validation(
                    "page",
                    "It should be a number between 1 and 10",
                    "invalid_value",
                )
            }
        },
    };
    let (how, delay) = {
        let s = lock(&sim.settings);
        (
            Matching {
                phone_digits_only: s.phone_digits_only,
                email_case_insensitive: s.email_case_insensitive,
            },
            s.search_index_delay,
        )
    };
    let now = Instant::now();
    let contacts = lock(&sim.contacts);
    // Search reads an index that lags behind writes; deleted contacts are not in it.
    let hits: Vec<&Value> = contacts
        .iter()
        .filter(|c| c.written_at + delay <= now)
        .map(|c| &c.value)
        .filter(|c| match c {
            Value::Object(contact) => state_of(contact) != "deleted" && expr.matches(contact, how),
            _ => false,
        })
        .collect();
    let results: Vec<&Value> = hits
        .iter()
        .skip((page - 1) * SEARCH_PAGE_SIZE)
        .take(SEARCH_PAGE_SIZE)
        .copied()
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"total": hits.len(), "results": results}),
    )
}

pub(super) async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}
