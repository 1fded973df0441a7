//! Genesys ids that are safe to put in a URL path: parsed on the way in, from a request or
//! from the queue, so no code that builds a URL ever sees an unchecked id.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

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

        /// Through [`Self::parse`]: an id read back from storage is checked like one received.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(|e| {
                    serde::de::Error::custom(format_args!("{}: {e}", stringify!($name)))
                })
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
    fn an_id_read_back_from_storage_goes_through_the_same_check() {
        let id: ConversationId = serde_json::from_str("\"c-1\"").unwrap();
        assert_eq!(id.as_str(), "c-1");
        let err = serde_json::from_str::<ParticipantId>("\"../admin\"").unwrap_err();
        assert!(err.to_string().contains("ParticipantId"), "{err}");
    }
}
