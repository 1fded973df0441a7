//! `POST /v1/lookup`: the synchronous lookup for Architect data actions.

use std::time::Duration;

use attrsync::phone::Notation;
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app, spawn_app_with, use_http_crm, TestApp};

/// What a data action sends: every input, unset ones as empty strings.
fn data_action_input(ani: &str) -> Value {
    json!({
        "conversationId": "",
        "participantId": "",
        "ani": ani,
        "email": "",
        "customerId": ""
    })
}

/// Posts a lookup, expects 200 and a flat object of strings, returns it.
async fn lookup(app: &TestApp, request: &Value) -> serde_json::Map<String, Value> {
    let response = app.post_lookup(request).await;
    assert_eq!(response.status(), 200, "{request}");
    let body = json_body(response).await;
    let Value::Object(answer) = body else {
        panic!("a lookup answers a JSON object, got {body}");
    };
    for (key, value) in &answer {
        assert!(value.is_string(), "{key} is not a string: {value}");
    }
    answer
}

fn ada() -> Value {
    json!({
        "id": "C-1001", "firstName": "Ada", "lastName": "Lovelace",
        "email": "ada@example.com", "phone": "+13175550125", "tier": "gold"
    })
}

#[tokio::test]
async fn a_data_action_lookup_answers_flat_strings_with_the_customer_unprefixed() {
    let app = spawn_app().await;

    let answer = lookup(&app, &data_action_input("tel:+13175550125")).await;

    assert_eq!(answer["found"], "true", "{answer:?}");
    assert_eq!(answer["matchedBy"], "phone");
    assert_eq!(answer["reason"], "");
    assert_eq!(answer["firstName"], "Ada");
    assert_eq!(answer["tier"], "gold");
    assert!(!answer.contains_key("crm.firstName"), "{answer:?}");
    app.settle().await;
    assert_eq!(
        app.genesys.stats(),
        Default::default(),
        "no conversation: no Genesys call"
    );
}

#[tokio::test]
async fn an_unknown_caller_is_answered_not_found() {
    let app = spawn_app().await;

    let answer = lookup(&app, &data_action_input("tel:+13125550999")).await;

    assert_eq!(answer["found"], "false", "{answer:?}");
    assert_eq!(answer["reason"], "not_found");
    assert_eq!(answer["matchedBy"], "");
    assert!(!answer.contains_key("firstName"));
}

#[tokio::test]
async fn a_lookup_naming_a_live_call_also_writes_the_attributes() {
    let app = spawn_app().await;
    assert!(app.state.settings.lookup.write_attributes, "the default");
    let call = app.new_voice_call("tel:+13175550125");
    let mut request = data_action_input("tel:+13175550125");
    request["conversationId"] = json!(call.conversation_id);
    request["participantId"] = json!(call.customer_participant_id);

    let answer = lookup(&app, &request).await;
    assert_eq!(answer["found"], "true", "{answer:?}");
    app.settle().await;

    let patches = app.customer_patches(&call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0]["crm.firstName"], "Ada");
    assert_eq!(patches[0]["crm.found"], "true");
}

#[tokio::test]
async fn a_second_lookup_with_a_better_key_updates_the_attributes_the_first_one_wrote() {
    let app = spawn_app().await;
    // A caller with a withheld number: the flow first tries the ANI it has, then asks for the
    // customer number and looks up again.
    let call = app.new_voice_call("tel:+13125550999");
    let mut request = data_action_input("tel:+13125550999");
    request["conversationId"] = json!(call.conversation_id);
    request["participantId"] = json!(call.customer_participant_id);

    let first = lookup(&app, &request).await;
    assert_eq!(first["found"], "false", "{first:?}");
    app.settle().await;
    assert_eq!(app.customer_attributes(&call)["crm.found"], "false");

    request["ani"] = json!("");
    request["customerId"] = json!("C-1001");
    let second = lookup(&app, &request).await;
    assert_eq!(second["found"], "true", "{second:?}");
    assert_eq!(second["matchedBy"], "customer_id");
    app.settle().await;

    let stored = app.customer_attributes(&call);
    assert_eq!(stored["crm.found"], "true", "{stored:?}");
    assert_eq!(stored["crm.firstName"], "Ada", "{stored:?}");
}

#[tokio::test]
async fn a_slow_crm_answers_timeout_within_the_deadline_and_the_late_answer_warms_the_cache() {
    let app = spawn_app_with(|settings, sims| {
        use_http_crm(settings, &sims.crm);
        settings.lookup.deadline_ms = 200;
    })
    .await;
    app.crm.insert(ada());
    app.crm.set_latency(Duration::from_secs(2));
    let request = data_action_input("tel:+13175550125");

    let first = lookup(&app, &request).await;
    assert_eq!(first["found"], "false", "{first:?}");
    assert_eq!(first["reason"], "timeout");

    // The lookup goes on in the background; once the CRM has answered, the same lookup is
    // served from the cache.
    let started = tokio::time::Instant::now();
    let found = loop {
        let answer = lookup(&app, &request).await;
        if answer["found"] == "true" {
            break answer;
        }
        assert_eq!(answer["reason"], "timeout", "{answer:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the slow CRM answer never reached the cache"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(found["firstName"], "Ada");
    assert_eq!(
        app.crm.requests(),
        1,
        "every later lookup waited for the one CRM call"
    );
}

#[tokio::test]
async fn concurrent_lookups_of_one_caller_make_one_crm_request() {
    let app = spawn_app_with(|settings, sims| use_http_crm(settings, &sims.crm)).await;
    app.crm.insert(ada());
    app.crm.set_latency(Duration::from_millis(100));
    let request = data_action_input("tel:+13175550125");

    let answers = futures::future::join_all((0..50).map(|_| lookup(&app, &request))).await;

    assert_eq!(answers.len(), 50);
    for answer in &answers {
        assert_eq!(answer["found"], "true", "{answer:?}");
        assert_eq!(answer["firstName"], "Ada");
    }
    assert_eq!(app.crm.requests(), 1);
}

#[tokio::test]
async fn the_http_adapter_tries_the_configured_phone_notations_in_order() {
    let app = spawn_app_with(|settings, sims| {
        use_http_crm(settings, &sims.crm);
        settings.crm.http.phone_notations = vec![Notation::E164, Notation::National];
    })
    .await;
    // This CRM stores the number as it was typed.
    assert!(app.crm.insert(json!({
        "id": "C-7001", "firstName": "Nat", "lastName": "Ional", "phone": "(317) 555-0125"
    })));

    let answer = lookup(&app, &data_action_input("tel:+13175550125")).await;

    assert_eq!(answer["found"], "true", "{answer:?}");
    assert_eq!(answer["firstName"], "Nat");
    assert_eq!(answer["matchedBy"], "phone");
    assert_eq!(app.crm.queries(), ["+13175550125", "(317) 555-0125"]);
}
