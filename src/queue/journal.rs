//! Turning a run's journey into a journal entry for the finishing writer (`finish`): the worker
//! that ran the event encodes it, so the encoding is spread over the workers rather than done
//! by the one writer, and the entry travels to the writer in the same message as the job's
//! completion (one message and one wake-up of the writer per event, not two). The writer
//! writes it in the same transaction as the batch's finished jobs. (Neither choice measured
//! faster than the alternative in the benchmark: see the README's "The journal's cost".)
//!
//! The entries on their way to the writer are counted ([`Backlog`]); past its bound the newest
//! are dropped (and counted) rather than held, so a slow database never holds a worker back or
//! grows memory without bound.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::store::{ClaimedJob, EncodedSteps, NewEntry};
use crate::domain::EnrichmentJob;
use crate::metrics;
use crate::pipeline::Journey;

/// Journal entries waiting to be written, at most; past this the newest are dropped.
const BACKLOG: usize = 8192;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// How many entries are on their way to the writer: taken by a worker for each entry it hands
/// over, given back by the writer once the entry is written (or given up).
#[derive(Debug, Default)]
pub(super) struct Backlog(AtomicUsize);

impl Backlog {
    /// `n` entries have left the backlog.
    pub(super) fn release(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::AcqRel);
    }

    fn take(&self) -> bool {
        if self.0.fetch_add(1, Ordering::AcqRel) < BACKLOG {
            return true;
        }
        self.release(1);
        false
    }
}

/// The journal entry of one run, encoded; `None` when the backlog is full or the journey
/// could not be encoded (both counted in `attrsync_journal_entries_total`). Never waits.
pub(super) fn entry(
    backlog: &Backlog,
    claimed: &ClaimedJob,
    job: &EnrichmentJob,
    outcome: &str,
    journey: Journey,
) -> Option<NewEntry<EncodedSteps>> {
    if !backlog.take() {
        ::metrics::counter!(metrics::JOURNAL_ENTRIES, "result" => "dropped").increment(1);
        // One line per thousand drops: a backlog that is full stays full for a while, and a line
        // per event would add to the load that filled it.
        if DROPPED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
            tracing::warn!(
                job_id = claimed.id,
                "journal backlog full; journeys are being dropped (attrsync_journal_entries_total{{result=\"dropped\"}})"
            );
        }
        return None;
    }
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
    match entry.encode() {
        Ok(entry) => Some(entry),
        Err(e) => {
            backlog.release(1);
            ::metrics::counter!(metrics::JOURNAL_ENTRIES, "result" => "failed").increment(1);
            tracing::warn!(job_id = claimed.id, error = %e, "could not encode a journal entry");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_admits_its_bound_then_refuses_until_entries_are_released() {
        let backlog = Backlog::default();
        for _ in 0..BACKLOG {
            assert!(backlog.take());
        }
        assert!(!backlog.take(), "one past the bound is refused");
        assert!(!backlog.take(), "a refusal does not use up room");
        backlog.release(2);
        assert!(backlog.take());
        assert!(backlog.take());
        assert!(!backlog.take());
    }
}
