use super::*;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tower::ServiceExt;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sim_state(config: ServiceNowSimConfig) -> Result<Arc<Shared>, InsertError> {
    let shared = Arc::new(Shared::new(config));
    for (table, record) in ServiceNowSim::sample_records() {
        shared.insert(table, record)?;
    }
    Ok(shared)
}

fn basic() -> String {
    format!(
        "Basic {}",
        STANDARD.encode("attrsync.integration:sim-password")
    )
}

/// Through the router without sockets, so paused time works.
async fn send(
    shared: &Arc<Shared>,
    request: Request<Body>,
) -> Result<(StatusCode, HeaderMap, Value), Box<dyn std::error::Error>> {
    let response = app(Arc::clone(shared)).oneshot(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok((status, headers, body))
}

fn get(path_and_query: &str, authorization: &str) -> Result<Request<Body>, axum::http::Error> {
    Request::get(path_and_query)
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
}

fn token_request(form: &str) -> Result<Request<Body>, axum::http::Error> {
    Request::post("/oauth_token.do")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
}

fn ids(body: &Value) -> Vec<String> {
    body["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["sys_id"].as_str().map(str::to_owned))
        .collect()
}

const ADA: &str = "6816f79cc0a8016401c5a33be04be441";
const GRACE: &str = "9ee1b13dc6112271007f9d0efdb69cd0";
const GEORGE: &str = "ddce70866f9331003b3c498f5d3ee417";

#[tokio::test]
async fn a_phone_query_returns_the_matching_user_in_the_table_api_shape() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (status, headers, body) = send(
        &sim,
        get("/api/now/table/sys_user?sysparm_query=phone%3D%2B13175550125%5EORmobile_phone%3D%2B13175550125&sysparm_fields=sys_id,phone,sys_updated_on", &basic())?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("x-total-count"), Some(&HeaderValue::from(1)));
    assert_eq!(
        body,
        json!({"result": [{"sys_id": ADA, "phone": "+13175550125", "sys_updated_on": "2024-05-01 10:00:00"}]})
    );
    assert_eq!(
        sim.stats().queries,
        ["phone=+13175550125^ORmobile_phone=+13175550125"]
    );
    assert!(sim.stats().invalid_query_parts.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_unencoded_plus_arrives_as_a_space_and_matches_nothing() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (_, _, body) = send(
        &sim,
        get(
            "/api/now/table/sys_user?sysparm_query=phone=+13175550125",
            &basic(),
        )?,
    )
    .await?;
    assert!(ids(&body).is_empty());
    assert_eq!(sim.stats().queries, ["phone= 13175550125"]);
    Ok(())
}

#[tokio::test]
async fn querying_the_parent_table_returns_the_child_tables_rows_with_their_class() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (_, _, body) = send(
        &sim,
        get(
            "/api/now/table/sys_user?sysparm_query=phone%3D%2B1%20858%20287%207834",
            &basic(),
        )?,
    )
    .await?;
    assert_eq!(ids(&body), [GEORGE]);
    assert_eq!(body["result"][0]["sys_class_name"], "customer_contact");
    // The parent's columns only: `account` belongs to customer_contact.
    assert!(body["result"][0].get("account").is_none());
    let (_, _, body) = send(
        &sim,
        get(
            "/api/now/table/customer_contact?sysparm_query=phone%3D%2B13175550125",
            &basic(),
        )?,
    )
    .await?;
    assert!(ids(&body).is_empty());
    Ok(())
}

#[tokio::test]
async fn an_invalid_field_is_dropped_so_the_query_returns_every_row_unless_the_property_is_set(
) -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let url = "/api/now/table/sys_user?sysparm_query=phone_number%3D%2B13175550125";
    let (_, _, body) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(ids(&body).len(), 3);
    assert_eq!(
        sim.stats().invalid_query_parts,
        ["phone_number=+13175550125"]
    );

    sim.settings
        .lock()
        .map_err(|e| e.to_string())?
        .invalid_query_returns_no_rows = true;
    let (status, _, body) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"result": []}));
    Ok(())
}

#[tokio::test]
async fn fields_limit_offset_and_order_shape_the_result() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (_, _, body) = send(
        &sim,
        get("/api/now/table/sys_user?sysparm_query=activeANYTHING%5EORDERBYDESCsys_updated_on&sysparm_fields=sys_id,bogus&sysparm_limit=2&sysparm_no_count=true", &basic())?,
    )
    .await?;
    assert_eq!(
        body,
        json!({"result": [{"sys_id": GRACE}, {"sys_id": ADA}]})
    );
    let (_, headers, body) = send(&sim, get("/api/now/table/sys_user?sysparm_query=ORDERBYsys_updated_on&sysparm_offset=2&sysparm_fields=sys_id", &basic())?).await?;
    assert_eq!(ids(&body), [GRACE]);
    assert_eq!(headers.get("x-total-count"), Some(&HeaderValue::from(3)));
    Ok(())
}

#[tokio::test]
async fn display_value_all_wraps_every_field() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (_, _, body) = send(&sim, get(&format!("/api/now/table/sys_user?sysparm_query=sys_id%3D{ADA}&sysparm_fields=sys_id&sysparm_display_value=all"), &basic())?).await?;
    assert_eq!(
        body,
        json!({"result": [{"sys_id": {"display_value": ADA, "value": ADA}}]})
    );
    Ok(())
}

#[tokio::test]
async fn no_rows_is_an_empty_result_in_v2_and_a_404_in_v1() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let query = "?sysparm_query=phone%3Dnobody";
    for path in ["/api/now/table/sys_user", "/api/now/v2/table/sys_user"] {
        let (status, _, body) = send(&sim, get(&format!("{path}{query}"), &basic())?).await?;
        assert_eq!((status, body), (StatusCode::OK, json!({"result": []})));
    }
    let (status, _, body) = send(
        &sim,
        get(&format!("/api/now/v1/table/sys_user{query}"), &basic())?,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "No Record found");
    assert_eq!(body["status"], "failure");
    Ok(())
}

#[tokio::test]
async fn an_unknown_table_or_resource_is_a_400_envelope() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let (status, _, body) = send(&sim, get("/api/now/table/sys_nonexistent", &basic())?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"message": "Invalid table sys_nonexistent", "detail": "Table sys_nonexistent does not exist"}, "status": "failure"})
    );
    let (status, _, body) = send(&sim, get("/api/now/v9/table/sys_user", &basic())?).await?;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["detail"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn a_table_acl_refuses_a_caller_without_the_role() -> TestResult {
    let mut config = ServiceNowSimConfig::default();
    config.tables[1].read_role = Some("csm_ws_integration".to_owned());
    let sim = sim_state(config)?;
    let (status, _, body) = send(&sim, get("/api/now/table/customer_contact", &basic())?).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body["error"]["message"],
        "Insufficient rights to query records"
    );
    Ok(())
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_the_not_authenticated_envelope() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let wrong = format!("Basic {}", STANDARD.encode("attrsync.integration:nope"));
    for authorization in [wrong.as_str(), "Bearer forged", "Negotiate x"] {
        let (status, _, body) = send(&sim, get("/api/now/table/sys_user", authorization)?).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"})
        );
    }
    sim.auth.lock().map_err(|e| e.to_string())?.basic_enabled = false;
    let (status, _, _) = send(&sim, get("/api/now/table/sys_user", &basic())?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn accept_must_allow_json() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let bare = Request::get("/api/now/table/sys_user")
        .header(header::AUTHORIZATION, basic())
        .body(Body::empty())?;
    assert_eq!(send(&sim, bare).await?.0, StatusCode::BAD_REQUEST);
    let xml = Request::get("/api/now/table/sys_user")
        .header(header::AUTHORIZATION, basic())
        .header(header::ACCEPT, "application/xml")
        .body(Body::empty())?;
    assert_eq!(send(&sim, xml).await?.0, StatusCode::NOT_ACCEPTABLE);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_password_grant_token_works_until_it_expires() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig {
        token_lifetime: Duration::from_secs(600),
        ..ServiceNowSimConfig::default()
    })?;
    let (status, _, body) = send(
        &sim,
        token_request("grant_type=password&client_id=attrsync-sim&client_secret=sim-secret&username=attrsync.integration&password=sim-password")?,
    )
    .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "useraccount");
    assert_eq!(body["expires_in"], 599);
    assert!(body["refresh_token"].is_string());
    let bearer = format!(
        "Bearer {}",
        body["access_token"].as_str().unwrap_or_default()
    );

    tokio::time::advance(Duration::from_secs(599)).await;
    assert_eq!(
        send(&sim, get("/api/now/table/sys_user", &bearer)?)
            .await?
            .0,
        StatusCode::OK
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, _, body) = send(&sim, get("/api/now/table/sys_user", &bearer)?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "User Not Authenticated");
    Ok(())
}

#[tokio::test]
async fn client_credentials_are_refused_until_enabled_and_expiring_all_tokens_revokes_them(
) -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    let form = "grant_type=client_credentials&client_id=attrsync-sim&client_secret=sim-secret";
    let (status, _, body) = send(&sim, token_request(form)?).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!({"error_description": "access_denied", "error": "server_error"})
    );

    sim.auth
        .lock()
        .map_err(|e| e.to_string())?
        .client_credentials_enabled = true;
    let (status, _, body) = send(&sim, token_request(form)?).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("refresh_token").is_none());
    let bearer = format!(
        "Bearer {}",
        body["access_token"].as_str().unwrap_or_default()
    );
    assert_eq!(
        send(&sim, get("/api/now/table/sys_user", &bearer)?)
            .await?
            .0,
        StatusCode::OK
    );
    sim.auth.lock().map_err(|e| e.to_string())?.expire_tokens();
    assert_eq!(
        send(&sim, get("/api/now/table/sys_user", &bearer)?)
            .await?
            .0,
        StatusCode::UNAUTHORIZED
    );
    Ok(())
}

#[tokio::test]
async fn token_parameters_outside_a_form_body_are_not_read() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig {
        client_credentials: true,
        ..ServiceNowSimConfig::default()
    })?;
    let json_body = Request::post("/oauth_token.do")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"grant_type":"client_credentials","client_id":"attrsync-sim","client_secret":"sim-secret"}"#))?;
    assert_eq!(send(&sim, json_body).await?.0, StatusCode::UNAUTHORIZED);
    let in_query = Request::post("/oauth_token.do?grant_type=client_credentials&client_id=attrsync-sim&client_secret=sim-secret")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())?;
    assert_eq!(send(&sim, in_query).await?.0, StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_rule_adds_its_headers_and_answers_429_with_retry_after_when_exceeded(
) -> TestResult {
    let sim = sim_state(ServiceNowSimConfig {
        rate_limit_rules: vec![RateLimitRule {
            sys_id: "0e4a1f2b".to_owned(),
            name: "attrsync lookups".to_owned(),
            table: Some("sys_user".to_owned()),
            applies_to: RuleTarget::UsersWithRole {
                role: "itil".to_owned(),
            },
            requests_per_hour: 2,
            active: true,
        }],
        ..ServiceNowSimConfig::default()
    })?;
    for _ in 0..2 {
        let (status, headers, _) = send(&sim, get("/api/now/table/sys_user", &basic())?).await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("x-ratelimit-limit"),
            Some(&HeaderValue::from(2))
        );
        assert_eq!(
            headers.get("x-ratelimit-rule"),
            Some(&HeaderValue::from_static("0e4a1f2b"))
        );
        assert!(headers.get(header::RETRY_AFTER).is_none());
    }
    let (status, headers, body) = send(&sim, get("/api/now/table/sys_user", &basic())?).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        body,
        json!({"error": {"message": "Rate limit exceeded", "detail": "Rate limit of 2 requests per hour for Table API exceeded"}, "status": "failure"})
    );
    let reset: u64 = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(reset % 3600, 0);
    let retry_after: u64 = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=3600).contains(&retry_after));
    // Another table is not covered by the rule.
    let (status, headers, _) =
        send(&sim, get("/api/now/table/customer_contact", &basic())?).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("x-ratelimit-limit").is_none());

    tokio::time::advance(Duration::from_secs(retry_after)).await;
    assert_eq!(
        send(&sim, get("/api/now/table/sys_user", &basic())?)
            .await?
            .0,
        StatusCode::OK
    );
    assert_eq!(sim.stats().rate_limited, 1);
    Ok(())
}

#[tokio::test]
async fn scripted_faults_outage_and_garbage_bodies_come_in_order() -> TestResult {
    let sim = sim_state(ServiceNowSimConfig::default())?;
    {
        let mut faults = sim.faults.lock().map_err(|e| e.to_string())?;
        faults[Op::Table as usize].extend([
            Fault::Status { status: 503 },
            Fault::Hibernating,
            Fault::NotJson,
            Fault::WrongShape,
            Fault::Status { status: 429 },
        ]);
    }
    let url = "/api/now/table/sys_user";
    let (status, headers, _) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(
        (status, headers.get(header::CONTENT_TYPE)),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&HeaderValue::from_static("text/html"))
        )
    );
    let (status, _, body) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().is_some_and(|b| b.contains("Hibernating")));
    let (_, _, body) = send(&sim, get(url, &basic())?).await?;
    assert!(body.is_string());
    let (_, _, body) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(body, json!({"records": []}));
    let (status, headers, _) = send(&sim, get(url, &basic())?).await?;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        headers.get(header::RETRY_AFTER),
        Some(&HeaderValue::from(1))
    );
    assert_eq!(send(&sim, get(url, &basic())?).await?.0, StatusCode::OK);

    sim.settings.lock().map_err(|e| e.to_string())?.down = true;
    assert_eq!(
        send(&sim, get(url, &basic())?).await?.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let stats = sim.stats();
    assert_eq!(stats.requests.get("table"), Some(&7));
    assert_eq!(stats.faults_injected, 5);
    Ok(())
}

#[test]
fn records_with_unknown_columns_or_tables_are_refused() {
    let sim = Shared::new(ServiceNowSimConfig::default());
    assert_eq!(
        sim.insert("sys_user", json!({"phone_number": "1"})),
        Err(InsertError::UnknownField {
            table: "sys_user".to_owned(),
            field: "phone_number".to_owned()
        })
    );
    assert_eq!(
        sim.insert("incident", json!({})),
        Err(InsertError::UnknownTable("incident".to_owned()))
    );
    assert_eq!(
        sim.insert("sys_user", json!([])),
        Err(InsertError::NotAnObject)
    );
    assert!(sim
        .insert("sys_user", json!({"phone": "1"}))
        .is_ok_and(|id| id.len() == 32));
}

#[tokio::test]
async fn the_admin_api_inserts_records_sets_rules_and_reports() -> TestResult {
    let sim = ServiceNowSim::start(
        ServiceNowSimConfig::default(),
        TcpListener::bind("127.0.0.1:0").await?,
    )
    .await?;
    let client = reqwest::Client::builder().no_proxy().build()?;
    let base = sim.base_url();
    let created = client
        .post(format!("{base}/sim/tables/sys_user/records"))
        .json(&json!({"phone": "+15555550100"}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let bad = client
        .post(format!("{base}/sim/tables/sys_user/records"))
        .json(&json!({"nope": 1}))
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    let rules = client
        .put(format!("{base}/sim/rate-limit-rules"))
        .json(&json!([{"sysId": "r1", "name": "all", "appliesTo": {"kind": "allUsers"}, "requestsPerHour": 1}]))
        .send()
        .await?;
    assert_eq!(rules.status(), 204);
    let fault = client
        .post(format!("{base}/sim/faults"))
        .json(&json!({"op": "token", "fault": {"kind": "delay", "millis": 1}}))
        .send()
        .await?;
    assert_eq!(fault.status(), 204);
    let config = client
        .patch(format!("{base}/sim/config"))
        .json(&json!({"caseSensitiveValues": false}))
        .send()
        .await?;
    assert_eq!(config.status(), 200);

    let lookup = |q: &'static str| {
        client
            .get(format!("{base}/api/now/table/sys_user"))
            .query(&[("sysparm_query", q)])
            .header(header::ACCEPT, "application/json")
            .basic_auth("attrsync.integration", Some("sim-password"))
            .send()
    };
    assert_eq!(lookup("phone=+15555550100").await?.status(), 200);
    assert_eq!(lookup("phone=+15555550100").await?.status(), 429);
    assert_eq!(
        client
            .post(format!("{base}/sim/rate-limits/reset"))
            .send()
            .await?
            .status(),
        204
    );
    assert_eq!(lookup("phone=+15555550100").await?.status(), 200);

    let stats: Value = client
        .get(format!("{base}/sim/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["requests"]["table"], 3);
    assert_eq!(stats["rateLimited"], 1);
    assert_eq!(sim.traffic().count("table"), 3);
    sim.shutdown();
    Ok(())
}
