//! The bounded in-memory queue between ingest and the pipeline, and its worker pool.
//!
//! Ingest answers 202 once an event is here; a full queue is answered 503 + Retry-After rather
//! than growing without bound. On shutdown the queue stops taking events, the workers drain what
//! was accepted, and whatever is still running after the grace period is abandoned (and logged).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::domain::EnrichmentJob;
use crate::metrics;
use crate::pipeline::Pipeline;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is full")]
    Full,
    #[error("attrsync is shutting down")]
    Closed,
}

/// The sending side, cloned into the HTTP handlers.
#[derive(Clone)]
pub struct JobQueue {
    tx: mpsc::Sender<EnrichmentJob>,
    closed: Arc<AtomicBool>,
    /// Accepted and not yet finished (queued plus running).
    pending: Arc<AtomicUsize>,
}

impl JobQueue {
    pub fn submit(&self, job: EnrichmentJob) -> Result<(), QueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(QueueError::Closed);
        }
        // Counted before sending, so a fast worker can never decrement first.
        self.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.tx.try_send(job) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                mpsc::error::TrySendError::Full(_) => QueueError::Full,
                mpsc::error::TrySendError::Closed(_) => QueueError::Closed,
            });
        }
        self.record_depth();
        Ok(())
    }

    /// Events accepted and not yet finished, queued or running.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn record_depth(&self) {
        ::metrics::gauge!(metrics::QUEUE_DEPTH).set(self.depth() as f64);
    }
}

/// The receiving side: a dispatcher task handing jobs to at most `workers` concurrent tasks.
pub struct WorkerPool {
    queue: JobQueue,
    stop: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
}

pub fn start(pipeline: Arc<Pipeline>, capacity: usize, workers: usize) -> (JobQueue, WorkerPool) {
    let (tx, rx) = mpsc::channel(capacity);
    let queue = JobQueue {
        tx,
        closed: Arc::new(AtomicBool::new(false)),
        pending: Arc::new(AtomicUsize::new(0)),
    };
    let (stop, stop_rx) = watch::channel(false);
    let dispatcher = tokio::spawn(dispatch(rx, stop_rx, pipeline, workers, queue.clone()));
    (
        queue.clone(),
        WorkerPool {
            queue,
            stop,
            dispatcher,
        },
    )
}

async fn dispatch(
    mut rx: mpsc::Receiver<EnrichmentJob>,
    mut stop: watch::Receiver<bool>,
    pipeline: Arc<Pipeline>,
    workers: usize,
    queue: JobQueue,
) {
    let slots = Arc::new(Semaphore::new(workers));
    let mut stopping = false;
    loop {
        let job = tokio::select! {
            job = rx.recv() => job,
            // Also fires when the pool is dropped without `shutdown`.
            _ = stop.changed(), if !stopping => {
                // Take nothing new, but keep draining what was already accepted.
                stopping = true;
                rx.close();
                continue;
            }
        };
        let Some(job) = job else { break };
        queue.record_depth();
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let pipeline = pipeline.clone();
        let pending = queue.pending.clone();
        tokio::spawn(async move {
            run_job(&pipeline, job).await;
            pending.fetch_sub(1, Ordering::AcqRel);
            drop(permit);
        });
    }
    // Wait for the jobs still running.
    let _ = slots.acquire_many(workers as u32).await;
}

async fn run_job(pipeline: &Pipeline, job: EnrichmentJob) {
    let span = tracing::info_span!(
        "job",
        request_id = %job.request_id,
        event_id = %job.event_id,
        conversation_id = %job.conversation_id,
        participant_id = tracing::field::Empty,
        source = job.source.as_str(),
    );
    async {
        let outcome = match pipeline.process(&job).await {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), "event processed");
                outcome.as_str()
            }
            Err(e) => {
                tracing::error!(error = %e, "event failed");
                "failed"
            }
        };
        ::metrics::counter!(metrics::EVENTS, "source" => job.source.as_str(), "outcome" => outcome)
            .increment(1);
        ::metrics::histogram!(metrics::PIPELINE_DURATION, "source" => job.source.as_str())
            .record(job.received_at.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await
}

impl WorkerPool {
    /// Stops intake, drains accepted events and waits for running ones, for at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.queue.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        let waiting = self.queue.depth();
        match tokio::time::timeout(grace, self.dispatcher).await {
            Ok(_) => tracing::info!(drained = waiting, "worker pool stopped"),
            Err(_) => tracing::warn!(
                left = self.queue.depth(),
                grace_secs = grace.as_secs(),
                "grace period over; abandoning unfinished events"
            ),
        }
    }
}
