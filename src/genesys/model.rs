//! Wire types of the Genesys Cloud Platform API that attrsync reads and writes. Only the fields
//! attrsync uses are declared; everything else in a response is ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::PartyFields;

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
    /// The number the initiating side dialled: on an outbound call, the customer's.
    #[serde(default)]
    pub dnis: Option<String>,
    #[serde(default)]
    pub external_contact_id: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// The participant's media sessions, one array per media type; only the conversation's
    /// own is filled (`Participant.md`: `calls`, `callbacks`, `chats`, `emails`, `messages`, ...).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub calls: Vec<MediaSession>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub callbacks: Vec<MediaSession>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub chats: Vec<MediaSession>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub emails: Vec<MediaSession>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub messages: Vec<MediaSession>,
}

/// The fields attrsync reads of one media session (`Call`, `Callback`, `Email`, `Message`, ...
/// in the SDKs' `build/docs/`): `direction` is `inbound` or `outbound`; a message's `type` says
/// which messaging platform (`sms`, `facebook`, `whatsapp`, ...); a callback's `callbackNumbers`
/// are the numbers to call the customer back on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MediaSession {
    pub direction: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "null_as_empty")]
    pub callback_numbers: Vec<String>,
}

/// A list Genesys may send as `null`: read as empty, so an odd field never fails the whole read.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A participant's media type, the direction and message type of its (first) session, and its
/// callback numbers: what `domain::party` needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParticipantMedia<'a> {
    pub media_type: Option<&'static str>,
    pub direction: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub callback_numbers: &'a [String],
}

impl Participant {
    /// The media the participant is on, from the first non-empty media array.
    pub fn media(&self) -> ParticipantMedia<'_> {
        let arrays: [(&'static str, &Vec<MediaSession>); 5] = [
            ("VOICE", &self.calls),
            ("CALLBACK", &self.callbacks),
            ("CHAT", &self.chats),
            ("EMAIL", &self.emails),
            ("MESSAGE", &self.messages),
        ];
        arrays
            .into_iter()
            .find_map(|(media, sessions)| {
                let session = sessions.first()?;
                Some(ParticipantMedia {
                    media_type: Some(media),
                    direction: session.direction.as_deref(),
                    message_type: session.kind.as_deref(),
                    callback_numbers: &session.callback_numbers,
                })
            })
            .unwrap_or_default()
    }

    /// The participant's addresses as `domain::party` reads them: by its media direction,
    /// `ani`/`address` when it called in, `dnis` when the org called out. `Participant.address`
    /// "for a phone call ... will be the ANI" (`Participant.md`), so it stands for the initiating
    /// side only; what it holds for the remote party of an outbound call is unverified.
    pub fn party_fields(&self) -> PartyFields<'_> {
        let media = self.media();
        PartyFields {
            direction: media.direction,
            media_type: media.media_type,
            message_type: media.message_type,
            ani: self.ani.as_deref(),
            dnis: self.dnis.as_deref(),
            address_from: self.address.as_deref(),
            address_to: None,
            callback_numbers: media.callback_numbers,
        }
    }

    /// True when the participant's media session is outbound.
    pub fn is_outbound(&self) -> bool {
        self.media()
            .direction
            .is_some_and(|d| d.eq_ignore_ascii_case("outbound"))
    }
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

    /// The remote party of an agent-dialed call: the first participant still present whose
    /// media is outbound and whose purpose is in `purposes` (`genesys.outbound_participant_purposes`).
    pub fn pick_outbound_participant(&self, purposes: &[String]) -> Option<&Participant> {
        purposes.iter().find_map(|purpose| {
            self.participants.iter().find(|p| {
                p.end_time.is_none()
                    && p.is_outbound()
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

/// Genesys `ErrorBody`, or the OAuth error body of RFC 6749 section 5.2 (`error`,
/// `error_description`), which the login host may answer instead: which one it sends is not
/// documented (unverified), so both are read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    pub message: String,
    pub code: String,
    pub status: Option<u16>,
    pub context_id: String,
    /// OAuth: `invalid_client`, `invalid_grant`, `unsupported_grant_type`, ...
    pub error: String,
    /// OAuth: the human-readable text, kept for the log line.
    #[serde(rename = "error_description")]
    pub error_description: String,
}

impl ErrorBody {
    /// The code and message, from whichever shape the body had.
    pub fn code_and_message(self) -> (String, String) {
        if self.code.is_empty() && !self.error.is_empty() {
            (self.error, self.error_description)
        } else {
            (self.code, self.message)
        }
    }
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
    fn both_token_error_shapes_give_a_code_and_a_message() {
        let platform: ErrorBody = serde_json::from_value(serde_json::json!({
            "message": "Invalid login credentials.", "code": "bad.credentials", "status": 401
        }))
        .unwrap();
        assert_eq!(
            platform.code_and_message(),
            (
                "bad.credentials".into(),
                "Invalid login credentials.".into()
            )
        );
        let oauth: ErrorBody = serde_json::from_value(serde_json::json!({
            "error": "invalid_client", "error_description": "client not found"
        }))
        .unwrap();
        assert_eq!(
            oauth.code_and_message(),
            ("invalid_client".into(), "client not found".into())
        );
    }

    #[test]
    fn null_media_lists_read_as_empty() {
        let c = conversation(serde_json::json!({
            "id": "c1",
            "participants": [{"id": "p", "calls": null, "callbacks": [{"callbackNumbers": null}]}]
        }));
        assert!(c.participants[0].calls.is_empty());
        assert_eq!(c.participants[0].media().media_type, Some("CALLBACK"));
    }

    #[test]
    fn an_outbound_participant_is_found_by_its_media_direction() {
        let c = conversation(serde_json::json!({
            "id": "c1",
            "participants": [
                {"id": "p-agent", "purpose": "agent", "calls": [{"direction": "outbound"}]},
                {"id": "p-ext", "purpose": "external", "dnis": "tel:+13175550125",
                 "calls": [{"direction": "outbound"}]}
            ]
        }));
        assert!(c.pick_participant(&["customer".to_owned()]).is_none());
        let p = c
            .pick_outbound_participant(&["external".to_owned()])
            .unwrap();
        assert_eq!(p.id, "p-ext");
        assert_eq!(p.media().media_type, Some("VOICE"));
        assert!(p.is_outbound());
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
