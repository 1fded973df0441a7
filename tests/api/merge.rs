//! The merge policy end to end: what reaches the participant under each setting.

use std::collections::BTreeMap;

use attrsync::merge::Overwrite;
use attrsync::simulator::CreatedConversation;
use serde_json::json;

use crate::helpers::{
    as_voice_call_from, attrs, eventbridge_start, json_body, spawn_app, spawn_app_with, TestApp,
};

const ADA_ANI: &str = "tel:+13175550125";

/// A live call from Ada on which the flow already set `crm.tier = vip`; its event delivered and
/// processed.
async fn call_with_flow_tier(app: &TestApp) -> CreatedConversation {
    let call = app.new_voice_call(ADA_ANI);
    assert!(app.genesys.set_attributes(
        &call.conversation_id,
        &call.customer_participant_id,
        attrs(&[("crm.tier", "vip")]),
    ));
    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;
    call
}

#[tokio::test]
async fn keep_existing_keeps_what_the_flow_wrote_and_fills_the_rest() {
    let app =
        spawn_app_with(|settings, _| settings.merge.overwrite = Overwrite::KeepExisting).await;

    let call = call_with_flow_tier(&app).await;

    let stored = app.customer_attributes(&call);
    assert_eq!(stored["crm.tier"], "vip", "{stored:?}");
    assert_eq!(stored["crm.firstName"], "Ada");
    assert_eq!(stored["crm.found"], "true");
    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!(!patches[0].contains_key("crm.tier"), "{patches:?}");
    assert_eq!(
        app.genesys.stats().get_conversation,
        1,
        "keep_existing reads the participant first"
    );
}

#[tokio::test]
async fn crm_wins_overwrites_what_the_flow_wrote() {
    let app = spawn_app().await;

    let call = call_with_flow_tier(&app).await;

    assert_eq!(app.customer_attributes(&call)["crm.tier"], "gold");
    assert_eq!(app.genesys.stats().get_conversation, 0);
}

#[tokio::test]
async fn the_fields_allow_list_renames_and_drops_everything_else() {
    let app = spawn_app_with(|settings, _| {
        settings.merge.fields = BTreeMap::from([
            ("firstName".to_owned(), "givenName".to_owned()),
            ("tier".to_owned(), "segment".to_owned()),
        ]);
    })
    .await;
    let call = app.new_voice_call(ADA_ANI);

    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;

    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    let mut written: Vec<&str> = patches[0].keys().map(String::as_str).collect();
    written.sort_unstable();
    assert_eq!(
        written,
        ["crm.found", "crm.givenName", "crm.segment", "crm.syncedAt"],
        "{patches:?}"
    );
    assert_eq!(patches[0]["crm.givenName"], "Ada");
    assert_eq!(patches[0]["crm.segment"], "gold");
}

#[tokio::test]
async fn an_excluded_field_reaches_neither_the_participant_nor_the_lookup_answer() {
    let app = spawn_app_with(|settings, _| settings.merge.exclude = vec!["email".to_owned()]).await;
    let call = app.new_voice_call(ADA_ANI);

    let response = app
        .post_genesys_event(&as_voice_call_from(eventbridge_start(&call), ADA_ANI))
        .await;
    assert_eq!(response.status(), 202);
    app.settle().await;

    let stored = app.customer_attributes(&call);
    assert_eq!(stored["crm.firstName"], "Ada", "{stored:?}");
    assert!(!stored.contains_key("crm.email"), "{stored:?}");

    let answer = json_body(app.post_lookup(&json!({"ani": ADA_ANI})).await).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert!(answer.get("email").is_none(), "{answer}");
}
