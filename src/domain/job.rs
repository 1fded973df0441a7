//! The enrichment job: one unit of work for the pipeline, whatever the ingest path, and the
//! very value the durable queue stores (as JSON, tagged with its format version by the queue).
//! Its ids deserialize through their parsers and its caller number keeps its parsed forms, so
//! reading a job back is no second round of validation by hand.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ids::{ConversationId, ParticipantId};
use super::keys::CustomerKeys;

/// Where an event came from; a metrics label, so the set is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Genesys,
    Cti,
    Lookup,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Genesys, Source::Cti, Source::Lookup];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Genesys => "genesys",
            Source::Cti => "cti",
            Source::Lookup => "lookup",
        }
    }
}

/// A source name that is none of [`Source::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown source {0:?}")]
pub struct UnknownSource(pub String);

impl std::str::FromStr for Source {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| UnknownSource(s.to_owned()))
    }
}

/// The fields of a conversation event that attrsync uses, from whichever envelope carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationEvent {
    pub event_id: String,
    pub conversation_id: ConversationId,
    pub participant_id: Option<ParticipantId>,
    pub keys: CustomerKeys,
    pub media_type: Option<String>,
}

/// One unit of work for the pipeline, whatever the ingest path; stored as it is.
///
/// When it was accepted and how many attempts it had are the queue's to know (they change as the
/// job is retried or replayed), so they travel beside the job, not in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrichmentJob {
    pub source: Source,
    /// The sender's event id (EventBridge id, CTI event id), for logs and deduplication.
    pub event_id: String,
    /// The inbound request's id, so the worker's log lines can be tied to the request.
    pub request_id: String,
    pub conversation_id: ConversationId,
    pub participant_id: Option<ParticipantId>,
    pub keys: CustomerKeys,
    /// Attributes the sender wants written as they are (CTI middleware).
    #[serde(default)]
    pub extra_attributes: BTreeMap<String, String>,
    /// The W3C `traceparent` of the trace the event arrived in, when traces are exported
    /// (`telemetry.otlp_endpoint`): the worker's span continues it. Absent otherwise, so rows
    /// stay readable by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl EnrichmentJob {
    /// The job for an event from `source`, accepted while serving request `request_id`.
    pub fn new(
        source: Source,
        event: ConversationEvent,
        extra_attributes: BTreeMap<String, String>,
        request_id: String,
    ) -> Self {
        EnrichmentJob {
            source,
            event_id: event.event_id,
            request_id,
            conversation_id: event.conversation_id,
            participant_id: event.participant_id,
            keys: event.keys,
            extra_attributes,
            trace_parent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phone::CallerNumber;

    fn job() -> EnrichmentJob {
        EnrichmentJob::new(
            Source::Cti,
            ConversationEvent {
                event_id: "e1".into(),
                conversation_id: ConversationId::parse("c1").unwrap(),
                participant_id: Some(ParticipantId::parse("p1").unwrap()),
                keys: CustomerKeys {
                    phone: CallerNumber::parse("(317) 555-0125", phonenumber::country::Id::US),
                    ..CustomerKeys::default()
                },
                media_type: None,
            },
            BTreeMap::from([("ivr.intent".to_owned(), "billing".to_owned())]),
            "r1".into(),
        )
    }

    #[test]
    fn a_job_reads_back_as_the_job_that_was_stored() {
        let job = job();
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<EnrichmentJob>(&text).unwrap(), job);
    }

    #[test]
    fn a_stored_job_with_an_id_that_is_not_path_safe_does_not_read_back() {
        let mut value = serde_json::to_value(job()).unwrap();
        value["conversationId"] = "../admin".into();
        assert!(serde_json::from_value::<EnrichmentJob>(value).is_err());
    }

    #[test]
    fn sources_parse_from_their_names() {
        for source in Source::ALL {
            assert_eq!(source.as_str().parse::<Source>(), Ok(source));
        }
        assert!("sms".parse::<Source>().is_err());
    }
}
