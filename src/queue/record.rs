//! The stored form of a job: the [`EnrichmentJob`] itself, as JSON tagged with its format
//! version (`{"v": "2", ...}`), written and read by serde with no mapping by hand.
//!
//! Rows written by attrsync before the versioned format (no `"v"`: every field a string, the
//! caller number as received) are still read, so a queue that holds events across an upgrade
//! loses none; only they need a libphonenumber parse when claimed, with `phone.default_region`.

use std::collections::BTreeMap;

use phonenumber::country;
use serde::{Deserialize, Serialize};

use crate::domain::{ConversationId, CustomerKeys, EnrichmentJob, ParticipantId, Source};
use crate::phone::CallerNumber;

/// The format versions a row may be in; `#[serde(tag = "v")]` makes the version the first
/// thing read, so an unknown one is refused, never misread.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum Versioned<J> {
    #[serde(rename = "2")]
    V2(J),
}

/// A stored job that cannot be read back: not JSON of a known version, or with a value its
/// parser refuses (an id that is not path-safe, say). It goes to the dead letters, unrun.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored job is unreadable: {0}")]
pub struct Unreadable(String);

/// A job as the queue stores it: the JSON text, read back on demand.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredJob(String);

impl StoredJob {
    pub fn encode(job: &EnrichmentJob) -> Result<Self, serde_json::Error> {
        serde_json::to_string(&Versioned::V2(job)).map(StoredJob)
    }

    /// Reads the job back. `legacy_region` is only used for a row in the format before
    /// versioning, whose caller number was stored unparsed.
    pub fn decode(&self, legacy_region: country::Id) -> Result<EnrichmentJob, Unreadable> {
        match serde_json::from_str::<Versioned<EnrichmentJob>>(&self.0) {
            Ok(Versioned::V2(job)) => Ok(job),
            Err(current) => match serde_json::from_str::<V1>(&self.0) {
                Ok(v1) => v1.upgrade(legacy_region),
                Err(_) => Err(Unreadable(current.to_string())),
            },
        }
    }

    pub(super) fn from_text(text: String) -> Self {
        StoredJob(text)
    }

    pub(super) fn as_text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoredJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The text holds caller numbers and emails.
        f.write_str("StoredJob(..)")
    }
}

/// As JSON (the admin API shows a dead letter's job): the stored document itself.
impl Serialize for StoredJob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        value.serialize(s)
    }
}

/// The format before versioning: every field a string, the caller number as received.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1 {
    source: String,
    event_id: String,
    request_id: String,
    conversation_id: String,
    participant_id: Option<String>,
    customer_id: Option<String>,
    external_contact_id: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    #[serde(default)]
    extra_attributes: BTreeMap<String, String>,
}

impl V1 {
    fn upgrade(self, region: country::Id) -> Result<EnrichmentJob, Unreadable> {
        let corrupt = |field: &str, e: &dyn std::fmt::Display| Unreadable(format!("{field} {e}"));
        Ok(EnrichmentJob {
            source: self
                .source
                .parse::<Source>()
                .map_err(|e| corrupt("source", &e))?,
            trace_parent: None,
            event_id: self.event_id,
            request_id: self.request_id,
            conversation_id: ConversationId::parse(&self.conversation_id)
                .map_err(|e| corrupt("conversationId", &e))?,
            participant_id: self
                .participant_id
                .as_deref()
                .map(ParticipantId::parse)
                .transpose()
                .map_err(|e| corrupt("participantId", &e))?,
            keys: CustomerKeys {
                customer_id: self.customer_id,
                external_contact_id: self.external_contact_id,
                phone: self
                    .phone
                    .as_deref()
                    .and_then(|n| CallerNumber::parse(n, region)),
                email: self.email,
                messaging_id: None,
            },
            extra_attributes: self.extra_attributes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ConversationEvent;

    const US: country::Id = country::Id::US;

    fn job() -> EnrichmentJob {
        EnrichmentJob::new(
            Source::Genesys,
            ConversationEvent {
                event_id: "e1".into(),
                conversation_id: ConversationId::parse("c1").unwrap(),
                participant_id: Some(ParticipantId::parse("p1").unwrap()),
                keys: CustomerKeys {
                    phone: CallerNumber::parse("tel:+13175550125", US),
                    ..CustomerKeys::default()
                },
                media_type: None,
            },
            BTreeMap::new(),
            "r1".into(),
        )
    }

    #[test]
    fn a_job_is_stored_with_its_version_and_read_back_as_it_was() {
        let stored = StoredJob::encode(&job()).unwrap();
        assert!(
            stored.as_text().starts_with(r#"{"v":"2","#),
            "{}",
            stored.as_text()
        );
        assert_eq!(stored.decode(US).unwrap(), job());
    }

    #[test]
    fn a_row_in_the_format_before_versioning_is_still_read() {
        let v1 = StoredJob::from_text(
            r#"{"source":"genesys","eventId":"e1","requestId":"r1","conversationId":"c1",
                "participantId":"p1","customerId":null,"externalContactId":null,
                "phone":"tel:+13175550125","email":null,"extraAttributes":{}}"#
                .to_owned(),
        );
        assert_eq!(v1.decode(US).unwrap(), job());
    }

    #[test]
    fn an_unknown_version_or_an_unsafe_id_is_unreadable_not_misread() {
        let future = StoredJob::from_text(r#"{"v":"3","source":"genesys"}"#.to_owned());
        assert!(matches!(future.decode(US), Err(Unreadable(_))));
        let text = StoredJob::encode(&job())
            .unwrap()
            .as_text()
            .replace("\"c1\"", "\"../c1\"");
        assert!(StoredJob::from_text(text).decode(US).is_err());
    }
}
