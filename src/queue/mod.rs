//! Between the HTTP edge and the pipeline: the durable queue.
//!
//! - this file: [`JobQueue`], the accepting side: persists accepted events (deduplicated) in
//!   batches, answers each sender after its batch is committed, and is the one interface the
//!   HTTP edge has to the store (readiness, dead letters, replay);
//! - `worker`: the [`WorkerPool`] that claims due jobs, runs the pipeline and decides what a
//!   failure means (`next_step`, a pure function);
//! - `finish`: the one writer of finished jobs and their journeys, a transaction per batch;
//! - `journal`: turns each run's journey into an encoded entry, on the worker that ran it, for
//!   that writer (with the job's completion), never blocking the worker;
//! - `store`: the SQLite/PostgreSQL tables (the journal's in `store::journal`); `record`: the
//!   stored form of a job.

mod finish;
mod journal;
mod record;
pub mod store;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::config::{JournalSettings, QueueSettings};
use crate::domain::{EnrichmentJob, ParticipantId};
use crate::metrics;
use crate::phone::CallerNumber;

pub use record::{StoredJob, Unreadable};
pub use store::{
    DeadLetter, EncodedSteps, Enqueued, JobStore, JournalEntry, JournalFilter, NewEntry,
    QueueStats, StoreError,
};
pub use worker::{next_step, GiveUp, JobOutcome, NextStep, WorkerPool};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is full")]
    Full,
    #[error("attrsync is shutting down")]
    Closed,
    /// The store could not persist the event: it was not accepted, the sender should retry.
    #[error("the queue store is unavailable")]
    Unavailable,
}

/// The accepting side, cloned into the HTTP handlers.
#[derive(Clone)]
pub struct JobQueue {
    store: Arc<JobStore>,
    /// To the task that writes accepted events in batches.
    writer: mpsc::Sender<EnqueueRequest>,
    wake: Arc<Notify>,
    closed: Arc<AtomicBool>,
    /// Last known number of queued and running jobs (refreshed by the pool, bumped on enqueue):
    /// the capacity check must not cost a COUNT per request.
    depth: Arc<AtomicU64>,
    capacity: u64,
    /// `[journal]`, when the journey of each event is kept (see [`JobQueue::with_journal`]).
    journal: Option<JournalSettings>,
}

impl JobQueue {
    /// Must be called inside the runtime: it starts the batch writer.
    pub fn new(store: Arc<JobStore>, settings: &QueueSettings) -> Self {
        let (writer, requests) = mpsc::channel(4096);
        tokio::spawn(write_batches(
            store.clone(),
            requests,
            settings.dedup_window(),
        ));
        Self {
            writer,
            store,
            wake: Arc::new(Notify::new()),
            closed: Arc::new(AtomicBool::new(false)),
            depth: Arc::new(AtomicU64::new(0)),
            capacity: settings.capacity as u64,
            journal: None,
        }
    }

    /// Keeps each event's journey as `journal` says (nothing when `journal.enabled` is false).
    /// Call before starting the worker pool.
    pub fn with_journal(mut self, journal: &JournalSettings) -> Self {
        self.journal = journal.enabled.then(|| journal.clone());
        self
    }

    pub fn journal_enabled(&self) -> bool {
        self.journal.is_some()
    }

    /// Journal entries matching `filter`, newest first.
    pub async fn journal(&self, filter: &JournalFilter) -> Result<Vec<JournalEntry>, StoreError> {
        self.store.journal(filter).await
    }

    /// Opens the store `[queue]` names and starts accepting.
    pub async fn from_settings(settings: &QueueSettings) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let store = JobStore::connect(settings)
            .await
            .context("opening the queue store")?;
        Ok(Self::new(Arc::new(store), settings))
    }

    /// Persists the job; `Ok` means it is on disk (or was already, as a duplicate).
    pub async fn submit(&self, mut job: EnrichmentJob) -> Result<Enqueued, QueueError> {
        if job.trace_parent.is_none() {
            // The request's trace, so the worker's span continues it (none when traces are off).
            job.trace_parent = crate::telemetry::traceparent();
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        if self.depth.load(Ordering::Relaxed) >= self.capacity {
            return Err(QueueError::Full);
        }
        let payload = StoredJob::encode(&job).map_err(|e| {
            tracing::error!(error = %e, "could not encode a job");
            QueueError::Unavailable
        })?;
        let (reply, outcome) = oneshot::channel();
        let request = EnqueueRequest {
            job: store::NewJob {
                event_key: format!("{}:{}", job.source.as_str(), job.event_id),
                dedup_key: dedup_key(&job),
                payload,
            },
            reply,
        };
        self.writer
            .send(request)
            .await
            .map_err(|_| QueueError::Unavailable)?;
        let outcome = outcome
            .await
            .map_err(|_| QueueError::Unavailable)?
            .map_err(|()| QueueError::Unavailable)?;
        match outcome {
            Enqueued::Accepted => {
                self.depth.fetch_add(1, Ordering::Relaxed);
                self.wake.notify_one();
            }
            Enqueued::Duplicate => {
                ::metrics::counter!(metrics::DEDUP_HITS, "source" => job.source.as_str())
                    .increment(1);
            }
        }
        Ok(outcome)
    }

    /// Jobs queued or running, from the store (tests and readiness).
    pub async fn pending(&self) -> Result<u64, StoreError> {
        Ok(self.store.stats().await?.depth)
    }

    /// Tells idle workers there is work.
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    /// Last known number of queued and running jobs (no database round trip).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// The queue's PostgreSQL pool (`None` on SQLite): the CRM's shared budget and cache live
    /// in the same database and schema.
    pub fn postgres_pool(&self) -> Option<sqlx::PgPool> {
        self.store.postgres_pool()
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// A cheap round trip through the store, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// Dead letters, newest first.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>, StoreError> {
        self.store.dead_letters(limit).await
    }

    pub async fn dead_letter(&self, id: i64) -> Result<Option<DeadLetter>, StoreError> {
        self.store.dead_letter_by_id(id).await
    }

    /// Queues a dead letter again as a fresh job and wakes a worker; `false` if there is none.
    pub async fn replay(&self, id: i64) -> Result<bool, StoreError> {
        let replayed = self.store.replay(id).await?;
        if replayed {
            self.wake_workers();
        }
        Ok(replayed)
    }
}

struct EnqueueRequest {
    job: store::NewJob,
    reply: oneshot::Sender<Result<Enqueued, ()>>,
}

/// Writes accepted events in batches: every event that arrived while the previous commit was
/// being written goes into the next transaction, so a burst costs one commit per batch rather
/// than per event. Each sender still gets its own answer, after its batch is on disk.
async fn write_batches(
    store: Arc<JobStore>,
    mut requests: mpsc::Receiver<EnqueueRequest>,
    window: Duration,
) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        // In one order everywhere, so two replicas' batches never lock the same keys in opposite
        // orders (a deadlock on PostgreSQL).
        batch.sort_by(|a, b| a.job.event_key.cmp(&b.job.event_key));
        let (jobs, replies): (Vec<store::NewJob>, Vec<_>) =
            batch.into_iter().map(|r| (r.job, r.reply)).unzip();
        let mut result = store.enqueue_many(&jobs, window).await;
        if let Err(e) = &result {
            // One more try for a transient conflict: the senders are waiting for an answer.
            tracing::warn!(events = jobs.len(), error = %e, "retrying a batch of events");
            result = store.enqueue_many(&jobs, window).await;
        }
        match result {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(events = jobs.len(), error = %e, "could not persist events");
                for reply in replies {
                    let _ = reply.send(Err(()));
                }
            }
        }
    }
}

/// "The same work": conversation, participant, customer keys and the sender's own attributes.
fn dedup_key(job: &EnrichmentJob) -> String {
    let keys = &job.keys;
    let mut hasher = sha2::Sha256::new();
    for part in [
        keys.customer_id.as_deref().unwrap_or(""),
        keys.external_contact_id.as_deref().unwrap_or(""),
        &keys
            .phone
            .as_ref()
            .map(CallerNumber::canonical)
            .unwrap_or_default(),
        &keys.email.as_deref().unwrap_or("").to_lowercase(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (k, v) in &job.extra_attributes {
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}/{}/{hex}",
        job.conversation_id,
        job.participant_id
            .as_ref()
            .map(ParticipantId::as_str)
            .unwrap_or("-")
    )
}
