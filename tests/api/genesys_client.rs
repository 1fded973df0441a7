//! The Genesys client as seen from outside: tokens, 401, 429, 5xx and 4xx handling, observed
//! through the HTTP endpoints and the simulator's counters.

use std::time::Duration;

use attrsync::simulator::{CreatedConversation, Fault, Op};
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{
    as_voice_call_from, eventbridge_start, json_body, spawn_app, spawn_app_with, TestApp,
};

const ADA_ANI: &str = "tel:+13175550125";

/// A live call from Ada, its customer.start event delivered and accepted.
async fn deliver_one(app: &TestApp) -> CreatedConversation {
    let call = app.new_voice_call(ADA_ANI);
    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    call
}

#[tokio::test]
async fn a_hundred_concurrent_events_share_one_token() {
    // Without the client-side budget (300 a minute, burst 5), so the hundred fetch their token
    // at the same moment.
    let app = spawn_app_with(|settings, _| settings.genesys.rate_limit_per_minute = 0).await;
    let calls: Vec<_> = (0..100).map(|_| app.new_voice_call(ADA_ANI)).collect();
    let events: Vec<Value> = calls
        .iter()
        .map(|call| as_voice_call_from(eventbridge_start(call), ADA_ANI))
        .collect();

    let responses =
        futures::future::join_all(events.iter().map(|e| app.post_genesys_event(e))).await;
    assert!(responses.iter().all(|r| r.status() == 202));
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(stats.tokens_issued, 1, "{stats:?}");
    assert_eq!(stats.token_requests, 1, "{stats:?}");
    assert_eq!(stats.patches_accepted, 100, "{stats:?}");
    for call in &calls {
        assert_eq!(app.customer_patches(call).len(), 1);
    }
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once_and_the_call_retried() {
    let app = spawn_app().await;
    deliver_one(&app).await;
    app.settle().await;
    assert_eq!(app.genesys.stats().tokens_issued, 1);

    app.genesys.revoke_tokens();
    let call = deliver_one(&app).await;
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(stats.tokens_issued, 2, "{stats:?}");
    // First event: 1 PATCH; second: the 401 and its retry.
    assert_eq!(stats.patch_attributes, 3, "{stats:?}");
    assert_eq!(app.customer_patches(&call).len(), 1);
}

#[tokio::test]
async fn a_429_is_honoured_with_a_single_retry_after_retry_after() {
    let app = spawn_app().await;
    app.genesys.push_fault(
        Op::PatchAttributes,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
    );

    let started = tokio::time::Instant::now();
    let call = deliver_one(&app).await;
    app.settle().await;

    assert_eq!(app.customer_patches(&call).len(), 1);
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 2, "no retry storm: {stats:?}");
    assert_eq!(stats.rate_limited, 1, "{stats:?}");
    // A lower bound only (never flaky): the retry waited the second Genesys asked for, not the
    // 10 ms backoff these tests configure.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "retried after {:?}, before Retry-After",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_the_patch_succeeds() {
    let app = spawn_app().await;
    app.genesys
        .push_fault(Op::PatchAttributes, Fault::Status(503));
    app.genesys
        .push_fault(Op::PatchAttributes, Fault::Status(503));

    let call = deliver_one(&app).await;
    app.settle().await;

    assert_eq!(app.customer_patches(&call).len(), 1);
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 3, "{stats:?}");
    assert_eq!(stats.patches_accepted, 1, "{stats:?}");
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let app = spawn_app().await;
    app.genesys
        .push_fault(Op::PatchAttributes, Fault::Status(400));

    let call = deliver_one(&app).await;
    app.settle().await;

    assert!(app.customer_patches(&call).is_empty());
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 1, "{stats:?}");
    assert_eq!(stats.patches_accepted, 0, "{stats:?}");
}

#[tokio::test]
async fn a_wrong_client_secret_makes_attrsync_not_ready_and_nothing_is_patched() {
    let app = spawn_app_with(|settings, _| {
        settings.genesys.client_secret = SecretString::from("not-the-secret".to_owned());
    })
    .await;

    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body = json_body(response).await;
    assert_eq!(body["status"], "not_ready", "{body}");
    let token_check = body["checks"]["genesys_token"].as_str().unwrap_or_default();
    assert!(token_check.starts_with("error"), "{body}");
    assert!(!body.to_string().contains("not-the-secret"), "{body}");

    let call = deliver_one(&app).await;
    app.settle().await;
    assert!(app.customer_patches(&call).is_empty());
    let stats = app.genesys.stats();
    assert_eq!(stats.tokens_issued, 0, "{stats:?}");
    assert_eq!(stats.patch_attributes, 0, "{stats:?}");
}
