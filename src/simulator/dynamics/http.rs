//! The Entra token endpoint and Web API as a client sees them: routing, the faults and limits every request
//! passes first, and the handlers.

use super::*;
pub(super) fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/api/data/{version}/{entity_set}", get(query))
        .route("/sim/rows", post(admin::admin_insert))
        .route("/sim/faults", post(admin::admin_fault))
        .route("/sim/config", patch(admin::admin_config))
        .route("/sim/tokens/expire", post(admin::admin_expire))
        .route("/sim/stats", get(admin::admin_stats))
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
