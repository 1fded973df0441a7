//! The Zendesk simulator over real HTTP: authentication, search semantics, limits, lag, faults.

use std::time::Duration;

use axum::http::header;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn start(config: ZendeskSimConfig) -> std::io::Result<ZendeskSim> {
    let sim = ZendeskSim::start(config, TcpListener::bind("127.0.0.1:0").await?).await?;
    for user in ZendeskSim::sample_users() {
        assert!(sim.seed_user(user).is_some());
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

fn api_token_auth() -> String {
    format!(
        "Basic {}",
        STANDARD.encode("agent@example.com/token:sim-api-token")
    )
}

async fn search(sim: &ZendeskSim, query: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .get(format!("{}/api/v2/search.json", sim.base_url()))
        .query(&[("query", query)])
        .header(header::AUTHORIZATION, api_token_auth())
        .send()
        .await
}

async fn names(response: reqwest::Response) -> reqwest::Result<Vec<String>> {
    let body: Value = response.json().await?;
    let items = body["results"]
        .as_array()
        .or(body["users"].as_array())
        .cloned();
    Ok(items
        .into_iter()
        .flatten()
        .filter_map(|u| u["name"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn a_phone_search_with_a_leading_asterisk_finds_the_user_whatever_the_stored_format(
) -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let found = search(&sim, "type:user role:end-user phone:*3175550126").await?;
    assert_eq!(found.status(), 200);
    assert_eq!(names(found).await?, ["Grace Hopper"]);
    assert!(
        names(search(&sim, "type:user role:end-user phone:3175550126").await?)
            .await?
            .is_empty()
    );
    assert_eq!(
        names(search(&sim, "type:user phone:+15135557611").await?).await?,
        ["Ada Lovelace"]
    );
    assert!(
        names(search(&sim, "type:user role:end-user phone:*5135550000").await?)
            .await?
            .is_empty()
    );
    assert_eq!(sim.traffic().count("search"), 4);
    Ok(())
}

#[tokio::test]
async fn a_query_outside_the_supported_subset_is_a_422_invalid_search() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let response = search(&sim, "type:user 5135557611").await?;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await?;
    assert_eq!(body["error"], "invalid");
    assert!(body["description"]
        .as_str()
        .is_some_and(|d| d.starts_with("Invalid search:")));
    assert_eq!(sim.stats().invalid_queries, 1);
    Ok(())
}

#[tokio::test]
async fn search_users_takes_an_external_id_without_search_syntax() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let by_id = |id: &'static str| {
        client()
            .get(format!("{}/api/v2/users/search.json", sim.base_url()))
            .query(&[("external_id", id)])
            .header(header::AUTHORIZATION, api_token_auth())
            .send()
    };
    assert_eq!(names(by_id("c-1002").await?).await?, ["Grace Hopper"]);
    assert!(names(by_id("C-1002 OR 1=1").await?).await?.is_empty());
    assert!(names(by_id("*").await?).await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_user_is_shown_by_id_and_an_unknown_id_is_record_not_found() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let id = sim
        .seed_user(json!({"name": "Katherine Johnson"}))
        .ok_or("seed")?;
    let show = |path: String| {
        client()
            .get(format!("{}{path}", sim.base_url()))
            .header(header::AUTHORIZATION, api_token_auth())
            .send()
    };
    let found: Value = show(format!("/api/v2/users/{id}.json"))
        .await?
        .json()
        .await?;
    assert_eq!(found["user"]["name"], "Katherine Johnson");
    assert_eq!(found["user"]["id"], id);
    let missing = show("/api/v2/users/1.json".to_owned()).await?;
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await?["error"], "RecordNotFound");
    Ok(())
}

#[tokio::test]
async fn api_token_auth_needs_the_token_form_a_known_token_and_token_access_on() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let with = |auth: String| {
        client()
            .get(format!("{}/api/v2/search.json", sim.base_url()))
            .query(&[("query", "type:user role:end-user")])
            .header(header::AUTHORIZATION, auth)
            .send()
    };
    for wrong in [
        format!("Basic {}", STANDARD.encode("agent@example.com/token:wrong")),
        format!(
            "Basic {}",
            STANDARD.encode("agent@example.com:sim-api-token")
        ),
        format!(
            "Basic {}",
            STANDARD.encode("other@example.com/token:sim-api-token")
        ),
        "Basic !!!".to_owned(),
    ] {
        let response = with(wrong).await?;
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.json::<Value>().await?,
            json!({"error": "Couldn't authenticate you"})
        );
    }
    assert_eq!(with(api_token_auth()).await?.status(), 200);
    sim.set_api_token_access(false);
    assert_eq!(with(api_token_auth()).await?.status(), 401);
    assert_eq!(sim.stats().auth_failures, 5);
    Ok(())
}

async fn oauth_token(sim: &ZendeskSim, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/oauth/tokens", sim.base_url()))
        .json(&body)
        .send()
        .await
}

#[tokio::test]
async fn a_client_credentials_token_works_until_it_expires_or_oauth_is_turned_off() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let issued = oauth_token(
        &sim,
        json!({"grant_type": "client_credentials", "client_id": "attrsync",
               "client_secret": "sim-oauth-secret", "scope": "users:read", "expires_in": 3600}),
    )
    .await?;
    assert_eq!(issued.status(), 201);
    let issued: Value = issued.json().await?;
    assert_eq!(issued["token_type"], "bearer");
    assert_eq!(issued["expires_in"], 3600);
    assert_eq!(issued["scope"], "users:read");
    let token = issued["access_token"].as_str().ok_or("token")?.to_owned();

    let with_bearer = || {
        client()
            .get(format!("{}/api/v2/search.json", sim.base_url()))
            .query(&[("query", "type:user email:ada@example.com")])
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(names(with_bearer().await?).await?, ["Ada Lovelace"]);
    sim.set_oauth_access(false);
    assert_eq!(with_bearer().await?.status(), 401);
    sim.set_oauth_access(true);
    sim.expire_tokens();
    let expired = with_bearer().await?;
    assert_eq!(expired.status(), 401);
    assert_eq!(expired.json::<Value>().await?["error"], "invalid_token");
    assert_eq!(sim.traffic().count("token"), 1);
    Ok(())
}

#[tokio::test]
async fn a_token_request_with_a_wrong_secret_grant_or_lifetime_is_refused() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let wrong_secret = oauth_token(
        &sim,
        json!({"grant_type": "client_credentials", "client_id": "attrsync", "client_secret": "x"}),
    )
    .await?;
    assert_eq!(wrong_secret.status(), 401);
    assert_eq!(
        wrong_secret.json::<Value>().await?["error"],
        "invalid_client"
    );
    let password = oauth_token(&sim, json!({"grant_type": "password"})).await?;
    assert_eq!(
        password.json::<Value>().await?["error"],
        "unsupported_grant_type"
    );
    let too_short = oauth_token(
        &sim,
        json!({"grant_type": "client_credentials", "client_id": "attrsync",
               "client_secret": "sim-oauth-secret", "expires_in": 60}),
    )
    .await?;
    assert_eq!(too_short.status(), 400);
    assert_eq!(sim.stats().tokens_issued, 0);
    Ok(())
}

#[tokio::test]
async fn a_token_without_a_lifetime_expires_after_the_configured_default() -> TestResult {
    let sim = start(ZendeskSimConfig {
        default_token_lifetime: Some(Duration::from_millis(150)),
        ..ZendeskSimConfig::default()
    })
    .await?;
    let issued: Value = oauth_token(
        &sim,
        json!({"grant_type": "client_credentials", "client_id": "attrsync", "client_secret": "sim-oauth-secret"}),
    )
    .await?
    .json()
    .await?;
    let token = issued["access_token"].as_str().ok_or("token")?.to_owned();
    let call = || {
        client()
            .get(format!(
                "{}/api/v2/users/search.json?external_id=C-1001",
                sim.base_url()
            ))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(call().await?.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(call().await?.status(), 401);
    Ok(())
}

#[tokio::test]
async fn every_answer_carries_the_remaining_requests_and_the_limit_ends_in_a_429() -> TestResult {
    let sim = start(ZendeskSimConfig {
        rate_limit_per_minute: 3,
        ..ZendeskSimConfig::default()
    })
    .await?;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let response = search(&sim, "type:user tier:gold").await?;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-rate-limit"], "3");
        assert!(response
            .headers()
            .contains_key("zendesk-ratelimit-search-index"));
        remaining.push(
            response.headers()["x-rate-limit-remaining"]
                .to_str()?
                .to_owned(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = search(&sim, "type:user tier:gold").await?;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()[header::RETRY_AFTER].to_str()?.parse()?;
    assert!((1..=60).contains(&retry_after));
    assert_eq!(limited.headers()["x-rate-limit-remaining"], "0");
    assert_eq!(limited.headers()[header::CONTENT_TYPE], "text/plain");
    assert_eq!(
        limited.text().await?,
        "Number of allowed API requests per minute exceeded"
    );
    assert_eq!(sim.stats().rate_limited, 1);
    assert_eq!(sim.traffic().max_in_window(Duration::from_secs(60)), 4);
    Ok(())
}

#[tokio::test]
async fn the_search_endpoint_has_its_own_limit_on_top_of_the_account_limit() -> TestResult {
    let sim = start(ZendeskSimConfig {
        search_rate_limit_per_minute: 1,
        ..ZendeskSimConfig::default()
    })
    .await?;
    let first = search(&sim, "type:user tier:gold").await?;
    assert_eq!(
        first.headers()["zendesk-ratelimit-search-index"]
            .to_str()?
            .split(';')
            .nth(1),
        Some(" remaining=0")
    );
    assert_eq!(search(&sim, "type:user tier:gold").await?.status(), 429);
    let other = client()
        .get(format!(
            "{}/api/v2/users/search.json?external_id=C-1001",
            sim.base_url()
        ))
        .header(header::AUTHORIZATION, api_token_auth())
        .send()
        .await?;
    assert_eq!(other.status(), 200);
    assert!(!other
        .headers()
        .contains_key("zendesk-ratelimit-search-index"));
    Ok(())
}

#[tokio::test]
async fn a_new_user_appears_in_search_only_after_the_index_lag_but_at_once_by_id() -> TestResult {
    let sim = start(ZendeskSimConfig {
        index_lag: Duration::from_millis(300),
        ..ZendeskSimConfig::default()
    })
    .await?;
    let id = sim
        .insert_user(json!({"name": "Mary Jackson", "phone": "+17575550101"}))
        .ok_or("insert")?;
    let query = "type:user role:end-user phone:*7575550101";
    assert!(names(search(&sim, query).await?).await?.is_empty());
    let shown = client()
        .get(format!("{}/api/v2/users/{id}", sim.base_url()))
        .header(header::AUTHORIZATION, api_token_auth())
        .send()
        .await?;
    assert_eq!(shown.status(), 200);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(names(search(&sim, query).await?).await?, ["Mary Jackson"]);
    Ok(())
}

#[tokio::test]
async fn scripted_faults_outages_and_garbage_bodies_come_before_authentication() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    sim.push_fault(Fault::Status { status: 503 });
    sim.push_fault(Fault::Status { status: 429 });
    sim.push_fault(Fault::Garbage);
    sim.push_fault(Fault::WrongShape);
    let unauthenticated = || {
        client()
            .get(format!(
                "{}/api/v2/search.json?query=type:user",
                sim.base_url()
            ))
            .send()
    };
    let outage = unauthenticated().await?;
    assert_eq!(outage.status(), 503);
    assert_eq!(outage.json::<Value>().await?["error"], "unavailable");
    let limited = unauthenticated().await?;
    assert_eq!(
        (
            limited.status().as_u16(),
            limited.headers()[header::RETRY_AFTER].to_str()?
        ),
        (429, "1")
    );
    let garbage = unauthenticated().await?;
    assert_eq!(garbage.status(), 200);
    assert!(garbage.json::<Value>().await.is_err());
    let wrong: Value = unauthenticated().await?.json().await?;
    assert_eq!(wrong["results"], "unavailable");
    assert_eq!(unauthenticated().await?.status(), 401);
    sim.set_down(true);
    assert_eq!(search(&sim, "type:user").await?.status(), 503);
    assert_eq!(sim.stats().faults_injected, 4);
    Ok(())
}

#[tokio::test]
async fn the_admin_api_inserts_users_switches_settings_and_reports_stats() -> TestResult {
    let sim = start(ZendeskSimConfig::default()).await?;
    let admin = format!("{}/sim", sim.base_url());
    let created = client()
        .post(format!("{admin}/users?indexed=true"))
        .json(&json!({"user": {"name": "Dorothy Vaughan", "phone": "757-555-0199"}}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let rejected = client()
        .post(format!("{admin}/users"))
        .json(&json!([1]))
        .send()
        .await?;
    assert_eq!(rejected.status(), 400);

    let config: Value = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"phoneExact": "digits", "apiTokenAccess": true}))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(config["phoneExact"], "digits");
    assert_eq!(
        names(search(&sim, "type:user phone:7575550199").await?).await?,
        ["Dorothy Vaughan"]
    );
    let unknown = client()
        .patch(format!("{admin}/config"))
        .json(&json!({"noSuchSwitch": 1}))
        .send()
        .await?;
    assert_eq!(unknown.status(), 400);

    let fault = client()
        .post(format!("{admin}/faults"))
        .json(&json!({"kind": "status", "status": 500}))
        .send()
        .await?;
    assert_eq!(fault.status(), 204);
    assert_eq!(search(&sim, "type:user").await?.status(), 500);
    let expired = client()
        .post(format!("{admin}/tokens/expire"))
        .send()
        .await?;
    assert_eq!(expired.status(), 204);

    let stats: Value = client()
        .get(format!("{admin}/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["byOperation"]["search"], 2);
    assert_eq!(stats["queries"], json!(["type:user phone:7575550199"]));
    Ok(())
}
