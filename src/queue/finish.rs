//! The finishing writer: one task that records, in batches, the jobs that finished and the
//! journeys of every run (when `[journal]` is on). Each batch is one transaction holding every
//! completion that arrived while the previous batch was being written; journal entries gather
//! until a chunk of them is pending (or a short linger has passed) and then ride in one of those
//! transactions, so the journal adds full pages of rows to commits the queue makes anyway rather
//! than commits of its own. Under SQLite, which admits one writer at a time, a second stream of
//! transactions would wait for (and hold up) the claims and enqueues.
//!
//! Completions and journal entries share one channel, a finished job's entry in its completion's
//! message (see `journal` for why).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::journal::Backlog;
use super::store::{EncodedSteps, JobStore, NewEntry};
use crate::metrics;

type Entry = NewEntry<EncodedSteps>;

/// Largest batch of completions in one transaction.
const MAX_BATCH: usize = 512;

/// Journal entries are held back until this many are pending (or [`JOURNAL_LINGER`] has passed),
/// then ride along with the next batch of completions: full pages of rows in one commit rather
/// than a few rows rewriting the same half-full page in every commit. (Not measured apart from
/// the other journal changes: in the benchmark's noise this step alone showed no clear gain.)
const JOURNAL_CHUNK: usize = 128;

/// The longest a journal entry waits to be written: the journal of an event is readable this
/// long after its run at most (a little more when the database is busy).
const JOURNAL_LINGER: Duration = Duration::from_millis(250);

/// What a worker hands the writer.
pub(super) enum Completion {
    /// The job finished; with its run's journal entry when there is one.
    Done(i64, Option<Entry>),
    /// A run's journal entry alone (the job was retried or dead-lettered, which the worker
    /// records itself).
    Journal(Entry),
    /// Write what is pending (journal entries too), then answer.
    Flush(oneshot::Sender<()>),
}

/// Records completions and journal entries until every sender is gone, giving each written
/// (or failed) entry back to `backlog`. A job whose completion is lost in a crash runs again
/// after its lease, reading the participant first, so nothing is written twice.
pub(super) async fn record(
    store: Arc<JobStore>,
    mut completions: mpsc::UnboundedReceiver<Completion>,
    backlog: Arc<Backlog>,
) {
    let mut pending: Vec<Entry> = Vec::new();
    let mut due: Option<Instant> = None;
    loop {
        let mut ids = Vec::new();
        let mut flushes = Vec::new();
        let woke = tokio::select! {
            biased;
            m = completions.recv() => m.map_or(Wake::Closed, Wake::Message),
            () = sleep_until(due), if due.is_some() => Wake::Due,
        };
        let closed = matches!(woke, Wake::Closed);
        if let Wake::Message(m) = woke {
            take(m, &mut ids, &mut pending, &mut flushes);
        }
        while ids.len() < MAX_BATCH && pending.len() < MAX_BATCH {
            match completions.try_recv() {
                Ok(m) => take(m, &mut ids, &mut pending, &mut flushes),
                Err(_) => break,
            }
        }
        if pending.is_empty() {
            due = None;
        } else if due.is_none() {
            due = Some(Instant::now() + JOURNAL_LINGER);
        }
        let journal_now = !pending.is_empty()
            && (closed
                || !flushes.is_empty()
                || pending.len() >= JOURNAL_CHUNK
                || due.is_some_and(|d| Instant::now() >= d));
        let entries = if journal_now {
            due = None;
            std::mem::take(&mut pending)
        } else {
            Vec::new()
        };
        if !ids.is_empty() || !entries.is_empty() {
            write(&store, &ids, &entries).await;
            backlog.release(entries.len());
        }
        for reply in flushes {
            let _ = reply.send(());
        }
        if closed {
            break;
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

enum Wake {
    Message(Completion),
    /// The pending journal entries have waited long enough.
    Due,
    /// Every sender is gone: write what is left and stop.
    Closed,
}

fn take(
    m: Completion,
    ids: &mut Vec<i64>,
    pending: &mut Vec<Entry>,
    flushes: &mut Vec<oneshot::Sender<()>>,
) {
    match m {
        Completion::Done(id, entry) => {
            ids.push(id);
            pending.extend(entry);
        }
        Completion::Journal(entry) => pending.push(entry),
        Completion::Flush(reply) => flushes.push(reply),
    }
}

/// Writes one batch. When the combined transaction fails, the completions are written alone:
/// a journal that cannot be written must not make finished jobs run again.
async fn write(store: &JobStore, ids: &[i64], entries: &[Entry]) {
    let journaled = entries.len() as u64;
    let Err(e) = store.finish_batch(ids, entries).await else {
        if journaled > 0 {
            ::metrics::counter!(metrics::JOURNAL_ENTRIES, "result" => "written")
                .increment(journaled);
        }
        return;
    };
    if entries.is_empty() {
        tracing::error!(jobs = ids.len(), error = %e, "could not record finished jobs; they will run again after their lease");
        return;
    }
    ::metrics::counter!(metrics::JOURNAL_ENTRIES, "result" => "failed").increment(journaled);
    tracing::warn!(entries = entries.len(), error = %e, "could not write journal entries");
    if let Err(e) = store.complete_many(ids).await {
        tracing::error!(jobs = ids.len(), error = %e, "could not record finished jobs; they will run again after their lease");
    }
}
