//! Domain types that parse their input: Genesys ids that are safe to put in a URL path
//! (`ids`), the customer keys an event carries and their kinds (`keys`), and the enrichment job
//! every ingest path produces and the queue stores as it is (`job`).

mod ids;
mod job;
mod keys;

pub use ids::{ConversationId, IdError, ParticipantId};
pub use job::{ConversationEvent, EnrichmentJob, Source, UnknownSource};
pub use keys::{non_blank, CustomerKey, CustomerKeys, KeyKind};
