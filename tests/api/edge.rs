//! Who may call, against a real attrsync: the client address behind trusted proxies (and a
//! forged `X-Forwarded-For` from anyone else), allow-lists over IPv4 and IPv6, and the data-action
//! group following Genesys's published ranges as the simulator answers, fails and changes.

use std::time::Duration;

use attrsync::simulator::PublishedRange;
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app_with, with_credentials, TestApp};

const ADA_ANI: &str = "tel:+13175550125";

fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter()
        .map(|n| attrsync::config::parse_cidr(n).expect("a CIDR"))
        .collect()
}

/// `GET /metrics` (the `ops` group) with these extra headers.
async fn metrics_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url("/metrics"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET /metrics")
}

/// A data-action lookup for a live call, with the lookup group's credentials and these headers.
async fn lookup_with(app: &TestApp, headers: &[(&str, &str)]) -> reqwest::Response {
    let call = app.new_voice_call(ADA_ANI);
    let body = json!({"conversationId": call.conversation_id, "ani": ADA_ANI}).to_string();
    let mut request = app
        .client
        .post(app.url("/v1/lookup"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    with_credentials(request, &app.state.settings.auth.lookup, body.as_bytes())
        .body(body)
        .send()
        .await
        .expect("POST /v1/lookup")
}

async fn refused_as(response: reqwest::Response, code: &str) -> Value {
    assert_eq!(response.status(), 403);
    let body = json_body(response).await;
    assert_eq!(body["code"], code, "{body}");
    body
}

fn refusals(app: &TestApp, group: &str, reason: &str) -> f64 {
    let text = app.state.metrics.render();
    text.lines()
        .filter(|l| {
            l.starts_with("attrsync_http_refusals_total{")
                && l.contains(&format!("group=\"{group}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_forged_x_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    // The test client (127.0.0.1) is not a trusted proxy here.
    let app = spawn_app_with(|s, _| {
        s.server.trusted_proxies = nets(&["10.0.0.0/8"]);
        s.auth.ops.allow_from = nets(&["192.0.2.0/24"]);
    })
    .await;
    let before = refusals(&app, "ops", "forbidden_source");
    let forged = metrics_with(
        &app,
        &[
            ("x-forwarded-for", "192.0.2.7"),
            ("forwarded", "for=192.0.2.7"),
        ],
    )
    .await;
    refused_as(forged, "forbidden_source").await;
    assert!(refusals(&app, "ops", "forbidden_source") > before);

    let app = spawn_app_with(|s, _| s.auth.ops.allow_from = nets(&["127.0.0.1"])).await;
    let forged = metrics_with(&app, &[("x-forwarded-for", "192.0.2.7")]).await;
    assert_eq!(forged.status(), 200, "the peer address is what counts");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_checked() {
    // 127.0.0.1 plays the load balancer; the addresses it forwards are the clients.
    let app = spawn_app_with(|s, _| {
        s.server.trusted_proxies = nets(&["127.0.0.1", "10.0.0.0/8"]);
        s.auth.ops.allow_from = nets(&["192.0.2.0/24", "2001:db8::/32"]);
    })
    .await;
    for allowed in [
        vec![("x-forwarded-for", "192.0.2.7")],
        vec![("x-forwarded-for", "198.51.100.1, 192.0.2.7, 10.0.0.3")],
        vec![("forwarded", "for=\"[2001:db8::17]:4711\";proto=https")],
        vec![
            ("forwarded", "for=192.0.2.60"),
            ("x-forwarded-for", "198.51.100.1"),
        ],
    ] {
        let response = metrics_with(&app, &allowed).await;
        assert_eq!(response.status(), 200, "{allowed:?}");
    }
    for refused in [
        vec![("x-forwarded-for", "198.51.100.1")],
        // The client is the rightmost untrusted hop, whatever it wrote to its left.
        vec![("x-forwarded-for", "192.0.2.7, 198.51.100.1")],
        // No forwarding header: the proxy itself is the client, and it is not allowed.
        vec![],
    ] {
        let response = metrics_with(&app, &refused).await;
        refused_as(response, "forbidden_source").await;
    }
}

#[tokio::test]
async fn an_allow_list_admits_its_ipv4_sources_and_refuses_others_before_the_credentials() {
    let app = spawn_app_with(|s, _| s.auth.cti.allow_from = nets(&["10.0.0.0/8"])).await;
    // No signature at all: the address is refused first, with 403 rather than 401.
    let response = app
        .client
        .post(app.url("/v1/events/cti"))
        .json(&json!({"eventId": "e1", "conversationId": "c1"}))
        .send()
        .await
        .unwrap();
    let body = refused_as(response, "forbidden_source").await;
    assert!(
        body["message"].as_str().unwrap().contains("address"),
        "{body}"
    );
    assert_eq!(app.pending().await, 0, "nothing queued");

    let app = spawn_app_with(|s, _| s.auth.cti.allow_from = nets(&["127.0.0.0/8"])).await;
    let response = app
        .client
        .post(app.url("/v1/events/cti"))
        .json(&json!({"eventId": "e1", "conversationId": "c1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        401,
        "allowed through to the signature check"
    );
}

#[tokio::test]
async fn an_allow_list_admits_its_ipv6_sources_and_refuses_others() {
    let app = spawn_app_with(|s, _| {
        s.server.host = "::1".to_owned();
        s.auth.ops.allow_from = nets(&["::1"]);
        s.auth.lookup.allow_from = nets(&["2001:db8::/32", "127.0.0.1"]);
    })
    .await;
    assert!(app.address.starts_with("http://[::1]:"), "{}", app.address);
    assert_eq!(metrics_with(&app, &[]).await.status(), 200);
    refused_as(lookup_with(&app, &[]).await, "forbidden_source").await;
}

/// Waits (at most 10 s) until `/readyz` reports the ranges as `ok` and returns that check.
async fn ranges_loaded(app: &TestApp) -> String {
    for _ in 0..100 {
        let body = json_body(app.get("/readyz").await).await;
        let check = body["checks"]["genesys_ip_ranges"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if check.starts_with("ok") {
            return check;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ranges were not read within 10 s");
}

/// Waits (at most 10 s) until a lookup is answered `status`.
async fn lookups_answered(app: &TestApp, status: u16) {
    for _ in 0..100 {
        if lookup_with(app, &[]).await.status() == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("lookups were not answered {status} within 10 s");
}

#[tokio::test]
async fn the_data_action_group_follows_genesys_ranges_as_they_are_answered_fail_and_change() {
    let app = spawn_app_with(|s, sims| {
        s.auth.lookup.allow_genesys_ranges = true;
        s.genesys.ip_ranges_refresh_secs = 1;
        // The polling lookups must not spend the Genesys budget the refreshes need.
        s.lookup.write_attributes = false;
        sims.genesys.set_ip_ranges(vec![
            PublishedRange::new("127.0.0.1/32", "data-actions", Some("outbound")),
            // Not a source: the API's own addresses, traffic into Genesys.
            PublishedRange::new("198.51.100.0/24", "api", Some("inbound")),
        ]);
    })
    .await;
    let check = ranges_loaded(&app).await;
    assert!(check.starts_with("ok: 1 ranges"), "{check}");
    assert_eq!(lookup_with(&app, &[]).await.status(), 200);

    // Genesys fails: the last good list stays in use, and /readyz says the refresh failed.
    let calls = app.genesys.ip_ranges_calls();
    app.genesys.fail_ip_ranges(Some(503));
    let mut reported = false;
    for _ in 0..100 {
        let body = json_body(app.get("/readyz").await).await;
        let check = body["checks"]["genesys_ip_ranges"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if check.contains("the last refresh failed") {
            assert_eq!(body["status"], "ready", "{body}");
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reported, "the failed refresh is reported within 10 s");
    assert!(app.genesys.ip_ranges_calls() > calls);
    assert_eq!(lookup_with(&app, &[]).await.status(), 200);

    // Genesys answers again, without this address: lookups from it are refused.
    app.genesys.set_ip_ranges(vec![PublishedRange::new(
        "192.0.2.0/28",
        "data-actions",
        Some("outbound"),
    )]);
    app.genesys.fail_ip_ranges(None);
    lookups_answered(&app, 403).await;
    refused_as(lookup_with(&app, &[]).await, "forbidden_source").await;
    assert!(refusals(&app, "lookup", "forbidden_source") >= 1.0);
    // The other groups do not follow the ranges.
    assert_eq!(metrics_with(&app, &[]).await.status(), 200);
}

#[tokio::test]
async fn until_the_ranges_are_first_read_only_the_groups_own_allow_list_passes() {
    // Genesys's published data-action addresses reach attrsync through a load balancer
    // (127.0.0.1); 198.51.100.5 is an address the operator allows besides.
    let app = spawn_app_with(|s, sims| {
        s.server.trusted_proxies = nets(&["127.0.0.1"]);
        s.auth.lookup.allow_genesys_ranges = true;
        s.auth.lookup.allow_from = nets(&["198.51.100.5"]);
        s.genesys.ip_ranges_refresh_secs = 1;
        // The polling lookups must not spend the Genesys budget the refreshes need.
        s.lookup.write_attributes = false;
        sims.genesys.fail_ip_ranges(Some(503));
    })
    .await;
    let from_genesys = [("x-forwarded-for", "192.0.2.3")];
    let body = refused_as(lookup_with(&app, &from_genesys).await, "forbidden_source").await;
    assert!(
        body["message"].as_str().unwrap().contains("not loaded"),
        "{body}"
    );
    assert_eq!(
        lookup_with(&app, &[("x-forwarded-for", "198.51.100.5")])
            .await
            .status(),
        200
    );
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let ready = json_body(ready).await;
    assert!(
        ready["checks"]["genesys_ip_ranges"]
            .as_str()
            .unwrap()
            .starts_with("error: not read yet"),
        "{ready}"
    );
    assert!(refusals(&app, "lookup", "ranges_unavailable") >= 1.0);

    // Once Genesys answers (its default rows include 192.0.2.0/28 for data-actions).
    app.genesys.fail_ip_ranges(None);
    ranges_loaded(&app).await;
    assert_eq!(lookup_with(&app, &from_genesys).await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}
