//! The Zendesk simulator's HTTP surface: the API as a client sees it (search, Search Users,
//! Show User, `POST /oauth/tokens`) behind one gate, and the `/sim/...` admin API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::admin::{
    admin_expire_tokens, admin_insert_user, admin_patch_config, admin_push_fault, admin_stats,
};
use super::answers::{put_rate_headers, zendesk_error, Reject};
use super::search;
use super::state::{Charge, Shared};
use super::Fault;
use crate::simulator::{bearer_token, lock};

const MAX_PER_PAGE: usize = 100;
/// "The Search API returns up to 1,000 results per query".
const MAX_SEARCH_RESULTS: usize = 1_000;

pub(super) fn app(shared: Arc<Shared>) -> Router {
    let admin = Router::new()
        .route("/users", post(admin_insert_user))
        .route("/stats", get(admin_stats))
        .route("/config", patch(admin_patch_config))
        .route("/faults", post(admin_push_fault))
        .route("/tokens/expire", post(admin_expire_tokens));
    Router::new()
        .route("/api/v2/search.json", get(search_all))
        .route("/api/v2/search", get(search_all))
        .route("/api/v2/users/search.json", get(search_users))
        .route("/api/v2/users/search", get(search_users))
        .route("/api/v2/users/{id}", get(show_user))
        .route("/oauth/tokens", post(issue_token))
        .nest("/sim", admin)
        .fallback(|| async { zendesk_error(StatusCode::NOT_FOUND, "InvalidEndpoint", "Not found") })
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// The gate

enum Credentials {
    None,
    Basic(String),
    Bearer(String),
}

fn credentials(headers: &HeaderMap) -> Credentials {
    if let Some(token) = bearer_token(headers) {
        return Credentials::Bearer(token.to_owned());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, encoded)| STANDARD.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map_or(Credentials::None, Credentials::Basic)
}

impl Shared {
    /// `{email}/token:{api_token}` with token access on and a known token; password access
    /// (`{email}:{password}`) is never enabled in the simulator.
    fn api_token_ok(&self, decoded: &str) -> bool {
        let Some((user, token)) = decoded.split_once(':') else {
            return false;
        };
        let Some(email) = user.strip_suffix("/token") else {
            return false;
        };
        lock(&self.settings).api_token_access
            && email.eq_ignore_ascii_case(&self.agent_email)
            && self.api_tokens.iter().any(|t| t == token)
    }

    fn authenticate(&self, headers: &HeaderMap) -> Result<(), Reject> {
        let result = match credentials(headers) {
            Credentials::Basic(decoded) if self.api_token_ok(&decoded) => Ok(()),
            Credentials::Bearer(token)
                if lock(&self.settings).oauth_access && self.token_valid(&token) =>
            {
                Ok(())
            }
            Credentials::Bearer(_) => Err(Reject::InvalidToken),
            Credentials::Basic(_) | Credentials::None => Err(Reject::CouldntAuthenticate),
        };
        if result.is_err() {
            lock(&self.stats).auth_failures += 1;
        }
        result
    }

    /// Latency, outage, scripted fault: shared by the API and the token endpoint.
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
            Fault::Status { status } => Err(Reject::Scripted(status)),
            Fault::Garbage => Err(Reject::Garbage),
            Fault::WrongShape => Err(Reject::WrongShape),
        }
    }

    async fn gate(
        &self,
        op: &'static str,
        headers: &HeaderMap,
        is_search: bool,
    ) -> Result<Charge, Reject> {
        self.traffic.record(op);
        self.faults().await?;
        self.authenticate(headers)?;
        let charge = self.charge(is_search);
        if let Some(wait) = charge.rejected {
            lock(&self.stats).rate_limited += 1;
            return Err(Reject::TooManyRequests {
                limit: charge.limit,
                search: charge.search.map(|(total, _)| total),
                wait,
            });
        }
        Ok(charge)
    }
}

fn finish(charge: &Charge, mut response: Response) -> Response {
    put_rate_headers(response.headers_mut(), charge);
    response
}

// ---------------------------------------------------------------------------------------------
// API

fn user_view(host: &str, mut user: Map<String, Value>, result_type: bool) -> Value {
    if let Some(id) = user.get("id").and_then(Value::as_u64) {
        user.insert(
            "url".to_owned(),
            json!(format!("http://{host}/api/v2/users/{id}.json")),
        );
    }
    if result_type {
        user.insert("result_type".to_owned(), json!("user"));
    }
    Value::Object(user)
}

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned()
}

/// `page` and `per_page` (offset pagination): per_page at most 100, pages past `max` invalid.
fn page_of(
    params: &HashMap<String, String>,
    users: Vec<Map<String, Value>>,
    max: usize,
) -> Result<(Vec<Map<String, Value>>, usize), Reject> {
    let per_page = params
        .get("per_page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(MAX_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    let page = params
        .get("page")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    if (page - 1) * per_page >= max && page > 1 {
        return Err(Reject::InvalidSearch(
            "requested response size was greater than search response limits".to_owned(),
        ));
    }
    let count = users.len();
    Ok((
        users
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect(),
        count,
    ))
}

async fn search_all(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let charge = match sim.gate("search", &headers, true).await {
        Ok(charge) => charge,
        Err(reject) => return reject.into_response(),
    };
    let response = match run_query(&sim, params.get("query")) {
        Ok(users) => match page_of(&params, users, MAX_SEARCH_RESULTS) {
            Ok((page, count)) => {
                let host = host(&headers);
                let results: Vec<Value> = page
                    .into_iter()
                    .map(|u| user_view(&host, u, true))
                    .collect();
                Json(json!({
                    "results": results, "facets": null, "next_page": null,
                    "previous_page": null, "count": count
                }))
                .into_response()
            }
            Err(reject) => reject.into_response(),
        },
        Err(reject) => reject.into_response(),
    };
    finish(&charge, response)
}

async fn search_users(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let charge = match sim.gate("users_search", &headers, false).await {
        Ok(charge) => charge,
        Err(reject) => return reject.into_response(),
    };
    let users = match (params.get("external_id"), params.get("query")) {
        // "The external_id parameter does not support the search syntax. It only accepts ids."
        (Some(id), _) => Ok(sim.search(|u| {
            u.get("external_id")
                .and_then(Value::as_str)
                .is_some_and(|stored| stored.eq_ignore_ascii_case(id.trim()))
        })),
        (None, Some(_)) => run_query(&sim, params.get("query")),
        (None, None) => Err(Reject::BadRequest(
            "a query or external_id parameter is required".to_owned(),
        )),
    };
    let response = match users.and_then(|users| page_of(&params, users, 10_000)) {
        Ok((page, count)) => {
            let host = host(&headers);
            let users: Vec<Value> = page
                .into_iter()
                .map(|u| user_view(&host, u, false))
                .collect();
            Json(json!({"users": users, "next_page": null, "previous_page": null, "count": count}))
                .into_response()
        }
        Err(reject) => reject.into_response(),
    };
    finish(&charge, response)
}

fn run_query(sim: &Shared, query: Option<&String>) -> Result<Vec<Map<String, Value>>, Reject> {
    let Some(query) = query else {
        return Err(Reject::InvalidSearch(
            "the query parameter is required".to_owned(),
        ));
    };
    lock(&sim.queries).push(query.clone());
    let parsed = search::parse(query, &sim.user_fields).map_err(|reason| {
        lock(&sim.stats).invalid_queries += 1;
        Reject::InvalidSearch(reason)
    })?;
    let mode = lock(&sim.settings).phone_exact;
    Ok(sim.search(|user| parsed.matches(user, mode)))
}

async fn show_user(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let charge = match sim.gate("show_user", &headers, false).await {
        Ok(charge) => charge,
        Err(reject) => return reject.into_response(),
    };
    let user = id
        .strip_suffix(".json")
        .unwrap_or(&id)
        .parse::<u64>()
        .ok()
        .and_then(|id| sim.user(id));
    let response = match user {
        Some(user) => {
            Json(json!({"user": user_view(&host(&headers), user, false)})).into_response()
        }
        None => Reject::NotFound.into_response(),
    };
    finish(&charge, response)
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
    expires_in: Option<u64>,
}

/// `POST /oauth/tokens` with a JSON body, `client_credentials` grant only (the one a server
/// uses; api-reference/ticketing/oauth/grant_type_tokens/). Error bodies follow RFC 6749 §5.2:
/// Zendesk's own wording for them is unverified.
async fn issue_token(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    sim.traffic.record("token");
    if let Err(reject) = sim.faults().await {
        return reject.into_response();
    }
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (
            status,
            Json(json!({"error": error, "error_description": description})),
        )
            .into_response()
    };
    let Ok(request) = serde_json::from_slice::<TokenRequest>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request body must be JSON.",
        );
    };
    if request.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let known = sim.oauth_clients.iter().any(|c| {
        Some(c.id.as_str()) == request.client_id.as_deref()
            && Some(c.secret.as_str()) == request.client_secret.as_deref()
    });
    if !known {
        lock(&sim.stats).auth_failures += 1;
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    }
    // "Must be more than 300 seconds (5 minutes) and less than 172,800 seconds (2 days)".
    if request.expires_in.is_some_and(|s| s <= 300 || s >= 172_800) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expires_in must be more than 300 and less than 172800 seconds",
        );
    }
    let lifetime = request
        .expires_in
        .map(Duration::from_secs)
        .or(sim.default_token_lifetime);
    let token = sim.issue_token(lifetime);
    let mut answer = json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": request.scope.unwrap_or_else(|| "read".to_owned()),
    });
    if let (Some(lifetime), Some(object)) = (lifetime, answer.as_object_mut()) {
        object.insert("expires_in".to_owned(), json!(lifetime.as_secs()));
    }
    (StatusCode::CREATED, Json(answer)).into_response()
}
