//! Operations endpoints and request ids.

use crate::helpers::{as_voice_call_from, eventbridge_start, json_body, spawn_app};

#[tokio::test]
async fn healthz_answers_without_calling_genesys() {
    let app = spawn_app().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["status"], "ok");
    assert_eq!(app.genesys.stats(), Default::default());
}

#[tokio::test]
async fn readyz_answers_ready_when_a_token_can_be_obtained() {
    let app = spawn_app().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["status"], "ready", "{body}");
    assert_eq!(body["checks"]["genesys_token"], "ok", "{body}");
    assert_eq!(body["checks"]["crm"], "ok", "{body}");
    assert_eq!(body["checks"]["crm_adapter"], "file", "{body}");
    assert_eq!(body["checks"]["queue"], "ok", "{body}");
    assert_eq!(app.genesys.stats().tokens_issued, 1);
}

#[tokio::test]
async fn metrics_after_an_event_name_every_area_and_no_conversation_id() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");
    let response = app
        .post_genesys_event(&as_voice_call_from(
            eventbridge_start(&call),
            "tel:+13175550125",
        ))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;
    assert_eq!(app.customer_patches(&call).len(), 1);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("metrics text");

    for name in [
        "attrsync_events_total",
        "attrsync_upstream_requests_total",
        "attrsync_genesys_token_fetches_total",
        "attrsync_crm_cache_lookups_total",
        "attrsync_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(!text.contains(&call.conversation_id), "{text}");
    assert!(!text.contains(&call.customer_participant_id), "{text}");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_given_one_is_echoed() {
    let app = spawn_app().await;

    for path in ["/healthz", "/readyz", "/metrics", "/no/such/route"] {
        let response = app.get(path).await;
        let id = response.headers().get("x-request-id");
        assert!(
            id.is_some_and(|v| !v.is_empty()),
            "{path}: {:?}",
            response.headers()
        );
    }
    let refused = app
        .post_raw("/v1/events/genesys", "application/json", "{}")
        .await;
    assert_eq!(refused.status(), 422);
    assert!(refused.headers().contains_key("x-request-id"));

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "test-correlation-42")
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .map(reqwest::header::HeaderValue::as_bytes),
        Some(&b"test-correlation-42"[..])
    );
}

#[tokio::test]
async fn readiness_reports_a_queue_backend_that_is_gone() {
    let Some((settings, _)) =
        crate::stores::fresh_store_settings(attrsync::config::QueueBackend::Postgres).await
    else {
        eprintln!(
            "skipped: readiness with PostgreSQL down (set ATTRSYNC_TEST_DATABASE_URL to run it)"
        );
        return;
    };
    let url = secrecy::ExposeSecret::expose_secret(&settings.postgres_url).to_owned();
    let schema = settings.postgres_schema.clone();
    let app = crate::helpers::spawn_app_with(move |s, _| s.queue = settings).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let admin = sqlx::PgPool::connect(&url).await.expect("connect");
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .expect("drop");
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body = crate::helpers::json_body(response).await;
    assert!(
        body["checks"]["queue"]
            .as_str()
            .is_some_and(|q| q.starts_with("error")),
        "{body}"
    );
    assert_eq!(
        app.get("/healthz").await.status(),
        200,
        "alive, just not ready"
    );
}
