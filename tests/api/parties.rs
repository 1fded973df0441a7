//! Which party is the customer, over real HTTP: outbound calls and emails, SMS, WhatsApp, a
//! platform-id channel, callbacks, withheld callers on every endpoint, a bare `customer.end`, a
//! 500-field CRM record within the attribute budget, and a Genesys gateway with a path prefix.
//! The CRM simulator holds the org's own switchboard too, so reading the wrong side would write
//! a stranger's record.

use std::collections::BTreeMap;

use attrsync::simulator::{
    eventbridge_envelope, CreatedConversation, Direction, MediaType, NewConversation, RemotePurpose,
};
use serde_json::{json, Value};

use crate::helpers::{json_body, spawn_app_with, use_http_crm, TestApp};

const ADA: &str = "tel:+13175550125";
const ADA_EMAIL: &str = "ada@example.com";
const ORG: &str = "tel:+18005550100";
const ORG_EMAIL: &str = "support@example.org";
const FACEBOOK_ID: &str = "2345678901234567";

/// attrsync on the REST CRM simulator, which holds Ada and the org's own switchboard record.
async fn app() -> TestApp {
    let app = spawn_app_with(|settings, sims| use_http_crm(settings, &sims.crm)).await;
    app.crm.insert(json!({
        "id": "C-1001", "firstName": "Ada", "lastName": "Lovelace",
        "email": ADA_EMAIL, "phone": "+13175550125", "tier": "gold"
    }));
    app.crm.insert(json!({
        "id": "ORG-1", "firstName": "Switchboard", "email": ORG_EMAIL, "phone": "+18005550100"
    }));
    app
}

fn conversation(
    media_type: MediaType,
    direction: Direction,
    customer: &str,
    org: &str,
) -> NewConversation {
    NewConversation {
        media_type,
        direction,
        customer: Some(customer.to_owned()),
        org: Some(org.to_owned()),
        ..NewConversation::default()
    }
}

/// Creates the conversation, sends the `customer.start` the platform would send for it, and
/// waits for the write.
async fn start(app: &TestApp, spec: NewConversation) -> CreatedConversation {
    let call = app.genesys.create_conversation(spec);
    let body = app
        .genesys
        .customer_start_body(&call.conversation_id)
        .expect("the conversation exists");
    let event = eventbridge_envelope(&call.conversation_id, "customer.start", body);
    let response = app.post_genesys_event(&event).await;
    assert_eq!(response.status(), 202, "{event}");
    app.settle().await;
    call
}

fn the_one_patch(app: &TestApp, call: &CreatedConversation) -> BTreeMap<String, String> {
    let patches = app.customer_patches(call);
    assert_eq!(patches.len(), 1, "{patches:?}");
    patches.into_iter().next().unwrap_or_default()
}

/// The CRM was asked about Ada and never about the org's number or address.
fn asked_only_about_ada(app: &TestApp) {
    let queries = app.crm.queries();
    assert!(!queries.is_empty(), "the CRM was asked");
    for q in &queries {
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        assert!(
            !digits.contains("8005550100"),
            "the org's number was looked up: {queries:?}"
        );
        assert!(
            !q.contains(ORG_EMAIL),
            "the org's address was looked up: {queries:?}"
        );
    }
}

#[tokio::test]
async fn an_outbound_call_looks_up_the_dialled_customer_never_the_orgs_caller_id() {
    let app = app().await;
    let call = start(
        &app,
        conversation(MediaType::Voice, Direction::Outbound, ADA, ORG),
    )
    .await;
    let patch = the_one_patch(&app, &call);
    assert_eq!(patch["crm.id"], "C-1001", "{patch:?}");
    asked_only_about_ada(&app);
}

#[tokio::test]
async fn an_outbound_call_read_from_the_conversation_takes_the_dnis() {
    let app = app().await;
    // No key and no participant in the event: attrsync reads the conversation.
    let call = app.genesys.create_conversation(conversation(
        MediaType::Voice,
        Direction::Outbound,
        ADA,
        ORG,
    ));
    let event = json!({"eventId": "cti-out-1", "conversationId": call.conversation_id});
    assert_eq!(app.post_cti_event(&event).await.status(), 202);
    app.settle().await;
    assert_eq!(the_one_patch(&app, &call)["crm.id"], "C-1001");
    asked_only_about_ada(&app);
}

#[tokio::test]
async fn the_remote_party_of_an_agent_dialled_call_may_have_purpose_external() {
    let app = app().await;
    let call = app.genesys.create_conversation(NewConversation {
        customer_purpose: RemotePurpose::External,
        ..conversation(MediaType::Voice, Direction::Outbound, ADA, ORG)
    });
    let event = json!({"eventId": "cti-ext-1", "conversationId": call.conversation_id});
    assert_eq!(app.post_cti_event(&event).await.status(), 202);
    app.settle().await;
    assert_eq!(the_one_patch(&app, &call)["crm.id"], "C-1001");
}

#[tokio::test]
async fn inbound_and_outbound_emails_look_up_the_customers_address() {
    let app = app().await;
    for direction in [Direction::Inbound, Direction::Outbound] {
        let call = start(
            &app,
            conversation(MediaType::Email, direction, ADA_EMAIL, ORG_EMAIL),
        )
        .await;
        assert_eq!(
            the_one_patch(&app, &call)["crm.id"],
            "C-1001",
            "{direction:?}"
        );
    }
    asked_only_about_ada(&app);
    assert!(
        app.crm.queries().iter().all(|q| q == ADA_EMAIL),
        "{:?}",
        app.crm.queries()
    );
}

#[tokio::test]
async fn sms_and_whatsapp_look_up_the_customers_number() {
    let app = app().await;
    for kind in ["sms", "whatsapp"] {
        for direction in [Direction::Inbound, Direction::Outbound] {
            let call = start(
                &app,
                NewConversation {
                    message_type: Some(kind.to_owned()),
                    ..conversation(
                        MediaType::Message,
                        direction,
                        "+13175550125",
                        "+18005550100",
                    )
                },
            )
            .await;
            assert_eq!(
                the_one_patch(&app, &call)["crm.id"],
                "C-1001",
                "{kind} {direction:?}"
            );
        }
    }
    asked_only_about_ada(&app);
}

#[tokio::test]
async fn a_facebook_user_id_is_never_looked_up_as_a_phone_number() {
    let app = app().await;
    let call = start(
        &app,
        NewConversation {
            message_type: Some("facebook".to_owned()),
            ..conversation(
                MediaType::Message,
                Direction::Inbound,
                FACEBOOK_ID,
                "page-1",
            )
        },
    )
    .await;
    // The CRM template has no {messaging_id}: nothing is asked, and the flow learns found=false.
    assert_eq!(app.crm.requests(), 0, "{:?}", app.crm.queries());
    assert_eq!(the_one_patch(&app, &call)["crm.found"], "false");
}

#[tokio::test]
async fn a_callback_looks_up_its_callback_number() {
    let app = app().await;
    let call = start(
        &app,
        conversation(MediaType::Callback, Direction::Outbound, ADA, ORG),
    )
    .await;
    assert_eq!(the_one_patch(&app, &call)["crm.id"], "C-1001");
    asked_only_about_ada(&app);
}

const WITHHELD: [&str; 7] = [
    "",
    "anonymous",
    "tel:anonymous",
    "sip:anonymous@anonymous.invalid",
    "restricted",
    "unavailable",
    "private",
];

#[tokio::test]
async fn a_withheld_caller_gets_found_false_and_no_key_from_the_lookup_never_a_failure() {
    let app = app().await;
    for ani in WITHHELD {
        let response = app
            .post_lookup(&json!({"ani": ani, "conversationId": ""}))
            .await;
        assert_eq!(response.status(), 200, "{ani:?}");
        let answer = json_body(response).await;
        assert_eq!(answer["found"], "false", "{ani:?}: {answer}");
        assert_eq!(answer["reason"], "no_key", "{ani:?}: {answer}");
    }
    assert_eq!(app.crm.requests(), 0);
}

#[tokio::test]
async fn a_withheld_caller_on_either_event_endpoint_ends_as_no_customer_key_with_found_false() {
    let app = app().await;
    for (i, ani) in WITHHELD.into_iter().enumerate() {
        let spec = NewConversation {
            ani: (!ani.is_empty()).then(|| ani.to_owned()),
            ..NewConversation::default()
        };
        let genesys_call = app.genesys.create_conversation(spec.clone());
        let mut body = app
            .genesys
            .customer_start_body(&genesys_call.conversation_id)
            .expect("exists");
        body["ani"] = json!(ani);
        let event = eventbridge_envelope(&genesys_call.conversation_id, "customer.start", body);
        assert_eq!(
            app.post_genesys_event(&event).await.status(),
            202,
            "{ani:?}"
        );

        let cti_call = app.genesys.create_conversation(spec);
        let event = json!({
            "eventId": format!("cti-withheld-{i}"),
            "conversationId": cti_call.conversation_id,
            "participantId": cti_call.customer_participant_id,
            "callerNumber": ani,
        });
        assert_eq!(app.post_cti_event(&event).await.status(), 202, "{ani:?}");
        app.settle().await;
        for call in [&genesys_call, &cti_call] {
            let patch = the_one_patch(&app, call);
            assert_eq!(patch["crm.found"], "false", "{ani:?}: {patch:?}");
            assert!(!patch.contains_key("crm.id"), "{patch:?}");
        }
    }
    assert_eq!(app.crm.requests(), 0, "{:?}", app.crm.queries());
    assert!(app
        .state
        .queue
        .dead_letters(10)
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_bare_customer_end_body_is_acknowledged_and_ignored() {
    let app = app().await;
    let call = app.new_voice_call(ADA);
    let body = json!({
        "conversationId": call.conversation_id, "participantId": call.customer_participant_id,
        "mediaType": "VOICE", "direction": "INBOUND", "ani": ADA,
        "disconnectType": "PEER", "interactingDurationMs": 5321
    });
    let response = app.post_genesys_event(&body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await["status"], "ignored");
    app.settle().await;
    assert!(app.customer_patches(&call).is_empty());
    assert_eq!(app.crm.requests(), 0);
}

#[tokio::test]
async fn a_500_field_crm_record_is_written_within_the_budget_not_dead_lettered() {
    let app = app().await;
    let mut wide = serde_json::Map::new();
    wide.insert("id".into(), json!("C-WIDE"));
    wide.insert("phone".into(), json!("+13175550177"));
    for i in 0..500 {
        wide.insert(format!("field{i:03}"), json!("v".repeat(300)));
    }
    app.crm.insert(Value::Object(wide));
    let call = start(
        &app,
        conversation(
            MediaType::Voice,
            Direction::Inbound,
            "tel:+13175550177",
            ORG,
        ),
    )
    .await;

    let patch = the_one_patch(&app, &call);
    // 50 attributes: found, the timestamp and 48 fields (values cut to 256 characters).
    assert_eq!(patch.len(), 50, "{} attributes", patch.len());
    let bytes = serde_json::to_vec(&json!({"attributes": patch}))
        .unwrap_or_default()
        .len();
    assert!(bytes <= 16 * 1024, "{bytes} bytes");
    eprintln!(
        "500-field record: {} attributes, {bytes} bytes of PATCH body",
        patch.len()
    );
    assert_eq!(patch["crm.found"], "true");
    assert!(patch.contains_key("crm.syncedAt"));
    assert!(app
        .state
        .queue
        .dead_letters(10)
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn a_genesys_gateway_with_a_path_prefix_keeps_it_for_the_api_and_the_login() {
    let gateway = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let prefix = format!("http://{}/genesys", gateway.local_addr().expect("address"));
    let app = spawn_app_with(|settings, sims| {
        let router = axum::Router::new().nest("/genesys", sims.genesys.router());
        tokio::spawn(async move { axum::serve(gateway, router).await });
        settings.genesys.api_url = prefix.clone();
        settings.genesys.login_url = format!("{prefix}/");
    })
    .await;
    let call = app.new_voice_call(ADA);
    let event = eventbridge_envelope(
        &call.conversation_id,
        "customer.start",
        app.genesys
            .customer_start_body(&call.conversation_id)
            .expect("exists"),
    );
    assert_eq!(app.post_genesys_event(&event).await.status(), 202);
    app.settle().await;
    assert_eq!(the_one_patch(&app, &call)["crm.firstName"], "Ada");
    assert!(app.genesys.stats().tokens_issued >= 1);
}
