//! The simulator over HTTP, as a client sees it.

use super::cert::{test_keys::*, Certificate};
use super::*;
use crate::crm::dynamics::{self as dv, EntitySpec, REQUEST_HEADERS};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
}

async fn start(config: DynamicsSimConfig) -> std::io::Result<DynamicsSim> {
    let sim = DynamicsSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
    for (set, row) in DynamicsSim::sample_rows() {
        sim.insert(set, row).map_err(std::io::Error::other)?;
    }
    Ok(sim)
}

async fn token_response(sim: &DynamicsSim, secret: &str) -> reqwest::Result<reqwest::Response> {
    let scope = format!("{}/.default", sim.base_url());
    client()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-4000-8000-0000000000a1"),
            ("client_secret", secret),
            ("scope", scope.as_str()),
        ])
        .send()
        .await
}

async fn token(sim: &DynamicsSim) -> Result<String, Box<dyn std::error::Error>> {
    let response = token_response(sim, "sim-client-secret").await?;
    Ok(dv::EntraToken::parse(&response.bytes().await?)?.access_token)
}

async fn get(
    sim: &DynamicsSim,
    token: &str,
    request: &dv::WebApiRequest,
) -> reqwest::Result<reqwest::Response> {
    let mut builder = client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(token);
    for (name, value) in REQUEST_HEADERS {
        builder = builder.header(name, value);
    }
    builder.send().await
}

async fn ids(
    spec: &EntitySpec,
    response: reqwest::Response,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let page = dv::parse_collection(spec, &response.bytes().await?)?;
    Ok(page.records.into_iter().map(|r| r.record_id).collect())
}

#[tokio::test]
async fn a_secret_gets_a_token_that_reads_contacts_by_a_phone_number_stored_exactly_so(
) -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let spec = EntitySpec::contacts();
    let hit = get(
        &sim,
        &token,
        &spec.phone_lookup("v9.2", &["+13175550125"], Some(10))?,
    )
    .await?;
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.headers()["odata-version"], "4.0");
    assert!(hit
        .headers()
        .contains_key("x-ms-ratelimit-burst-remaining-xrm-requests"));
    let page = dv::parse_collection(&spec, &hit.bytes().await?)?;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.records[0].record_type, "contact");
    assert_eq!(page.records[0].fields["fullname"], "Ada Lovelace");
    assert_eq!(
        page.records[0].last_modified.as_deref(),
        Some("2024-05-20T20:49:32Z")
    );

    // Stored as typed: other notations of the same number find nothing.
    for other in ["13175550125", "(317) 555-0125", "+1 317 555 0125"] {
        let miss = get(&sim, &token, &spec.phone_lookup("v9.2", &[other], None)?).await?;
        assert!(ids(&spec, miss).await?.is_empty(), "{other}");
    }
    let both = get(
        &sim,
        &token,
        &spec.phone_lookup("v9.2", &["3175550126", "(317) 555-0126"], None)?,
    )
    .await?;
    assert_eq!(ids(&spec, both).await?.len(), 1);
    assert_eq!(sim.traffic().count("token"), 1);
    assert_eq!(sim.traffic().count("query"), 5);
    Ok(())
}

#[tokio::test]
async fn leads_and_accounts_are_searched_through_their_own_entity_sets() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let leads = EntitySpec::leads();
    let response = get(
        &sim,
        &token,
        &leads.phone_lookup("v9.2", &["+13175550125"], None)?,
    )
    .await?;
    assert_eq!(ids(&leads, response).await?.len(), 1);
    let accounts = EntitySpec::accounts();
    let response = get(
        &sim,
        &token,
        &accounts.phone_lookup("v9.2", &["+44 20 7946 0958"], None)?,
    )
    .await?;
    assert_eq!(ids(&accounts, response).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn email_and_id_lookups_find_their_row() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let spec = EntitySpec::contacts();
    let by_email = ids(
        &spec,
        get(
            &sim,
            &token,
            &spec.email_lookup("v9.2", "GRACE.HOPPER@example.com", None)?,
        )
        .await?,
    )
    .await?;
    assert_eq!(by_email.len(), 1);
    let by_id = ids(
        &spec,
        get(&sim, &token, &spec.id_lookup("v9.2", &by_email[0])?).await?,
    )
    .await?;
    assert_eq!(by_id, by_email);
    Ok(())
}

#[tokio::test]
async fn a_certificate_assertion_gets_a_token() -> TestResult {
    let mut config = DynamicsSimConfig::default();
    config.entra.certificate = Some(Certificate::from_pem(CERT_A)?);
    config.entra.client_secret = None;
    let sim = start(config).await?;
    let cert = Certificate::from_pem(CERT_A)?;
    let mut header = Header::new(Algorithm::RS256);
    header.x5t = Some(cert.x5t.clone());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"aud": sim.token_url(), "iss": "00000000-0000-4000-8000-0000000000a1", "sub": "00000000-0000-4000-8000-0000000000a1", "jti": "j", "nbf": now, "exp": now + 600});
    let assertion = encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(KEY_A.as_bytes())?,
    )?;
    let scope = format!("{}/.default", sim.base_url());
    let response = client()
        .post(sim.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "00000000-0000-4000-8000-0000000000a1"),
            ("client_assertion_type", entra::CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
            ("scope", scope.as_str()),
        ])
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let token = dv::EntraToken::parse(&response.bytes().await?)?;
    assert_eq!(token.expires_in, Duration::from_secs(3599));
    // No secret is registered, so a secret is refused.
    let refused = token_response(&sim, "anything").await?;
    assert_eq!(refused.status(), 401);
    assert_eq!(
        dv::EntraError::parse(401, &refused.bytes().await?).aadsts,
        Some(7000215)
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_secret_gets_aadsts7000215() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let response = token_response(&sim, "wrong").await?;
    assert_eq!(response.status(), 401);
    let error = dv::EntraError::parse(401, &response.bytes().await?);
    assert_eq!(
        (error.error.as_str(), error.aadsts),
        ("invalid_client", Some(7000215))
    );
    Ok(())
}

#[tokio::test]
async fn an_expired_token_gets_401_with_a_bearer_challenge_and_a_new_one_works() -> TestResult {
    let mut config = DynamicsSimConfig::default();
    config.entra.token_lifetime = Duration::from_millis(150);
    let sim = start(config).await?;
    let spec = EntitySpec::contacts();
    let request = spec.phone_lookup("v9.2", &["+13175550125"], None)?;
    let old = token(&sim).await?;
    assert_eq!(get(&sim, &old, &request).await?.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expired = get(&sim, &old, &request).await?;
    assert_eq!(expired.status(), 401);
    let challenge = expired.headers()["www-authenticate"].to_str()?.to_owned();
    assert!(challenge.starts_with("Bearer authorization_uri=https://login.microsoftonline.com/"));
    assert_eq!(
        dv::WebApiError::parse(401, None, &expired.bytes().await?).kind(),
        dv::ErrorKind::Unauthorized
    );
    let new = token(&sim).await?;
    sim.expire_all_tokens();
    assert_eq!(get(&sim, &new, &request).await?.status(), 401);
    assert_eq!(
        get(&sim, &token(&sim).await?, &request).await?.status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn service_protection_answers_429_with_retry_after_and_the_documented_body() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    sim.set_limits(Limits {
        window: Duration::from_secs(60),
        max_requests: 2,
        ..Limits::default()
    });
    let token = token(&sim).await?;
    let request = EntitySpec::contacts().phone_lookup("v9.2", &["+13175550125"], None)?;
    for _ in 0..2 {
        assert_eq!(get(&sim, &token, &request).await?.status(), 200);
    }
    let storm: Vec<_> =
        futures::future::join_all((0..5).map(|_| get(&sim, &token, &request))).await;
    let mut waits = Vec::new();
    for response in storm {
        let response = response?;
        assert_eq!(response.status(), 429);
        let retry_after = response.headers()["retry-after"].to_str()?.to_owned();
        let error = dv::WebApiError::parse(429, Some(&retry_after), &response.bytes().await?);
        assert_eq!(error.service_protection_limit(), Some("requests"));
        assert_eq!(
            error.message,
            "Number of requests exceeded the limit of 2 over time window of 60 seconds."
        );
        waits.push(error.retry_after.ok_or("no Retry-After")?);
    }
    assert!(
        waits.iter().all(|w| *w >= Duration::from_secs(59)),
        "{waits:?}"
    );
    assert!(
        waits.iter().max() > waits.iter().min(),
        "sending on extends the wait: {waits:?}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_filters_unknown_columns_and_entity_sets_get_odata_errors() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let raw = |query: &str| dv::WebApiRequest {
        path: "/api/data/v9.2/contacts".into(),
        query: vec![("$filter".into(), query.into())],
    };
    let cases = [
        (
            "lastname eq 'O'Bryan'",
            400,
            "There is an unterminated literal at position 21 in 'lastname eq 'O'Bryan''.",
        ),
        (
            "phone eq 'x'",
            400,
            "Could not find a property named 'phone' on type 'Microsoft.Dynamics.CRM.contact'.",
        ),
    ];
    for (filter, status, message) in cases {
        let response = get(&sim, &token, &raw(filter)).await?;
        assert_eq!(response.status(), status);
        let error = dv::WebApiError::parse(status, None, &response.bytes().await?);
        assert_eq!(error.message, message);
        assert_eq!(error.kind(), dv::ErrorKind::BadRequest);
    }
    let unknown_set = dv::WebApiRequest {
        path: "/api/data/v9.2/widgets".into(),
        query: vec![],
    };
    assert_eq!(get(&sim, &token, &unknown_set).await?.status(), 404);
    let unknown_option = dv::WebApiRequest {
        path: "/api/data/v9.2/contacts".into(),
        query: vec![("$orderby".into(), "fullname".into())],
    };
    assert_eq!(get(&sim, &token, &unknown_option).await?.status(), 400);
    assert_eq!(
        sim.requests()[0].filter.as_deref(),
        Some("lastname eq 'O'Bryan'")
    );
    Ok(())
}

#[tokio::test]
async fn the_odata_headers_are_seen_and_checked() -> TestResult {
    let sim = start(DynamicsSimConfig {
        require_odata_headers: true,
        ..DynamicsSimConfig::default()
    })
    .await?;
    let token = token(&sim).await?;
    let request = EntitySpec::contacts().phone_lookup("v9.2", &["+13175550125"], None)?;
    assert_eq!(get(&sim, &token, &request).await?.status(), 200);
    let seen = &sim.requests()[0].headers;
    for (name, value) in [
        ("odata-maxversion", "4.0"),
        ("odata-version", "4.0"),
        ("accept", "application/json"),
    ] {
        assert!(seen.iter().any(|(n, v)| n == name && v == value), "{name}");
    }
    let bare = client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(bare.status(), 400);
    let old = client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(&token)
        .header("Accept", "application/json")
        .header("OData-MaxVersion", "3.0")
        .header("OData-Version", "3.0")
        .send()
        .await?;
    assert_eq!(old.status(), 400);
    let xml = client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(&token)
        .header("Accept", "application/xml")
        .header("OData-MaxVersion", "4.0")
        .header("OData-Version", "4.0")
        .send()
        .await?;
    assert_eq!(xml.status(), 406);
    Ok(())
}

#[tokio::test]
async fn max_page_size_pages_with_a_next_link_and_top_caps_the_rows() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    for i in 0..3 {
        sim.insert(
            "contacts",
            json!({"fullname": format!("Twin {i}"), "telephone2": "555 0100"}),
        )?;
    }
    let token = token(&sim).await?;
    let spec = EntitySpec::contacts();
    let request = spec.phone_lookup("v9.2", &["555 0100"], None)?;
    let first = client()
        .get(request.url(&sim.base_url()))
        .bearer_auth(&token)
        .header("Prefer", "odata.maxpagesize=2")
        .send()
        .await?;
    assert_eq!(first.headers()["preference-applied"], "odata.maxpagesize=2");
    let page = dv::parse_collection(&spec, &first.bytes().await?)?;
    assert_eq!(page.records.len(), 2);
    let next = page.next_link.ok_or("no nextLink")?;
    let second = client()
        .get(next)
        .bearer_auth(&token)
        .header("Prefer", "odata.maxpagesize=2")
        .send()
        .await?;
    let page = dv::parse_collection(&spec, &second.bytes().await?)?;
    assert_eq!(page.records.len(), 1);
    assert!(page.next_link.is_none());
    let top = get(
        &sim,
        &token,
        &spec.phone_lookup("v9.2", &["555 0100"], Some(1))?,
    )
    .await?;
    assert_eq!(ids(&spec, top).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn scripted_faults_outages_and_garbage_are_answered_in_order() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let spec = EntitySpec::contacts();
    let request = spec.phone_lookup("v9.2", &["+13175550125"], None)?;
    sim.push_fault(
        Op::Query,
        Fault::Throttle {
            retry_after_secs: 7,
        },
    );
    sim.push_fault(Op::Query, Fault::Garbage);
    sim.push_fault(Op::Query, Fault::WrongShape);
    sim.push_fault(Op::Query, Fault::Status { status: 500 });
    let r = get(&sim, &token, &request).await?;
    assert_eq!(
        (r.status().as_u16(), r.headers()["retry-after"].to_str()?),
        (429, "7")
    );
    let r = get(&sim, &token, &request).await?;
    assert!(dv::parse_collection(&spec, &r.bytes().await?).is_err());
    let r = get(&sim, &token, &request).await?;
    assert_eq!(
        dv::parse_collection(&spec, &r.bytes().await?),
        Err(dv::ResponseError::MissingValue)
    );
    let r = get(&sim, &token, &request).await?;
    assert!(dv::WebApiError::parse(500, None, &r.bytes().await?).is_retryable());
    assert_eq!(get(&sim, &token, &request).await?.status(), 200);
    sim.set_down(true);
    assert_eq!(get(&sim, &token, &request).await?.status(), 503);
    assert_eq!(
        token_response(&sim, "sim-client-secret").await?.status(),
        503
    );
    Ok(())
}

#[tokio::test]
async fn the_admin_api_inserts_rows_scripts_faults_and_reports_stats() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let admin = format!("{}/sim", sim.base_url());
    let created = client().post(format!("{admin}/rows")).json(&json!({"entitySet": "leads", "row": {"fullname": "New", "telephone3": "0207 946 0000"}})).send().await?;
    assert_eq!(created.status(), 201);
    let bad = client()
        .post(format!("{admin}/rows"))
        .json(&json!({"entitySet": "leads", "row": {"Telephone3": "x"}}))
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
        token_response(&sim, "sim-client-secret").await?.status(),
        503
    );
    let config = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"maxRequests": 1}))
        .send()
        .await?;
    assert_eq!(config.status(), 200);
    let token = token(&sim).await?;
    let leads = EntitySpec::leads();
    let request = leads.phone_lookup("v9.2", &["0207 946 0000"], None)?;
    assert_eq!(
        ids(&leads, get(&sim, &token, &request).await?).await?.len(),
        1
    );
    assert_eq!(get(&sim, &token, &request).await?.status(), 429);
    assert_eq!(
        client()
            .post(format!("{admin}/tokens/expire"))
            .send()
            .await?
            .status(),
        204
    );
    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["byOp"]["token"], 2);
    assert_eq!(stats["tokens"], 0);
    assert_eq!(stats["rows"], 5);
    Ok(())
}

/// The injection classics through every key kind, end to end: each request attrsync builds is
/// accepted by the simulator's parser and finds nothing it should not.
#[tokio::test]
async fn injection_classics_through_every_key_kind_find_nothing_over_http() -> TestResult {
    let sim = start(DynamicsSimConfig::default()).await?;
    let token = token(&sim).await?;
    let classics = [
        "'",
        "\\",
        "}",
        "OR 1=1",
        "' or telephone1 ne '",
        "') or (telephone1 ne '",
        "--",
        "%",
        "*",
        "^",
        "\"",
        "&$top=1",
        "+",
        "#",
        "😀",
        "a\nb",
    ];
    for spec in EntitySpec::defaults() {
        for value in classics {
            for request in [
                spec.phone_lookup("v9.2", &[value], None)?,
                spec.email_lookup("v9.2", value, None)?,
            ] {
                let response = get(&sim, &token, &request).await?;
                assert_eq!(response.status(), 200, "{value:?}");
                assert!(ids(&spec, response).await?.is_empty(), "{value:?}");
            }
            assert_eq!(spec.id_lookup("v9.2", value), Err(dv::ODataError::NotAGuid));
        }
    }
    Ok(())
}
