//! Turning what senders POST into validated work: the three Genesys event envelopes
//! (EventBridge, notification, bare event body), the CTI middleware event and the data-action
//! lookup request, each into `domain` types, with caller numbers parsed here, once. Pure
//! functions; the HTTP handlers only call them.

use std::collections::BTreeMap;

use phonenumber::country;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::{
    customer_keys, non_blank, ConversationId, CustomerKeys, IdError, ParticipantId, PartyFields,
};
use crate::phone::{is_withheld, CallerNumber};

pub use crate::domain::ConversationEvent;

/// Limits on what a CTI event may ask attrsync to write; Genesys documents 256-character values
/// and bot flows cap participant data at 50 attributes.
pub const MAX_EXTRA_ATTRIBUTES: usize = 50;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 128;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 256;
const MAX_EVENT_ID_CHARS: usize = 128;

/// Input that is well-formed JSON but not an acceptable event; names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidField {
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn id_error(field: &str, e: IdError) -> InvalidField {
    invalid(field, e.to_string())
}

#[derive(Debug, Clone)]
pub enum GenesysEvent {
    /// A `v2.detail.events.conversation.{id}.customer.start` event: to be processed.
    CustomerStart(Box<ConversationEvent>),
    /// Any other topic (customer.end, heartbeats, ...): acknowledged and counted only.
    Ignored { topic: String },
}

const START_PREFIX: &str = "v2.detail.events.conversation.";
const START_SUFFIX: &str = ".customer.start";
const END_SUFFIX: &str = ".customer.end";

fn is_customer_start(topic: &str) -> bool {
    topic.starts_with(START_PREFIX) && topic.ends_with(START_SUFFIX)
}

/// The topic a bare event body (no envelope) belongs to, from its shape: a `customer.end` body
/// carries `disconnectType` and `interactingDurationMs`, which a `customer.start` body never
/// has (`CustomerEndDetailEventTopicCustomerEndEvent` and
/// `CustomerStartDetailEventTopicCustomerStartEvent` in MyPureCloud/platform-client-sdk-python,
/// `build/docs/`). Any other body with a `conversationId` is taken as `customer.start`.
fn bare_body_topic(body: &serde_json::Map<String, Value>) -> String {
    let is_end = ["disconnectType", "interactingDurationMs"]
        .iter()
        .any(|name| body.get(*name).is_some_and(|v| !v.is_null()));
    let suffix = if is_end { END_SUFFIX } else { START_SUFFIX };
    format!("{START_PREFIX}{{id}}{suffix}")
}

/// Accepts an AWS EventBridge event (`detail.eventBody`), a notification (`topicName` +
/// `eventBody`), or a bare event body (classified by its shape: see [`bare_body_topic`]).
pub fn parse_genesys_event(
    value: &Value,
    region: country::Id,
) -> Result<GenesysEvent, InvalidField> {
    let Value::Object(top) = value else {
        return Err(invalid("$", "expected a JSON object"));
    };
    let (topic, body, body_path, envelope_id) = if let Some(detail) = top.get("detail") {
        let Value::Object(detail) = detail else {
            return Err(invalid("detail", "expected an object"));
        };
        let topic = detail
            .get("topicName")
            .and_then(Value::as_str)
            .or_else(|| top.get("detail-type").and_then(Value::as_str))
            .ok_or_else(|| invalid("detail.topicName", "is required"))?;
        let body = detail
            .get("eventBody")
            .ok_or_else(|| invalid("detail.eventBody", "is required"))?;
        let id = top.get("id").and_then(Value::as_str).map(str::to_owned);
        (topic.to_owned(), body, "detail.eventBody", id)
    } else if let Some(topic) = top.get("topicName") {
        let topic = topic
            .as_str()
            .ok_or_else(|| invalid("topicName", "expected a string"))?;
        if !is_customer_start(topic) {
            // Heartbeats (`channel.metadata`) and other topics may have any body.
            return Ok(GenesysEvent::Ignored {
                topic: topic.to_owned(),
            });
        }
        let body = top
            .get("eventBody")
            .ok_or_else(|| invalid("eventBody", "is required"))?;
        let id = top
            .get("metadata")
            .and_then(|m| m.get("CorrelationId"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        (topic.to_owned(), body, "eventBody", id)
    } else if top.contains_key("conversationId") {
        (bare_body_topic(top), value, "", None)
    } else {
        return Err(invalid(
            "$",
            "not a Genesys event: expected an EventBridge event (detail.eventBody), a notification (topicName, eventBody) or an event body (conversationId)",
        ));
    };
    if !is_customer_start(&topic) {
        return Ok(GenesysEvent::Ignored { topic });
    }
    let event = parse_event_body(body, body_path, region)?;
    Ok(GenesysEvent::CustomerStart(Box::new(ConversationEvent {
        event_id: envelope_id
            .and_then(|id| non_blank(Some(&id)))
            .unwrap_or_else(|| derived_event_id(&event)),
        ..event
    })))
}

fn derived_event_id(event: &ConversationEvent) -> String {
    format!(
        "{}:{}",
        event.conversation_id,
        event
            .participant_id
            .as_ref()
            .map(ParticipantId::as_str)
            .unwrap_or("-")
    )
}

fn parse_event_body(
    body: &Value,
    path: &str,
    region: country::Id,
) -> Result<ConversationEvent, InvalidField> {
    let field = |name: &str| {
        if path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let Value::Object(body) = body else {
        return Err(invalid(
            if path.is_empty() { "$" } else { path },
            "expected an object",
        ));
    };
    let text = |name: &str| -> Result<Option<String>, InvalidField> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(non_blank(Some(s))),
            Some(_) => Err(invalid(&field(name), "expected a string")),
        }
    };
    let conversation_id =
        text("conversationId")?.ok_or_else(|| invalid(&field("conversationId"), "is required"))?;
    let conversation_id = ConversationId::parse(&conversation_id)
        .map_err(|e| id_error(&field("conversationId"), e))?;
    let participant_id = text("participantId")?
        .map(|p| ParticipantId::parse(&p).map_err(|e| id_error(&field("participantId"), e)))
        .transpose()?;

    let callback_numbers: Vec<String> = match body.get("callbackNumbers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().and_then(|s| non_blank(Some(s))))
            .collect(),
        Some(_) => return Err(invalid(&field("callbackNumbers"), "expected an array")),
    };
    let (direction, media_type, message_type) =
        (text("direction")?, text("mediaType")?, text("messageType")?);
    let (ani, dnis, address_from, address_to) = (
        text("ani")?,
        text("dnis")?,
        text("addressFrom")?,
        text("addressTo")?,
    );
    // The customer's side by direction and media: on an outbound contact `ani`/`addressFrom`
    // are the org's own (see `domain::party`).
    let mut keys = customer_keys(
        &PartyFields {
            direction: direction.as_deref(),
            media_type: media_type.as_deref(),
            message_type: message_type.as_deref(),
            ani: ani.as_deref(),
            dnis: dnis.as_deref(),
            address_from: address_from.as_deref(),
            address_to: address_to.as_deref(),
            callback_numbers: &callback_numbers,
        },
        region,
    );
    keys.external_contact_id = text("externalContactId")?;
    Ok(ConversationEvent {
        event_id: String::new(),
        conversation_id,
        participant_id,
        keys,
        media_type,
    })
}

/// The event CTI middleware POSTs to `/v1/events/cti`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CtiEvent {
    /// The middleware's unique id for this event (retries must reuse it). Required.
    // Defaulted so that a missing field is reported by `validate`, naming it, like a blank one.
    #[serde(default)]
    #[schema(example = "cti-7f3a")]
    pub event_id: String,
    /// The Genesys conversation id. Required.
    #[serde(default)]
    #[schema(example = "2f7bf00a-0fc2-4d6a-9b56-92238191433e")]
    pub conversation_id: String,
    /// The customer participant's id; when absent attrsync reads the conversation to find it.
    #[serde(default)]
    pub participant_id: Option<String>,
    /// The caller's number in any notation (`tel:+1...`, `(317) 555-0125`, ...).
    #[serde(default)]
    #[schema(example = "tel:+13175550125")]
    pub caller_number: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub external_contact_id: Option<String>,
    /// Attributes to write as they are, besides what the CRM gives (at most 50; keys up to 128
    /// characters, values up to 256).
    #[serde(default)]
    #[schema(example = json!({"ivr.intent": "billing"}))]
    pub attributes: BTreeMap<String, String>,
}

/// A validated CTI event.
#[derive(Debug, Clone)]
pub struct ValidCtiEvent {
    pub event: ConversationEvent,
    pub attributes: BTreeMap<String, String>,
}

impl CtiEvent {
    pub fn validate(self, region: country::Id) -> Result<ValidCtiEvent, InvalidField> {
        let event_id =
            non_blank(Some(&self.event_id)).ok_or_else(|| invalid("eventId", "is required"))?;
        if event_id.chars().count() > MAX_EVENT_ID_CHARS {
            return Err(invalid(
                "eventId",
                format!("is longer than {MAX_EVENT_ID_CHARS} characters"),
            ));
        }
        let conversation_id = ConversationId::parse(&self.conversation_id)
            .map_err(|e| id_error("conversationId", e))?;
        let participant_id = non_blank(self.participant_id.as_deref())
            .map(|p| ParticipantId::parse(&p).map_err(|e| id_error("participantId", e)))
            .transpose()?;
        let keys = request_keys(
            self.caller_number.as_deref(),
            self.email.as_deref(),
            self.customer_id.as_deref(),
            self.external_contact_id.as_deref(),
            region,
        )?;
        validate_attributes(&self.attributes)?;
        Ok(ValidCtiEvent {
            event: ConversationEvent {
                event_id,
                conversation_id,
                participant_id,
                keys,
                media_type: None,
            },
            attributes: self.attributes,
        })
    }
}

fn validate_attributes(attributes: &BTreeMap<String, String>) -> Result<(), InvalidField> {
    if attributes.len() > MAX_EXTRA_ATTRIBUTES {
        return Err(invalid(
            "attributes",
            format!("at most {MAX_EXTRA_ATTRIBUTES} attributes"),
        ));
    }
    for (key, value) in attributes {
        let field = format!("attributes.{}", key.chars().take(40).collect::<String>());
        if key.trim().is_empty() || key.chars().count() > MAX_ATTRIBUTE_KEY_CHARS {
            return Err(invalid(
                &field,
                format!("a key has 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters"),
            ));
        }
        if key.chars().any(char::is_control)
            || value
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(invalid(&field, "control characters are not allowed"));
        }
        if value.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS {
            return Err(invalid(
                &field,
                format!("a value has at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"),
            ));
        }
    }
    Ok(())
}

fn request_keys(
    phone: Option<&str>,
    email: Option<&str>,
    customer_id: Option<&str>,
    external_contact_id: Option<&str>,
    region: country::Id,
) -> Result<CustomerKeys, InvalidField> {
    // A withheld or anonymous caller (`anonymous`, `sip:anonymous@anonymous.invalid`, no digits)
    // is no key, not an error: the sender did nothing wrong, and a data action would take its
    // failure path on a 4xx.
    let phone = non_blank(phone)
        .filter(|p| !is_withheld(p))
        .and_then(|p| CallerNumber::parse(&p, region));
    let email = non_blank(email);
    if let Some(e) = &email {
        if !e.contains('@') || e.len() > 254 {
            return Err(invalid("email", "is not an email address"));
        }
    }
    let bounded = |v: Option<&str>, field: &str| -> Result<Option<String>, InvalidField> {
        match non_blank(v) {
            Some(s) if s.chars().count() > 128 => {
                Err(invalid(field, "is longer than 128 characters"))
            }
            other => Ok(other),
        }
    };
    Ok(CustomerKeys {
        customer_id: bounded(customer_id, "customerId")?,
        external_contact_id: bounded(external_contact_id, "externalContactId")?,
        phone,
        email,
        messaging_id: None,
    })
}

/// What an Architect data action sends to `/v1/lookup`. Every input is a string, and an unset
/// input arrives as an empty string.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LookupRequest {
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub participant_id: Option<String>,
    #[serde(default)]
    pub ani: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub external_contact_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ValidLookup {
    pub conversation_id: Option<ConversationId>,
    pub participant_id: Option<ParticipantId>,
    pub keys: CustomerKeys,
}

impl LookupRequest {
    pub fn validate(self, region: country::Id) -> Result<ValidLookup, InvalidField> {
        let conversation_id = non_blank(self.conversation_id.as_deref())
            .map(|c| ConversationId::parse(&c).map_err(|e| id_error("conversationId", e)))
            .transpose()?;
        let participant_id = non_blank(self.participant_id.as_deref())
            .map(|p| ParticipantId::parse(&p).map_err(|e| id_error("participantId", e)))
            .transpose()?;
        if participant_id.is_some() && conversation_id.is_none() {
            return Err(invalid(
                "conversationId",
                "is required when participantId is given",
            ));
        }
        let keys = request_keys(
            self.ani.as_deref(),
            self.email.as_deref(),
            self.customer_id.as_deref(),
            self.external_contact_id.as_deref(),
            region,
        )?;
        // Nothing to look up by (a withheld caller, say) is answered 200 found=false,
        // reason=no_key by the handler, never refused.
        Ok(ValidLookup {
            conversation_id,
            participant_id,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const US: country::Id = country::Id::US;

    fn fixture(name: &str) -> Value {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn start(value: &Value) -> ConversationEvent {
        match parse_genesys_event(value, US).unwrap() {
            GenesysEvent::CustomerStart(e) => *e,
            other => panic!("expected customer.start, got {other:?}"),
        }
    }

    #[test]
    fn the_official_eventbridge_customer_start_sample_is_a_start_event() {
        let e = start(&fixture("eventbridge-customer-start.json"));
        assert_eq!(e.event_id, "adbcfa5b-0116-4baa-b66b-a3f5902e95bf");
        assert_eq!(
            e.conversation_id.as_str(),
            "2f7bf00a-0fc2-4d6a-9b56-92238191433e"
        );
        assert_eq!(
            e.participant_id.unwrap().as_str(),
            "9fb2ca78-8389-4758-b76a-9b0300de1fce"
        );
        assert_eq!(e.keys.external_contact_id.as_deref(), Some("uwu"));
        assert_eq!(e.media_type.as_deref(), Some("CHAT"));
    }

    #[test]
    fn the_official_customer_end_sample_is_ignored() {
        match parse_genesys_event(&fixture("eventbridge-customer-end.json"), US).unwrap() {
            GenesysEvent::Ignored { topic } => assert!(topic.ends_with(".customer.end")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_notification_envelope_carries_topic_and_body() {
        let mut body = fixture("eventbridge-customer-start.json")["detail"].clone();
        body["eventBody"]["ani"] = json!("tel:+13175550125");
        body["eventBody"]["mediaType"] = json!("VOICE");
        let e = start(&body);
        assert_eq!(e.event_id, "fe8a8579-b83f-4f07-b371-2b39398f91a8");
        assert_eq!(
            e.keys.phone.unwrap().e164().as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn a_bare_event_body_is_taken_as_customer_start() {
        let e = start(&json!({
            "conversationId": "c-1", "participantId": "p-1", "ani": "sip:+13175550125@10.0.0.1;user=phone"
        }));
        assert_eq!(e.event_id, "c-1:p-1");
        assert_eq!(
            e.keys.phone.unwrap().e164().as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn a_bare_customer_end_body_is_recognised_by_its_shape_and_ignored() {
        for body in [
            json!({"conversationId": "c-1", "participantId": "p-1", "ani": "tel:+13175550125", "disconnectType": "PEER"}),
            json!({"conversationId": "c-1", "interactingDurationMs": 5321}),
        ] {
            match parse_genesys_event(&body, US).unwrap() {
                GenesysEvent::Ignored { topic } => assert!(topic.ends_with(".customer.end")),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn an_outbound_start_event_takes_the_customer_from_the_receiving_side() {
        let e = start(&json!({
            "conversationId": "c1", "direction": "OUTBOUND", "mediaType": "VOICE",
            "ani": "tel:+18005550199", "dnis": "tel:+13175550125"
        }));
        assert_eq!(
            e.keys.phone.unwrap().e164().as_deref(),
            Some("+13175550125")
        );
        let e = start(&json!({
            "conversationId": "c1", "direction": "INBOUND", "mediaType": "MESSAGE",
            "messageType": "FACEBOOK", "addressFrom": "2345678901234567"
        }));
        assert!(e.keys.phone.is_none());
        assert_eq!(e.keys.messaging_id.as_deref(), Some("2345678901234567"));
    }

    #[test]
    fn heartbeats_and_other_topics_are_ignored_whatever_their_body() {
        for v in [
            json!({"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}),
            json!({"topicName": "v2.detail.events.conversation.c1.acd.start", "eventBody": 5}),
        ] {
            assert!(matches!(
                parse_genesys_event(&v, US).unwrap(),
                GenesysEvent::Ignored { .. }
            ));
        }
    }

    #[test]
    fn message_and_email_events_use_address_from_as_the_customer_key() {
        let e = start(
            &json!({"conversationId": "c1", "mediaType": "EMAIL", "addressFrom": "ada@example.com"}),
        );
        assert_eq!(e.keys.email.as_deref(), Some("ada@example.com"));
        let e = start(
            &json!({"conversationId": "c1", "mediaType": "MESSAGE", "messageType": "SMS", "addressFrom": "+13175550125"}),
        );
        assert!(e.keys.phone.is_some());
        let e = start(
            &json!({"conversationId": "c1", "mediaType": "CALLBACK", "callbackNumbers": ["", "3175550125"]}),
        );
        assert_eq!(
            e.keys.phone.unwrap().e164().as_deref(),
            Some("+13175550125")
        );
    }

    #[test]
    fn a_start_event_without_conversation_id_names_the_field() {
        let mut v = fixture("eventbridge-customer-start.json");
        v["detail"]["eventBody"]
            .as_object_mut()
            .unwrap()
            .remove("conversationId");
        let err = parse_genesys_event(&v, US).unwrap_err();
        assert_eq!(err.field, "detail.eventBody.conversationId");
    }

    #[test]
    fn an_id_that_could_inject_a_path_is_refused() {
        let err =
            parse_genesys_event(&json!({"conversationId": "../../users/me"}), US).unwrap_err();
        assert_eq!(err.field, "conversationId");
        let err = parse_genesys_event(&json!({"conversationId": "c1", "participantId": 7}), US)
            .unwrap_err();
        assert_eq!(err.field, "participantId");
    }

    #[test]
    fn json_that_is_no_event_at_all_is_refused() {
        assert!(parse_genesys_event(&json!([1, 2]), US).is_err());
        assert!(parse_genesys_event(&json!({"hello": "world"}), US).is_err());
        assert!(parse_genesys_event(&json!({"detail": "x"}), US).is_err());
    }

    fn cti(v: Value) -> Result<ValidCtiEvent, InvalidField> {
        serde_json::from_value::<CtiEvent>(v).unwrap().validate(US)
    }

    #[test]
    fn a_cti_event_is_validated_field_by_field() {
        let ok = cti(json!({
            "eventId": "e1", "conversationId": "c1", "callerNumber": "(317) 555-0125",
            "attributes": {"ivr.menu": "billing"}
        }))
        .unwrap();
        assert_eq!(
            ok.event.keys.phone.unwrap().e164().as_deref(),
            Some("+13175550125")
        );
        assert_eq!(ok.attributes["ivr.menu"], "billing");

        assert_eq!(
            cti(json!({"eventId": " ", "conversationId": "c1"}))
                .unwrap_err()
                .field,
            "eventId"
        );
        // A withheld caller is no key, not an error.
        let anonymous =
            cti(json!({"eventId": "e", "conversationId": "c1", "callerNumber": "anonymous"}))
                .unwrap();
        assert!(anonymous.event.keys.is_empty());
        assert_eq!(
            cti(json!({"eventId": "e", "conversationId": "c1", "email": "nope"}))
                .unwrap_err()
                .field,
            "email"
        );
        let too_long = "x".repeat(257);
        assert_eq!(
            cti(json!({"eventId": "e", "conversationId": "c1", "attributes": {"k": too_long}}))
                .unwrap_err()
                .field,
            "attributes.k"
        );
        let many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        assert_eq!(
            cti(json!({"eventId": "e", "conversationId": "c1", "attributes": many}))
                .unwrap_err()
                .field,
            "attributes"
        );
    }

    #[test]
    fn a_cti_event_with_an_unknown_field_or_non_string_attribute_does_not_parse() {
        assert!(serde_json::from_value::<CtiEvent>(
            json!({"eventId": "e", "conversationId": "c", "colour": "red"})
        )
        .is_err());
        assert!(serde_json::from_value::<CtiEvent>(
            json!({"eventId": "e", "conversationId": "c", "attributes": {"n": 1}})
        )
        .is_err());
    }

    #[test]
    fn a_lookup_treats_empty_inputs_as_absent_but_needs_something_to_look_up() {
        let v: LookupRequest = serde_json::from_value(
            json!({"conversationId": "", "ani": "tel:+13175550125", "email": ""}),
        )
        .unwrap();
        let ok = v.validate(US).unwrap();
        assert!(ok.conversation_id.is_none() && ok.keys.email.is_none() && ok.keys.phone.is_some());
        // Nothing to look up by is answered found=false (reason no_key), never refused.
        for ani in [
            "",
            "tel:anonymous",
            "sip:anonymous@anonymous.invalid",
            "restricted",
        ] {
            let empty: LookupRequest = serde_json::from_value(json!({"ani": ani})).unwrap();
            assert!(empty.validate(US).unwrap().keys.is_empty(), "{ani:?}");
        }
        let orphan: LookupRequest =
            serde_json::from_value(json!({"participantId": "p1", "ani": "3175550125"})).unwrap();
        assert_eq!(orphan.validate(US).unwrap_err().field, "conversationId");
    }
}
