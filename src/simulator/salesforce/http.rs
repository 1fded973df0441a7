//! The REST API and OAuth token endpoint as a client sees them: routing, the faults and limits every request
//! passes first, and the handlers.

use super::*;
pub(super) fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/data/{version}/search", get(search))
        .route("/services/data/{version}/search/", get(search))
        .route("/services/data/{version}/query", get(query))
        .route("/services/data/{version}/query/", get(query))
        .route("/services/data/{version}/query/{locator}", get(query_more))
        .route("/sim/records", post(admin::admin_insert))
        .route("/sim/faults", post(admin::admin_fault))
        .route("/sim/config", patch(admin::admin_config))
        .route("/sim/tokens/expire", post(admin::admin_expire))
        .route("/sim/stats", get(admin::admin_stats))
        .with_state(shared)
}

/// The faults and delays every operation goes through first.
enum Gate {
    Pass,
    Answer(Response),
}

async fn before(shared: &Shared, op: Op) -> (Gate, Duration) {
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
    let gate = if down {
        Gate::Answer(unavailable())
    } else {
        match fault {
            None | Some(Fault::Delay { .. }) => Gate::Pass,
            Some(Fault::Status { status }) if op == Op::Token => Gate::Answer(
                (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    Json(
                        json!({"error": "server_error", "error_description": "simulated failure"}),
                    ),
                )
                    .into_response(),
            ),
            Some(Fault::Status { status }) => Gate::Answer(status_fault(status)),
            Some(Fault::Garbage) => Gate::Answer(garbage()),
            Some(Fault::WrongShape) => Gate::Answer(wrong_shape()),
            Some(Fault::InvalidSession) => Gate::Answer(invalid_session()),
            Some(Fault::DailyLimit) => Gate::Answer(total_requests_exceeded()),
        }
    };
    (gate, delay)
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let (gate, delay) = before(&shared, Op::Token).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Gate::Answer(response) = gate {
        return response;
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let issued = {
        let mut state = lock(&shared.state);
        auth::grant(
            &shared.config.auth,
            &mut state.sessions,
            &form,
            basic,
            Instant::now(),
        )
    };
    match issued {
        Ok(issued) => Json(auth::token_body(&issued, &instance_url(&headers))).into_response(),
        Err(error) => (error.status, Json(error.body())).into_response(),
    }
}

/// `http://<Host>`: the URL the client reached us on, so a router mounted elsewhere still
/// hands out an `instance_url` that works.
fn instance_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// `Authorization: Bearer <token>` or the older `OAuth <token>` scheme the docs also show.
fn session_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    ((scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        && !token.is_empty())
    .then_some(token)
}

/// Everything a REST call goes through before its resource: faults, latency (with the
/// long-running limit), session, API version, and the daily allocation. On success the call is
/// counted and the `Sforce-Limit-Info` value to send is returned.
async fn rest_gate(
    shared: &Shared,
    op: Op,
    headers: &HeaderMap,
    version: &str,
) -> Result<HeaderValue, Response> {
    let (gate, delay) = before(shared, op).await;
    let long_running = delay >= shared.config.long_running_threshold;
    if long_running {
        let mut state = lock(&shared.state);
        if state.long_running >= shared.config.concurrent_long_running_limit {
            return Err(api_error(
                StatusCode::FORBIDDEN,
                "REQUEST_LIMIT_EXCEEDED",
                "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
            ));
        }
        state.long_running += 1;
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if long_running {
        lock(&shared.state).long_running -= 1;
    }
    if let Gate::Answer(response) = gate {
        return Err(response);
    }
    let mut state = lock(&shared.state);
    let Some(token) = session_token(headers) else {
        return Err(invalid_session());
    };
    if state
        .sessions
        .check(token, shared.config.auth.sessions, Instant::now())
        .is_none()
    {
        return Err(invalid_session());
    }
    prune_usage(&mut state, shared.config.allocation_window);
    let used = state.usage.len() as u64;
    let limit = state.daily_api_limit;
    let usage_header = |used: u64| {
        HeaderValue::from_str(&format!("api-usage={used}/{limit}"))
            .unwrap_or_else(|_| HeaderValue::from_static("api-usage=0/0"))
    };
    if used >= limit {
        let mut response = total_requests_exceeded();
        response
            .headers_mut()
            .insert(LIMIT_INFO.clone(), usage_header(used));
        return Err(response);
    }
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.strip_suffix(".0"))
        .and_then(|v| v.parse::<u32>().ok());
    state.usage.push_back(Instant::now());
    let header = usage_header(used + 1);
    if !major.is_some_and(|m| shared.config.api_versions.contains(&m)) {
        let mut response = api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        );
        response.headers_mut().insert(LIMIT_INFO.clone(), header);
        return Err(response);
    }
    Ok(header)
}

fn with_limit_info(mut response: Response, header: HeaderValue) -> Response {
    response.headers_mut().insert(LIMIT_INFO.clone(), header);
    response
}

#[derive(Deserialize)]
struct QParam {
    q: Option<String>,
}

async fn search(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(params): Query<QParam>,
) -> Response {
    let header = match rest_gate(&shared, Op::Search, &headers, &version).await {
        Ok(header) => header,
        Err(response) => return response,
    };
    let response = match params.q {
        None => query_fault(QueryFault::malformed_search(
            "A search string has to be specified",
        )),
        Some(q) => {
            lock(&shared.state).queries.push(q.clone());
            match run_search(&shared, &version, &q) {
                Ok(body) => (StatusCode::OK, Json(body)).into_response(),
                Err(fault) => query_fault(fault),
            }
        }
    };
    with_limit_info(response, header)
}

fn run_search(shared: &Shared, version: &str, q: &str) -> Result<Value, QueryFault> {
    let search = sosl::parse(q)?;
    let mut targets = Vec::new();
    for returning in &search.returning {
        let schema = shared
            .schema(&returning.object)
            .ok_or_else(|| QueryFault::invalid_type(&returning.object))?;
        let fields = if returning.fields.is_empty() {
            vec!["Id".to_owned()]
        } else {
            resolve_fields(schema, &returning.fields)?
        };
        targets.push((schema, fields));
    }
    let limit = search.limit.unwrap_or(2000).min(2000);
    let state = lock(&shared.state);
    let mut found = Vec::new();
    'objects: for (schema, fields) in &targets {
        for record in state.records.iter().filter(|r| r.object == schema.name) {
            if found.len() >= limit {
                break 'objects;
            }
            if sosl::matches(&search, schema, record, state.phone_match) {
                found.push(record.render(version, fields));
            }
        }
    }
    // Before API 36.0 the Search resource answered a bare array.
    let major = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    Ok(if major.is_some_and(|m| m < 36) {
        Value::Array(found)
    } else {
        json!({ "searchRecords": found })
    })
}

async fn query(
    State(shared): State<Arc<Shared>>,
    Path(version): Path<String>,
    headers: HeaderMap,
    Query(params): Query<QParam>,
) -> Response {
    let header = match rest_gate(&shared, Op::Query, &headers, &version).await {
        Ok(header) => header,
        Err(response) => return response,
    };
    let response = match params.q {
        None => query_fault(QueryFault::malformed_query(
            "A query string has to be specified",
        )),
        Some(q) => {
            lock(&shared.state).queries.push(q.clone());
            match run_query(&shared, &version, &q) {
                Ok(body) => (StatusCode::OK, Json(body)).into_response(),
                Err(fault) => query_fault(fault),
            }
        }
    };
    with_limit_info(response, header)
}

fn run_query(shared: &Shared, version: &str, q: &str) -> Result<Value, QueryFault> {
    let parsed = soql::parse(q)?;
    let schema = shared
        .schema(&parsed.object)
        .ok_or_else(|| QueryFault::invalid_type(&parsed.object))?;
    let soql::Resolved {
        fields,
        condition,
        order_by,
    } = soql::resolve(&parsed, schema)?;
    let mut state = lock(&shared.state);
    let mut hits: Vec<&Record> = state
        .records
        .iter()
        .filter(|r| r.object == schema.name)
        .filter(|r| {
            condition
                .as_ref()
                .is_none_or(|c| soql::satisfies(c, schema, r))
        })
        .collect();
    if let Some(order) = &order_by {
        soql::sort(&mut hits, order);
    }
    if let Some(limit) = parsed.limit {
        hits.truncate(limit);
    }
    let mut rendered: Vec<Value> = hits.iter().map(|r| r.render(version, &fields)).collect();
    let total = rendered.len();
    let batch = shared.config.query_batch_size.max(1);
    if total <= batch {
        return Ok(json!({"totalSize": total, "done": true, "records": rendered}));
    }
    let rest = rendered.split_off(batch);
    let locator = format!("01gSIM{:012}-{batch}", state.next_cursor);
    state.next_cursor += 1;
    state
        .cursors
        .insert(locator.clone(), (version.to_owned(), rest));
    Ok(json!({
        "totalSize": total,
        "done": false,
        "nextRecordsUrl": format!("/services/data/{version}/query/{locator}"),
        "records": rendered,
    }))
}

async fn query_more(
    State(shared): State<Arc<Shared>>,
    Path((version, locator)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let header = match rest_gate(&shared, Op::Query, &headers, &version).await {
        Ok(header) => header,
        Err(response) => return response,
    };
    let mut state = lock(&shared.state);
    let batch = shared.config.query_batch_size.max(1);
    let response = match state.cursors.remove(&locator) {
        None => api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        ),
        Some((cursor_version, mut rest)) => {
            let total_left = rest.len();
            if rest.len() > batch {
                let more = rest.split_off(batch);
                let next = format!("01gSIM{:012}-{batch}", state.next_cursor);
                state.next_cursor += 1;
                state
                    .cursors
                    .insert(next.clone(), (cursor_version.clone(), more));
                Json(json!({"totalSize": total_left, "done": false,
                    "nextRecordsUrl": format!("/services/data/{cursor_version}/query/{next}"), "records": rest}))
                .into_response()
            } else {
                Json(json!({"totalSize": total_left, "done": true, "records": rest}))
                    .into_response()
            }
        }
    };
    with_limit_info(response, header)
}
