//! Between ingest and the pipeline: `JobQueue` persists accepted events (deduplicated) in the
//! durable store, and `WorkerPool` claims due jobs, runs the pipeline, and decides what a failure
//! means: retry later (backoff with jitter, `Retry-After` honoured), or give up into the dead
//! letters once the event has outlived the conversation's useful life.
//!
//! On shutdown the pool stops claiming, gives running jobs the grace period, and hands back to the
//! store whatever is still running, so another replica or the next start picks it up.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder as _;
use phonenumber::country;
use sha2::Digest as _;
use tokio::sync::{mpsc, oneshot, watch, Notify, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::config::QueueSettings;
use crate::domain::{ConversationId, CustomerKeys, EnrichmentJob, ParticipantId, Source};
use crate::metrics;
use crate::phone::CallerNumber;
use crate::pipeline::Pipeline;
use crate::retry::Retryable;
use crate::store::{now_ms, ClaimedJob, Enqueued, JobPayload, JobStore, NewJob, StoreError};

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
}

impl JobQueue {
    /// Must be called inside the runtime: it starts the batch writer.
    pub fn new(store: Arc<JobStore>, settings: &QueueSettings) -> Self {
        let dedup_window = Duration::from_secs(settings.dedup_window_secs);
        let (writer, requests) = mpsc::channel(4096);
        tokio::spawn(write_batches(store.clone(), requests, dedup_window));
        Self {
            writer,
            store,
            wake: Arc::new(Notify::new()),
            closed: Arc::new(AtomicBool::new(false)),
            depth: Arc::new(AtomicU64::new(0)),
            capacity: settings.capacity as u64,
        }
    }

    /// Persists the job; `Ok` means it is on disk (or was already, as a duplicate).
    pub async fn submit(&self, job: EnrichmentJob) -> Result<Enqueued, QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        if self.depth.load(Ordering::Relaxed) >= self.capacity {
            return Err(QueueError::Full);
        }
        let (reply, outcome) = oneshot::channel();
        let request = EnqueueRequest {
            job: NewJob {
                event_key: format!("{}:{}", job.source.as_str(), job.event_id),
                dedup_key: dedup_key(&job),
                payload: to_payload(&job),
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

    /// Tells idle workers there is work (e.g. a replayed dead letter).
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    pub fn store(&self) -> &JobStore {
        &self.store
    }

    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

struct EnqueueRequest {
    job: NewJob,
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
        let (jobs, replies): (Vec<NewJob>, Vec<_>) =
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

fn to_payload(job: &EnrichmentJob) -> JobPayload {
    JobPayload {
        source: job.source.as_str().to_owned(),
        event_id: job.event_id.clone(),
        request_id: job.request_id.clone(),
        conversation_id: job.conversation_id.to_string(),
        participant_id: job.participant_id.as_ref().map(ToString::to_string),
        customer_id: job.keys.customer_id.clone(),
        external_contact_id: job.keys.external_contact_id.clone(),
        phone: job.keys.phone.as_ref().map(|p| p.raw().to_owned()),
        email: job.keys.email.clone(),
        extra_attributes: job.extra_attributes.clone(),
    }
}

fn from_claimed(claimed: &ClaimedJob, region: country::Id) -> Result<EnrichmentJob, String> {
    let p = &claimed.payload;
    let source = match p.source.as_str() {
        "genesys" => Source::Genesys,
        "cti" => Source::Cti,
        "lookup" => Source::Lookup,
        other => return Err(format!("unknown source {other}")),
    };
    Ok(EnrichmentJob {
        source,
        event_id: p.event_id.clone(),
        request_id: p.request_id.clone(),
        conversation_id: ConversationId::parse(&p.conversation_id)
            .map_err(|e| format!("conversationId {e}"))?,
        participant_id: p
            .participant_id
            .as_deref()
            .map(ParticipantId::parse)
            .transpose()
            .map_err(|e| format!("participantId {e}"))?,
        keys: CustomerKeys {
            customer_id: p.customer_id.clone(),
            external_contact_id: p.external_contact_id.clone(),
            phone: p
                .phone
                .as_deref()
                .and_then(|n| CallerNumber::parse(n, region)),
            email: p.email.clone(),
        },
        extra_attributes: p.extra_attributes.clone(),
        received_at_ms: claimed.created_at_ms,
        attempt: claimed.attempts,
    })
}

/// The processing side: claims due jobs and runs at most `workers` at once.
pub struct WorkerPool {
    queue: JobQueue,
    stop: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    completions: mpsc::UnboundedSender<Completion>,
}

struct Context {
    pipeline: Arc<Pipeline>,
    queue: JobQueue,
    region: country::Id,
    settings: QueueSettings,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    completions: mpsc::UnboundedSender<Completion>,
}

enum Completion {
    Done(i64),
    /// Write what is pending, then answer.
    Flush(oneshot::Sender<()>),
}

/// Records finished jobs in batches: under load, one commit covers every job that finished
/// while the previous one was being written. A job whose completion is lost in a crash runs
/// again after its lease, reading the participant first, so nothing is written twice.
async fn record_completions(store: Arc<JobStore>, mut rx: mpsc::UnboundedReceiver<Completion>) {
    while let Some(first) = rx.recv().await {
        let mut ids = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Completion::Done(id) => ids.push(id),
                Completion::Flush(reply) => flushes.push(reply),
            }
            next = if ids.len() < 512 {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(e) = store.complete_many(&ids).await {
            tracing::error!(jobs = ids.len(), error = %e, "could not record finished jobs; they will run again after their lease");
        }
        for reply in flushes {
            let _ = reply.send(());
        }
    }
}

pub fn start(
    pipeline: Arc<Pipeline>,
    queue: JobQueue,
    settings: &QueueSettings,
    region: country::Id,
) -> WorkerPool {
    let (stop, stop_rx) = watch::channel(false);
    let in_flight = Arc::new(Mutex::new(HashSet::new()));
    let (completions, completed) = mpsc::unbounded_channel();
    tokio::spawn(record_completions(queue.store.clone(), completed));
    let context = Arc::new(Context {
        pipeline,
        queue: queue.clone(),
        region,
        settings: settings.clone(),
        in_flight: in_flight.clone(),
        completions: completions.clone(),
    });
    let dispatcher = tokio::spawn(dispatch(context, stop_rx));
    WorkerPool {
        queue,
        stop,
        dispatcher,
        in_flight,
        completions,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn dispatch(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let workers = ctx.settings.workers;
    let slots = Arc::new(Semaphore::new(workers));
    let lease = Duration::from_secs(ctx.settings.lease_secs);
    let poll = Duration::from_millis(ctx.settings.poll_interval_ms);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(2));
    let mut last_purge = tokio::time::Instant::now();
    loop {
        if *stop.borrow() {
            break;
        }
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match ctx.queue.store.claim(&owner, free.min(64), lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::error!(error = %e, "could not claim jobs");
                    Vec::new()
                }
            }
        };
        let idle = claimed.is_empty();
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            lock(&ctx.in_flight).insert(job.id);
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let id = job.id;
                run_job(&ctx, job).await;
                lock(&ctx.in_flight).remove(&id);
                drop(permit);
            });
        }
        if idle {
            tokio::select! {
                _ = ctx.queue.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = housekeeping.tick() => refresh_stats(&ctx, &mut last_purge).await,
                // A full pool: wait for a slot before claiming again.
                _ = slots.acquire(), if free == 0 => {}
                _ = stop.changed() => {}
            }
        }
    }
}

async fn refresh_stats(ctx: &Context, last_purge: &mut tokio::time::Instant) {
    match ctx.queue.store.stats().await {
        Ok(stats) => {
            ctx.queue.depth.store(stats.depth, Ordering::Relaxed);
            ::metrics::gauge!(metrics::QUEUE_DEPTH).set(stats.depth as f64);
            ::metrics::gauge!(metrics::QUEUE_OLDEST_AGE).set(stats.oldest_age_ms as f64 / 1000.0);
            ::metrics::gauge!(metrics::DEAD_LETTERS).set(stats.dead_letters as f64);
        }
        Err(e) => tracing::warn!(error = %e, "could not read queue statistics"),
    }
    if last_purge.elapsed() > Duration::from_secs(60) {
        *last_purge = tokio::time::Instant::now();
        let retention = Duration::from_secs(ctx.settings.dedup_retention_secs);
        if let Err(e) = ctx.queue.store.purge(retention).await {
            tracing::warn!(error = %e, "could not purge finished jobs");
        }
    }
}

async fn run_job(ctx: &Context, claimed: ClaimedJob) {
    let job = match from_claimed(&claimed, ctx.region) {
        Ok(job) => job,
        Err(reason) => {
            tracing::error!(job_id = claimed.id, reason = %reason, "unreadable job");
            let _ = ctx.queue.store.dead_letter(claimed.id, &reason).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "job",
        request_id = %job.request_id,
        event_id = %job.event_id,
        conversation_id = %job.conversation_id,
        participant_id = tracing::field::Empty,
        source = job.source.as_str(),
        attempt = job.attempt,
    );
    async {
        let outcome = match ctx.pipeline.process(&job).await {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), "event processed");
                if ctx.completions.send(Completion::Done(claimed.id)).is_err() {
                    finish(claimed.id, ctx.queue.store.complete(claimed.id).await);
                }
                outcome.as_str()
            }
            Err(e) => handle_failure(ctx, &claimed, &e).await,
        };
        ::metrics::counter!(metrics::EVENTS, "source" => job.source.as_str(), "outcome" => outcome)
            .increment(1);
        if outcome != "retry_scheduled" {
            let elapsed_ms = (now_ms() - job.received_at_ms).max(0) as f64;
            ::metrics::histogram!(metrics::PIPELINE_DURATION, "source" => job.source.as_str())
                .record(elapsed_ms / 1000.0);
        }
    }
    .instrument(span)
    .await
}

fn finish(id: i64, result: Result<(), StoreError>) {
    if let Err(e) = result {
        // The lease will run out and the job run again; a repeated run reads the participant
        // first, so it cannot write twice.
        tracing::error!(job_id = id, error = %e, "could not record the job's result");
    }
}

async fn handle_failure(
    ctx: &Context,
    claimed: &ClaimedJob,
    error: &crate::pipeline::PipelineError,
) -> &'static str {
    let store = &ctx.queue.store;
    let settings = &ctx.settings;
    if !error.is_retryable() {
        tracing::error!(error = %error, "event failed; not retryable");
        finish(
            claimed.id,
            store.dead_letter(claimed.id, &error.to_string()).await,
        );
        ::metrics::counter!(metrics::DEAD_LETTERED).increment(1);
        return "failed";
    }
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(settings.retry_base_ms))
        .with_max_delay(Duration::from_millis(settings.retry_max_ms))
        .with_jitter()
        .without_max_times()
        .build()
        .nth(claimed.attempts.saturating_sub(1) as usize)
        .unwrap_or(Duration::from_millis(settings.retry_max_ms));
    let delay = error.retry_after().unwrap_or(backoff);
    let run_at = now_ms() + delay.as_millis() as i64;
    let horizon =
        claimed.created_at_ms + Duration::from_secs(settings.retry_horizon_secs).as_millis() as i64;
    if claimed.attempts >= settings.max_attempts || run_at > horizon {
        let reason = format!(
            "gave up after {} attempts ({}): {error}",
            claimed.attempts,
            if run_at > horizon {
                "past queue.retry_horizon_secs"
            } else {
                "queue.max_attempts reached"
            }
        );
        tracing::error!(reason = %reason, "event moved to the dead letters");
        finish(claimed.id, store.dead_letter(claimed.id, &reason).await);
        ::metrics::counter!(metrics::DEAD_LETTERED).increment(1);
        return "dead_lettered";
    }
    tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "event failed; will retry");
    finish(
        claimed.id,
        store.retry_at(claimed.id, run_at, &error.to_string()).await,
    );
    ::metrics::counter!(metrics::QUEUE_RETRIES).increment(1);
    "retry_scheduled"
}

impl WorkerPool {
    /// Stops claiming, lets running jobs finish within `grace`, and hands the rest back.
    pub async fn shutdown(self, grace: Duration) {
        self.queue.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        let _ = self.dispatcher.await;
        let deadline = tokio::time::Instant::now() + grace;
        while !lock(&self.in_flight).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (flushed, done) = oneshot::channel();
        if self.completions.send(Completion::Flush(flushed)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), done).await;
        }
        let unfinished: Vec<i64> = lock(&self.in_flight).iter().copied().collect();
        for id in &unfinished {
            if let Err(e) = self.queue.store.release(*id).await {
                tracing::error!(job_id = id, error = %e, "could not hand a job back; its lease will expire");
            }
        }
        if unfinished.is_empty() {
            tracing::info!("worker pool stopped");
        } else {
            tracing::warn!(
                returned = unfinished.len(),
                "grace period over; unfinished events handed back to the queue"
            );
        }
    }
}
