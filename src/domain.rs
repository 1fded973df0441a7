//! Domain types that parse their input: Genesys ids that are safe to put in a URL path, the
//! customer keys an event carries, and the normalised enrichment job every ingest path produces.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::phone::CallerNumber;

/// Why an id was refused. The message names no value: ids may come from hostile input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_ID_LEN} characters")]
    TooLong,
    #[error("may only contain letters, digits, '-' and '_'")]
    BadCharacter,
}

const MAX_ID_LEN: usize = 64;

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    // Genesys ids are UUIDs; allowing only this alphabet means an id can never add a path
    // segment, a query or an encoded character to a Genesys or CRM URL.
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let s = s.trim();
                check_id(s)?;
                Ok(Self(s.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A Genesys conversation id.
    ConversationId
);
id_type!(
    /// A Genesys participant id (not the communication/session id).
    ParticipantId
);

/// Where an event came from; a metrics label, so the set is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Genesys,
    Cti,
    Lookup,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Genesys => "genesys",
            Source::Cti => "cti",
            Source::Lookup => "lookup",
        }
    }
}

/// The ways an event can identify the customer. Any may be missing; the pipeline may fill the
/// phone number and external contact id from the participant when it reads the conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerKeys {
    pub customer_id: Option<String>,
    pub external_contact_id: Option<String>,
    pub phone: Option<CallerNumber>,
    pub email: Option<String>,
}

impl CustomerKeys {
    pub fn is_empty(&self) -> bool {
        self.customer_id.is_none()
            && self.external_contact_id.is_none()
            && self.phone.is_none()
            && self.email.is_none()
    }
}

/// Turns optional input text into an optional value: data actions send every input, so an
/// empty or blank string means "not given".
pub fn non_blank(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// One unit of work for the pipeline, whatever the ingest path.
#[derive(Debug, Clone)]
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
    pub extra_attributes: BTreeMap<String, String>,
    /// When attrsync accepted the event, in Unix milliseconds (persisted with the job).
    pub received_at_ms: i64,
    /// 1 on the first run. A later run may follow a crash after a PATCH went out, so it reads the
    /// participant's attributes first instead of trusting memory.
    pub attempt: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_is_a_valid_conversation_id() {
        let id = ConversationId::parse("2f7bf00a-0fc2-4d6a-9b56-92238191433e").unwrap();
        assert_eq!(id.as_str(), "2f7bf00a-0fc2-4d6a-9b56-92238191433e");
    }

    #[test]
    fn ids_that_could_change_a_url_path_are_rejected() {
        for bad in [
            "../admin", "a/b", "a?b=c", "a%2Fb", "a b", "a#b", "ä", "a.b",
        ] {
            assert_eq!(
                ConversationId::parse(bad),
                Err(IdError::BadCharacter),
                "{bad}"
            );
        }
        assert_eq!(ParticipantId::parse("  "), Err(IdError::Empty));
        assert_eq!(ParticipantId::parse(&"a".repeat(65)), Err(IdError::TooLong));
    }

    #[test]
    fn blank_inputs_count_as_absent() {
        assert_eq!(non_blank(Some("  ")), None);
        assert_eq!(non_blank(Some(" x ")), Some("x".to_owned()));
        assert_eq!(non_blank(None), None);
    }
}
