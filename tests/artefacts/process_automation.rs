//! The push path without AWS (genesys/processautomation/): a Process Automation trigger on
//! `customer.start`, the Architect workflow it runs and the data action that workflow calls,
//! checked against each other and fed the official event samples. No Genesys org is at hand, so
//! the Terraform is parsed and evaluated (hcl-rs), the workflow's YAML is substituted the way the
//! CX-as-Code provider does it and parsed, and the few Architect expressions the workflow uses are
//! evaluated by a small interpreter below; what comes out is POSTed to a real attrsync.

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use serde_json::Map;

use super::data_action::{apply_response_config, property_names};
use super::*;

const PA_DIR: &str = "genesys/processautomation";
const WORKFLOW: &str = "genesys/processautomation/workflow-attrsync-lookup.yaml";
const CUSTOMER_START: &str = "v2.detail.events.conversation.{id}.customer.start";

/// The fields of a `customer.start` event body, as the Genesys SDKs model it
/// (`CustomerStartDetailEventTopicCustomerStartEvent`, platform-client-sdk-python 257.1.0,
/// build/docs/CustomerStartDetailEventTopicCustomerStartEvent.md), and whether each is a top-level
/// primitive, i.e. reaches a TopLevelPrimitives workflow as an input.
const CUSTOMER_START_FIELDS: &[(&str, bool)] = &[
    ("eventTime", true),
    ("conversationId", true),
    ("participantId", true),
    ("sessionId", true),
    ("mediaType", true),
    ("externalOrganizationId", true),
    ("externalContactId", true),
    ("provider", true),
    ("direction", true),
    ("ani", true),
    ("dnis", true),
    ("addressTo", true),
    ("addressFrom", true),
    ("callbackUserName", true),
    ("callbackNumbers", false),
    ("callbackScheduledTime", true),
    ("subject", true),
    ("messageType", true),
    ("conversationExternalContactIds", false),
    ("conversationExternalOrganizationIds", false),
    ("journeyContext", false),
    ("divisionId", true),
    ("utilizationLabel", true),
];

// ---------------------------------------------------------------------------------------------
// The three artefacts agree

#[test]
fn the_workflow_calls_the_data_action_by_its_integration_and_action_name() {
    let workflow = workflow();
    let (category, action, _) = call_data(&workflow);
    assert_eq!(
        category,
        tf_variable_default(PA_DIR, "data_action_category").as_str(),
        "the workflow's category is the integration name"
    );
    assert_eq!(
        tf_variable_default(PA_DIR, "data_action_category"),
        tf_variable_default("genesys/terraform", "integration_name"),
        "processautomation/ defaults to the integration terraform/ creates"
    );
    assert_eq!(action, read_json(DATA_ACTION)["name"].as_str().unwrap());
}

#[test]
fn the_workflow_sets_every_input_of_the_data_action_and_lists_every_output() {
    let workflow = workflow();
    let action = read_json(DATA_ACTION);
    let (_, _, call) = call_data(&workflow);
    let inputs = call["inputs"].as_object().expect("inputs");
    assert_eq!(
        keys(inputs),
        property_names(&action["contract"]["input"]["inputSchema"])
    );
    for required in action["contract"]["input"]["inputSchema"]["required"]
        .as_array()
        .unwrap()
    {
        let name = required.as_str().unwrap();
        assert!(
            inputs[name].get("exp").is_some() || inputs[name].get("lit").is_some(),
            "the required input {name} is given a value: {}",
            inputs[name]
        );
    }
    assert_eq!(
        keys(call["successOutputs"].as_object().expect("successOutputs")),
        property_names(&action["contract"]["output"]["successSchema"]),
        "successOutputs name the output contract, as Genesys's blueprints list it"
    );
    // The three ways a Call Data Action ends are all handled.
    let (_, _, _, outputs) = call_data_with_outputs(&workflow);
    assert_eq!(
        keys(outputs),
        BTreeSet::from([
            "failure".to_owned(),
            "success".to_owned(),
            "timeout".to_owned()
        ])
    );
}

#[test]
fn the_workflow_inputs_are_top_level_strings_of_customer_start_and_no_other_variable_shadows_one() {
    let fields: BTreeMap<&str, bool> = CUSTOMER_START_FIELDS.iter().copied().collect();
    // The official customer.start sample has no field the model does not know.
    let sample = customer_start_sample();
    for name in sample.as_object().unwrap().keys() {
        assert!(fields.contains_key(name.as_str()), "{name}");
    }

    let workflow = workflow();
    let variables = workflow["workflow"]["variables"].as_array().unwrap();
    let mut inputs = BTreeSet::new();
    for variable in variables {
        let (kind, spec) = variable.as_object().unwrap().iter().next().unwrap();
        let name = spec["name"].as_str().unwrap();
        let field = name.strip_prefix("Flow.").expect("flow variables");
        let is_input = spec["isInput"].as_bool().unwrap();
        match fields.get(field) {
            Some(primitive) => {
                // Genesys's trigger FAQ: a variable named like an event property must be an
                // input, or the workflow is not triggered.
                assert!(is_input, "{name} is named like an event property");
                assert!(*primitive, "{name}: TopLevelPrimitives does not deliver it");
                assert_eq!(kind, "stringVariable", "{name}");
                inputs.insert(field.to_owned());
            }
            None => assert!(!is_input, "{name} is an input no event carries"),
        }
    }
    for needed in ["conversationId", "participantId", "ani"] {
        assert!(inputs.contains(needed), "{needed}: {inputs:?}");
    }
}

#[test]
fn every_placeholder_in_the_workflow_has_a_substitution_and_every_substitution_is_used() {
    let raw = read(WORKFLOW);
    let placeholders: BTreeSet<String> = raw
        .match_indices("{{")
        .map(|(at, _)| {
            let rest = &raw[at + 2..];
            rest[..rest.find("}}").expect("closed placeholder")].to_owned()
        })
        .collect();
    let substitutions = flow_substitutions(&BTreeMap::new());
    assert_eq!(
        placeholders,
        substitutions.keys().cloned().collect::<BTreeSet<_>>()
    );
    // The flow is looked up by the name the provider publishes.
    assert_eq!(
        workflow()["workflow"]["name"],
        tf_variable_default(PA_DIR, "workflow_name").as_str()
    );
}

#[test]
fn the_trigger_runs_the_workflow_on_customer_start_with_top_level_primitives() {
    let main = hcl_file(&format!("{PA_DIR}/main.tf"));
    let trigger = resource(
        &main,
        "genesyscloud_processautomation_trigger",
        "customer_start",
    );
    let ctx = context(PA_DIR, &BTreeMap::new());
    assert_eq!(
        eval_attr(trigger, "topic_name", &ctx),
        json!(CUSTOMER_START)
    );
    assert_eq!(eval_attr(trigger, "enabled", &ctx), json!(true));
    let ttl = eval_attr(trigger, "event_ttl_seconds", &ctx);
    assert!(ttl.as_u64().unwrap() >= 10, "{ttl}");
    assert!(
        attr(trigger, "delay_by_seconds").is_none(),
        "only one of event_ttl_seconds and delay_by_seconds may be set"
    );

    let target = single_block(trigger, "target");
    assert_eq!(eval_attr(target, "type", &ctx), json!("Workflow"));
    assert_eq!(
        attr(target, "id").unwrap().to_string(),
        "genesyscloud_flow.attrsync_lookup.id",
        "the target is the workflow this folder deploys, by id (not looked up by name)"
    );
    let settings = single_block(target, "workflow_target_settings");
    assert_eq!(
        eval_attr(settings, "data_format", &ctx),
        json!("TopLevelPrimitives")
    );

    let flow = resource(&main, "genesyscloud_flow", "attrsync_lookup");
    assert_eq!(
        eval_attr(flow, "filepath", &ctx),
        json!(repo().join(WORKFLOW).display().to_string())
    );
    // Computed by the provider from 1.70 on; setting it is an error there.
    assert!(attr(flow, "file_content_hash").is_none());
}

#[test]
fn terraform_wires_the_module_to_the_integration_and_action_it_creates() {
    let main = hcl_file("genesys/terraform/main.tf");
    let module = main
        .blocks()
        .find(|b| b.identifier() == "module" && label(b, 0) == "process_automation")
        .expect("module \"process_automation\" in genesys/terraform/main.tf");
    assert_eq!(
        attr(module, "source").unwrap().to_string(),
        "\"../processautomation\""
    );
    assert_eq!(
        attr(module, "count").unwrap().to_string(),
        "var.process_automation_enabled ? 1 : 0"
    );
    assert_eq!(
        attr(module, "data_action_category").unwrap().to_string(),
        "genesyscloud_integration.lookup.config[0].name"
    );
    assert_eq!(
        attr(module, "data_action_name").unwrap().to_string(),
        "genesyscloud_integration_action.lookup.name"
    );
    // Every argument is a variable of the module, and every variable it uses exists.
    let module_variables = variables(PA_DIR);
    let root_variables = variables("genesys/terraform");
    for attribute in module.body().attributes() {
        if ["source", "count"].contains(&attribute.key()) {
            continue;
        }
        assert!(
            module_variables.contains_key(attribute.key()),
            "{} is not a variable of processautomation/",
            attribute.key()
        );
        let text = attribute.expr().to_string();
        if let Some(name) = text.strip_prefix("var.") {
            assert!(root_variables.contains_key(name), "{name}");
            assert_eq!(
                root_variables[name],
                module_variables[attribute.key()],
                "{name} defaults like the module's {}",
                attribute.key()
            );
        }
    }
    // A module called with count must not configure its provider.
    assert!(
        hcl_file(&format!("{PA_DIR}/versions.tf"))
            .blocks()
            .all(|b| b.identifier() != "provider"),
        "processautomation/ has no provider block"
    );
}

#[test]
fn our_match_criteria_reading_agrees_with_genesys_trigger_test_on_its_own_sample() {
    // Genesys's blog posts a trigger, tests it with an event body and shows the answer: the
    // evaluator below must reach the same verdict, criterion by criterion, or the next test means
    // nothing.
    let request = read_json("tests/fixtures/processautomation-trigger-create-request.json");
    let body = read_json("tests/fixtures/processautomation-test-body-customer-end.json");
    let response = read_json("tests/fixtures/processautomation-trigger-test-response.json");
    let criteria = request["matchCriteria"].as_array().unwrap();
    let details = response["jsonPathValidation"]["details"]
        .as_array()
        .unwrap();
    assert_eq!(criteria.len(), details.len());
    for (criterion, detail) in criteria.iter().zip(details) {
        assert_eq!(criterion["jsonPath"], detail["jsonPath"]);
        assert_eq!(
            criterion_matches(criterion, &body),
            detail["match"].as_bool().unwrap(),
            "{criterion}"
        );
    }
    assert_eq!(
        trigger_fires(criteria, &body),
        response["triggerMatches"].as_bool().unwrap()
    );
    // And it can say no.
    let mut voice = body.clone();
    voice["mediaType"] = json!("VOICE");
    assert!(!trigger_fires(criteria, &voice));
}

#[test]
fn the_default_trigger_fires_for_inbound_voice_only() {
    let criteria = match_criteria(&BTreeMap::new());
    let mut event = customer_start_sample();
    assert_eq!(event["mediaType"], "CHAT", "the official sample is a chat");
    assert!(!trigger_fires(&criteria, &event));
    event["mediaType"] = json!("VOICE");
    assert!(trigger_fires(&criteria, &event));
    event["direction"] = json!("OUTBOUND");
    assert!(!trigger_fires(&criteria, &event));

    // Configurable: a variable adds media types; extra criteria are ANDed.
    let criteria = match_criteria(&BTreeMap::from([
        ("media_types", json!(["VOICE", "CHAT"])),
        (
            "extra_match_criteria",
            json!([{"jsonPath": "provider", "operator": "Equal", "value": "PureCloud Webchat v2"}]),
        ),
    ]));
    let event = customer_start_sample();
    assert!(trigger_fires(&criteria, &event));
    let mut other_provider = event.clone();
    other_provider["provider"] = json!("Open Messaging");
    assert!(!trigger_fires(&criteria, &other_provider));
}

// ---------------------------------------------------------------------------------------------
// The official samples, through the path

#[tokio::test]
async fn the_official_customer_start_body_as_an_inbound_call_is_written_to_the_participant_once() {
    let app = spawn_app().await;
    let call = app.new_voice_call(KNOWN_ANI);
    let mut event = customer_start_sample();
    event["conversationId"] = json!(call.conversation_id);
    event["participantId"] = json!(call.customer_participant_id);
    event["mediaType"] = json!("VOICE");
    event["ani"] = json!(KNOWN_ANI);
    assert!(trigger_fires(&match_criteria(&BTreeMap::new()), &event));

    let inputs = run_workflow(&event);
    assert_eq!(
        inputs["conversationId"].as_deref(),
        Some(call.conversation_id.as_str())
    );
    assert_eq!(
        inputs["participantId"].as_deref(),
        Some(call.customer_participant_id.as_str())
    );
    assert_eq!(inputs["ani"].as_deref(), Some(KNOWN_ANI));

    let answer = call_data_action(&app, &inputs).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["id"], "C-1001");
    app.settle().await;
    let attributes = app.customer_attributes(&call);
    assert_eq!(attributes["crm.id"], "C-1001", "{attributes:?}");
    assert_eq!(attributes["crm.found"], "true");

    // Genesys's trigger FAQ: a workflow may run more than once for one event. The second run is
    // answered again, and nothing is written twice.
    let again = call_data_action(&app, &inputs).await;
    assert_eq!(again["found"], "true");
    app.settle().await;
    assert_eq!(app.customer_patches(&call).len(), 1);
}

#[tokio::test]
async fn the_official_trigger_test_body_as_customer_start_is_answered_and_writes_nothing_to_an_unknown_conversation(
) {
    // Genesys's trigger test body (a customer.end, values are placeholders) reshaped as the
    // customer.start a TopLevelPrimitives workflow would receive: customer.end-only fields go,
    // and so do the arrays the data format cannot deliver.
    let app = spawn_app().await;
    let known: BTreeSet<&str> = CUSTOMER_START_FIELDS.iter().map(|(n, _)| *n).collect();
    let body = read_json("tests/fixtures/processautomation-test-body-customer-end.json");
    let event: Map<String, Value> = body
        .as_object()
        .unwrap()
        .iter()
        .filter(|(name, _)| known.contains(name.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(event.contains_key("callbackNumbers"));
    let event = Value::Object(event);

    // A chat: the placeholder "ani" is no number and is not sent; attrsync answers without a
    // key (and would read the participant, but the placeholder conversation does not exist).
    let inputs = run_workflow(&event);
    assert_eq!(inputs["conversationId"].as_deref(), Some("conversationId"));
    assert_eq!(inputs["participantId"].as_deref(), Some("participantId"));
    assert_eq!(inputs["ani"].as_deref(), Some(""));
    assert_eq!(inputs["email"].as_deref(), Some(""));
    let answer = call_data_action(&app, &inputs).await;
    assert_eq!(answer["found"], "false", "{answer}");
    assert_eq!(answer["reason"], "no_key", "{answer}");
    app.settle().await;
    assert_eq!(app.genesys.stats().patches_accepted, 0);

    // The same body as an SMS: addressFrom is the customer's number.
    let mut sms = event.clone();
    sms["mediaType"] = json!("MESSAGE");
    sms["addressFrom"] = json!("+13175550125");
    let inputs = run_workflow(&sms);
    assert_eq!(inputs["ani"].as_deref(), Some("+13175550125"));
    let answer = call_data_action(&app, &inputs).await;
    assert_eq!(answer["found"], "true", "{answer}");

    // As an email: addressFrom is the address.
    let mut email = event.clone();
    email["mediaType"] = json!("EMAIL");
    email["addressFrom"] = json!("ada.lovelace@example.com");
    let inputs = run_workflow(&email);
    assert_eq!(inputs["ani"].as_deref(), Some(""));
    assert_eq!(inputs["email"].as_deref(), Some("ada.lovelace@example.com"));
    let answer = call_data_action(&app, &inputs).await;
    assert_eq!(answer["found"], "true", "{answer}");
    assert_eq!(answer["matchedBy"], "email", "{answer}");
}

#[test]
fn an_event_without_the_optional_fields_reaches_the_data_action_with_empty_strings_not_unset_values(
) {
    // The minimal event: every field the workflow reads but the ids is absent, so each of those
    // inputs arrives NOT_SET. The interpreter refuses to compare NOT_SET, so this passes only
    // because the workflow turns every input into a string first.
    let event = json!({"conversationId": "c-1"});
    let inputs = run_workflow(&event);
    assert_eq!(inputs["conversationId"].as_deref(), Some("c-1"));
    assert_eq!(inputs["participantId"].as_deref(), Some(""));
    assert_eq!(inputs["ani"].as_deref(), Some(""));
    assert_eq!(inputs["email"].as_deref(), Some(""));
    assert_eq!(inputs["customerId"], None);
}

// ---------------------------------------------------------------------------------------------
// Helpers: the data action

/// What Genesys's data-action service does with the workflow's inputs: renders the request
/// template, POSTs it to attrsync, applies the translation map and its defaults.
async fn call_data_action(app: &TestApp, inputs: &BTreeMap<String, Option<String>>) -> Value {
    let action = read_json(DATA_ACTION);
    let inputs: BTreeMap<&str, Option<&str>> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    let body = super::data_action::render_request_template(&action, &inputs);
    let response = app.post_lookup(&body).await;
    assert_eq!(response.status(), 200, "{body}");
    let raw = json_body(response).await;
    apply_response_config(&action, &raw)
}

fn keys(object: &Map<String, Value>) -> BTreeSet<String> {
    object.keys().cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers: Process Automation

/// The official `customer.start` body (the EventBridge sample's `detail.eventBody`).
fn customer_start_sample() -> Value {
    read_json("tests/fixtures/eventbridge-customer-start.json")["detail"]["eventBody"].clone()
}

/// Genesys's matching for the operators used here. `jsonPath` is a top-level field name in all
/// of them; anything else is refused rather than guessed.
fn criterion_matches(criterion: &Value, event: &Value) -> bool {
    let path = criterion["jsonPath"].as_str().unwrap();
    assert!(
        path.chars().all(|c| c.is_ascii_alphanumeric()),
        "only top-level field names are evaluated here: {path}"
    );
    let value = event.get(path);
    match criterion["operator"].as_str().unwrap() {
        "Equal" => value == Some(&criterion["value"]),
        "In" => criterion["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| Some(v) == value),
        "Exists" => value.is_some() == criterion["value"].as_bool().unwrap(),
        other => panic!("operator {other} is not evaluated here"),
    }
}

/// Genesys ANDs the criteria (an empty list fires for every event).
fn trigger_fires(criteria: &[Value], event: &Value) -> bool {
    criteria.iter().all(|c| criterion_matches(c, event))
}

/// The trigger's match criteria, evaluated from main.tf with the variables' defaults overridden
/// by `vars`.
fn match_criteria(vars: &BTreeMap<&str, Value>) -> Vec<Value> {
    let main = hcl_file(&format!("{PA_DIR}/main.tf"));
    let trigger = resource(
        &main,
        "genesyscloud_processautomation_trigger",
        "customer_start",
    );
    let encoded = eval_attr(trigger, "match_criteria", &context(PA_DIR, vars));
    serde_json::from_str(encoded.as_str().expect("jsonencode gives a string")).unwrap()
}

/// The workflow file after the provider's substitutions.
fn workflow() -> Value {
    let mut text = read(WORKFLOW);
    for (key, value) in flow_substitutions(&BTreeMap::new()) {
        // As the provider does it: a plain replacement of {{key}}
        // (terraform-provider-genesyscloud v1.84.1, genesyscloud/util/files/util_files.go,
        // substituteValues).
        text = text.replace(&format!("{{{{{key}}}}}"), &value);
    }
    assert!(!text.contains("{{"), "a placeholder without substitution");
    serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("the substituted workflow is not YAML: {e}"))
}

fn flow_substitutions(vars: &BTreeMap<&str, Value>) -> BTreeMap<String, String> {
    let main = hcl_file(&format!("{PA_DIR}/main.tf"));
    let flow = resource(&main, "genesyscloud_flow", "attrsync_lookup");
    let value = eval_attr(flow, "substitutions", &context(PA_DIR, vars));
    serde_json::from_value(value).expect("substitutions are strings")
}

/// The workflow's one Call Data Action: (category, action name, its settings).
fn call_data(workflow: &Value) -> (String, String, Value) {
    let (category, action, call, _) = call_data_with_outputs(workflow);
    (category, action, call)
}

fn call_data_with_outputs(workflow: &Value) -> (String, String, Value, &Map<String, Value>) {
    let actions = workflow["workflow"]["states"][0]["state"]["actions"]
        .as_array()
        .unwrap();
    let calls: Vec<&Value> = actions.iter().filter_map(|a| a.get("callData")).collect();
    assert_eq!(calls.len(), 1, "one Call Data Action");
    let call = calls[0];
    let (category, spec) = single_entry(&call["category"]);
    let (action, settings) = single_entry(&spec["dataAction"]);
    let outputs = call["outputs"].as_object().expect("outputs");
    (category, action, settings.clone(), outputs)
}

fn single_entry(value: &Value) -> (String, &Value) {
    let object = value.as_object().unwrap();
    assert_eq!(object.len(), 1, "{value}");
    let (k, v) = object.iter().next().unwrap();
    (k.clone(), v)
}

/// Runs the workflow for `event` as a TopLevelPrimitives trigger would: the input variables get
/// the event's top-level strings (the rest stay NOT_SET), the Update Data statements run, and
/// the result is the inputs the Call Data Action passes (None: `noValue`).
fn run_workflow(event: &Value) -> BTreeMap<String, Option<String>> {
    let workflow = workflow();
    let mut flow: BTreeMap<String, Architect> = BTreeMap::new();
    for variable in workflow["workflow"]["variables"].as_array().unwrap() {
        let (_, spec) = single_entry(variable);
        let name = spec["name"].as_str().unwrap().to_owned();
        let field = name.trim_start_matches("Flow.");
        let value = match (spec["isInput"].as_bool().unwrap(), event.get(field)) {
            (true, Some(Value::String(s))) => Architect::Str(s.clone()),
            _ => Architect::NotSet,
        };
        flow.insert(name, value);
    }
    let actions = workflow["workflow"]["states"][0]["state"]["actions"]
        .as_array()
        .unwrap();
    for action in actions {
        let (kind, spec) = single_entry(action);
        match kind.as_str() {
            "updateData" => {
                for statement in spec["statements"].as_array().unwrap() {
                    let (kind, statement) = single_entry(statement);
                    assert_eq!(kind, "string", "only string statements are evaluated here");
                    let target = statement["variable"].as_str().unwrap();
                    assert!(flow.contains_key(target), "{target} is declared");
                    let value = evaluate(statement["value"]["exp"].as_str().unwrap(), &flow);
                    flow.insert(target.to_owned(), value);
                }
            }
            "callData" => {
                let (_, spec) = single_entry(&spec["category"]);
                let (_, call) = single_entry(&spec["dataAction"]);
                return call["inputs"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(name, input)| {
                        let value = if input.get("noValue").is_some() {
                            None
                        } else if let Some(lit) = input.get("lit") {
                            Some(lit.as_str().unwrap().to_owned())
                        } else {
                            match evaluate(input["exp"].as_str().unwrap(), &flow) {
                                Architect::Str(s) => Some(s),
                                other => panic!("input {name} is {other:?}"),
                            }
                        };
                        (name.clone(), value)
                    })
                    .collect();
            }
            other => panic!("the workflow reaches {other} before calling the data action"),
        }
    }
    panic!("the workflow never calls the data action")
}

// ---------------------------------------------------------------------------------------------
// Helpers: the Architect expressions the workflow uses

/// An Architect value: a string, a Boolean, or an unset string.
#[derive(Debug, Clone, PartialEq)]
enum Architect {
    NotSet,
    Str(String),
    Bool(bool),
}

/// Evaluates the subset of Architect's expression language the workflow uses: `Flow.x`, string
/// literals, `==`, `and`, `or`, `If(c, a, b)` and `IsNotSetOrEmpty(x)`. Comparing a NOT_SET value
/// panics: Architect's rules for it were not checked, so the workflow must not depend on them.
fn evaluate(expression: &str, flow: &BTreeMap<String, Architect>) -> Architect {
    let tokens = tokenize(expression);
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        flow,
    };
    let value = parser.or();
    assert_eq!(parser.at, tokens.len(), "trailing tokens in {expression}");
    value
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    EqEq,
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' | ')' | ',' => {
                chars.next();
                tokens.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                });
            }
            '=' => {
                chars.next();
                assert_eq!(chars.next(), Some('='), "only == in {text}");
                tokens.push(Token::EqEq);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    assert_ne!(c, '\\', "no escapes in {text}");
                    s.push(c);
                }
                tokens.push(Token::Str(s));
            }
            c if c.is_ascii_alphabetic() => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                        s.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Ident(s));
            }
            other => panic!("unexpected {other:?} in {text}"),
        }
    }
    tokens
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    flow: &'a BTreeMap<String, Architect>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Token {
        let token = self.tokens[self.at].clone();
        self.at += 1;
        token
    }

    fn expect(&mut self, token: Token) {
        assert_eq!(self.next(), token);
    }

    fn or(&mut self) -> Architect {
        let mut value = self.and();
        while self.peek() == Some(&Token::Ident("or".into())) {
            self.next();
            let right = self.and();
            value = Architect::Bool(boolean(&value) | boolean(&right));
        }
        value
    }

    fn and(&mut self) -> Architect {
        let mut value = self.comparison();
        while self.peek() == Some(&Token::Ident("and".into())) {
            self.next();
            let right = self.comparison();
            value = Architect::Bool(boolean(&value) & boolean(&right));
        }
        value
    }

    fn comparison(&mut self) -> Architect {
        let left = self.primary();
        if self.peek() != Some(&Token::EqEq) {
            return left;
        }
        self.next();
        let right = self.primary();
        match (&left, &right) {
            (Architect::Str(a), Architect::Str(b)) => Architect::Bool(a == b),
            _ => panic!("comparing {left:?} with {right:?}"),
        }
    }

    fn primary(&mut self) -> Architect {
        match self.next() {
            Token::Str(s) => Architect::Str(s),
            Token::Open => {
                let value = self.or();
                self.expect(Token::Close);
                value
            }
            Token::Ident(name) if name.starts_with("Flow.") => self
                .flow
                .get(&name)
                .unwrap_or_else(|| panic!("{name} is not declared"))
                .clone(),
            Token::Ident(function) => {
                self.expect(Token::Open);
                let mut args = vec![self.or()];
                while self.peek() == Some(&Token::Comma) {
                    self.next();
                    args.push(self.or());
                }
                self.expect(Token::Close);
                match (function.as_str(), args.as_slice()) {
                    ("If", [condition, then, otherwise]) => {
                        if boolean(condition) {
                            then.clone()
                        } else {
                            otherwise.clone()
                        }
                    }
                    ("IsNotSetOrEmpty", [value]) => Architect::Bool(match value {
                        Architect::NotSet => true,
                        Architect::Str(s) => s.is_empty(),
                        Architect::Bool(_) => panic!("IsNotSetOrEmpty of a Boolean"),
                    }),
                    _ => panic!(
                        "{function} with {} arguments is not evaluated here",
                        args.len()
                    ),
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn boolean(value: &Architect) -> bool {
    match value {
        Architect::Bool(b) => *b,
        other => panic!("a Boolean expected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers: Terraform

fn hcl_file(relative: &str) -> hcl::Body {
    hcl::parse(&read(relative)).unwrap_or_else(|e| panic!("{relative} is not valid HCL: {e}"))
}

fn label(block: &hcl::Block, index: usize) -> &str {
    block.labels().get(index).map_or("", |l| l.as_str())
}

fn resource<'a>(body: &'a hcl::Body, kind: &str, name: &str) -> &'a hcl::Block {
    body.blocks()
        .find(|b| b.identifier() == "resource" && label(b, 0) == kind && label(b, 1) == name)
        .unwrap_or_else(|| panic!("resource \"{kind}\" \"{name}\""))
}

fn single_block<'a>(block: &'a hcl::Block, identifier: &str) -> &'a hcl::Block {
    let blocks: Vec<&hcl::Block> = block
        .body()
        .blocks()
        .filter(|b| b.identifier() == identifier)
        .collect();
    assert_eq!(blocks.len(), 1, "one {identifier} block");
    blocks[0]
}

fn attr<'a>(block: &'a hcl::Block, key: &str) -> Option<&'a hcl::Expression> {
    block
        .body()
        .attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
}

fn eval_attr(block: &hcl::Block, key: &str, ctx: &Context) -> Value {
    let expr = attr(block, key).unwrap_or_else(|| panic!("{} has no {key}", block.identifier()));
    let value = expr
        .evaluate(ctx)
        .unwrap_or_else(|e| panic!("{key} = {expr}: {e}"));
    serde_json::to_value(value).unwrap()
}

/// The variables of the Terraform in `dir` and their defaults (null for none).
fn variables(dir: &str) -> BTreeMap<String, Value> {
    let body = hcl_file(&format!("{dir}/variables.tf"));
    let ctx = Context::new();
    body.blocks()
        .filter(|b| b.identifier() == "variable")
        .map(|b| {
            let default = attr(b, "default")
                .map(|e| serde_json::to_value(e.evaluate(&ctx).unwrap()).unwrap())
                .unwrap_or(Value::Null);
            (label(b, 0).to_owned(), default)
        })
        .collect()
}

fn tf_variable_default(dir: &str, name: &str) -> String {
    variables(dir)
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("variable {name} in {dir} has a string default"))
        .to_owned()
}

/// What Terraform evaluates main.tf in: `var` (defaults, overridden by `vars`), `path.module`,
/// `local` (in order), and the functions main.tf calls.
fn context(dir: &str, vars: &BTreeMap<&str, Value>) -> Context<'static> {
    let mut values = variables(dir);
    for (name, value) in vars {
        assert!(values.contains_key(*name), "no variable {name}");
        values.insert((*name).to_owned(), value.clone());
    }
    let module = repo().join(dir).display().to_string();
    let base = || {
        let mut ctx = Context::new();
        ctx.declare_var("var", hcl::to_value(&values).unwrap());
        ctx.declare_var("path", hcl::to_value(json!({ "module": module })).unwrap());
        declare_functions(&mut ctx);
        ctx
    };
    let mut locals = Map::new();
    let main = hcl_file(&format!("{dir}/main.tf"));
    for block in main.blocks().filter(|b| b.identifier() == "locals") {
        for attribute in block.body().attributes() {
            let mut ctx = base();
            ctx.declare_var("local", hcl::to_value(&locals).unwrap());
            let value = attribute
                .expr()
                .evaluate(&ctx)
                .unwrap_or_else(|e| panic!("local.{}: {e}", attribute.key()));
            locals.insert(
                attribute.key().to_owned(),
                serde_json::to_value(value).unwrap(),
            );
        }
    }
    let mut ctx = base();
    ctx.declare_var("local", hcl::to_value(&locals).unwrap());
    ctx
}

fn declare_functions(ctx: &mut Context) {
    fn file(args: FuncArgs) -> Result<hcl::Value, String> {
        let path = args[0].as_str().unwrap();
        std::fs::read_to_string(path)
            .map(hcl::Value::from)
            .map_err(|e| format!("{path}: {e}"))
    }
    fn jsondecode(args: FuncArgs) -> Result<hcl::Value, String> {
        let value: Value =
            serde_json::from_str(args[0].as_str().unwrap()).map_err(|e| e.to_string())?;
        hcl::to_value(value).map_err(|e| e.to_string())
    }
    fn jsonencode(args: FuncArgs) -> Result<hcl::Value, String> {
        serde_json::to_string(&args[0])
            .map(hcl::Value::from)
            .map_err(|e| e.to_string())
    }
    fn concat(args: FuncArgs) -> Result<hcl::Value, String> {
        let mut all = Vec::new();
        for list in args.variadic_args() {
            all.extend(list.as_array().ok_or("concat takes lists")?.iter().cloned());
        }
        Ok(hcl::Value::Array(all))
    }
    ctx.declare_func(
        "file",
        FuncDef::builder().param(ParamType::String).build(file),
    );
    ctx.declare_func(
        "jsondecode",
        FuncDef::builder()
            .param(ParamType::String)
            .build(jsondecode),
    );
    ctx.declare_func(
        "jsonencode",
        FuncDef::builder().param(ParamType::Any).build(jsonencode),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(ParamType::Any)
            .build(concat),
    );
}
