//! Event builders: the Genesys events a client of attrsync would send about a simulated
//! conversation.

use serde_json::{json, Map, Value};

use super::state::Conversation;
use super::{CreatedConversation, Direction, MediaType};

/// A `customer.start` event for `call`, from a caller at `ani`, as Genesys delivers it through
/// AWS EventBridge (the envelope of the official sample), with fresh event and correlation ids.
/// What the demo and the benchmark send.
pub fn eventbridge_customer_start(call: &CreatedConversation, ani: &str) -> Value {
    let body = json!({
        "eventTime": chrono::Utc::now().timestamp_millis(),
        "conversationId": call.conversation_id,
        "participantId": call.customer_participant_id,
        "sessionId": uuid::Uuid::new_v4().to_string(),
        "mediaType": "VOICE",
        "provider": "Edge",
        "direction": "INBOUND",
        "ani": ani,
        "dnis": "tel:+18005550100"
    });
    eventbridge_envelope(&call.conversation_id, "customer.start", body)
}

/// `body` in the EventBridge envelope of the official sample, on the topic
/// `v2.detail.events.conversation.{conversation_id}.{topic}`.
pub fn eventbridge_envelope(conversation_id: &str, topic: &str, body: Value) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": format!("v2.detail.events.conversation.{{id}}.{topic}"),
        "source": "aws.partner/genesys.com/cloud/00000000-0000-0000-0000-000000000000/attrsync-sim",
        "account": "123456789012",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": format!("v2.detail.events.conversation.{conversation_id}.{topic}"),
            "version": "2",
            "eventBody": body,
            "metadata": {"CorrelationId": uuid::Uuid::new_v4().to_string()},
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
    })
}

/// The `customer.start` body (`CustomerStartDetailEventTopicCustomerStartEvent`) of
/// `conversation`: `ani`/`addressFrom` the initiating side, `dnis`/`addressTo` the receiving
/// one (`AnalyticsSession.md`), so the org's address comes first on an outbound conversation.
/// Which fields a real org fills per media type is unverified; every one that could mislead a
/// client is filled here, so a client that reads the wrong one is caught.
pub(super) fn customer_start_body(conversation: &Conversation) -> Value {
    let (from, to) = match conversation.direction {
        Direction::Inbound => (&conversation.customer, &conversation.org),
        Direction::Outbound => (&conversation.org, &conversation.customer),
    };
    let customer = conversation
        .participants
        .iter()
        .find(|p| p.participant_type == "External");
    let mut body = Map::new();
    let mut set = |name: &str, value: Value| {
        body.insert(name.to_owned(), value);
    };
    set(
        "eventTime",
        json!(conversation.start_time.timestamp_millis()),
    );
    set("conversationId", json!(conversation.id));
    if let Some(p) = customer {
        set("participantId", json!(p.id));
        set("sessionId", json!(p.media_id));
        if let Some(id) = &p.external_contact_id {
            set("externalContactId", json!(id));
        }
    }
    set("mediaType", json!(media_type_name(conversation.media_type)));
    set("provider", json!(conversation.media_type.provider()));
    set(
        "direction",
        json!(conversation.direction.as_str().to_ascii_uppercase()),
    );
    if let Some(kind) = &conversation.message_type {
        set("messageType", json!(kind.to_ascii_uppercase()));
    }
    // The voice-style fields carry the same sides as the address fields.
    if let Some(v) = from {
        set("ani", json!(v));
        set("addressFrom", json!(v));
    }
    if let Some(v) = to {
        set("dnis", json!(v));
        set("addressTo", json!(v));
    }
    if conversation.media_type == MediaType::Callback {
        if let Some(number) = &conversation.customer {
            set("callbackNumbers", json!([number]));
        }
    }
    Value::Object(body)
}

fn media_type_name(media: MediaType) -> &'static str {
    match media {
        MediaType::Voice => "VOICE",
        MediaType::Chat => "CHAT",
        MediaType::Message => "MESSAGE",
        MediaType::Callback => "CALLBACK",
        MediaType::Email => "EMAIL",
    }
}
