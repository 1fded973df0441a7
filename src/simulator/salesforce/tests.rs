//! The simulator over HTTP, as a client sees it.

use super::*;
use crate::crm::salesforce::{self as sf, ApiVersion, Target};
use crate::simulator::dynamics::cert::{test_keys::*, Certificate};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
}

async fn start(config: SalesforceSimConfig) -> std::io::Result<SalesforceSim> {
    let sim = SalesforceSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
    for (object, fields) in SalesforceSim::sample_records() {
        sim.insert(object, fields).map_err(std::io::Error::other)?;
    }
    Ok(sim)
}

fn jwt_config() -> SalesforceSimConfig {
    let mut config = SalesforceSimConfig::default();
    config.auth.jwt_certificate = Some(Certificate::from_pem(CERT_A).unwrap());
    config
}

async fn client_credentials(sim: &SalesforceSim) -> reqwest::Result<Value> {
    client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "3MVG9SIMconsumerkey"),
            ("client_secret", "sim-consumer-secret"),
        ])
        .send()
        .await?
        .json()
        .await
}

async fn token(sim: &SalesforceSim) -> Result<String, Box<dyn std::error::Error>> {
    let body = client_credentials(sim).await?;
    Ok(body["access_token"].as_str().ok_or("no token")?.to_owned())
}

fn version() -> ApiVersion {
    ApiVersion::parse("66.0").unwrap()
}

async fn get(
    sim: &SalesforceSim,
    token: &str,
    request: &sf::RestRequest,
) -> reqwest::Result<reqwest::Response> {
    client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(token)
        .send()
        .await
}

fn phone_search(numbers: &[&str]) -> sf::RestRequest {
    sf::phone_search(&version(), numbers, &Target::defaults(), Some(50)).unwrap()
}

async fn ids(response: reqwest::Response) -> reqwest::Result<Vec<(String, String)>> {
    let body = response.bytes().await?;
    Ok(sf::parse_search(&body)
        .map(|records| {
            records
                .into_iter()
                .map(|r| (r.record_type, r.record_id))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::test]
async fn a_client_credentials_token_points_at_the_instance_and_has_no_expiry() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let body = client_credentials(&sim).await?;
    let parsed = sf::TokenResponse::parse(&serde_json::to_vec(&body)?)?;
    assert_eq!(parsed.instance_url, sim.base_url());
    assert!(body.get("expires_in").is_none());
    assert_eq!(sim.traffic().count("token"), 1);
    Ok(())
}

#[tokio::test]
async fn a_phone_search_finds_every_record_whose_phone_field_has_the_digits_whatever_the_format(
) -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    let response = get(&sim, &token, &phone_search(&["+13175550125", "3175550125"])).await?;
    assert_eq!(response.status(), 200);
    let usage = response.headers().get("sforce-limit-info").cloned();
    let found = ids(response).await?;
    let types: Vec<&str> = found.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["Contact", "Lead"],
        "Ada's '(317) 555-0125' and the Lead's '3175550125'"
    );
    assert_eq!(usage, Some(HeaderValue::from_static("api-usage=1/100000")));

    let mobile = ids(get(&sim, &token, &phone_search(&["+13175550199"])).await?).await?;
    assert_eq!(
        mobile.len(),
        1,
        "'+1 317 555 0199' found by its E.164 digits"
    );
    let none = ids(get(&sim, &token, &phone_search(&["+13175550127"])).await?).await?;
    assert!(none.is_empty());
    assert_eq!(sim.traffic().count("search"), 3);
    Ok(())
}

#[tokio::test]
async fn whether_the_country_code_may_be_missing_is_a_switch_and_both_notations_work_either_way(
) -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    let only_e164 = phone_search(&["+13175550125"]);
    assert_eq!(ids(get(&sim, &token, &only_e164).await?).await?.len(), 0);
    sim.set_phone_match(PhoneMatch::DigitsIgnoringCountryCode);
    assert_eq!(ids(get(&sim, &token, &only_e164).await?).await?.len(), 2);
    let both = phone_search(&["+13175550125", "3175550125"]);
    assert_eq!(ids(get(&sim, &token, &both).await?).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn an_email_query_pages_with_next_records_url() -> TestResult {
    let sim = start(SalesforceSimConfig {
        query_batch_size: 1,
        ..SalesforceSimConfig::default()
    })
    .await?;
    sim.insert(
        "Contact",
        json!({"Name": "Ada Again", "Email": "ADA@example.com"}),
    )?;
    let token = token(&sim).await?;
    let request = sf::soql_equals(
        &version(),
        &Target::new("Contact", &["Name", "Email"]),
        &["Email"],
        "ada@example.com",
        None,
    )?;
    let first = get(&sim, &token, &request).await?;
    assert_eq!(first.status(), 200);
    let page = sf::parse_query(&first.bytes().await?)?;
    assert_eq!(page.total_size, Some(2));
    assert_eq!(page.records.len(), 1);
    let next = page.next_records_url.ok_or("no next page")?;
    let second = client()
        .get(format!("{}{next}", sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await?;
    let page = sf::parse_query(&second.bytes().await?)?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.next_records_url, None);
    Ok(())
}

#[tokio::test]
async fn expired_sessions_answer_401_invalid_session_id_and_a_new_token_works() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let old = token(&sim).await?;
    sim.expire_all_tokens();
    let response = get(&sim, &old, &phone_search(&["3175550125"])).await?;
    assert_eq!(response.status(), 401);
    let error = sf::ApiError::parse(401, &response.bytes().await?);
    assert_eq!(error.error_code, "INVALID_SESSION_ID");
    assert_eq!(error.message, "Session expired or invalid");
    let new = token(&sim).await?;
    assert_eq!(
        get(&sim, &new, &phone_search(&["3175550125"]))
            .await?
            .status(),
        200
    );
    let none = client()
        .get(phone_search(&["3175550125"]).url(&sim.base_url()))
        .send()
        .await?;
    assert_eq!(none.status(), 401);
    Ok(())
}

#[tokio::test]
async fn a_session_ends_after_the_configured_timeout() -> TestResult {
    let mut config = SalesforceSimConfig::default();
    config.auth.sessions = SessionPolicy {
        timeout: Duration::from_millis(150),
        sliding: false,
    };
    let sim = start(config).await?;
    let token = token(&sim).await?;
    assert_eq!(
        get(&sim, &token, &phone_search(&["3175550125"]))
            .await?
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(&sim, &token, &phone_search(&["3175550125"]))
            .await?
            .status(),
        401
    );
    Ok(())
}

#[tokio::test]
async fn a_jwt_bearer_assertion_signed_with_the_certificates_key_gets_a_token() -> TestResult {
    let sim = start(jwt_config()).await?;
    let exp = chrono::Utc::now().timestamp() + 180;
    let claims = json!({"iss": "3MVG9SIMconsumerkey", "sub": "integration@sim.example", "aud": "https://login.salesforce.com", "exp": exp});
    let post = |key: &'static str| {
        let assertion = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
        )
        .unwrap();
        client()
            .post(format!("{}/services/oauth2/token", sim.base_url()))
            .form(&[
                ("grant_type", auth::GRANT_JWT_BEARER),
                ("assertion", assertion.as_str()),
            ])
            .send()
    };
    let good = post(KEY_A).await?;
    assert_eq!(good.status(), 200);
    let token = sf::TokenResponse::parse(&good.bytes().await?)?;
    assert_eq!(
        get(&sim, &token.access_token, &phone_search(&["3175550125"]))
            .await?
            .status(),
        200
    );
    let bad = post(KEY_B).await?;
    assert_eq!(bad.status(), 400);
    let error = sf::TokenError::parse(400, &bad.bytes().await?);
    assert_eq!(
        (error.error.as_str(), error.description.as_str()),
        ("invalid_grant", "invalid assertion")
    );
    Ok(())
}

#[tokio::test]
async fn a_disabled_jwt_flow_and_wrong_secrets_get_oauth_errors() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let response = client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .basic_auth("3MVG9SIMconsumerkey", Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    assert_eq!(
        sf::TokenError::parse(400, &response.bytes().await?).error,
        "invalid_client"
    );
    let response = client()
        .post(format!("{}/services/oauth2/token", sim.base_url()))
        .form(&[
            ("grant_type", auth::GRANT_JWT_BEARER),
            ("assertion", "x.y.z"),
        ])
        .send()
        .await?;
    assert_eq!(response.status(), 400);
    Ok(())
}

#[tokio::test]
async fn the_daily_allocation_when_spent_answers_request_limit_exceeded_with_the_usage_header(
) -> TestResult {
    let sim = start(SalesforceSimConfig {
        daily_api_limit: 3,
        ..SalesforceSimConfig::default()
    })
    .await?;
    sim.set_api_usage(1);
    let token = token(&sim).await?;
    for expected in ["api-usage=2/3", "api-usage=3/3"] {
        let response = get(&sim, &token, &phone_search(&["3175550125"])).await?;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["sforce-limit-info"], expected);
    }
    let refused = get(&sim, &token, &phone_search(&["3175550125"])).await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.headers()["sforce-limit-info"], "api-usage=3/3");
    let error = sf::ApiError::parse(403, &refused.bytes().await?);
    assert_eq!(error.kind(), sf::ErrorKind::DailyLimitExceeded);
    assert_eq!(sim.api_usage(), (3, 3));
    Ok(())
}

#[tokio::test]
async fn too_many_concurrent_long_running_requests_are_refused() -> TestResult {
    let sim = start(SalesforceSimConfig {
        long_running_threshold: Duration::from_millis(100),
        concurrent_long_running_limit: 1,
        ..SalesforceSimConfig::default()
    })
    .await?;
    let token = token(&sim).await?;
    sim.set_latency(Duration::from_millis(300));
    let request = phone_search(&["3175550125"]);
    let (a, b) = tokio::join!(get(&sim, &token, &request), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        get(&sim, &token, &request).await
    });
    let statuses = [a?.status().as_u16(), b?.status().as_u16()];
    assert_eq!(statuses, [200, 403]);
    Ok(())
}

#[tokio::test]
async fn malformed_queries_unknown_objects_and_fields_get_salesforces_error_codes() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    let cases = [
        (
            "search",
            "FIND {John|jane} RETURNING Contact",
            "MALFORMED_SEARCH",
        ),
        (
            "search",
            "FIND {3175550125} IN PHONE FIELDS RETURNING Widget__c",
            "INVALID_TYPE",
        ),
        (
            "search",
            "FIND {3175550125} IN PHONE FIELDS RETURNING Contact(Nope)",
            "INVALID_FIELD",
        ),
        (
            "query",
            "SELECT Id FROM Contact WHERE Email = 'x' OR '1'='1'",
            "MALFORMED_QUERY",
        ),
        (
            "query",
            "SELECT Id FROM Contact WHERE Emial = 'x'",
            "INVALID_FIELD",
        ),
    ];
    for (resource, q, code) in cases {
        let request = sf::RestRequest {
            path: format!("/services/data/v66.0/{resource}/"),
            q: q.to_owned(),
        };
        let response = get(&sim, &token, &request).await?;
        assert_eq!(response.status(), 400, "{q}");
        assert!(response.headers().contains_key("sforce-limit-info"));
        assert_eq!(
            sf::ApiError::parse(400, &response.bytes().await?).error_code,
            code,
            "{q}"
        );
    }
    assert_eq!(sim.queries().len(), cases.len());
    Ok(())
}

#[tokio::test]
async fn an_unsupported_api_version_is_not_found() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    let request = sf::RestRequest {
        path: "/services/data/v20.0/search/".into(),
        q: "FIND {3175550125} RETURNING Contact".into(),
    };
    let response = get(&sim, &token, &request).await?;
    assert_eq!(response.status(), 404);
    assert_eq!(
        sf::ApiError::parse(404, &response.bytes().await?).error_code,
        "NOT_FOUND"
    );
    Ok(())
}

#[tokio::test]
async fn scripted_faults_outages_and_garbage_are_answered_in_order() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    sim.push_fault(Op::Search, Fault::Status { status: 500 });
    sim.push_fault(Op::Search, Fault::Garbage);
    sim.push_fault(Op::Search, Fault::WrongShape);
    sim.push_fault(Op::Search, Fault::InvalidSession);
    let request = phone_search(&["3175550125"]);
    let r = get(&sim, &token, &request).await?;
    assert_eq!(r.status(), 500);
    assert_eq!(
        sf::ApiError::parse(500, &r.bytes().await?).error_code,
        "UNKNOWN_EXCEPTION"
    );
    let r = get(&sim, &token, &request).await?;
    assert!(sf::parse_search(&r.bytes().await?).is_err());
    let r = get(&sim, &token, &request).await?;
    assert!(sf::parse_search(&r.bytes().await?).is_err());
    assert_eq!(get(&sim, &token, &request).await?.status(), 401);
    assert_eq!(get(&sim, &token, &request).await?.status(), 200);
    sim.set_down(true);
    let r = get(&sim, &token, &request).await?;
    assert_eq!(r.status(), 503);
    assert_eq!(
        sf::ApiError::parse(503, &r.bytes().await?).kind(),
        sf::ErrorKind::Unavailable
    );
    assert_eq!(sim.traffic().count("search"), 6);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_inserts_records_scripts_faults_and_reports_stats() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let admin = format!("{}/sim", sim.base_url());
    let created = client()
        .post(format!("{admin}/records"))
        .json(&json!({"type": "Lead", "fields": {"Name": "New", "MobilePhone": "020 7946 0000"}}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let bad = client()
        .post(format!("{admin}/records"))
        .json(&json!({"type": "Lead", "fields": {"Nope": 1}}))
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    let fault = client()
        .post(format!("{admin}/faults"))
        .json(&json!({"op": "token", "fault": {"kind": "status", "status": 503}}))
        .send()
        .await?;
    assert_eq!(fault.status(), 204);
    assert_eq!(
        client()
            .post(format!("{}/services/oauth2/token", sim.base_url()))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?
            .status(),
        503
    );
    let config = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"dailyApiLimit": 10, "phoneMatch": "digitsIgnoringCountryCode"}))
        .send()
        .await?;
    assert_eq!(config.status(), 200);
    let token = token(&sim).await?;
    let found = ids(get(&sim, &token, &phone_search(&["02079460000"])).await?).await?;
    assert_eq!(found.len(), 1);
    assert_eq!(
        client()
            .post(format!("{admin}/tokens/expire"))
            .send()
            .await?
            .status(),
        204
    );
    assert_eq!(
        get(&sim, &token, &phone_search(&["02079460000"]))
            .await?
            .status(),
        401
    );
    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["byOp"]["token"], 2);
    assert_eq!(stats["apiUsage"], json!({"used": 1, "limit": 10}));
    assert_eq!(stats["records"], 5);
    Ok(())
}

/// The injection classics through every key kind, end to end: each query attrsync builds is
/// valid for the simulator's parser and finds nothing it should not.
#[tokio::test]
async fn injection_classics_through_every_key_kind_find_nothing_over_http() -> TestResult {
    let sim = start(SalesforceSimConfig::default()).await?;
    let token = token(&sim).await?;
    let classics = [
        "'",
        "\\",
        "}",
        "OR 1=1",
        "' OR '1'='1",
        "--",
        "%",
        "*",
        "^",
        "\"",
        "x} RETURNING Contact(Id",
        "😀",
        "a OR b",
    ];
    for value in classics {
        if let Ok(request) = sf::phrase_search(
            &version(),
            value,
            sf::SearchGroup::Email,
            &Target::defaults(),
            None,
        ) {
            let response = get(&sim, &token, &request).await?;
            assert_eq!(response.status(), 200, "{value:?}");
            assert!(ids(response).await?.is_empty(), "{value:?}");
        }
        let email = sf::soql_equals(
            &version(),
            &Target::new("Contact", &["Email"]),
            &["Email"],
            value,
            None,
        )?;
        let response = get(&sim, &token, &email).await?;
        assert_eq!(response.status(), 200, "{value:?}");
        assert!(
            sf::parse_query(&response.bytes().await?)?
                .records
                .is_empty(),
            "{value:?}"
        );
        assert!(sf::id_lookup(&version(), &Target::new("Contact", &[]), value).is_err());
        assert!(
            sf::phone_search(&version(), &[value], &Target::defaults(), None).is_err()
                || value.chars().any(|c| c.is_ascii_digit())
        );
    }
    Ok(())
}
