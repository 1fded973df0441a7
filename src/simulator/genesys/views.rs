//! Wire views of a conversation: the JSON Genesys answers for `GET /api/v2/conversations/{id}`,
//! kept apart from the client's models so a serde mistake in the client is not mirrored here.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::state::{Conversation, Participant};
use super::MediaType;

pub(super) fn timestamp(time: DateTime<Utc>) -> String {
    // Genesys timestamps carry milliseconds: yyyy-MM-ddTHH:mm:ss.mmmZ.
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConversationView<'a> {
    pub(super) id: &'a str,
    pub(super) start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<&'a str>,
    pub(super) participants: Vec<ParticipantView<'a>>,
    pub(super) recording_state: &'static str,
    pub(super) self_uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ParticipantView<'a> {
    pub(super) id: &'a str,
    pub(super) start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) end_time: Option<String>,
    pub(super) connected_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) external_contact_id: Option<&'a str>,
    pub(super) purpose: &'static str,
    pub(super) participant_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ani: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) dnis: Option<&'a str>,
    pub(super) wrapup_required: bool,
    pub(super) attributes: &'a BTreeMap<String, String>,
    // Like the real API, every media array is present and only the conversation's is filled.
    pub(super) calls: Vec<MediaView<'a>>,
    pub(super) callbacks: Vec<MediaView<'a>>,
    pub(super) chats: Vec<MediaView<'a>>,
    pub(super) cobrowsesessions: Vec<MediaView<'a>>,
    pub(super) emails: Vec<MediaView<'a>>,
    pub(super) messages: Vec<MediaView<'a>>,
    pub(super) screenshares: Vec<MediaView<'a>>,
    pub(super) social_expressions: Vec<MediaView<'a>>,
    pub(super) videos: Vec<MediaView<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MediaView<'a> {
    pub(super) id: &'a str,
    pub(super) state: &'static str,
    pub(super) direction: &'static str,
    /// A message's platform (`sms`, `facebook`, ...).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) kind: Option<&'a str>,
    /// A callback's numbers to call the customer back on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) callback_numbers: Option<Vec<&'a str>>,
    pub(super) connected_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) disconnected_time: Option<String>,
    pub(super) provider: &'static str,
}

impl<'a> From<&'a Conversation> for ConversationView<'a> {
    fn from(conversation: &'a Conversation) -> Self {
        Self {
            id: &conversation.id,
            start_time: timestamp(conversation.start_time),
            end_time: conversation.end_time.map(timestamp),
            address: conversation.address.as_deref(),
            participants: conversation
                .participants
                .iter()
                .map(|p| ParticipantView::new(p, conversation))
                .collect(),
            recording_state: "NONE",
            self_uri: format!("/api/v2/conversations/{}", conversation.id),
        }
    }
}

impl<'a> ParticipantView<'a> {
    pub(super) fn new(participant: &'a Participant, conversation: &'a Conversation) -> Self {
        let media_type = conversation.media_type;
        let media = vec![MediaView {
            id: &participant.media_id,
            state: if participant.end_time.is_some() {
                "disconnected"
            } else {
                "connected"
            },
            direction: conversation.direction.as_str(),
            kind: (media_type == MediaType::Message)
                .then_some(conversation.message_type.as_deref())
                .flatten(),
            callback_numbers: (media_type == MediaType::Callback)
                .then(|| conversation.customer.as_deref().into_iter().collect()),
            connected_time: timestamp(participant.start_time),
            disconnected_time: participant.end_time.map(timestamp),
            provider: media_type.provider(),
        }];
        let mut view = Self {
            id: &participant.id,
            start_time: timestamp(participant.start_time),
            end_time: participant.end_time.map(timestamp),
            connected_time: timestamp(participant.start_time),
            name: participant.name.as_deref(),
            external_contact_id: participant.external_contact_id.as_deref(),
            purpose: participant.purpose,
            participant_type: participant.participant_type,
            address: participant.address.as_deref(),
            ani: participant.ani.as_deref(),
            dnis: participant.dnis.as_deref(),
            wrapup_required: false,
            attributes: &participant.attributes,
            calls: Vec::new(),
            callbacks: Vec::new(),
            chats: Vec::new(),
            cobrowsesessions: Vec::new(),
            emails: Vec::new(),
            messages: Vec::new(),
            screenshares: Vec::new(),
            social_expressions: Vec::new(),
            videos: Vec::new(),
        };
        match media_type {
            MediaType::Voice => view.calls = media,
            MediaType::Chat => view.chats = media,
            MediaType::Message => view.messages = media,
            MediaType::Callback => view.callbacks = media,
            MediaType::Email => view.emails = media,
        }
        view
    }
}
