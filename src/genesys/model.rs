//! Wire types of the Genesys Cloud Platform API that attrsync reads and writes. Only the fields
//! attrsync uses are declared; everything else in a response is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `POST /oauth/token` reply for the client-credentials grant.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default = "bearer")]
    pub token_type: String,
    /// Seconds; the OAuth client's configured lifetime (300 to 172800, default 86400).
    pub expires_in: u64,
}

fn bearer() -> String {
    "bearer".to_owned()
}

/// `GET /api/v2/conversations/{conversationId}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: String,
    #[serde(default)]
    pub start_time: Option<String>,
    /// Absent while the conversation is live.
    #[serde(default)]
    pub end_time: Option<String>,
    #[serde(default)]
    pub participants: Vec<Participant>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    pub id: String,
    #[serde(default)]
    pub purpose: Option<String>,
    #[serde(default)]
    pub end_time: Option<String>,
    /// For a phone call, the ANI.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub ani: Option<String>,
    #[serde(default)]
    pub external_contact_id: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Conversation {
    pub fn is_ended(&self) -> bool {
        self.end_time.as_deref().is_some_and(|t| !t.is_empty())
    }

    /// The first participant whose purpose is in `purposes`, in the order of `purposes`
    /// (so `["customer", "external"]` prefers a customer), skipping participants who have left.
    pub fn pick_participant(&self, purposes: &[String]) -> Option<&Participant> {
        purposes.iter().find_map(|purpose| {
            self.participants.iter().find(|p| {
                p.end_time.is_none()
                    && p.purpose
                        .as_deref()
                        .is_some_and(|x| x.eq_ignore_ascii_case(purpose))
            })
        })
    }

    pub fn participant(&self, id: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.id == id)
    }
}

/// `PATCH .../participants/{participantId}/attributes` body: values are strings only.
#[derive(Debug, Serialize)]
pub struct AttributesPatch<'a> {
    pub attributes: &'a BTreeMap<String, String>,
}

/// Genesys `ErrorBody`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    pub message: String,
    pub code: String,
    pub status: Option<u16>,
    pub context_id: String,
}

/// `GET /api/v2/ipranges` reply: `IpAddressRangeListing` (no paging).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpAddressRangeListing {
    pub entities: Vec<IpAddressRange>,
}

/// One published range. Every field is optional in the SDKs' model, and only `direction` has a
/// description: "The direction of traffic for the IP range from the perspective of Genesys Cloud"
/// (`inbound`, `outbound`, `both`; MyPureCloud/platform-client-sdk-python@f80f2db:
/// build/docs/IpAddressRange.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct IpAddressRange {
    pub cidr: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub direction: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(json: serde_json::Value) -> Conversation {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_customer_is_the_participant_with_purpose_customer() {
        let c = conversation(serde_json::json!({
            "id": "c1",
            "participants": [
                {"id": "p-ivr", "purpose": "ivr"},
                {"id": "p-cust", "purpose": "customer", "ani": "tel:+13175550125"},
                {"id": "p-agent", "purpose": "agent"}
            ]
        }));
        let p = c.pick_participant(&["customer".to_owned()]).unwrap();
        assert_eq!(p.id, "p-cust");
        assert!(!c.is_ended());
    }

    #[test]
    fn purposes_are_tried_in_the_configured_order_and_departed_participants_skipped() {
        let c = conversation(serde_json::json!({
            "id": "c1",
            "endTime": "2024-01-01T00:00:00Z",
            "participants": [
                {"id": "gone", "purpose": "customer", "endTime": "2024-01-01T00:00:00Z"},
                {"id": "ext", "purpose": "external"}
            ]
        }));
        let purposes = ["customer".to_owned(), "external".to_owned()];
        assert_eq!(c.pick_participant(&purposes).unwrap().id, "ext");
        assert!(c.pick_participant(&["customer".to_owned()]).is_none());
        assert!(c.is_ended());
    }

    #[test]
    fn the_chat_blog_sample_parses() {
        // The official sample elides parts with "..."; keep only its first participant.
        let text = include_str!("../../tests/fixtures/get-conversation-chat.json");
        let c: Conversation = serde_json::from_str(text).unwrap();
        let p = c.pick_participant(&["customer".to_owned()]);
        // The sample's customer has left (it is a finished chat).
        assert!(p.is_none());
        assert_eq!(
            c.participant("my_customer_participant_id")
                .unwrap()
                .attributes["context.firstName"],
            "Blanche"
        );
    }
}
