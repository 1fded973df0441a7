//! What senders get for input attrsync cannot use: a clear 4xx with a JSON error body, nothing
//! queued, nothing sent to Genesys, and a server that keeps answering.

use serde_json::{json, Value};

use crate::helpers::{
    bare_start, eventbridge_start, json_body, spawn_app, spawn_app_with, TestApp,
};

const ENDPOINTS: [&str; 3] = ["/v1/events/genesys", "/v1/events/cti", "/v1/lookup"];

/// Nothing pending, no Genesys call, and the server still answers.
async fn nothing_happened(app: &TestApp) {
    assert_eq!(app.pending().await, 0);
    app.settle().await;
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 0, "{stats:?}");
    assert_eq!(stats.get_conversation, 0, "{stats:?}");
    assert_eq!(app.get("/healthz").await.status(), 200, "still answering");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_with_a_json_error_body() {
    let app = spawn_app().await;

    for path in ENDPOINTS {
        let response = app
            .post_raw(path, "application/json", "{\"conversationId\": ")
            .await;
        assert_eq!(response.status(), 400, "{path}");
        let body = json_body(response).await;
        assert_eq!(body["code"], "invalid_json", "{path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn a_body_not_declared_as_json_is_a_415() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");
    let event = eventbridge_start(&call).to_string();

    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let response = app
            .post_raw("/v1/events/genesys", content_type, event.clone())
            .await;
        assert_eq!(response.status(), 415, "{content_type}");
        assert_eq!(json_body(response).await["code"], "unsupported_media_type");
    }
    nothing_happened(&app).await;
    assert!(app.customer_patches(&call).is_empty());
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = spawn_app_with(|settings, _| settings.server.body_limit_bytes = 1024).await;
    let call = app.new_voice_call("tel:+13175550125");
    let mut event = bare_start(&call);
    event["padding"] = json!("x".repeat(2048));

    let response = app
        .post_raw("/v1/events/genesys", "application/json", event.to_string())
        .await;

    assert_eq!(response.status(), 413);
    assert_eq!(json_body(response).await["code"], "payload_too_large");
    nothing_happened(&app).await;
}

#[tokio::test]
async fn json_that_is_not_a_genesys_event_is_a_422() {
    let app = spawn_app().await;

    let response = app.post_genesys_event(&json!({"hello": "world"})).await;

    assert_eq!(response.status(), 422);
    let body = json_body(response).await;
    assert_eq!(body["code"], "invalid_field", "{body}");
    assert_eq!(body["field"], "$", "{body}");
    nothing_happened(&app).await;
}

#[tokio::test]
async fn a_conversation_id_that_could_change_the_url_is_refused_naming_it() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");
    let hostile = "../../users/me";

    let mut envelope = eventbridge_start(&call);
    envelope["detail"]["eventBody"]["conversationId"] = json!(hostile);
    let mut bare = bare_start(&call);
    bare["conversationId"] = json!(hostile);
    let cti = json!({"eventId": "e-1", "conversationId": hostile, "callerNumber": "3175550125"});
    let lookup = json!({"conversationId": hostile, "ani": "3175550125"});

    for (path, body, field) in [
        (
            "/v1/events/genesys",
            &envelope,
            "detail.eventBody.conversationId",
        ),
        ("/v1/events/genesys", &bare, "conversationId"),
        ("/v1/events/cti", &cti, "conversationId"),
        ("/v1/lookup", &lookup, "conversationId"),
    ] {
        let response = app
            .post_raw(path, "application/json", body.to_string())
            .await;
        assert_eq!(response.status(), 422, "{path}: {body}");
        let answer = json_body(response).await;
        assert_eq!(answer["field"], field, "{path}: {answer}");
        assert!(
            !answer.to_string().contains(hostile),
            "the error does not echo the value: {answer}"
        );
    }
    nothing_happened(&app).await;
    assert!(app.customer_patches(&call).is_empty());
}

#[tokio::test]
async fn deeply_nested_json_is_refused_and_the_server_keeps_answering() {
    let app = spawn_app().await;
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let nested_object = format!(
        "{{\"conversationId\":\"c\",\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );

    for path in ENDPOINTS {
        for body in [&nested, &nested_object] {
            let response = app.post_raw(path, "application/json", body.clone()).await;
            assert!(
                response.status().is_client_error(),
                "{path}: {}",
                response.status()
            );
            let answer: Value = json_body(response).await;
            assert!(answer["code"].is_string(), "{answer}");
        }
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn a_json_array_is_refused() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");
    let batch = json!([bare_start(&call)]);

    for path in ENDPOINTS {
        let response = app
            .post_raw(path, "application/json", batch.to_string())
            .await;
        assert!(
            response.status().is_client_error(),
            "{path}: {}",
            response.status()
        );
    }
    nothing_happened(&app).await;
    assert!(app.customer_patches(&call).is_empty());
}

#[tokio::test]
async fn unicode_tricks_in_ids_and_attribute_keys_are_refused() {
    let app = spawn_app().await;
    // A Cyrillic "а" that looks like a Latin one, a right-to-left override, a zero-width space,
    // a fullwidth solidus, and a control character in an attribute key.
    for (body, field) in [
        (
            json!({"eventId": "e1", "conversationId": "c\u{0430}ll-1"}),
            "conversationId",
        ),
        (
            json!({"eventId": "e1", "conversationId": "call-1\u{202e}"}),
            "conversationId",
        ),
        (
            json!({"eventId": "e1", "conversationId": "call\u{200b}1"}),
            "conversationId",
        ),
        (
            json!({"eventId": "e1", "conversationId": "call\u{ff0f}..\u{ff0f}1"}),
            "conversationId",
        ),
        (
            json!({"eventId": "e1", "conversationId": "c1", "participantId": "p\u{0000}1"}),
            "participantId",
        ),
        (
            json!({"eventId": "e1", "conversationId": "c1", "attributes": {"k\u{0007}": "v"}}),
            "attributes.k\u{0007}",
        ),
    ] {
        let response = app.post_cti_event(&body).await;
        assert_eq!(response.status(), 422, "{body}");
        assert_eq!(json_body(response).await["field"], field, "{body}");
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_400() {
    let app = spawn_app().await;
    let body = b"{\"conversationId\": \"\xff\xfe\"}".to_vec();
    // A Standard Webhooks signature covers UTF-8 text only, so the CTI endpoint (signed by
    // default) cannot even be sent this; the other two parse it and refuse it.
    for path in ["/v1/events/genesys", "/v1/lookup"] {
        let response = app.post_raw(path, "application/json", body.clone()).await;
        assert_eq!(response.status(), 400, "{path}");
        assert_eq!(json_body(response).await["code"], "invalid_json", "{path}");
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn fields_of_the_wrong_type_are_a_422_naming_them() {
    let app = spawn_app().await;
    for (path, body, field) in [
        (
            "/v1/events/cti",
            json!({"eventId": 7, "conversationId": "c1"}),
            "eventId",
        ),
        (
            "/v1/events/cti",
            json!({"eventId": "e", "conversationId": "c1", "attributes": ["a"]}),
            "attributes",
        ),
        ("/v1/lookup", json!({"ani": 3175550125u64}), "ani"),
        (
            "/v1/events/genesys",
            json!({"conversationId": {"id": "c1"}}),
            "conversationId",
        ),
    ] {
        let response = app
            .post_raw(path, "application/json", body.to_string())
            .await;
        assert_eq!(response.status(), 422, "{path} {body}");
        assert_eq!(json_body(response).await["field"], field, "{path} {body}");
    }
    nothing_happened(&app).await;
}

#[tokio::test]
async fn an_unknown_path_or_method_is_answered_with_an_error_body() {
    let app = spawn_app().await;
    let response = app.get("/v1/nothing-here").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json_body(response).await["code"], "not_found");
    let response = app.get("/v1/lookup").await;
    assert_eq!(response.status(), 405);
    assert_eq!(json_body(response).await["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_answered_408_with_an_error_body() {
    let app = spawn_app_with(|settings, sims| {
        crate::helpers::use_http_crm(settings, &sims.crm);
        settings.server.request_timeout_ms = 200;
        settings.lookup.deadline_ms = 5_000;
    })
    .await;
    app.crm.set_latency(std::time::Duration::from_secs(2));
    let response = app.post_lookup(&json!({"ani": "tel:+13175550125"})).await;
    assert_eq!(response.status(), 408);
    let body = json_body(response).await;
    assert_eq!(body["code"], "timeout", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("200 ms")),
        "{body}"
    );
}

#[tokio::test]
async fn load_shedding_answers_503_overloaded_without_claiming_the_queue_is_full() {
    let app = spawn_app_with(|settings, sims| {
        crate::helpers::use_http_crm(settings, &sims.crm);
        settings.server.max_concurrent_requests = 1;
        settings.lookup.deadline_ms = 2_000;
    })
    .await;
    app.crm.set_latency(std::time::Duration::from_secs(1));
    let first = json!({"ani": "tel:+13175550125"});
    let slow = app.post_lookup(&first);
    let shed = async {
        // The first lookup holds the only slot while the CRM takes its time.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        app.post_lookup(&json!({"ani": "tel:+13175550199"})).await
    };
    let (slow, shed) = tokio::join!(slow, shed);
    assert_eq!(slow.status(), 200);
    assert_eq!(shed.status(), 503);
    assert_eq!(
        shed.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = json_body(shed).await;
    assert_eq!(body["code"], "overloaded", "{body}");
    assert!(
        !body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("queue"),
        "{body}"
    );
}
