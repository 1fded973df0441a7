//! `POST /v1/events/cti`: the event CTI middleware sends, and what it must not get through.

use attrsync::simulator::CreatedConversation;
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app, TestApp};

fn cti_event(call: &CreatedConversation) -> Value {
    json!({
        "eventId": "cti-0001",
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "callerNumber": "(317) 555-0125",
        "attributes": {"ivr.intent": "billing"}
    })
}

#[tokio::test]
async fn a_cti_event_writes_the_crm_fields_and_its_own_attributes_unprefixed() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");

    let response = app.post_cti_event(&cti_event(&call)).await;
    assert_eq!(response.status(), 202);
    let body = json_body(response).await;
    assert_eq!(body["status"], "queued", "{body}");
    assert_eq!(body["eventId"], "cti-0001", "{body}");
    app.settle().await;

    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    let patch = &patches[0];
    assert_eq!(patch["crm.firstName"], "Ada", "{patch:?}");
    assert_eq!(patch["crm.id"], "C-1001");
    assert_eq!(patch["crm.found"], "true");
    assert_eq!(patch["ivr.intent"], "billing");
    assert!(!patch.contains_key("crm.ivr.intent"), "{patch:?}");
    assert_eq!(app.genesys.stats().get_conversation, 0);
}

/// Posts `event`, expects 422, and checks that nothing was queued or sent to Genesys.
async fn rejected(app: &TestApp, event: &Value) -> Value {
    let response = app.post_cti_event(event).await;
    assert_eq!(response.status(), 422, "{event}");
    let body = json_body(response).await;
    assert_eq!(body["code"], "invalid_field", "{body}");
    assert_eq!(app.pending().await, 0, "nothing queued for {event}");
    body
}

#[tokio::test]
async fn bad_cti_input_is_refused_naming_the_field_and_nothing_is_queued_or_patched() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");

    let mut unknown_field = cti_event(&call);
    unknown_field["colour"] = json!("red");
    let body = rejected(&app, &unknown_field).await;
    assert_eq!(body["field"], "colour", "{body}");

    let mut non_string = cti_event(&call);
    non_string["attributes"] = json!({"ivr.retries": 3});
    let body = rejected(&app, &non_string).await;
    assert_eq!(body["field"], "attributes.ivr.retries", "{body}");

    // A withheld caller is no contract violation: see `parties`.

    let mut blank_id = cti_event(&call);
    blank_id["eventId"] = json!("  ");
    let body = rejected(&app, &blank_id).await;
    assert_eq!(body["field"], "eventId", "{body}");

    app.settle().await;
    assert_eq!(app.genesys.stats(), Default::default(), "no Genesys call");
    assert!(app.customer_patches(&call).is_empty());
}

#[tokio::test]
async fn a_cti_event_without_event_id_is_refused_naming_event_id() {
    let app = spawn_app().await;
    let call = app.new_voice_call("tel:+13175550125");
    let mut event = cti_event(&call);
    event.as_object_mut().expect("object").remove("eventId");

    let body = rejected(&app, &event).await;

    assert_eq!(body["field"], "eventId", "{body}");
    app.settle().await;
    assert_eq!(app.genesys.stats(), Default::default());
}
