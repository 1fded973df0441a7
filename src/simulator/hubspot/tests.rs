//! The HubSpot simulator over real HTTP: auth, the validator, matching, limits, lag, faults.

use std::time::Duration;

use axum::http::header;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;
const TOKEN: &str = "pat-na1-sim-token";

async fn start(config: HubSpotSimConfig) -> std::io::Result<HubSpotSim> {
    let sim = HubSpotSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
    for contact in HubSpotSim::sample_contacts() {
        assert!(sim.seed_contact(contact).is_some());
    }
    Ok(sim)
}

fn client() -> reqwest::Client {
    // Loopback must never be routed through a proxy from the environment.
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_default()
}

async fn search(sim: &HubSpotSim, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
}

fn eq(property: &str, value: &str) -> Value {
    json!({"filterGroups": [{"filters": [{"propertyName": property, "operator": "EQ", "value": value}]}]})
}

async fn firstnames(
    response: reqwest::Response,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let status = response.status();
    let body: Value = response.json().await?;
    if status != 200 {
        return Err(format!("{status}: {body}").into());
    }
    Ok(body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["properties"]["firstname"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn a_search_answers_total_results_and_the_requested_properties() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let response = search(
        &sim,
        json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": "ADA@example.com"}]}],
               "properties": ["firstname", "phone", "no_such_property"]}),
    )
    .await?;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-hubspot-correlation-id"));
    assert!(!response
        .headers()
        .contains_key("x-hubspot-ratelimit-remaining"));
    let body: Value = response.json().await?;
    assert_eq!(body["total"], 1);
    let ada = &body["results"][0];
    assert_eq!(ada["id"], "100451");
    assert_eq!(ada["archived"], false);
    assert_eq!(ada["properties"]["firstname"], "Ada");
    assert_eq!(ada["properties"]["phone"], "+15135557611");
    assert_eq!(ada["properties"]["hs_object_id"], "100451");
    assert!(ada["properties"].get("no_such_property").is_none());
    assert!(ada["updatedAt"].is_string() && ada["createdAt"].is_string());
    Ok(())
}

#[tokio::test]
async fn phone_filters_match_the_stored_text_and_the_calculated_properties_the_national_number(
) -> TestResult {
    let sim = start(HubSpotSimConfig {
        search_per_second: 100,
        ..HubSpotSimConfig::default()
    })
    .await?;
    assert_eq!(
        firstnames(search(&sim, eq("phone", "(317) 555-0126")).await?).await?,
        ["Grace"]
    );
    assert!(firstnames(search(&sim, eq("phone", "+13175550126")).await?)
        .await?
        .is_empty());
    assert_eq!(
        firstnames(
            search(
                &sim,
                eq("hs_searchable_calculated_phone_number", "3175550126")
            )
            .await?
        )
        .await?,
        ["Grace"]
    );
    assert_eq!(
        firstnames(
            search(
                &sim,
                eq("hs_searchable_calculated_mobile_number", "3175550199")
            )
            .await?
        )
        .await?,
        ["Grace"]
    );
    assert_eq!(
        firstnames(
            search(
                &sim,
                eq("hs_searchable_calculated_phone_number", "2079460958")
            )
            .await?
        )
        .await?,
        ["Alan"]
    );
    sim.set_phone_filter(PhoneFilterMode::Standardised);
    assert_eq!(
        firstnames(search(&sim, eq("phone", "+13175550126")).await?).await?,
        ["Grace"]
    );
    Ok(())
}

#[tokio::test]
async fn an_invalid_search_is_a_400_validation_error_in_hubspots_shape() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let unknown = search(&sim, eq("shoe_size", "9")).await?;
    assert_eq!(unknown.status(), 400);
    let body: Value = unknown.json().await?;
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());
    assert_eq!(body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    let filter = json!({"propertyName": "email", "operator": "HAS_PROPERTY"});
    let six_groups = json!({"filterGroups": vec![json!({"filters": [filter]}); 6]});
    assert_eq!(search(&sim, six_groups).await?.status(), 400);
    let broken = client()
        .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"filterGroups\": [")
        .send()
        .await?;
    assert_eq!(broken.status(), 400);
    assert!(broken.json::<Value>().await?["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Invalid input JSON on line 1")));
    assert_eq!(sim.stats().invalid_requests, 3);
    Ok(())
}

#[tokio::test]
async fn paging_follows_after_and_stops_at_the_last_page() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let all = json!({"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}], "limit": 2});
    let first: Value = search(&sim, all.clone()).await?.json().await?;
    assert_eq!(first["total"], 3);
    assert_eq!(first["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(first["paging"]["next"]["after"], "2");
    let mut next = all;
    next["after"] = json!("2");
    let second: Value = search(&sim, next).await?.json().await?;
    assert_eq!(second["results"].as_array().map(Vec::len), Some(1));
    assert!(second.get("paging").is_none());
    Ok(())
}

#[tokio::test]
async fn a_new_contact_is_searchable_only_after_the_index_lag_but_readable_at_once() -> TestResult {
    let sim = start(HubSpotSimConfig {
        index_lag: Duration::from_millis(300),
        ..HubSpotSimConfig::default()
    })
    .await?;
    let id = sim
        .insert_contact(json!({"firstname": "Mary", "email": "mary@example.com"}))
        .ok_or("insert")?;
    assert!(
        firstnames(search(&sim, eq("email", "mary@example.com")).await?)
            .await?
            .is_empty()
    );
    let read = client()
        .get(format!(
            "{}/crm/v3/objects/contacts/{id}?properties=email",
            sim.base_url()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(read.status(), 200);
    assert_eq!(
        read.json::<Value>().await?["properties"]["email"],
        "mary@example.com"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        firstnames(search(&sim, eq("email", "mary@example.com")).await?).await?,
        ["Mary"]
    );

    assert!(sim.update_contact(id, json!({"firstname": "Mary J."})));
    assert_eq!(
        firstnames(search(&sim, eq("email", "mary@example.com")).await?).await?,
        ["Mary"]
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        firstnames(search(&sim, eq("email", "mary@example.com")).await?).await?,
        ["Mary J."]
    );
    Ok(())
}

#[tokio::test]
async fn a_contact_is_read_by_id_or_email_and_a_missing_one_is_object_not_found() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let get = |path: &str| {
        client()
            .get(format!("{}/crm/v3/objects/contacts/{path}", sim.base_url()))
            .bearer_auth(TOKEN)
            .send()
    };
    let by_email = get("Grace.Hopper@example.com?idProperty=email&properties=firstname").await?;
    assert_eq!(by_email.status(), 200);
    assert_eq!(by_email.headers()["x-hubspot-ratelimit-max"], "190");
    assert_eq!(
        by_email.headers()["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    assert_eq!(
        by_email.json::<Value>().await?["properties"]["firstname"],
        "Grace"
    );
    let missing = get("999").await?;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await?;
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["context"]["id"], json!(["999"]));
    assert_eq!(get("100451?idProperty=firstname").await?.status(), 400);
    Ok(())
}

#[tokio::test]
async fn unknown_revoked_and_expired_tokens_get_hubspots_401_bodies() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let with = |token: &'static str| {
        client()
            .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
            .bearer_auth(token)
            .json(&eq("email", "ada@example.com"))
            .send()
    };
    let unknown: Value = with("pat-na1-other").await?.json().await?;
    assert_eq!(unknown["category"], "INVALID_AUTHENTICATION");
    assert!(unknown["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("Authentication credentials not found")));
    let no_header = client()
        .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
        .json(&json!({}))
        .send()
        .await?;
    assert_eq!(no_header.status(), 401);

    sim.add_token("pat-na1-second");
    assert_eq!(with("pat-na1-second").await?.status(), 200);
    sim.revoke_token("pat-na1-second");
    assert_eq!(
        with("pat-na1-second").await?.json::<Value>().await?["category"],
        "INVALID_AUTHENTICATION"
    );

    assert_eq!(with(TOKEN).await?.status(), 200);
    sim.expire_tokens();
    let expired = with(TOKEN).await?;
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await?;
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    assert!(body["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("The OAuth token used to make this call expired")));
    assert!(body["context"]["expire time"][0].is_string());
    assert_eq!(sim.stats().auth_failures, 4);
    Ok(())
}

#[tokio::test]
async fn a_token_with_a_lifetime_expires_and_a_missing_scope_is_403() -> TestResult {
    let sim = start(HubSpotSimConfig {
        token_lifetime: Some(Duration::from_millis(150)),
        ..HubSpotSimConfig::default()
    })
    .await?;
    assert_eq!(search(&sim, eq("email", "x@y.z")).await?.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expired: Value = search(&sim, eq("email", "x@y.z")).await?.json().await?;
    assert_eq!(expired["category"], "EXPIRED_AUTHENTICATION");

    let no_scope = start(HubSpotSimConfig {
        granted_scopes: vec!["crm.objects.deals.read".to_owned()],
        ..HubSpotSimConfig::default()
    })
    .await?;
    let refused = search(&no_scope, eq("email", "x@y.z")).await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(refused.json::<Value>().await?["category"], "MISSING_SCOPES");
    Ok(())
}

#[tokio::test]
async fn the_search_limit_answers_hubspots_429_and_is_shared_by_the_whole_account() -> TestResult {
    let sim = start(HubSpotSimConfig {
        access_tokens: vec![TOKEN.to_owned(), "pat-na1-other-app".to_owned()],
        search_per_second: 2,
        ..HubSpotSimConfig::default()
    })
    .await?;
    let with = |token: &'static str| {
        client()
            .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
            .bearer_auth(token)
            .json(&eq("email", "ada@example.com"))
            .send()
    };
    assert_eq!(with(TOKEN).await?.status(), 200);
    assert_eq!(with("pat-na1-other-app").await?.status(), 200);
    let limited = with(TOKEN).await?;
    assert_eq!(limited.status(), 429);
    assert!(!limited.headers().contains_key(header::RETRY_AFTER));
    let body: Value = limited.json().await?;
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["policyName"], "SECONDLY");
    assert_eq!(body["message"], "You have reached your secondly limit.");
    assert!(body["correlationId"].is_string() && body["requestId"].is_string());
    // The direct read is not under the search limit.
    let read = client()
        .get(format!("{}/crm/v3/objects/contacts/100451", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    assert_eq!(read.status(), 200);
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(with(TOKEN).await?.status(), 200);
    assert_eq!(sim.stats().search_rate_limited, 1);
    assert_eq!(sim.traffic().count("search"), 4);
    Ok(())
}

#[tokio::test]
async fn with_a_per_token_search_limit_each_app_has_its_own_budget() -> TestResult {
    let sim = start(HubSpotSimConfig {
        access_tokens: vec![TOKEN.to_owned(), "pat-na1-other-app".to_owned()],
        search_per_second: 1,
        search_scope: LimitScope::Token,
        search_retry_after: Some(1),
        ..HubSpotSimConfig::default()
    })
    .await?;
    let with = |token: &'static str| {
        client()
            .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
    };
    assert_eq!(with(TOKEN).await?.status(), 200);
    assert_eq!(with("pat-na1-other-app").await?.status(), 200);
    let limited = with(TOKEN).await?;
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
    Ok(())
}

#[tokio::test]
async fn the_ten_secondly_limit_applies_to_reads_with_its_policy_name() -> TestResult {
    let sim = start(HubSpotSimConfig {
        ten_secondly_limit: 1,
        ..HubSpotSimConfig::default()
    })
    .await?;
    let read = || {
        client()
            .get(format!("{}/crm/v3/objects/contacts/100451", sim.base_url()))
            .bearer_auth(TOKEN)
            .send()
    };
    let first = read().await?;
    assert_eq!(first.headers()["x-hubspot-ratelimit-remaining"], "0");
    let limited: Value = read().await?.json().await?;
    assert_eq!(limited["policyName"], "TEN_SECONDLY_ROLLING");
    Ok(())
}

#[tokio::test]
async fn faults_outages_and_garbage_come_before_authentication() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    sim.push_fault(Fault::Status { status: 502 });
    sim.push_fault(Fault::Garbage);
    sim.push_fault(Fault::WrongShape);
    let anonymous = || {
        client()
            .post(format!("{}/crm/v3/objects/contacts/search", sim.base_url()))
            .json(&json!({}))
            .send()
    };
    assert_eq!(anonymous().await?.status(), 502);
    let garbage = anonymous().await?;
    assert_eq!(garbage.status(), 200);
    assert!(garbage.json::<Value>().await.is_err());
    assert_eq!(anonymous().await?.json::<Value>().await?["total"], "many");
    assert_eq!(anonymous().await?.status(), 401);
    sim.set_down(true);
    assert_eq!(search(&sim, json!({})).await?.status(), 503);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_creates_updates_and_reconfigures() -> TestResult {
    let sim = start(HubSpotSimConfig::default()).await?;
    let admin = format!("{}/sim", sim.base_url());
    let created: Value = client()
        .post(format!("{admin}/contacts"))
        .json(&json!({"properties": {"firstname": "Dorothy", "phone": "757-555-0199"}, "indexed": true}))
        .send()
        .await?
        .json()
        .await?;
    let id = created["id"].as_str().ok_or("id")?.to_owned();
    assert_eq!(
        firstnames(
            search(
                &sim,
                eq("hs_searchable_calculated_phone_number", "7575550199")
            )
            .await?
        )
        .await?,
        ["Dorothy"]
    );
    let updated = client()
        .patch(format!("{admin}/contacts/{id}"))
        .json(&json!({"properties": {"firstname": "Dot"}, "indexed": true}))
        .send()
        .await?;
    assert_eq!(updated.status(), 204);
    let config: Value = client()
        .patch(format!("{admin}/config"))
        .json(
            &json!({"searchPerSecond": 9, "searchScope": "token", "phoneFilter": "standardised",
                      "filterLimits": {"groups": 5, "per_group": 10, "total": 25}}),
        )
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        (
            config["searchPerSecond"].as_u64(),
            config["searchScope"].as_str()
        ),
        (Some(9), Some("token"))
    );
    assert_eq!(config["filterLimits"]["total"], 25);
    let bad = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"nope": 1}))
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    let fault = client()
        .post(format!("{admin}/faults"))
        .json(&json!({"kind": "status", "status": 429}))
        .send()
        .await?;
    assert_eq!(fault.status(), 204);
    assert_eq!(search(&sim, json!({})).await?.status(), 429);
    let revoked = client()
        .post(format!("{admin}/tokens/revoke?token={TOKEN}"))
        .send()
        .await?;
    assert_eq!(revoked.status(), 204);
    assert_eq!(search(&sim, json!({})).await?.status(), 401);
    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["byOperation"]["search"], 3);
    assert_eq!(stats["searchBodies"].as_array().map(Vec::len), Some(1));
    Ok(())
}
