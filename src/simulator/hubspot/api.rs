//! The HubSpot simulator's HTTP surface: contact search and read behind one gate, HubSpot's
//! error bodies, and the `/sim/...` admin API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::time::Instant;
use uuid::Uuid;

use super::admin::{
    admin_expire_tokens, admin_insert_contact, admin_patch_config, admin_push_fault,
    admin_revoke_token, admin_stats, admin_update_contact,
};
use super::filter::{self, Schema};
use super::state::{GeneralCharge, Shared, TokenState};
use super::Fault;
use crate::simulator::{bearer_token, lock};

static CORRELATION_ID: HeaderName = HeaderName::from_static("x-hubspot-correlation-id");
const READ_SCOPE: &str = "crm.objects.contacts.read";
/// Returned for contacts when `properties` is not given (search guide, Objects table).
const DEFAULT_RETURNED: [&str; 6] = [
    "firstname",
    "lastname",
    "email",
    "lastmodifieddate",
    "hs_object_id",
    "createdate",
];
/// Always present alongside requested properties (as in the guide's examples).
const ALWAYS_RETURNED: [&str; 3] = ["hs_object_id", "createdate", "lastmodifieddate"];

pub(super) fn app(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/contacts", post(admin_insert_contact))
        .route("/contacts/{id}", patch(admin_update_contact))
        .route("/stats", get(admin_stats))
        .route("/config", patch(admin_patch_config))
        .route("/faults", post(admin_push_fault))
        .route("/tokens/expire", post(admin_expire_tokens))
        .route("/tokens/revoke", post(admin_revoke_token));
    Router::new()
        .route("/crm/v3/objects/contacts/search", post(search))
        .route("/crm/v3/objects/contacts/{id}", get(get_contact))
        .nest("/sim", admin)
        .fallback(|| async { Reject::Status(404).into_response() })
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Answers

enum Reject {
    InvalidAuthentication,
    ExpiredAuthentication {
        at: chrono::DateTime<Utc>,
    },
    MissingScopes,
    Validation {
        message: String,
        code: Option<&'static str>,
    },
    NotFound {
        id: String,
    },
    RateLimited {
        policy: String,
        message: &'static str,
        retry_after: Option<u64>,
    },
    Unavailable,
    Status(u16),
    Garbage,
    WrongShape,
}

fn error_body(status: StatusCode, body: Value, correlation_id: &str) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(correlation_id) {
        response.headers_mut().insert(CORRELATION_ID.clone(), value);
    }
    response
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let cid = Uuid::new_v4().to_string();
        let standard = |status: StatusCode, category: &str, message: &str| {
            error_body(
                status,
                json!({"status": "error", "message": message, "correlationId": cid, "category": category}),
                &cid,
            )
        };
        match self {
            // Observed bodies (HubSpot SDK issues, e.g. HubSpot/hubspot-api-nodejs).
            Reject::InvalidAuthentication => standard(
                StatusCode::UNAUTHORIZED,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            ),
            Reject::ExpiredAuthentication { at } => {
                let ago = (Utc::now() - at).num_seconds().max(0);
                error_body(
                    StatusCode::UNAUTHORIZED,
                    json!({"status": "error",
                           "message": format!("The OAuth token used to make this call expired {ago} second(s) ago."),
                           "correlationId": cid, "category": "EXPIRED_AUTHENTICATION",
                           "context": {"expire time": [at.to_rfc3339()]}}),
                    &cid,
                )
            }
            Reject::MissingScopes => error_body(
                StatusCode::FORBIDDEN,
                json!({"status": "error",
                       "message": "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
                       "correlationId": cid, "category": "MISSING_SCOPES",
                       "errors": [{"message": "One or more of the following scopes are required.",
                                   "context": {"requiredGranularScopes": [READ_SCOPE]}}]}),
                &cid,
            ),
            Reject::Validation { message, code } => {
                let mut body = json!({"status": "error", "message": message, "correlationId": cid,
                                      "category": "VALIDATION_ERROR"});
                if let (Some(code), Some(object)) = (code, body.as_object_mut()) {
                    object.insert("errors".to_owned(), json!([{"message": message, "code": code}]));
                }
                error_body(StatusCode::BAD_REQUEST, body, &cid)
            }
            Reject::NotFound { id } => error_body(
                StatusCode::NOT_FOUND,
                json!({"status": "error", "message": "Object not found.  objectId are usually numeric.",
                       "correlationId": cid, "context": {"id": [id]}, "category": "OBJECT_NOT_FOUND"}),
                &cid,
            ),
            // usage-details: {"status","message","errorType":"RATE_LIMIT","correlationId","policyName","requestId"}.
            Reject::RateLimited { policy, message, retry_after } => {
                let mut response = error_body(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"status": "error", "message": message, "errorType": "RATE_LIMIT",
                           "correlationId": cid, "policyName": policy,
                           "requestId": Uuid::new_v4().simple().to_string()}),
                    &cid,
                );
                if let Some(secs) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                response
            }
            // Outage and scripted wording are the simulator's (unverified).
            Reject::Unavailable => standard(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "Service unavailable"),
            Reject::Status(429) => Reject::RateLimited {
                policy: "SECONDLY".to_owned(),
                message: "You have reached your secondly limit.",
                retry_after: None,
            }
            .into_response(),
            Reject::Status(401) => Reject::InvalidAuthentication.into_response(),
            Reject::Status(status) => {
                let status = StatusCode::from_u16(status)
                    .ok()
                    .filter(|s| s.is_client_error() || s.is_server_error())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let category = if status.is_server_error() { "INTERNAL_ERROR" } else { "VALIDATION_ERROR" };
                standard(status, category, status.canonical_reason().unwrap_or("error"))
            }
            Reject::Garbage => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body>502 Bad Gateway</body></html>",
            )
                .into_response(),
            Reject::WrongShape => Json(json!({"total": "many", "results": {"id": 1}})).into_response(),
        }
    }
}

fn ok(body: Value) -> Response {
    let mut response = Json(body).into_response();
    if let Ok(value) = HeaderValue::from_str(&Uuid::new_v4().to_string()) {
        response.headers_mut().insert(CORRELATION_ID.clone(), value);
    }
    response
}

fn put_general_headers(response: &mut Response, charge: &GeneralCharge) {
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: u64| {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    };
    put("x-hubspot-ratelimit-interval-milliseconds", 10_000);
    put("x-hubspot-ratelimit-max", charge.max.into());
    put("x-hubspot-ratelimit-remaining", charge.remaining.into());
    put("x-hubspot-ratelimit-daily", charge.daily);
    put(
        "x-hubspot-ratelimit-daily-remaining",
        charge.daily_remaining,
    );
}

// ---------------------------------------------------------------------------------------------
// The gate

impl Shared {
    async fn faults(&self) -> Result<(), Reject> {
        let latency = lock(&self.settings).latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let (down, fault) = {
            let mut settings = lock(&self.settings);
            (settings.down, settings.faults.pop_front())
        };
        if down {
            return Err(Reject::Unavailable);
        }
        let Some(fault) = fault else {
            return Ok(());
        };
        lock(&self.stats).faults_injected += 1;
        match fault {
            Fault::Delay { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok(())
            }
            Fault::Status { status } => Err(Reject::Status(status)),
            Fault::Garbage => Err(Reject::Garbage),
            Fault::WrongShape => Err(Reject::WrongShape),
        }
    }

    /// The Bearer token, if it is valid now.
    fn authenticate(&self, headers: &HeaderMap) -> Result<String, Reject> {
        let result = match bearer_token(headers) {
            None => Err(Reject::InvalidAuthentication),
            Some(token) => match lock(&self.tokens).get(token) {
                None | Some(TokenState::Revoked) => Err(Reject::InvalidAuthentication),
                Some(TokenState::Expired { at }) => Err(Reject::ExpiredAuthentication { at: *at }),
                Some(TokenState::Valid {
                    expires_at: Some(at),
                }) if *at <= Instant::now() => {
                    let ago = Instant::now().saturating_duration_since(*at);
                    let ago = chrono::Duration::from_std(ago).unwrap_or_default();
                    Err(Reject::ExpiredAuthentication {
                        at: Utc::now() - ago,
                    })
                }
                Some(TokenState::Valid { .. }) => Ok(token.to_owned()),
            },
        };
        if result.is_err() {
            lock(&self.stats).auth_failures += 1;
        } else if !self.granted_scopes.iter().any(|s| s == READ_SCOPE) {
            return Err(Reject::MissingScopes);
        }
        result
    }

    async fn gate(&self, op: &'static str, headers: &HeaderMap) -> Result<String, Reject> {
        self.traffic.record(op);
        self.faults().await?;
        self.authenticate(headers)
    }
}

// ---------------------------------------------------------------------------------------------
// API

fn view(
    id: u64,
    contact: &super::state::Contact,
    props: &Map<String, Value>,
    requested: &[String],
) -> Value {
    let wanted: Vec<&str> = if requested.is_empty() {
        DEFAULT_RETURNED.to_vec()
    } else {
        requested
            .iter()
            .map(String::as_str)
            .chain(ALWAYS_RETURNED)
            .collect()
    };
    let mut properties = Map::new();
    for name in wanted {
        if let Some(value) = props.get(name) {
            properties.insert(name.to_owned(), value.clone());
        } else if DEFAULT_RETURNED.contains(&name) {
            properties.insert(name.to_owned(), Value::Null);
        }
    }
    json!({"id": id.to_string(), "properties": properties, "createdAt": contact.created_at,
           "updatedAt": props.get("lastmodifieddate").cloned().unwrap_or(Value::Null),
           "archived": false})
}

async fn search(State(sim): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = match sim.gate("search", &headers).await {
        Ok(token) => token,
        Err(reject) => return reject.into_response(),
    };
    if sim.admit_search(&token).is_err() {
        lock(&sim.stats).search_rate_limited += 1;
        let (policy, retry_after) = {
            let s = lock(&sim.settings);
            (s.search_policy_name.clone(), s.search_retry_after)
        };
        return Reject::RateLimited {
            policy,
            message: "You have reached your secondly limit.",
            retry_after,
        }
        .into_response();
    }
    lock(&sim.bodies).push(String::from_utf8_lossy(&body).into_owned());
    let (limits, unknown_property, phone_mode) = {
        let s = lock(&sim.settings);
        (s.filter_limits, s.unknown_property, s.phone_filter)
    };
    let known = |name: &str| sim.is_known_property(name);
    let schema = Schema {
        known: &known,
        limits,
        unknown_property,
    };
    let parsed = match filter::validate(&body, &schema) {
        Ok(parsed) => parsed,
        Err(invalid) => {
            lock(&sim.stats).invalid_requests += 1;
            return Reject::Validation {
                message: invalid.message,
                code: invalid.code,
            }
            .into_response();
        }
    };
    let standardise = |s: &str| sim.standardise(s);
    let now = Instant::now();
    let contacts = lock(&sim.contacts);
    let matches: Vec<Value> = contacts
        .iter()
        .filter_map(|(id, c)| c.search_view(now).map(|props| (id, c, props)))
        .filter(|(_, _, props)| parsed.matches(props, phone_mode, &standardise))
        .map(|(id, c, props)| view(*id, c, props, &parsed.properties))
        .collect();
    drop(contacts);
    let total = matches.len() as u64;
    let page: Vec<Value> = matches
        .into_iter()
        .skip(usize::try_from(parsed.after).unwrap_or(usize::MAX))
        .take(usize::try_from(parsed.limit).unwrap_or(usize::MAX))
        .collect();
    let next = parsed.after + parsed.limit;
    let mut answer = json!({"total": total, "results": page});
    if next < total {
        if let Some(object) = answer.as_object_mut() {
            object.insert(
                "paging".to_owned(),
                json!({"next": {"after": next.to_string(), "link": format!("?after={next}")}}),
            );
        }
    }
    // "Responses from the search API endpoints will not include any of the rate limit headers."
    ok(answer)
}

async fn get_contact(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let token = match sim.gate("get_contact", &headers).await {
        Ok(token) => token,
        Err(reject) => return reject.into_response(),
    };
    let charge = match sim.admit_general(&token) {
        Ok(charge) => charge,
        Err(policy) => {
            lock(&sim.stats).general_rate_limited += 1;
            let message = if policy == "DAILY" {
                "You have reached your daily limit."
            } else {
                "You have reached your ten secondly limit."
            };
            return Reject::RateLimited {
                policy: policy.to_owned(),
                message,
                retry_after: None,
            }
            .into_response();
        }
    };
    let requested: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "properties")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let id_property = params
        .iter()
        .find(|(k, _)| k == "idProperty")
        .map(|(_, v)| v.as_str());
    let contacts = lock(&sim.contacts);
    let found = match id_property {
        None => id
            .parse::<u64>()
            .ok()
            .and_then(|n| contacts.get(&n).map(|c| (n, c))),
        Some("email") => contacts.iter().find_map(|(n, c)| {
            let email = c.properties.get("email").and_then(Value::as_str)?;
            email.eq_ignore_ascii_case(id.trim()).then_some((*n, c))
        }),
        Some(other) => {
            drop(contacts);
            return Reject::Validation {
                message: format!("{other} is not a unique identifier property for contacts"),
                code: None,
            }
            .into_response();
        }
    };
    let mut response = match found.filter(|(_, c)| !c.archived) {
        Some((n, c)) => ok(view(n, c, &c.properties, &requested)),
        None => Reject::NotFound { id }.into_response(),
    };
    drop(contacts);
    put_general_headers(&mut response, &charge);
    response
}
