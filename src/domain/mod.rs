//! Domain types that parse their input: Genesys ids that are safe to put in a URL path
//! (`ids`), the customer keys an event carries and their kinds (`keys`), and the enrichment job
//! every ingest path produces and the queue stores as it is (`job`), how well a CRM record
//! matches a key (`matching`), and which party of a conversation is the customer (`party`).

mod ids;
mod job;
mod keys;
mod matching;
pub mod party;

pub use ids::{ConversationId, IdError, ParticipantId};
pub use job::{ConversationEvent, EnrichmentJob, Source, UnknownSource};
pub use keys::{non_blank, CustomerKey, CustomerKeys, KeyKind};
pub use matching::MatchQuality;
pub use party::{customer_keys, Channel, Direction, PartyFields};
