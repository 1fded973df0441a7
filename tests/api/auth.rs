//! Inbound authentication as configured by default: every ingest endpoint refuses a request
//! without valid credentials before looking at it, and a signed CTI event cannot be replayed.

use attrsync::config::{AuthMode, EndpointAuth};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{
    as_voice_call_from, eventbridge_start, json_body, spawn_app, with_credentials, TestApp,
};

const ADA_ANI: &str = "tel:+13175550125";

/// A valid request body for each ingest endpoint, for a live call.
fn valid_bodies(app: &TestApp) -> Vec<(&'static str, Value)> {
    let call = app.new_voice_call(ADA_ANI);
    vec![
        (
            "/v1/events/genesys",
            as_voice_call_from(eventbridge_start(&call), ADA_ANI),
        ),
        (
            "/v1/events/cti",
            json!({
                "eventId": "cti-auth-1",
                "conversationId": call.conversation_id,
                "participantId": call.customer_participant_id,
                "callerNumber": ADA_ANI
            }),
        ),
        (
            "/v1/lookup",
            json!({"conversationId": call.conversation_id, "ani": ADA_ANI}),
        ),
    ]
}

fn group<'a>(app: &'a TestApp, path: &str) -> &'a EndpointAuth {
    let auth = &app.state.settings.auth;
    match path {
        "/v1/events/genesys" => &auth.genesys,
        "/v1/events/cti" => &auth.cti,
        "/v1/lookup" => &auth.lookup,
        other => panic!("no endpoint group for {other}"),
    }
}

async fn assert_refused(response: reqwest::Response, path: &str) {
    assert_eq!(response.status(), 401, "{path}");
    let body = json_body(response).await;
    assert_eq!(body["code"], "unauthorized", "{path}: {body}");
}

/// Nothing queued, no CRM-driven write, no Genesys call.
async fn nothing_happened(app: &TestApp) {
    assert_eq!(app.pending().await, 0);
    app.settle().await;
    assert_eq!(app.genesys.stats(), Default::default());
}

#[tokio::test]
async fn every_ingest_endpoint_refuses_a_request_without_credentials() {
    let app = spawn_app().await;

    for (path, body) in valid_bodies(&app) {
        assert_ne!(
            group(&app, path).mode,
            AuthMode::None,
            "{path} is protected by default"
        );
        let response = app
            .client
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_refused(response, path).await;
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn every_ingest_endpoint_refuses_credentials_made_with_another_secret() {
    let app = spawn_app().await;

    for (path, body) in valid_bodies(&app) {
        let mut impostor = group(&app, path).clone();
        impostor.secrets = vec![SecretString::from(
            "whsec_bm90LXRoZS1zZWNyZXQtYXR0cnN5bmMtaGFzLi4u".to_owned(),
        )];
        let bytes = body.to_string().into_bytes();
        let request = app
            .client
            .post(app.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        let response = with_credentials(request, &impostor, &bytes)
            .body(bytes)
            .send()
            .await
            .expect("POST");
        assert_refused(response, path).await;
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn the_same_credentials_work_and_healthz_readyz_need_none() {
    let app = spawn_app().await;

    for (path, body) in valid_bodies(&app) {
        let response = app
            .post_raw(path, "application/json", body.to_string())
            .await;
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
    for path in ["/healthz", "/readyz"] {
        let response = app.client.get(app.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "{path}");
    }
    app.settle().await;
}

#[tokio::test]
async fn a_signed_cti_event_cannot_be_replayed() {
    let app = spawn_app().await;
    let cti = &app.state.settings.auth.cti;
    assert_eq!(
        cti.mode,
        AuthMode::Signature,
        "the default for CTI middleware"
    );
    let call = app.new_voice_call(ADA_ANI);
    let body = json!({
        "eventId": "cti-replay-1",
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": ADA_ANI
    })
    .to_string()
    .into_bytes();
    let signed = with_credentials(
        app.client
            .post(app.url("/v1/events/cti"))
            .header(reqwest::header::CONTENT_TYPE, "application/json"),
        cti,
        &body,
    )
    .body(body);
    let captured = signed.try_clone().expect("a buffered body can be cloned");

    let first = signed.send().await.expect("POST");
    assert_eq!(first.status(), 202);
    let replay = captured.send().await.expect("POST");
    assert_eq!(replay.status(), 401);
    assert_eq!(json_body(replay).await["reason"], "replayed");

    app.settle().await;
    assert_eq!(app.customer_patches(&call).len(), 1);
}

/// A CTI request signed with the configured secret, with the given id, timestamp and body.
fn signed_cti(
    app: &TestApp,
    id: &str,
    timestamp: i64,
    signed_body: &[u8],
    sent_body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let secret =
        secrecy::ExposeSecret::expose_secret(&app.state.settings.auth.cti.secrets[0]).to_owned();
    let signature = standardwebhooks::Webhook::new(&secret)
        .expect("secret")
        .sign(id, timestamp, signed_body)
        .expect("sign");
    app.client
        .post(app.url("/v1/events/cti"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(sent_body)
}

fn cti_body(app: &TestApp) -> Vec<u8> {
    let call = app.new_voice_call(ADA_ANI);
    json!({
        "eventId": format!("cti-{}", call.conversation_id),
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": ADA_ANI
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn a_signature_with_an_expired_timestamp_is_refused() {
    let app = spawn_app().await;
    let body = cti_body(&app);
    for skew in [-600, 600] {
        let timestamp = chrono::Utc::now().timestamp() + skew;
        let response = signed_cti(
            &app,
            &format!("msg_old{skew}"),
            timestamp,
            &body,
            body.clone(),
        )
        .send()
        .await
        .expect("POST");
        assert_eq!(response.status(), 401, "skew {skew} s");
        assert_eq!(
            json_body(response).await["reason"],
            "timestamp_out_of_tolerance"
        );
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn a_body_changed_after_signing_is_refused() {
    let app = spawn_app().await;
    let body = cti_body(&app);
    let mut tampered = String::from_utf8(body.clone()).expect("utf-8");
    tampered = tampered.replace("+13175550125", "+13175550199");
    let now = chrono::Utc::now().timestamp();
    let response = signed_cti(&app, "msg_tampered", now, &body, tampered.into_bytes())
        .send()
        .await
        .expect("POST");
    assert_refused(response, "/v1/events/cti").await;
    nothing_happened(&app).await;
}

#[tokio::test]
async fn during_a_rotation_both_the_old_and_the_new_key_are_accepted() {
    let old = "rotation-old-key";
    let new = "rotation-new-key";
    let app = crate::helpers::spawn_app_with(|settings, _| {
        settings.auth.genesys.secrets = vec![
            SecretString::from(old.to_owned()),
            SecretString::from(new.to_owned()),
        ];
    })
    .await;
    for key in [old, new, "rotation-retired-key"] {
        let call = app.new_voice_call(ADA_ANI);
        let response = app
            .client
            .post(app.url("/v1/events/genesys"))
            .header("x-api-key", key)
            .json(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
            .send()
            .await
            .expect("POST");
        let expected = if key == "rotation-retired-key" {
            401
        } else {
            202
        };
        assert_eq!(response.status(), expected, "{key}");
    }
    app.settle().await;
}
