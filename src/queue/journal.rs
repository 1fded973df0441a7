//! The journal writer: each run's journey, handed over by a worker without waiting, written in
//! batches (one transaction for every entry that arrived while the previous one was being
//! written), like finished jobs. A full backlog drops the entry rather than slow the worker.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::store::{ClaimedJob, JobStore, NewEntry};
use crate::domain::EnrichmentJob;
use crate::pipeline::Journey;

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
        tracing::warn!(
            job_id = claimed.id,
            "journal backlog full; this run's journey is not kept"
        );
    }
}

/// Writes entries in batches until every sender is gone.
pub(super) async fn record_journeys(store: Arc<JobStore>, mut rx: mpsc::Receiver<NewEntry>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        if let Err(e) = store.journal_many(&batch).await {
            tracing::warn!(entries = batch.len(), error = %e, "could not write journal entries");
        }
    }
}
