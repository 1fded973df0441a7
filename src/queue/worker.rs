//! The processing side of the queue: [`WorkerPool`] claims due jobs, runs at most
//! `queue.workers` of them at once through the pipeline, records finished jobs in batches, and
//! decides what a failure means with [`next_step`], a pure function: retry later (backoff with
//! jitter, `Retry-After` honoured), or give up into the dead letters once the event has
//! outlived the conversation's useful life.
//!
//! On shutdown the pool stops claiming, gives running jobs the grace period, and hands back to
//! the store whatever is still running, so another replica or the next start picks it up.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phonenumber::country;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use super::finish::Completion;
use super::journal::Backlog;
use super::store::{now_ms, ClaimedJob, JobStore, StoreError};
use super::JobQueue;
use crate::config::QueueSettings;
use crate::metrics;
use crate::pipeline::{Journey, Outcome, Pipeline, PipelineError, StepKind};
use crate::retry::Retryable;

/// How one run of a job ended, as the queue sees it: the `outcome` label of
/// `attrsync_events_total` for events that went through the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// The pipeline finished the job, with this outcome.
    Processed(Outcome),
    /// A transient failure; the job runs again later.
    RetryScheduled,
    /// Retried until the attempts or the horizon ran out; moved to the dead letters.
    DeadLettered,
    /// A failure no retry can fix; moved to the dead letters at once.
    Failed,
}

impl JobOutcome {
    /// Every worker-side label, for the metrics catalogue.
    pub const QUEUE_LABELS: [&'static str; 3] = ["retry_scheduled", "dead_lettered", "failed"];

    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Processed(outcome) => outcome.as_str(),
            JobOutcome::RetryScheduled => Self::QUEUE_LABELS[0],
            JobOutcome::DeadLettered => Self::QUEUE_LABELS[1],
            JobOutcome::Failed => Self::QUEUE_LABELS[2],
        }
    }

    /// Whether the job is over (it will not run again), so its duration is recorded.
    pub fn is_final(self) -> bool {
        self != JobOutcome::RetryScheduled
    }
}

/// Why a retryable failure still ends in the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUp {
    /// `queue.max_attempts` reached.
    MaxAttempts,
    /// The next attempt would fall after `queue.retry_horizon_secs`.
    PastHorizon,
}

impl GiveUp {
    fn as_str(self) -> &'static str {
        match self {
            GiveUp::MaxAttempts => "queue.max_attempts reached",
            GiveUp::PastHorizon => "past queue.retry_horizon_secs",
        }
    }
}

/// What to do with a job whose run just failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Run it again this long from now.
    Retry(Duration),
    DeadLetter(GiveUp),
    /// Not retryable: straight to the dead letters.
    Fail,
}

/// The retry decision for a failed run: `attempt` (1 for the first), the error, the job's
/// `age` now (since it was accepted), the `[queue]` settings, and `jitter` in `[0, 1)` (the
/// caller draws it, so this stays a pure function). The delay is the upstream's `Retry-After`
/// if it gave one, else exponential backoff from `queue.retry_base_ms`, capped at
/// `queue.retry_max_ms`, plus up to as much again of jitter.
pub fn next_step(
    attempt: u32,
    error: &impl Retryable,
    age: Duration,
    settings: &QueueSettings,
    jitter: f32,
) -> NextStep {
    if !error.is_retryable() {
        return NextStep::Fail;
    }
    let delay = error
        .retry_after()
        .unwrap_or_else(|| backoff(attempt, settings.retry_base(), settings.retry_max(), jitter));
    if age.saturating_add(delay) > settings.retry_horizon() {
        NextStep::DeadLetter(GiveUp::PastHorizon)
    } else if attempt >= settings.max_attempts {
        NextStep::DeadLetter(GiveUp::MaxAttempts)
    } else {
        NextStep::Retry(delay)
    }
}

/// `base`, doubling with each attempt up to `max`, then `jitter` of that added.
fn backoff(attempt: u32, base: Duration, max: Duration, jitter: f32) -> Duration {
    let step = attempt.saturating_sub(1);
    let delay = if step == 0 {
        base
    } else {
        base.saturating_mul(2u32.saturating_pow(step)).min(max)
    };
    delay.saturating_add(delay.mul_f32(jitter.clamp(0.0, 1.0)))
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
    store: Arc<JobStore>,
    queue: JobQueue,
    /// Only for rows stored before the versioned format (see `record`).
    legacy_region: country::Id,
    settings: QueueSettings,
    in_flight: Arc<Mutex<HashSet<i64>>>,
    completions: mpsc::UnboundedSender<Completion>,
    /// The journal entries on their way to the writer, when `[journal]` is on.
    journal: Option<Arc<Backlog>>,
}

impl WorkerPool {
    /// Starts claiming and running `queue`'s jobs through `pipeline`. `legacy_region` is
    /// `phone.default_region`, for rows stored before the versioned format.
    pub fn start(
        pipeline: Arc<Pipeline>,
        queue: JobQueue,
        settings: &QueueSettings,
        legacy_region: country::Id,
    ) -> WorkerPool {
        let (stop, stop_rx) = watch::channel(false);
        let in_flight = Arc::new(Mutex::new(HashSet::new()));
        let (completions, completed) = mpsc::unbounded_channel();
        let backlog = Arc::new(Backlog::default());
        tokio::spawn(super::finish::record(
            queue.store.clone(),
            completed,
            backlog.clone(),
        ));
        let journal = queue.journal.is_some().then_some(backlog);
        let context = Arc::new(Context {
            pipeline,
            store: queue.store.clone(),
            queue: queue.clone(),
            legacy_region,
            settings: settings.clone(),
            in_flight: in_flight.clone(),
            completions: completions.clone(),
            journal,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn dispatch(ctx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let owner = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
    let slots = Arc::new(Semaphore::new(ctx.settings.workers));
    let lease = ctx.settings.lease();
    let poll = ctx.settings.poll_interval();
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
            match ctx.store.claim(&owner, free.min(64), lease).await {
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
    match ctx.store.stats().await {
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
        if let Err(e) = ctx.store.purge(ctx.settings.dedup_retention()).await {
            tracing::warn!(error = %e, "could not purge finished jobs");
        }
        if let Some(journal) = &ctx.queue.journal {
            let pruned = ctx
                .store
                .prune_journal(journal.retention(), journal.max_events)
                .await;
            if let Err(e) = pruned {
                tracing::warn!(error = %e, "could not prune the journal");
            }
        }
    }
}

async fn run_job(ctx: &Context, claimed: ClaimedJob) {
    let job = match claimed.payload.decode(ctx.legacy_region) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(job_id = claimed.id, reason = %e, "unreadable job");
            let _ = ctx.store.dead_letter(claimed.id, &e.to_string()).await;
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
        attempt = claimed.attempts,
        queue_wait_ms = (now_ms() - claimed.created_at_ms).max(0),
    );
    crate::telemetry::continue_trace(&span, job.trace_parent.as_deref());
    async {
        let mut journey = Journey::default();
        journey.record(StepKind::Arrived {
            source: job.source.as_str().to_owned(),
            accepted_at_ms: claimed.created_at_ms,
            waited_ms: (now_ms() - claimed.created_at_ms).max(0) as u64,
            attempt: claimed.attempts,
        });
        let processed = ctx
            .pipeline
            .process_recorded(&job, claimed.attempts, &mut journey)
            .await;
        let (outcome, done) = match processed {
            Ok(outcome) => {
                tracing::info!(outcome = outcome.as_str(), "event processed");
                (JobOutcome::Processed(outcome), true)
            }
            Err(e) => (handle_failure(ctx, &claimed, &e, &mut journey).await, false),
        };
        journey.record(StepKind::Outcome {
            outcome: outcome.as_str().to_owned(),
        });
        let entry = ctx.journal.as_ref().and_then(|backlog| {
            super::journal::entry(backlog, &claimed, &job, outcome.as_str(), journey)
        });
        // A finished job's entry rides in its completion: one message, one wake-up of the
        // writer (see `journal`).
        let message = if done {
            Some(Completion::Done(claimed.id, entry))
        } else {
            entry.map(Completion::Journal)
        };
        if let Some(message) = message {
            if ctx.completions.send(message).is_err() && done {
                finish(claimed.id, ctx.store.complete(claimed.id).await);
            }
        }
        ::metrics::counter!(metrics::EVENTS, "source" => job.source.as_str(), "outcome" => outcome.as_str())
            .increment(1);
        if outcome.is_final() {
            let elapsed_ms = (now_ms() - claimed.created_at_ms).max(0) as f64;
            ::metrics::histogram!(metrics::PIPELINE_DURATION, "source" => job.source.as_str())
                .record(elapsed_ms / 1000.0);
        }
    }
    .instrument(span)
    .await;
}

fn finish(id: i64, result: Result<(), StoreError>) {
    if let Err(e) = result {
        // The lease will run out and the job run again; a repeated run reads the participant
        // first, so it cannot write twice.
        tracing::error!(job_id = id, error = %e, "could not record the job's result");
    }
}

/// Carries out [`next_step`] for a failed run.
async fn handle_failure(
    ctx: &Context,
    claimed: &ClaimedJob,
    error: &PipelineError,
    journey: &mut Journey,
) -> JobOutcome {
    let store = &ctx.store;
    let now = now_ms();
    let age = Duration::from_millis((now - claimed.created_at_ms).max(0) as u64);
    let step = next_step(
        claimed.attempts,
        error,
        age,
        &ctx.settings,
        rand::random::<f32>(),
    );
    match step {
        NextStep::Fail => {
            tracing::error!(error = %error, "event failed; not retryable");
            journey.record(StepKind::DeadLettered {
                reason: format!("not retryable: {error}"),
            });
            finish(
                claimed.id,
                store.dead_letter(claimed.id, &error.to_string()).await,
            );
            ::metrics::counter!(metrics::DEAD_LETTERED).increment(1);
            JobOutcome::Failed
        }
        NextStep::DeadLetter(why) => {
            let reason = GaveUp {
                attempts: claimed.attempts,
                why,
                error,
            }
            .to_string();
            tracing::error!(reason = %reason, "event moved to the dead letters");
            journey.record(StepKind::DeadLettered {
                reason: reason.clone(),
            });
            finish(claimed.id, store.dead_letter(claimed.id, &reason).await);
            ::metrics::counter!(metrics::DEAD_LETTERED).increment(1);
            JobOutcome::DeadLettered
        }
        NextStep::Retry(delay) => {
            tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "event failed; will retry");
            journey.record(StepKind::Retry {
                reason: error.to_string(),
                delay_ms: delay.as_millis() as u64,
            });
            let run_at = now + delay.as_millis() as i64;
            finish(
                claimed.id,
                store.retry_at(claimed.id, run_at, &error.to_string()).await,
            );
            ::metrics::counter!(metrics::QUEUE_RETRIES).increment(1);
            JobOutcome::RetryScheduled
        }
    }
}

/// A dead letter's last error after retries ran out.
struct GaveUp<'a, E> {
    attempts: u32,
    why: GiveUp,
    error: &'a E,
}

impl<E: fmt::Display> fmt::Display for GaveUp<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up after {} attempts ({}): {}",
            self.attempts,
            self.why.as_str(),
            self.error
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream failure: retryable or not, with or without a `Retry-After`.
    struct Failure {
        retryable: bool,
        retry_after: Option<Duration>,
    }

    impl Retryable for Failure {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    const TRANSIENT: Failure = Failure {
        retryable: true,
        retry_after: None,
    };

    fn settings() -> QueueSettings {
        serde_json::from_value(serde_json::json!({
            "backend": "sqlite", "sqlite_path": "unused.db", "postgres_url": "",
            "postgres_schema": "", "postgres_max_connections": 1, "capacity": 10, "workers": 1,
            "lease_secs": 30, "poll_interval_ms": 200, "dedup_window_secs": 600,
            "dedup_retention_secs": 90000, "retry_base_ms": 1000, "retry_max_ms": 30000,
            "max_attempts": 20, "retry_horizon_secs": 300
        }))
        .expect("queue settings")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_failure_no_retry_can_fix_fails_at_once() {
        let permanent = Failure {
            retryable: false,
            retry_after: Some(secs(1)),
        };
        assert_eq!(
            next_step(1, &permanent, Duration::ZERO, &settings(), 0.0),
            NextStep::Fail
        );
    }

    #[test]
    fn without_jitter_the_delay_doubles_from_the_base_up_to_the_cap() {
        let delays: Vec<NextStep> = (1..=7)
            .map(|attempt| next_step(attempt, &TRANSIENT, Duration::ZERO, &settings(), 0.0))
            .collect();
        assert_eq!(
            delays,
            [1, 2, 4, 8, 16, 30, 30].map(|s| NextStep::Retry(secs(s)))
        );
    }

    #[test]
    fn jitter_adds_up_to_as_much_again() {
        let step = next_step(2, &TRANSIENT, Duration::ZERO, &settings(), 0.5);
        assert_eq!(step, NextStep::Retry(Duration::from_millis(3000)));
        let most = next_step(6, &TRANSIENT, Duration::ZERO, &settings(), 0.999_999);
        assert!(matches!(most, NextStep::Retry(d) if d < secs(60) && d > secs(59)));
    }

    #[test]
    fn retry_after_replaces_the_backoff() {
        let limited = Failure {
            retryable: true,
            retry_after: Some(secs(7)),
        };
        assert_eq!(
            next_step(5, &limited, Duration::ZERO, &settings(), 0.9),
            NextStep::Retry(secs(7))
        );
    }

    #[test]
    fn the_last_attempt_gives_up_into_the_dead_letters() {
        assert_eq!(
            next_step(20, &TRANSIENT, Duration::ZERO, &settings(), 0.0),
            NextStep::DeadLetter(GiveUp::MaxAttempts)
        );
        assert!(matches!(
            next_step(19, &TRANSIENT, Duration::ZERO, &settings(), 0.0),
            NextStep::Retry(_)
        ));
    }

    #[test]
    fn a_retry_that_would_land_after_the_horizon_gives_up_instead() {
        // 299 s old, next try in 1 s: exactly at the horizon is still in time.
        assert_eq!(
            next_step(1, &TRANSIENT, secs(299), &settings(), 0.0),
            NextStep::Retry(secs(1))
        );
        assert_eq!(
            next_step(
                1,
                &TRANSIENT,
                Duration::from_millis(299_001),
                &settings(),
                0.0
            ),
            NextStep::DeadLetter(GiveUp::PastHorizon)
        );
        // A long Retry-After counts too.
        let limited = Failure {
            retryable: true,
            retry_after: Some(secs(120)),
        };
        assert_eq!(
            next_step(1, &limited, secs(200), &settings(), 0.0),
            NextStep::DeadLetter(GiveUp::PastHorizon)
        );
    }

    #[test]
    fn past_the_horizon_is_the_reason_even_when_the_attempts_ran_out_too() {
        assert_eq!(
            next_step(20, &TRANSIENT, secs(10_000), &settings(), 0.0),
            NextStep::DeadLetter(GiveUp::PastHorizon)
        );
    }

    #[test]
    fn the_dead_letter_reason_says_why_and_quotes_the_error() {
        let text = GaveUp {
            attempts: 20,
            why: GiveUp::MaxAttempts,
            error: &"CRM did not answer in time",
        }
        .to_string();
        assert_eq!(
            text,
            "gave up after 20 attempts (queue.max_attempts reached): CRM did not answer in time"
        );
    }

    #[test]
    fn only_a_retry_leaves_the_job_unfinished() {
        assert!(!JobOutcome::RetryScheduled.is_final());
        for outcome in [
            JobOutcome::Failed,
            JobOutcome::DeadLettered,
            JobOutcome::Processed(Outcome::Patched),
        ] {
            assert!(outcome.is_final());
        }
    }
}
