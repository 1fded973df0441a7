//! `GET /api/v2/ipranges`: Genesys Cloud's public address ranges, as
//! `IpAddressRangeListing {entities: [{cidr, service, region, direction}]}` (no paging, no
//! parameters; "Requires no permissions", MyPureCloud/platform-client-sdk-python@f80f2db:
//! build/docs/UtilitiesApi.md). The SDKs send a bearer token; whether Genesys answers without
//! one is not documented, so the simulator asks for one, which a client that sends it (attrsync
//! does) cannot tell apart from the other case.
//!
//! The answer can be changed ([`GenesysSim::set_ip_ranges`], `PUT /sim/ipranges`) and made to
//! fail with an `ErrorBody` of any status ([`GenesysSim::fail_ip_ranges`], `failWith`). The
//! rows live in `state` (`IpRanges`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::admin::{admin_bad_request, admin_error};
use super::errors::ApiError;
use super::state::{PublishedRange, Shared};
use super::GenesysSim;
use crate::simulator::lock;

#[derive(Serialize)]
struct Listing<'a> {
    entities: &'a [PublishedRange],
}

/// Body of `PUT /sim/ipranges` (and answer of `GET /sim/ipranges`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdminView {
    entities: Vec<PublishedRange>,
    #[serde(default)]
    fail_with: Option<u16>,
    #[serde(default)]
    calls: u64,
}

/// The Platform API route.
pub(super) async fn get_ip_ranges(
    State(sim): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let fail_with = {
        let mut ranges = lock(&sim.ip_ranges);
        ranges.calls += 1;
        ranges.fail_with
    };
    // The gate of every Platform API call (latency, random errors, token, rate limit), with
    // this switch in place of the per-operation scripted faults.
    let (latency, error_rate) = {
        let faults = lock(&sim.faults);
        (faults.latency, faults.error_rate)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(status) = fail_with {
        return Err(ApiError::for_status(
            StatusCode::from_u16(status)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        ));
    }
    if error_rate > 0.0 && rand::random::<f64>() < error_rate {
        return Err(ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE));
    }
    sim.authorize(&headers)?;
    let ranges = lock(&sim.ip_ranges);
    Ok(Json(Listing {
        entities: &ranges.entities,
    })
    .into_response())
}

/// `/sim/ipranges`: `GET` the answer and switch, `PUT` new ones.
pub(super) fn admin_routes() -> Router<Arc<Shared>> {
    Router::new().route("/ipranges", get(admin_get).put(admin_put))
}

async fn admin_get(State(sim): State<Arc<Shared>>) -> Json<AdminView> {
    let ranges = lock(&sim.ip_ranges);
    Json(AdminView {
        entities: ranges.entities.clone(),
        fail_with: ranges.fail_with,
        calls: ranges.calls,
    })
}

async fn admin_put(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    match serde_json::from_slice::<AdminView>(&body) {
        Ok(view) if view.fail_with.is_some_and(|s| !(400..=599).contains(&s)) => admin_error(
            StatusCode::BAD_REQUEST,
            "failWith must be an HTTP error status (400-599) or null",
        ),
        Ok(view) => {
            let mut ranges = lock(&sim.ip_ranges);
            ranges.entities = view.entities;
            ranges.fail_with = view.fail_with;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => admin_bad_request(error),
    }
}

impl GenesysSim {
    /// The rows `GET /api/v2/ipranges` answers from now on.
    pub fn set_ip_ranges(&self, entities: Vec<PublishedRange>) {
        lock(&self.shared.ip_ranges).entities = entities;
    }

    /// Answer every `GET /api/v2/ipranges` with this error status (`None`: answer normally).
    pub fn fail_ip_ranges(&self, status: Option<u16>) {
        lock(&self.shared.ip_ranges).fail_with = status;
    }

    /// `GET /api/v2/ipranges` calls so far, answered or not.
    pub fn ip_ranges_calls(&self) -> u64 {
        lock(&self.shared.ip_ranges).calls
    }
}

#[cfg(test)]
mod tests {
    use super::super::GenesysSimConfig;
    use super::*;
    use serde_json::Value;

    async fn sim_and_token() -> (GenesysSim, reqwest::Client, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim = GenesysSim::start(GenesysSimConfig::default(), listener)
            .await
            .unwrap();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let token: Value = client
            .post(format!("{}/oauth/token", sim.base_url()))
            .basic_auth("attrsync-sim", Some("sim-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();
        (sim, client, token)
    }

    #[tokio::test]
    async fn the_ranges_are_a_listing_of_entities_and_need_a_token() {
        let (sim, client, token) = sim_and_token().await;
        let url = format!("{}/api/v2/ipranges", sim.base_url());
        let anonymous = client.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let body: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let first = &body["entities"][0];
        assert_eq!(first["cidr"], "192.0.2.0/28");
        assert_eq!(first["service"], "data-actions");
        assert_eq!(first["direction"], "outbound");
        assert!(first["region"].is_string());
        assert_eq!(sim.ip_ranges_calls(), 2);
        sim.shutdown();
    }

    #[tokio::test]
    async fn the_answer_can_be_changed_and_made_to_fail_through_the_admin_api() {
        let (sim, client, token) = sim_and_token().await;
        let url = format!("{}/api/v2/ipranges", sim.base_url());
        let admin = format!("{}/sim/ipranges", sim.base_url());
        let put = client
            .put(&admin)
            .body(r#"{"entities":[{"cidr":"198.51.100.7/32","service":"data-actions"}],"failWith":503}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 204);
        let failed = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(failed.status(), 503);
        let body: Value = failed.json().await.unwrap();
        assert_eq!(body["code"], "service.unavailable");
        sim.fail_ip_ranges(None);
        let body: Value = client
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"entities":[{"cidr":"198.51.100.7/32","service":"data-actions"}]})
        );
        let bad = client
            .put(&admin)
            .body(r#"{"entities":[],"failWith":200}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);
        sim.shutdown();
    }
}
