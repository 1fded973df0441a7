//! `POST /v1/events/genesys`: the three envelopes of a `customer.start` event, end to end
//! against the Genesys simulator and the shipped customer file.

use std::collections::BTreeMap;

use attrsync::simulator::CreatedConversation;
use serde_json::{json, Value};

use crate::helpers::{
    as_voice_call_from, attrs, bare_start, eventbridge_end, eventbridge_start, json_body,
    notification_start, spawn_app, spawn_app_with, without_participant_id, TestApp,
};

const ADA_ANI: &str = "tel:+13175550125";

/// Sends `event` for `call`, expects 202 `queued`, waits, and returns the customer's single
/// accepted PATCH, checking that the IVR participant got nothing and that the participant's
/// pre-existing attribute survived.
async fn deliver_and_get_the_one_patch(
    app: &TestApp,
    call: &CreatedConversation,
    event: &Value,
) -> BTreeMap<String, String> {
    let response = app.post_genesys_event(event).await;
    assert_eq!(response.status(), 202, "{event}");
    let body = json_body(response).await;
    assert_eq!(body["status"], "queued", "{body}");
    app.settle().await;

    let patches = app.customer_patches(call);
    assert_eq!(patches.len(), 1, "exactly one PATCH: {patches:?}");
    assert!(
        app.genesys
            .patches(&call.conversation_id, &call.ivr_participant_id)
            .is_empty(),
        "the IVR participant is never written"
    );
    let patch = patches.into_iter().next().expect("one patch");
    assert!(patch.contains_key("crm.syncedAt"), "{patch:?}");
    assert!(
        !patch.contains_key("flow.lang"),
        "only attrsync's keys are sent: {patch:?}"
    );
    let stored = app.customer_attributes(call);
    assert_eq!(
        stored["flow.lang"], "en",
        "pre-existing attributes survive: {stored:?}"
    );
    patch
}

/// Delivers `envelope` twice on two live calls: as the official sample (a chat whose
/// externalContactId "uwu" is C-1006) and as a voice call from Ada, whose number the customer
/// file stores as "(317) 555-0125".
async fn both_customers_are_found_through(envelope: fn(&CreatedConversation) -> Value) {
    let app = spawn_app().await;
    let flow_data = || attrs(&[("flow.lang", "en")]);

    let chat = app.new_voice_call_with("tel:+19385550000", flow_data());
    let patch = deliver_and_get_the_one_patch(&app, &chat, &envelope(&chat)).await;
    assert_eq!(patch["crm.id"], "C-1006", "{patch:?}");
    assert_eq!(patch["crm.firstName"], "Chat");
    assert_eq!(patch["crm.tier"], "silver");
    assert_eq!(patch["crm.found"], "true");

    let voice = app.new_voice_call_with(ADA_ANI, flow_data());
    let event = as_voice_call_from(envelope(&voice), ADA_ANI);
    let patch = deliver_and_get_the_one_patch(&app, &voice, &event).await;
    assert_eq!(patch["crm.id"], "C-1001", "{patch:?}");
    assert_eq!(patch["crm.firstName"], "Ada");
    assert_eq!(patch["crm.lastName"], "Lovelace");
    assert_eq!(patch["crm.tier"], "gold");
    assert_eq!(patch["crm.found"], "true");

    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 2, "{stats:?}");
    // The simulator refuses (400) a PATCH holding any non-string value, so two accepted
    // PATCHes out of two attempts held only strings.
    assert_eq!(stats.patches_accepted, 2, "{stats:?}");
}

/// Ids for looking at an envelope's shape.
fn unused_ids() -> CreatedConversation {
    CreatedConversation {
        conversation_id: "c".to_owned(),
        customer_participant_id: "p".to_owned(),
        ivr_participant_id: "i".to_owned(),
    }
}

#[tokio::test]
async fn the_official_eventbridge_envelope_writes_the_customer_into_the_live_call() {
    let sample = eventbridge_start(&unused_ids());
    assert!(sample["detail"]["eventBody"].is_object());
    both_customers_are_found_through(eventbridge_start).await;
}

#[tokio::test]
async fn a_notification_envelope_writes_the_customer_into_the_live_call() {
    let sample = notification_start(&unused_ids());
    assert!(sample.get("topicName").is_some() && sample.get("detail").is_none());
    both_customers_are_found_through(notification_start).await;
}

#[tokio::test]
async fn a_bare_event_body_writes_the_customer_into_the_live_call() {
    let sample = bare_start(&unused_ids());
    assert!(sample.get("conversationId").is_some() && sample.get("eventBody").is_none());
    both_customers_are_found_through(bare_start).await;
}

#[tokio::test]
async fn the_customer_end_sample_is_ignored_and_costs_no_genesys_call() {
    let app = spawn_app().await;
    let call = app.new_voice_call(ADA_ANI);

    let response = app.post_genesys_event(&eventbridge_end(&call)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await, json!({"status": "ignored"}));
    assert_eq!(app.pending().await, 0, "nothing was queued");
    app.settle().await;
    assert_eq!(app.genesys.stats(), Default::default(), "no Genesys call");
}

#[tokio::test]
async fn an_event_without_participant_id_patches_the_participant_whose_purpose_is_customer() {
    let app = spawn_app().await;
    let call = app.new_voice_call(ADA_ANI);
    // No participant id and no customer key: everything comes from the conversation.
    let mut event = without_participant_id(bare_start(&call));
    let body = event.as_object_mut().expect("object");
    body.remove("externalContactId");
    body.remove("conversationExternalContactIds");

    let response = app.post_genesys_event(&event).await;
    assert_eq!(response.status(), 202);
    app.settle().await;

    assert_eq!(app.genesys.stats().get_conversation, 1);
    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    // The caller's number was read from the customer participant.
    assert_eq!(patches[0]["crm.firstName"], "Ada");
    assert!(
        app.genesys
            .patches(&call.conversation_id, &call.ivr_participant_id)
            .is_empty(),
        "the IVR participant (which also carries the ANI) is not the customer"
    );
}

#[tokio::test]
async fn an_event_carrying_the_participant_id_costs_exactly_one_genesys_api_call() {
    let app = spawn_app().await;
    let call = app.new_voice_call(ADA_ANI);

    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(
        stats.get_conversation, 0,
        "no read with crm_wins: {stats:?}"
    );
    assert_eq!(stats.patch_attributes, 1, "{stats:?}");
    assert_eq!(stats.patches_accepted, 1, "{stats:?}");
    assert_eq!(
        stats.token_requests, 1,
        "plus the one token fetch: {stats:?}"
    );
}

#[tokio::test]
async fn delivering_the_same_event_twice_writes_once() {
    let app = spawn_app().await;
    let call = app.new_voice_call(ADA_ANI);
    let event = as_voice_call_from(eventbridge_start(&call), ADA_ANI);

    let first = app.post_genesys_event(&event).await;
    assert_eq!(first.status(), 202);
    app.settle().await;
    let again = app.post_genesys_event(&event).await;
    assert_eq!(again.status(), 200);
    let body = json_body(again).await;
    assert_eq!(body["status"], "duplicate", "{body}");
    app.settle().await;

    assert_eq!(app.customer_patches(&call).len(), 1);
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 1, "{stats:?}");
    assert_eq!(stats.get_conversation, 0, "{stats:?}");
}

#[tokio::test]
async fn a_later_event_that_would_change_nothing_but_the_timestamp_sends_no_patch() {
    // No queue-level deduplication, so the second event reaches the pipeline.
    let app = spawn_app_with(|settings, _| settings.queue.dedup_window_secs = 0).await;
    let call = app.new_voice_call(ADA_ANI);
    let first = as_voice_call_from(eventbridge_start(&call), ADA_ANI);
    let mut second = first.clone();
    second["id"] = json!(uuid::Uuid::new_v4().to_string());

    for event in [&first, &second] {
        let response = app.post_genesys_event(event).await;
        assert_eq!(response.status(), 202, "{}", json_body(response).await);
        app.settle().await;
    }

    assert_eq!(app.customer_patches(&call).len(), 1);
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 1, "{stats:?}");
}

#[tokio::test]
async fn an_ended_conversation_gets_no_patch() {
    let app = spawn_app().await;
    let with_id = app.new_voice_call(ADA_ANI);
    let without_id = app.new_voice_call(ADA_ANI);
    assert!(app.genesys.end_conversation(&with_id.conversation_id));
    assert!(app.genesys.end_conversation(&without_id.conversation_id));

    // With the participant id (crm_wins) attrsync does not read first: Genesys refuses the
    // PATCH (404), which is final.
    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&with_id), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;
    assert!(app.customer_patches(&with_id).is_empty());
    let stats = app.genesys.stats();
    assert_eq!(stats.patch_attributes, 1, "404 is not retried: {stats:?}");

    // Without it, the conversation read shows it ended and no PATCH is even tried.
    let response = app
        .post_genesys_event(&without_participant_id(bare_start(&without_id)))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;
    assert!(app.customer_patches(&without_id).is_empty());
    let stats = app.genesys.stats();
    assert_eq!(stats.get_conversation, 1, "{stats:?}");
    assert_eq!(stats.patch_attributes, 1, "no new PATCH attempt: {stats:?}");
    assert_eq!(stats.patches_accepted, 0, "{stats:?}");
}

#[tokio::test]
async fn an_unknown_conversation_gets_no_patch_and_is_not_retried_forever() {
    let app = spawn_app().await;
    // Ids the simulator has never seen.
    let ghost = CreatedConversation {
        conversation_id: uuid::Uuid::new_v4().to_string(),
        customer_participant_id: uuid::Uuid::new_v4().to_string(),
        ivr_participant_id: uuid::Uuid::new_v4().to_string(),
    };

    let response = app.post_genesys_event(&eventbridge_start(&ghost)).await;
    assert_eq!(response.status(), 202);
    let response = app
        .post_genesys_event(&without_participant_id(bare_start(&ghost)))
        .await;
    assert_eq!(response.status(), 202);
    // Panics if attrsync keeps retrying the 404s.
    app.settle().await;

    let stats = app.genesys.stats();
    assert_eq!(
        stats.patch_attributes, 1,
        "one PATCH attempt, 404: {stats:?}"
    );
    assert_eq!(stats.get_conversation, 1, "one read, 404: {stats:?}");
    assert_eq!(stats.patches_accepted, 0, "{stats:?}");
}

#[tokio::test]
async fn an_unknown_caller_gets_found_false_and_no_crm_fields() {
    let app = spawn_app().await;
    let stranger = "tel:+13125550999";
    let call = app.new_voice_call(stranger);

    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), stranger))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;

    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    let mut written: Vec<&str> = patches[0].keys().map(String::as_str).collect();
    written.sort_unstable();
    assert_eq!(written, ["crm.found", "crm.syncedAt"], "{patches:?}");
    assert_eq!(patches[0]["crm.found"], "false");
}
