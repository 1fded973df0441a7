use super::*;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sim_state(config: FreshdeskSimConfig) -> Result<Arc<Shared>, InsertError> {
    let shared = Arc::new(Shared::new(config));
    for contact in FreshdeskSim::sample_contacts() {
        shared.insert(contact)?;
    }
    Ok(shared)
}

fn key_auth(key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{key}:X")))
}

async fn send(
    shared: &Arc<Shared>,
    uri: &str,
    authorization: Option<&str>,
) -> Result<(StatusCode, HeaderMap, Value), Box<dyn std::error::Error>> {
    let mut request = Request::get(uri);
    if let Some(a) = authorization {
        request = request.header(header::AUTHORIZATION, a);
    }
    let response = app(Arc::clone(shared))
        .oneshot(request.body(Body::empty())?)
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok((status, headers, body))
}

async fn get_ok(shared: &Arc<Shared>, uri: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let (status, _, body) = send(shared, uri, Some(&key_auth("sim-api-key"))).await?;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    Ok(body)
}

fn ids(list: &Value) -> Vec<u64> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_u64())
        .collect()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

const ADA: u64 = 43000000101;
const GRACE: u64 = 43000000102;

#[tokio::test]
async fn a_list_filter_matches_the_stored_phone_text_exactly_by_default() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    assert_eq!(
        ids(&get_ok(&sim, "/api/v2/contacts?phone=%2B13175550125").await?),
        [ADA]
    );
    assert!(ids(&get_ok(&sim, "/api/v2/contacts?phone=13175550125").await?).is_empty());
    assert_eq!(
        ids(&get_ok(&sim, "/api/v2/contacts?mobile=%2B1%20317%20555%200199").await?),
        [GRACE]
    );
    // An unencoded `+` is decoded as a space and matches nothing.
    assert!(ids(&get_ok(&sim, "/api/v2/contacts?phone=+13175550125").await?).is_empty());

    sim.settings
        .lock()
        .map_err(|e| e.to_string())?
        .phone_digits_only = true;
    assert_eq!(
        ids(&get_ok(&sim, "/api/v2/contacts?mobile=13175550199").await?),
        [GRACE]
    );
    Ok(())
}

#[tokio::test]
async fn emails_match_without_case_and_deleted_contacts_are_left_out() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    assert_eq!(
        ids(&get_ok(&sim, "/api/v2/contacts?email=grace.hopper%40EXAMPLE.com").await?),
        [GRACE]
    );
    assert!(ids(&get_ok(&sim, "/api/v2/contacts?email=alan%40example.co.uk").await?).is_empty());
    assert_eq!(
        ids(&get_ok(
            &sim,
            "/api/v2/contacts?email=alan%40example.co.uk&state=deleted"
        )
        .await?),
        [43000000103]
    );
    let all = get_ok(&sim, "/api/v2/contacts?per_page=1&page=2").await?;
    assert_eq!(ids(&all), [GRACE]);
    Ok(())
}

#[tokio::test]
async fn an_unknown_filter_or_bad_page_size_is_a_validation_error() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    let (status, _, body) = send(
        &sim,
        "/api/v2/contacts?phone_number=1",
        Some(&key_auth("sim-api-key")),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"description": "Validation failed", "errors": [{"field": "phone_number", "message": "Unexpected/invalid field in request", "code": "invalid_field"}]})
    );
    let (status, _, body) = send(
        &sim,
        "/api/v2/contacts?per_page=101",
        Some(&key_auth("sim-api-key")),
    )
    .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["code"], "invalid_value");
    Ok(())
}

#[tokio::test]
async fn the_api_key_is_the_basic_user_name_with_any_password() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    let any_password = format!("Basic {}", STANDARD.encode("sim-api-key:whatever"));
    assert_eq!(
        send(&sim, "/api/v2/contacts", Some(&any_password)).await?.0,
        StatusCode::OK
    );
    for authorization in [
        Some(key_auth("other-key")),
        Some("Bearer sim-api-key".to_owned()),
        None,
    ] {
        let (status, headers, body) =
            send(&sim, "/api/v2/contacts", authorization.as_deref()).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})
        );
        assert!(headers.contains_key("x-ratelimit-remaining"));
    }
    sim.settings.lock().map_err(|e| e.to_string())?.api_keys = vec!["rotated".to_owned()];
    assert_eq!(
        send(&sim, "/api/v2/contacts", Some(&any_password)).await?.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&sim, "/api/v2/contacts", Some(&key_auth("rotated")))
            .await?
            .0,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_contacts_list_cap_throttles_with_retry_after_and_every_answer_carries_the_headers(
) -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::for_plan(Plan::Growth))?;
    for n in 0..20u64 {
        let (status, headers, _) = send(
            &sim,
            "/api/v2/contacts?phone=x",
            Some(&key_auth("sim-api-key")),
        )
        .await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_u64(&headers, "x-ratelimit-total"), Some(200));
        assert_eq!(header_u64(&headers, "x-ratelimit-remaining"), Some(199 - n));
        assert_eq!(
            header_u64(&headers, "x-ratelimit-used-currentrequest"),
            Some(1)
        );
    }
    let (status, headers, body) = send(
        &sim,
        "/api/v2/contacts?phone=x",
        Some(&key_auth("sim-api-key")),
    )
    .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body, Value::Null);
    let retry_after = header_u64(&headers, "retry-after").unwrap_or(0);
    assert!((1..=60).contains(&retry_after));
    assert_eq!(header_u64(&headers, "x-ratelimit-remaining"), Some(180));
    // Other endpoints still have the account's budget.
    assert_eq!(
        send(
            &sim,
            &format!("/api/v2/contacts/{ADA}"),
            Some(&key_auth("sim-api-key"))
        )
        .await?
        .0,
        StatusCode::OK
    );

    tokio::time::advance(Duration::from_secs(retry_after)).await;
    let (status, headers, _) = send(
        &sim,
        "/api/v2/contacts?phone=x",
        Some(&key_auth("sim-api-key")),
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_u64(&headers, "x-ratelimit-remaining"), Some(199));
    assert_eq!(sim.stats().throttled, 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn the_account_limit_counts_invalid_requests_too() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig {
        per_minute: 3,
        throttle_body: ThrottleBody::Json,
        ..FreshdeskSimConfig::default()
    })?;
    assert_eq!(
        send(&sim, "/api/v2/contacts", None).await?.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(
            &sim,
            "/api/v2/contacts?bogus=1",
            Some(&key_auth("sim-api-key"))
        )
        .await?
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(
            &sim,
            "/api/v2/search/contacts?query=%22phone%3A%27x%27%22",
            Some(&key_auth("sim-api-key"))
        )
        .await?
        .0,
        StatusCode::OK
    );
    let (status, _, body) = send(
        &sim,
        &format!("/api/v2/contacts/{ADA}"),
        Some(&key_auth("sim-api-key")),
    )
    .await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body["message"].is_string());
    Ok(())
}

#[tokio::test]
async fn a_search_ors_quoted_terms_and_answers_total_and_results() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    let body = get_ok(&sim, "/api/v2/search/contacts?query=%22phone%3A%27%2B13175550125%27%20OR%20mobile%3A%27%2B1%20317%20555%200199%27%22").await?;
    assert_eq!(body["total"], 2);
    assert_eq!(ids(&body["results"]), [ADA, GRACE]);
    let body = get_ok(
        &sim,
        "/api/v2/search/contacts?query=%22unique_external_id%3A%27C-1001%27%22&page=1",
    )
    .await?;
    assert_eq!(ids(&body["results"]), [ADA]);
    assert_eq!(sim.stats().queries.len(), 2);
    assert!(sim.stats().rejected_queries.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_malformed_search_is_a_validation_error_and_recorded() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    for uri in [
        "/api/v2/search/contacts?query=phone%3A%27x%27",
        "/api/v2/search/contacts?query=%22phone%3A%27x%27%20OR%20%27a%27%3D%27a%27%22",
        "/api/v2/search/contacts?query=%22phone%3A%27x%27%22&page=11",
        "/api/v2/search/contacts",
    ] {
        let (status, _, body) = send(&sim, uri, Some(&key_auth("sim-api-key"))).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(body["description"], "Validation failed");
    }
    assert_eq!(sim.stats().rejected_queries.len(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn search_does_not_see_a_new_contact_until_the_index_catches_up() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig {
        search_index_delay: Duration::from_secs(120),
        ..FreshdeskSimConfig::default()
    })?;
    sim.insert(json!({"phone": "+15555550100"}))?;
    let uri = "/api/v2/search/contacts?query=%22phone%3A%27%2B15555550100%27%22";
    assert_eq!(get_ok(&sim, uri).await?["total"], 0);
    assert_eq!(
        ids(&get_ok(&sim, "/api/v2/contacts?phone=%2B15555550100").await?).len(),
        1
    );
    tokio::time::advance(Duration::from_secs(120)).await;
    assert_eq!(get_ok(&sim, uri).await?["total"], 1);
    Ok(())
}

#[tokio::test]
async fn a_contact_is_fetched_by_id_and_unknown_or_deleted_ones_are_not_found() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    let body = get_ok(&sim, &format!("/api/v2/contacts/{ADA}")).await?;
    assert_eq!(body["custom_fields"]["tier"], "gold");
    assert!(body["updated_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    for id in ["1", "43000000103", "abc"] {
        let (status, headers, _) = send(
            &sim,
            &format!("/api/v2/contacts/{id}"),
            Some(&key_auth("sim-api-key")),
        )
        .await?;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(headers.contains_key("x-ratelimit-total"));
    }
    Ok(())
}

#[tokio::test]
async fn scripted_faults_and_an_outage_come_before_normal_handling() -> TestResult {
    let sim = sim_state(FreshdeskSimConfig::default())?;
    {
        let mut faults = sim.faults.lock().map_err(|e| e.to_string())?;
        faults[Op::ContactsList as usize].extend([
            Fault::Status { status: 503 },
            Fault::NotJson,
            Fault::WrongShape,
            Fault::Status { status: 429 },
            Fault::Delay { millis: 1 },
        ]);
    }
    let auth = key_auth("sim-api-key");
    let (status, _, _) = send(&sim, "/api/v2/contacts", Some(&auth)).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (_, _, body) = send(&sim, "/api/v2/contacts", Some(&auth)).await?;
    assert!(body.is_string());
    let (_, _, body) = send(&sim, "/api/v2/contacts", Some(&auth)).await?;
    assert_eq!(body, json!({"contacts": []}));
    let (status, headers, _) = send(&sim, "/api/v2/contacts", Some(&auth)).await?;
    assert_eq!(
        (status, headers.get(header::RETRY_AFTER)),
        (StatusCode::TOO_MANY_REQUESTS, Some(&HeaderValue::from(1)))
    );
    assert_eq!(
        send(&sim, "/api/v2/contacts", Some(&auth)).await?.0,
        StatusCode::OK
    );
    sim.settings.lock().map_err(|e| e.to_string())?.down = true;
    assert_eq!(
        send(&sim, "/api/v2/search/contacts", Some(&auth)).await?.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(sim.stats().faults_injected, 5);
    assert_eq!(sim.stats().requests.get("contacts_list"), Some(&5));
    Ok(())
}

#[test]
fn contacts_without_an_object_or_with_a_bad_id_are_refused() {
    let sim = Shared::new(FreshdeskSimConfig::default());
    assert_eq!(sim.insert(json!("x")), Err(InsertError::NotAnObject));
    assert_eq!(sim.insert(json!({"id": -3})), Err(InsertError::BadId));
    assert_eq!(sim.insert(json!({"id": "7"})), Err(InsertError::BadId));
    assert_eq!(sim.insert(json!({})), Ok(43000000001));
    assert_eq!(sim.insert(json!({})), Ok(43000000002));
}

#[tokio::test]
async fn the_admin_api_inserts_configures_and_reports() -> TestResult {
    let sim = FreshdeskSim::start(
        FreshdeskSimConfig::default(),
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = sim.base_url();
    let created = client
        .post(format!("{base}/sim/contacts"))
        .json(&json!({"phone": "+15555550100"}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let config = client
        .patch(format!("{base}/sim/config"))
        .json(&json!({"plan": "trial", "phoneDigitsOnly": true}))
        .send()
        .await?;
    let config: Value = config.json().await?;
    assert_eq!(
        (
            config["perMinute"].clone(),
            config["phoneDigitsOnly"].clone()
        ),
        (json!(50), json!(true))
    );
    let found: Value = client
        .get(format!("{base}/api/v2/contacts"))
        .query(&[("phone", "1 555 555 0100")])
        .basic_auth("sim-api-key", Some("X"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    let fault = client
        .post(format!("{base}/sim/faults"))
        .json(&json!({"op": "search", "fault": {"kind": "status", "status": 500}}))
        .send()
        .await?;
    assert_eq!(fault.status(), 204);
    assert_eq!(
        client
            .post(format!("{base}/sim/rate-limit/reset"))
            .send()
            .await?
            .status(),
        204
    );
    let stats: Value = client
        .get(format!("{base}/sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["requests"]["contacts_list"], 1);
    assert_eq!(sim.traffic().total(), 1);
    sim.shutdown();
    Ok(())
}
