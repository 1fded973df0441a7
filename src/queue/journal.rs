//! Handing a run's journey to the journal: built by a worker and passed without waiting to the
//! finishing writer (`finish`), which writes it in the same transaction as the batch's finished
//! jobs. A full backlog drops the entry rather than slow the worker.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::store::{ClaimedJob, NewEntry};
use crate::domain::EnrichmentJob;
use crate::metrics;
use crate::pipeline::Journey;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Hands one run's journey to the writer; never waits.
pub(super) fn send(
    writer: &mpsc::Sender<NewEntry>,
    claimed: &ClaimedJob,
    job: &EnrichmentJob,
    outcome: &str,
    journey: Journey,
) {
    let entry = NewEntry {
        job_id: claimed.id,
        event_id: job.event_id.clone(),
        conversation_id: job.conversation_id.to_string(),
        source: job.source.as_str(),
        attempt: claimed.attempts,
        outcome: outcome.to_owned(),
        accepted_at_ms: claimed.created_at_ms,
        steps: journey.into_steps(),
    };
    if writer.try_send(entry).is_err() {
        ::metrics::counter!(metrics::JOURNAL_ENTRIES, "result" => "dropped").increment(1);
        // One line per thousand drops: a backlog that is full stays full for a while, and a line
        // per event would add to the load that filled it.
        if DROPPED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
            tracing::warn!(
                job_id = claimed.id,
                "journal backlog full; journeys are being dropped (attrsync_journal_entries_total{{result=\"dropped\"}})"
            );
        }
    }
}
