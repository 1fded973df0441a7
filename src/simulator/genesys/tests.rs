//! The simulator's tests: through its HTTP API and its handle, as a client sees it.

use super::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::platform::app;
use super::state::{RateWindow, Shared};
use axum::body::Body;
use axum::http::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::DateTime;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::ServiceExt;
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn start(config: GenesysSimConfig) -> std::io::Result<GenesysSim> {
    GenesysSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await
}

fn client() -> reqwest::Client {
    // Loopback must never be routed through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
}

fn token_request(sim: &GenesysSim, id: &str, secret: &str) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/oauth/token", sim.base_url()))
        .basic_auth(id, Some(secret))
        .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
        .body("grant_type=client_credentials")
}

async fn fetch_token(sim: &GenesysSim) -> Result<String, Box<dyn std::error::Error>> {
    let body: Value = token_request(sim, "attrsync-sim", "sim-secret")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

fn conversation_url(sim: &GenesysSim, conversation_id: &str) -> String {
    format!("{}/api/v2/conversations/{conversation_id}", sim.base_url())
}

fn attributes_url(sim: &GenesysSim, created: &CreatedConversation) -> String {
    format!(
        "{}/participants/{}/attributes",
        conversation_url(sim, &created.conversation_id),
        created.customer_participant_id
    )
}

async fn patch_json(
    sim: &GenesysSim,
    token: &str,
    created: &CreatedConversation,
    body: Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .patch(attributes_url(sim, created))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
}

fn voice_call() -> NewConversation {
    NewConversation {
        ani: Some("tel:+13175550125".to_owned()),
        dnis: Some("tel:+18005550100".to_owned()),
        ..NewConversation::default()
    }
}

/// Status, error body, and the correlation header that must echo `contextId`.
async fn error_of(response: reqwest::Response) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let status = response.status().as_u16();
    let correlation = response
        .headers()
        .get("ININ-Correlation-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = response.json().await?;
    assert_eq!(body["contextId"].as_str(), correlation.as_deref());
    assert_eq!(body["status"], json!(status));
    assert_eq!(body["errors"], json!([]));
    Ok((status, body))
}

#[tokio::test]
async fn valid_client_credentials_get_a_bearer_token_with_the_configured_lifetime() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let response = token_request(&sim, "attrsync-sim", "sim-secret")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 86_400);
    assert!(body["access_token"].as_str().is_some_and(|t| t.len() >= 32));
    assert_eq!(sim.stats().tokens_issued, 1);
    Ok(())
}

#[tokio::test]
async fn wrong_or_missing_client_credentials_are_rejected_as_bad_credentials() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let (status, body) =
        error_of(token_request(&sim, "attrsync-sim", "wrong").send().await?).await?;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "bad.credentials");
    assert_eq!(body["message"], "Invalid login credentials.");
    assert_eq!(body["details"], json!([]));

    let unauthenticated = client()
        .post(format!("{}/oauth/token", sim.base_url()))
        .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
        .body("grant_type=client_credentials")
        .send()
        .await?;
    assert_eq!(
        error_of(unauthenticated).await?.1["code"],
        "bad.credentials"
    );
    assert_eq!(sim.stats().token_requests, 2);
    assert_eq!(sim.stats().tokens_issued, 0);
    Ok(())
}

#[tokio::test]
async fn a_grant_type_other_than_client_credentials_is_a_bad_request() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let response = token_request(&sim, "attrsync-sim", "sim-secret")
        .body("grant_type=password")
        .send()
        .await?;
    let (status, body) = error_of(response).await?;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad.request")));
    Ok(())
}

#[tokio::test]
async fn an_api_call_without_a_bearer_token_requires_authentication() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let created = sim.create_conversation(voice_call());
    let response = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .send()
        .await?;
    let (status, body) = error_of(response).await?;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "authentication.required");
    assert_eq!(
        body["message"],
        "No authentication bearer token specified in authorization header."
    );
    Ok(())
}

#[tokio::test]
async fn unknown_and_revoked_tokens_are_rejected_as_bad_credentials() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let created = sim.create_conversation(voice_call());
    let url = conversation_url(&sim, &created.conversation_id);

    let unknown = client().get(&url).bearer_auth("made-up").send().await?;
    assert_eq!(error_of(unknown).await?.1["code"], "bad.credentials");

    let token = fetch_token(&sim).await?;
    let lower_case_scheme = client()
        .get(&url)
        .header(header::AUTHORIZATION, format!("bearer {token}"))
        .send()
        .await?;
    assert_eq!(lower_case_scheme.status(), 200);

    sim.revoke_tokens();
    let revoked = client().get(&url).bearer_auth(&token).send().await?;
    assert_eq!(error_of(revoked).await?.1["code"], "bad.credentials");
    Ok(())
}

#[tokio::test]
async fn a_voice_conversation_has_a_customer_and_an_ivr_participant_with_calls() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(NewConversation {
        external_contact_id: Some("ext-42".to_owned()),
        attributes: BTreeMap::from([("flow.lang".to_owned(), "en-US".to_owned())]),
        ..voice_call()
    });
    let response = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await?;

    assert_eq!(body["id"].as_str(), Some(created.conversation_id.as_str()));
    assert!(body.get("endTime").is_none());
    assert_eq!(body["address"], "tel:+18005550100");
    assert_eq!(
        body["selfUri"].as_str(),
        Some(format!("/api/v2/conversations/{}", created.conversation_id).as_str())
    );
    let start_time = body["startTime"].as_str().unwrap_or_default();
    assert!(
        DateTime::parse_from_rfc3339(start_time).is_ok(),
        "{start_time}"
    );

    let customer = &body["participants"][0];
    assert_eq!(
        customer["id"].as_str(),
        Some(created.customer_participant_id.as_str())
    );
    assert_eq!(customer["purpose"], "customer");
    assert_eq!(customer["ani"], "tel:+13175550125");
    assert_eq!(customer["address"], "tel:+13175550125");
    assert_eq!(customer["externalContactId"], "ext-42");
    assert_eq!(customer["attributes"], json!({"flow.lang": "en-US"}));
    assert_eq!(customer["calls"][0]["state"], "connected");
    assert_eq!(customer["calls"][0]["direction"], "inbound");
    assert_eq!(customer["chats"], json!([]));

    let ivr = &body["participants"][1];
    assert_eq!(
        ivr["id"].as_str(),
        Some(created.ivr_participant_id.as_str())
    );
    assert_eq!(ivr["purpose"], "ivr");
    Ok(())
}

#[tokio::test]
async fn a_chat_conversation_carries_its_media_in_chats() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(NewConversation {
        media_type: MediaType::Chat,
        ..NewConversation::default()
    });
    let body: Value = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let customer = &body["participants"][0];
    assert_eq!(customer["calls"], json!([]));
    assert_eq!(customer["chats"][0]["provider"], "PureCloud Webchat v2");
    assert!(customer.get("ani").is_none());
    Ok(())
}

#[tokio::test]
async fn an_unknown_conversation_is_not_found() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let response = client()
        .get(conversation_url(&sim, &Uuid::new_v4().to_string()))
        .bearer_auth(&token)
        .send()
        .await?;
    let (status, body) = error_of(response).await?;
    assert_eq!((status, body["code"].as_str()), (404, Some("not.found")));
    Ok(())
}

#[tokio::test]
async fn a_patch_upserts_string_attributes_and_answers_202_with_an_empty_body() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    let customer = &created.customer_participant_id;
    sim.set_attributes(
        &created.conversation_id,
        customer,
        BTreeMap::from([("flow.lang".to_owned(), "en-US".to_owned())]),
    );

    let first = json!({"attributes": {"crm.id": "C-1001", "crm.tier": "silver"}});
    let response = patch_json(&sim, &token, &created, first).await?;
    assert_eq!(response.status(), 202);
    assert!(response.bytes().await?.is_empty());
    let second = json!({"attributes": {"crm.tier": "gold"}});
    assert_eq!(
        patch_json(&sim, &token, &created, second).await?.status(),
        202
    );

    let stored = sim.attributes(&created.conversation_id, customer);
    let expected = BTreeMap::from([
        ("crm.id".to_owned(), "C-1001".to_owned()),
        ("crm.tier".to_owned(), "gold".to_owned()),
        ("flow.lang".to_owned(), "en-US".to_owned()),
    ]);
    assert_eq!(stored, Some(expected));
    let patches = sim.patches(&created.conversation_id, customer);
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[1],
        BTreeMap::from([("crm.tier".to_owned(), "gold".to_owned())])
    );
    assert_eq!(sim.stats().patches_accepted, 2);
    Ok(())
}

#[tokio::test]
async fn a_non_string_value_is_an_invalid_value_and_nothing_is_stored() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    let body = json!({"attributes": {"crm.id": "C-1001", "crm.score": 7}});
    let (status, error) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
    assert_eq!(status, 400);
    assert_eq!(error["code"], "invalid.value");
    assert_eq!(
        error["details"],
        json!([{"errorCode": "invalid.value", "fieldName": "attributes.crm.score"}])
    );
    let stored = sim.attributes(&created.conversation_id, &created.customer_participant_id);
    assert_eq!(stored, Some(BTreeMap::new()));
    assert!(sim
        .patches(&created.conversation_id, &created.customer_participant_id)
        .is_empty());
    Ok(())
}

#[tokio::test]
async fn malformed_json_or_a_missing_attributes_map_is_a_bad_request() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    for body in [
        "{\"attributes\": ",
        "{\"crm.id\": \"C-1\"}",
        "{\"attributes\": [\"a\"]}",
    ] {
        let response = client()
            .patch(attributes_url(&sim, &created))
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, JSON_CONTENT_TYPE)
            .body(body)
            .send()
            .await?;
        let (status, error) = error_of(response).await?;
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some("bad.request")),
            "{body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_patch_without_a_json_content_type_is_an_unsupported_media_type() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    let response = client()
        .patch(attributes_url(&sim, &created))
        .bearer_auth(&token)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(r#"{"attributes": {"crm.id": "C-1"}}"#)
        .send()
        .await?;
    let (status, error) = error_of(response).await?;
    assert_eq!(
        (status, error["code"].as_str()),
        (415, Some("unsupported.media.type"))
    );
    Ok(())
}

#[tokio::test]
async fn an_ended_conversation_is_still_readable_but_rejects_patches_as_not_found() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    assert!(sim.end_conversation(&created.conversation_id));

    let body = json!({"attributes": {"crm.id": "C-1001"}});
    let (status, error) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
    assert_eq!((status, error["code"].as_str()), (404, Some("not.found")));

    let conversation: Value = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    assert!(conversation["endTime"].is_string());
    assert!(conversation["participants"][0]["endTime"].is_string());
    assert_eq!(
        conversation["participants"][0]["calls"][0]["state"],
        "disconnected"
    );
    Ok(())
}

#[tokio::test]
async fn a_patch_for_an_unknown_participant_is_not_found() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = CreatedConversation {
        customer_participant_id: Uuid::new_v4().to_string(),
        ..sim.create_conversation(voice_call())
    };
    let body = json!({"attributes": {"crm.id": "C-1001"}});
    let (status, _) = error_of(patch_json(&sim, &token, &created, body).await?).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn the_org_wide_cap_refuses_every_token_once_all_of_them_together_reach_it() -> TestResult {
    let sim = start(GenesysSimConfig {
        rate_limit_per_minute: Some(10),
        org_rate_limit_per_minute: Some(3),
        extra_clients: vec![("second-client".to_owned(), "second-secret".to_owned())],
        ..GenesysSimConfig::default()
    })
    .await?;
    let first = fetch_token(&sim).await?;
    let second: Value = token_request(&sim, "second-client", "second-secret")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let second = second["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let created = sim.create_conversation(voice_call());
    let url = conversation_url(&sim, &created.conversation_id);
    let get = |token: &str| client().get(&url).bearer_auth(token.to_owned()).send();
    for token in [&first, &second, &first] {
        assert_eq!(get(token).await?.status(), 200);
    }
    // Each token is far below its own limit of 10; together they have used the org's 3.
    for token in [&second, &first] {
        let response = get(token).await?;
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        let (status, body) = error_of(response).await?;
        assert_eq!(status, 429);
        assert_eq!(body["code"], "too.many.requests.retry.after");
    }
    let stats = sim.stats();
    assert_eq!((stats.rate_limited, stats.org_rate_limited), (2, 2));
    // Lifted at run time, like the per-token limit.
    sim.set_org_rate_limit(None);
    assert_eq!(get(&second).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn exceeding_the_rate_limit_returns_the_normalized_429_with_retry_after() -> TestResult {
    let sim = start(GenesysSimConfig {
        rate_limit_per_minute: Some(2),
        ..GenesysSimConfig::default()
    })
    .await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    let url = conversation_url(&sim, &created.conversation_id);
    for _ in 0..2 {
        assert_eq!(
            client()
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await?
                .status(),
            200
        );
    }

    let response = client().get(&url).bearer_auth(&token).send().await?;
    let retry_after: u64 = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let (status, body) = error_of(response).await?;
    assert_eq!(status, 429);
    let context_id = body["contextId"].clone();
    assert_eq!(
        body,
        json!({
            "message": format!("Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"),
            "code": "too.many.requests.retry.after",
            "status": 429,
            "contextId": context_id,
            "details": [],
            "errors": [],
        })
    );
    assert_eq!(sim.stats().rate_limited, 1);

    // The limit is per token: a fresh token has its own window.
    let other = fetch_token(&sim).await?;
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(&other)
            .send()
            .await?
            .status(),
        200
    );
    Ok(())
}

#[tokio::test]
async fn scripted_faults_are_consumed_in_order_before_normal_handling() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    let url = conversation_url(&sim, &created.conversation_id);
    sim.push_fault(Op::GetConversation, Fault::Unauthorized);
    sim.push_fault(
        Op::GetConversation,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    sim.push_fault(Op::GetConversation, Fault::Status(503));
    sim.push_fault(Op::GetConversation, Fault::Status(504));
    sim.push_fault(Op::GetConversation, Fault::Delay(Duration::from_millis(1)));

    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let response = client().get(&url).bearer_auth(&token).send().await?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
        let code = if status == 200 {
            String::new()
        } else {
            error_of(response).await?.1["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        outcomes.push((status, code, retry_after));
    }
    let expected = [
        (401, "bad.credentials", None),
        (
            429,
            "too.many.requests.retry.after",
            Some(HeaderValue::from(7u64)),
        ),
        (503, "service.unavailable", None),
        (504, "request.timeout", None),
        (200, "", None),
        (200, "", None),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(status, code, retry_after)| (status, code.to_owned(), retry_after))
        .collect();
    assert_eq!(outcomes, expected);

    let stats = sim.stats();
    assert_eq!(stats.get_conversation, 6);
    assert_eq!(stats.faults_injected, 5);
    assert_eq!(stats.rate_limited, 1);
    Ok(())
}

#[tokio::test]
async fn a_scripted_fault_on_the_token_endpoint_fails_only_the_next_token_request() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    sim.push_fault(Op::Token, Fault::Status(500));
    let (status, body) = error_of(
        token_request(&sim, "attrsync-sim", "sim-secret")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (500, Some("internal.server.error"))
    );
    assert!(!fetch_token(&sim).await?.is_empty());
    assert_eq!(sim.stats().tokens_issued, 1);
    Ok(())
}

#[tokio::test]
async fn an_error_rate_of_one_fails_every_api_call_with_service_unavailable() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let token = fetch_token(&sim).await?;
    let created = sim.create_conversation(voice_call());
    sim.set_error_rate(1.0);
    let response = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .bearer_auth(&token)
        .send()
        .await?;
    let (status, body) = error_of(response).await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("service.unavailable"))
    );
    sim.set_error_rate(0.0);
    let response = client()
        .get(conversation_url(&sim, &created.conversation_id))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_creates_ends_and_reports_like_the_handle() -> TestResult {
    let sim = start(GenesysSimConfig::default()).await?;
    let admin = format!("{}/sim", sim.base_url());
    let response = client()
        .post(format!("{admin}/conversations"))
        .json(&json!({"mediaType": "message", "ani": "+13175550125", "attributes": {"a": "b"}}))
        .send()
        .await?;
    assert_eq!(response.status(), 201);
    let created: CreatedConversation = response.json().await?;
    let attributes: Value = client()
        .get(format!(
            "{admin}/conversations/{}/participants/{}/attributes",
            created.conversation_id, created.customer_participant_id
        ))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(attributes, json!({"a": "b"}));

    let fault =
        json!({"op": "patchAttributes", "fault": {"kind": "tooManyRequests", "retryAfterSecs": 3}});
    let pushed = client()
        .post(format!("{admin}/faults"))
        .json(&fault)
        .send()
        .await?;
    assert_eq!(pushed.status(), 204);
    let config: Value = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"rateLimitPerMinute": 300, "latencyMs": 0}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(config["rateLimitPerMinute"], 300);
    assert_eq!(config["scriptedFaults"]["patchAttributes"], 1);

    let ended = client()
        .post(format!(
            "{admin}/conversations/{}/end",
            created.conversation_id
        ))
        .send()
        .await?;
    assert_eq!(ended.status(), 204);
    let missing = client()
        .post(format!("{admin}/conversations/nope/end"))
        .send()
        .await?;
    assert_eq!(missing.status(), 404);

    fetch_token(&sim).await?;
    let stats: SimStats = client()
        .get(format!("{admin}/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats, sim.stats());
    assert_eq!(stats.tokens_issued, 1);
    Ok(())
}

#[test]
fn faults_round_trip_through_their_admin_json_form() -> Result<(), serde_json::Error> {
    let faults = [
        Fault::Unauthorized,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
        Fault::Status(504),
        Fault::Delay(Duration::from_millis(250)),
    ];
    let wire = serde_json::to_value(&faults)?;
    assert_eq!(
        wire,
        json!([
            {"kind": "unauthorized"},
            {"kind": "tooManyRequests", "retryAfterSecs": 3},
            {"kind": "status", "status": 504},
            {"kind": "delay", "millis": 250},
        ])
    );
    assert_eq!(serde_json::from_value::<Vec<Fault>>(wire)?, faults);
    Ok(())
}

#[test]
fn retry_after_is_the_rest_of_the_window_rounded_up_and_at_least_one_second() {
    let start = Instant::now();
    let mut window = RateWindow::new(start);
    assert_eq!(window.admit(start, 1), Ok(()));
    assert_eq!(window.admit(start, 1), Err(60));
    assert_eq!(
        window.admit(start + Duration::from_millis(20_500), 1),
        Err(40)
    );
    assert_eq!(
        window.admit(start + Duration::from_millis(59_999), 1),
        Err(1)
    );
    assert_eq!(window.admit(start + RATE_LIMIT_WINDOW, 1), Ok(()));
}

/// Driven through the router without sockets: with paused time, the runtime would
/// otherwise auto-advance the clock while a real socket is waiting for data.
async fn call(
    app: &Router,
    request: Request<Body>,
) -> Result<Response, Box<dyn std::error::Error>> {
    Ok(app.clone().oneshot(request).await?)
}

#[tokio::test(start_paused = true)]
async fn a_token_expires_after_its_lifetime() -> TestResult {
    let shared = Arc::new(Shared::new(GenesysSimConfig {
        token_lifetime: Duration::from_secs(300),
        ..GenesysSimConfig::default()
    }));
    let app = app(Arc::clone(&shared));
    let created = shared.create_conversation(voice_call());

    let credentials = STANDARD.encode("attrsync-sim:sim-secret");
    let issued = call(
        &app,
        Request::post("/oauth/token")
            .header(header::AUTHORIZATION, format!("Basic {credentials}"))
            .header(header::CONTENT_TYPE, FORM_CONTENT_TYPE)
            .body(Body::from("grant_type=client_credentials"))?,
    )
    .await?;
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(issued.into_body(), 1 << 16).await?)?;
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap_or_default().to_owned();

    let get = || {
        Request::get(format!("/api/v2/conversations/{}", created.conversation_id))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
    };
    tokio::time::advance(Duration::from_secs(299)).await;
    assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);

    tokio::time::advance(Duration::from_secs(1)).await;
    let expired = call(&app, get()?).await?;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(expired.into_body(), 1 << 16).await?)?;
    assert_eq!(body["code"], "bad.credentials");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_token_is_admitted_again_once_the_window_has_passed() -> TestResult {
    let shared = Arc::new(Shared::new(GenesysSimConfig {
        rate_limit_per_minute: Some(1),
        ..GenesysSimConfig::default()
    }));
    let app = app(Arc::clone(&shared));
    let created = shared.create_conversation(voice_call());
    let token = shared.issue_token();
    let get = || {
        Request::get(format!("/api/v2/conversations/{}", created.conversation_id))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
    };
    assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);
    tokio::time::advance(Duration::from_secs(15)).await;
    let limited = call(&app, get()?).await?;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        limited.headers().get(header::RETRY_AFTER),
        Some(&HeaderValue::from(45u64))
    );

    tokio::time::advance(Duration::from_secs(45)).await;
    assert_eq!(call(&app, get()?).await?.status(), StatusCode::OK);
    Ok(())
}
