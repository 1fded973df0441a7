//! Event builders: the Genesys events a client of attrsync would send about a simulated
//! conversation.

use serde_json::{json, Value};

use super::CreatedConversation;

/// A `customer.start` event for `call`, from a caller at `ani`, as Genesys delivers it through
/// AWS EventBridge (the envelope of the official sample), with fresh event and correlation ids.
/// What the demo and the benchmark send.
pub fn eventbridge_customer_start(call: &CreatedConversation, ani: &str) -> Value {
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "v2.detail.events.conversation.{id}.customer.start",
        "source": "aws.partner/genesys.com/cloud/00000000-0000-0000-0000-000000000000/attrsync-sim",
        "account": "123456789012",
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "topicName": format!("v2.detail.events.conversation.{}.customer.start", call.conversation_id),
            "version": "2",
            "eventBody": {
                "eventTime": chrono::Utc::now().timestamp_millis(),
                "conversationId": call.conversation_id,
                "participantId": call.customer_participant_id,
                "sessionId": uuid::Uuid::new_v4().to_string(),
                "mediaType": "VOICE",
                "provider": "Edge",
                "direction": "INBOUND",
                "ani": ani,
                "dnis": "tel:+18005550100"
            },
            "metadata": {"CorrelationId": uuid::Uuid::new_v4().to_string()},
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        }
    })
}
