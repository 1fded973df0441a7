//! The Architect data action: its shape, and its contracts against what `/v1/lookup` takes and answers.

use super::*;

#[test]
fn the_data_action_has_the_shape_genesys_cloud_imports() {
    let action = read_json(DATA_ACTION);
    assert_eq!(action["integrationType"], "custom-rest-actions");
    assert_eq!(action["actionType"], "custom");
    assert_eq!(action["secure"], false);
    let request = &action["config"]["request"];
    assert_eq!(request["requestType"], "POST");
    assert_eq!(
        request["requestUrlTemplate"],
        "https://YOUR-ATTRSYNC-HOST/v1/lookup"
    );
    assert_eq!(request["headers"]["Content-Type"], "application/json");
    let input = &action["contract"]["input"]["inputSchema"];
    let output = &action["contract"]["output"]["successSchema"];
    for schema in [input, output] {
        assert_eq!(schema["type"], "object");
        for (name, property) in schema["properties"].as_object().unwrap() {
            assert_eq!(property["type"], "string", "{name}: flat strings only");
        }
    }
    let required: BTreeSet<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // A withheld caller has no ANI: only the conversation is required (issue 9).
    assert_eq!(required, BTreeSet::from(["conversationId"]));

    // The action must wait longer than attrsync takes to answer (it answers "timeout" itself at
    // lookup.deadline_ms), or the flow takes the Timeout path with no answer at all.
    let timeout_ms = action["config"]["timeoutSeconds"].as_u64().unwrap() * 1000;
    let deadline_ms = default_toml()["lookup"]["deadline_ms"]
        .as_integer()
        .unwrap() as u64;
    assert!(
        timeout_ms > deadline_ms,
        "timeoutSeconds {timeout_ms} ms vs lookup.deadline_ms {deadline_ms} ms"
    );

    // Every output has a JSONPath and a default, and the success template emits each once.
    let response = &action["config"]["response"];
    let outputs = property_names(output);
    let mapped: BTreeSet<String> = response["translationMap"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let defaulted: BTreeSet<String> = response["translationMapDefaults"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(mapped, outputs);
    assert_eq!(defaulted, outputs);
    for (name, default) in response["translationMapDefaults"].as_object().unwrap() {
        let default: Value = serde_json::from_str(default.as_str().unwrap())
            .unwrap_or_else(|e| panic!("the default of {name} is JSON text: {e}"));
        assert!(default.is_string(), "{name}: {default}");
    }
}

#[tokio::test]
async fn the_data_action_request_template_renders_a_body_lookup_accepts_with_every_input() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let inputs = property_names(&action["contract"]["input"]["inputSchema"]);
    let call = app.new_voice_call(KNOWN_ANI);

    // Every input set, as a flow that has them all would send them.
    let all: BTreeMap<&str, Option<&str>> = BTreeMap::from([
        ("conversationId", Some(call.conversation_id.as_str())),
        ("participantId", Some(call.customer_participant_id.as_str())),
        ("ani", Some(KNOWN_ANI)),
        ("email", Some("ada.lovelace@example.com")),
        ("customerId", Some("C-1001")),
        ("externalContactId", Some("")),
    ]);
    assert_eq!(
        all.keys()
            .map(std::string::ToString::to_string)
            .collect::<BTreeSet<_>>(),
        inputs,
        "this test sets every input of the contract"
    );
    let body = render_request_template(&action, &all);
    assert_eq!(
        body.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        inputs
    );
    let response = app.post_lookup(&body).await;
    assert_eq!(response.status(), 200, "{body}");
    assert_eq!(json_body(response).await["found"], "true");

    // Only the required inputs: the optional ones are not sent by Architect, and the silent
    // Velocity references render them as empty strings, which attrsync ignores.
    let required: BTreeMap<&str, Option<&str>> = BTreeMap::from([
        ("conversationId", Some(call.conversation_id.as_str())),
        ("participantId", None),
        ("ani", Some(KNOWN_ANI)),
        ("email", None),
        ("customerId", None),
        ("externalContactId", None),
    ]);
    let body = render_request_template(&action, &required);
    assert_eq!(body["email"], "");
    let response = app.post_lookup(&body).await;
    assert_eq!(response.status(), 200, "{body}");
    let answer = json_body(response).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["matchedBy"], "phone", "{answer}");
}

#[tokio::test]
async fn lookup_refuses_a_field_outside_the_input_contract() {
    // What makes the previous test meaningful: /v1/lookup would not silently accept a misspelt
    // input name.
    let app = spawn_app().await;
    let response = app
        .post_lookup(&json!({ "ani": KNOWN_ANI, "callerAni": KNOWN_ANI }))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(json_body(response).await["field"], "callerAni");
}

#[tokio::test]
async fn every_output_of_the_data_action_is_a_string_lookup_returns_for_a_sample_customer() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let outputs = property_names(&action["contract"]["output"]["successSchema"]);

    let answer = lookup(&app, KNOWN_ANI).await;
    for name in &outputs {
        assert!(
            answer.get(name).is_some_and(Value::is_string),
            "/v1/lookup returns no string {name} for {KNOWN_ANI}: {answer}"
        );
    }

    // What Genesys would hand to the flow: translation map, then success template.
    let result = apply_response_config(&action, &answer);
    assert_eq!(result.as_object().unwrap().len(), outputs.len(), "{result}");
    for name in &outputs {
        assert_eq!(result[name.as_str()], answer[name.as_str()], "{name}");
    }
    assert_eq!(result["found"], "true");
    assert_eq!(result["id"], "C-1001");
    assert_eq!(result["firstName"], "Ada");
    assert_eq!(result["tier"], "gold");
    assert_eq!(result["openCases"], "2");
    // How it was found: the file stores Ada's number without its country.
    assert_eq!(result["matchCount"], "1");
    assert_eq!(result["matchQuality"], "national");
    assert_eq!(result["recordType"], "customer");
    assert_eq!(result["recordId"], "C-1001");
}

#[tokio::test]
async fn a_caller_the_crm_does_not_know_still_fills_every_output_through_the_defaults() {
    let app = spawn_app().await;
    let action = read_json(DATA_ACTION);
    let outputs = property_names(&action["contract"]["output"]["successSchema"]);

    let answer = lookup(&app, UNKNOWN_ANI).await;
    assert!(answer.get("firstName").is_none(), "{answer}");

    let result = apply_response_config(&action, &answer);
    for name in &outputs {
        assert!(result[name.as_str()].is_string(), "{name}: {result}");
    }
    assert_eq!(result["found"], "false");
    assert_eq!(result["reason"], "not_found");
    assert_eq!(result["firstName"], "");
    assert_eq!(result["matchCount"], "0");
    assert_eq!(result["recordId"], "");
}

pub(crate) fn property_names(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

pub(crate) async fn lookup(app: &TestApp, ani: &str) -> Value {
    let response = app.post_lookup(&json!({ "ani": ani })).await;
    assert_eq!(response.status(), 200);
    json_body(response).await
}

/// Renders the request template the way the data-action service would: each
/// `$!esc.jsonString(${input.name})` becomes the JSON-escaped input, or nothing for an input the
/// flow did not set. Panics on any other Velocity, which this renderer does not know.
pub(crate) fn render_request_template(
    action: &Value,
    inputs: &BTreeMap<&str, Option<&str>>,
) -> Value {
    let template = action["config"]["request"]["requestTemplate"]
        .as_str()
        .unwrap();
    let mut rendered = template.to_owned();
    for (name, value) in inputs {
        let reference = format!("$!esc.jsonString(${{input.{name}}})");
        assert_eq!(
            rendered.matches(&reference).count(),
            1,
            "the request template has {reference} once: {template}"
        );
        let escaped = value
            .map(|v| {
                let quoted = serde_json::to_string(v).unwrap();
                quoted[1..quoted.len() - 1].to_owned()
            })
            .unwrap_or_default();
        rendered = rendered.replace(&reference, &escaped);
    }
    assert!(
        !rendered.contains('$'),
        "Velocity this test does not render: {rendered}"
    );
    serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the request template renders invalid JSON ({e}): {rendered}"))
}

/// The data-action service's response processing: each translation-map JSONPath (`$.name`)
/// against the raw answer, its default when the path finds nothing, then the success template.
pub(crate) fn apply_response_config(action: &Value, raw: &Value) -> Value {
    let response = &action["config"]["response"];
    let defaults = &response["translationMapDefaults"];
    let mut rendered = response["successTemplate"].as_str().unwrap().to_owned();
    for (name, path) in response["translationMap"].as_object().unwrap() {
        let field = path
            .as_str()
            .and_then(|p| p.strip_prefix("$."))
            .unwrap_or_else(|| panic!("{name}: a JSONPath of the form $.field: {path}"));
        let value = match raw.get(field) {
            Some(v) => serde_json::to_string(v).unwrap(),
            None => defaults[name.as_str()]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no default"))
                .to_owned(),
        };
        rendered = rendered.replace(&format!("${{{name}}}"), &value);
    }
    assert!(
        !rendered.contains('$'),
        "Velocity this test does not render: {rendered}"
    );
    serde_json::from_str(&rendered)
        .unwrap_or_else(|e| panic!("the success template renders invalid JSON ({e}): {rendered}"))
}
