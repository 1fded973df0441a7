//! The finishing writer: one task that records, in batches, the jobs that finished and the
//! journeys of every run (when `[journal]` is on). Each batch is one transaction holding every
//! completion that arrived while the previous batch was being written; journal entries gather
//! until a chunk of them is pending (or a short linger has passed) and then ride in one of those
//! transactions, so the journal adds full pages of rows to commits the queue makes anyway rather
//! than commits of its own. Under SQLite, which admits one writer at a time, a second stream of
//! transactions would wait for (and hold up) the claims and enqueues.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

use super::store::{JobStore, NewEntry};
use crate::metrics;

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

/// What a worker hands the writer about a finished job.
pub(super) enum Completion {
    Done(i64),
    /// Write what is pending (journal entries too), then answer.
    Flush(oneshot::Sender<()>),
}

/// Records completions (and journal entries, when `journal` is given) until every sender is
/// gone. A job whose completion is lost in a crash runs again after its lease, reading the
/// participant first, so nothing is written twice.
pub(super) async fn record(
    store: Arc<JobStore>,
    mut completions: mpsc::UnboundedReceiver<Completion>,
    mut journal: Option<mpsc::Receiver<NewEntry>>,
) {
    let mut pending: Vec<NewEntry> = Vec::new();
    let mut due: Option<Instant> = None;
    loop {
        let mut ids = Vec::new();
        let mut flushes = Vec::new();
        let woke = tokio::select! {
            biased;
            m = completions.recv() => m.map_or(Wake::Closed, Wake::Completion),
            e = next_entry(&mut journal) => match e {
                Some(e) => Wake::Entry(e),
                // Every journal sender is gone; carry on with completions alone.
                None => { journal = None; continue; }
            },
            () = sleep_until(due), if due.is_some() => Wake::Due,
        };
        let closed = matches!(woke, Wake::Closed);
        match woke {
            Wake::Completion(c) => take(c, &mut ids, &mut flushes),
            Wake::Entry(e) => pending.push(e),
            Wake::Due | Wake::Closed => {}
        }
        while ids.len() < MAX_BATCH {
            match completions.try_recv() {
                Ok(c) => take(c, &mut ids, &mut flushes),
                Err(_) => break,
            }
        }
        if let Some(rx) = &mut journal {
            while pending.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(e) => pending.push(e),
                    Err(_) => break,
                }
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
        }
        for reply in flushes {
            let _ = reply.send(());
        }
        if closed {
            break;
        }
    }
}

/// The next journal entry, or never when there is no journal.
async fn next_entry(journal: &mut Option<mpsc::Receiver<NewEntry>>) -> Option<NewEntry> {
    match journal {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

enum Wake {
    Completion(Completion),
    Entry(NewEntry),
    /// The pending journal entries have waited long enough.
    Due,
    /// Every completion sender is gone: write what is left and stop.
    Closed,
}

fn take(c: Completion, ids: &mut Vec<i64>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match c {
        Completion::Done(id) => ids.push(id),
        Completion::Flush(reply) => flushes.push(reply),
    }
}

/// Writes one batch. When the combined transaction fails, the completions are written alone:
/// a journal that cannot be written must not make finished jobs run again.
async fn write(store: &JobStore, ids: &[i64], entries: &[NewEntry]) {
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
